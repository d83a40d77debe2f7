"""The companion branch (config.companion): a CSRA head beside the recurrence, on its own loss."""

import argparse

import pytest
import torch
from torch import nn

from ram_core.config import RAMConfig
from ram_core.losses import classification_loss, ram_loss
from ram_core.model import RAMOutput, average_with_mirror, build_head, concat_outputs
from ram_core.trace import AttentionTrace, traces_from_output
from ram_core.viz.figures import trajectory_figure

CLASSES = ["cat", "dog", "person"]
# ImageNet indices per class (tiny fake groups; the tests build their own 1000-class classifier)
GROUPS = [[1, 2], [3], []]


def make_cfg(**changes) -> RAMConfig:
    base = dict(class_names=CLASSES, backbone="tf_efficientnet_lite0", head="ram", num_steps=3, region_size=4,
                region_encoder="pool", embed_dim=16, hidden_size=16, region_skip=True, imagenet_groups=GROUPS,
                imagenet_mode="prior+init", fusion="average", global_attention=0.1, companion="csra",
                companion_weight=0.3, dropout=0.0)
    return RAMConfig(**{**base, **changes})


def features(b: int = 4) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(b, 1280, 6, 7)  # asymmetric map: 6 rows, 7 columns


def test_logits_mix_the_two_branches_with_the_configured_weight():
    torch.manual_seed(0)
    head = build_head(make_cfg()).eval()
    out = head(features())
    assert out.branch_logits.shape == (4, 2, 3)
    recurrent, companion = out.branch_logits[:, 0], out.branch_logits[:, 1]
    torch.testing.assert_close(out.logits, 0.3 * recurrent + 0.7 * companion)
    # the recurrent branch's own scores are the average fusion of its global step and best step
    torch.testing.assert_close(recurrent, (out.global_logits + out.step_logits.amax(1)) / 2)
    # the companion is the CSRA head on the whole map
    torch.testing.assert_close(companion, head.companion(features()).logits)


def test_without_a_companion_there_are_no_branches():
    torch.manual_seed(0)
    head = build_head(make_cfg(companion="none")).eval()
    assert head.companion is None and head(features()).branch_logits is None


def test_each_branch_learns_from_its_own_loss_only():
    torch.manual_seed(0)
    cfg = make_cfg()
    head = build_head(cfg).train()
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
    out = head(features())
    # the recurrent branch's loss leaves the companion's weights untouched, and the reverse
    classification_loss(out.branch_logits[:, 0], targets, "bce").backward(retain_graph=True)
    assert head.companion.classifier.weight.grad is None or not head.companion.classifier.weight.grad.any()
    assert head.region_classifier.weight.grad.abs().sum() > 0
    head.zero_grad(set_to_none=True)
    classification_loss(out.branch_logits[:, 1], targets, "bce").backward()
    assert head.companion.classifier.weight.grad.abs().sum() > 0
    for name, p in head.named_parameters():
        if not name.startswith("companion.") and p.grad is not None:
            assert not p.grad.any(), name


def test_the_loss_is_the_sum_of_both_branch_losses_and_ignores_the_mix():
    torch.manual_seed(0)
    cfg = make_cfg()
    head = build_head(cfg).eval()
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
    out = head(features())
    anchors = torch.tensor(cfg.anchors)
    terms = ram_loss(out, targets, cfg.loss, anchors)
    both = sum(classification_loss(out.branch_logits[:, i], targets, "bce") for i in range(2))
    torch.testing.assert_close(terms.classification, both)
    # another mixing weight changes the scores, not what the branches are trained on
    other = ram_loss(RAMOutput(out.logits * 0 + 5.0, out.global_logits, out.step_logits, out.transforms,
                               out.branch_logits), targets, cfg.loss, anchors)
    torch.testing.assert_close(other.total, terms.total)


def test_the_companion_starts_from_imagenet_and_shares_the_frozen_classifier():
    from ram_core.heads import init_head_from_imagenet

    torch.manual_seed(0)
    head = build_head(make_cfg())
    imagenet = nn.Linear(1280, 1000)
    init_head_from_imagenet(head, imagenet)
    w = head.companion.classifier.weight
    torch.testing.assert_close(w[0], imagenet.weight[[1, 2]].mean(0))
    torch.testing.assert_close(w[1], imagenet.weight[3])
    assert head.companion.prior.imagenet is head.prior.imagenet
    torch.testing.assert_close(head.prior.imagenet.weight, imagenet.weight)
    # stored once: the companion's prior keeps only its own scale, bias and group table
    keys = [k for k in head.state_dict() if k.startswith("companion.prior.")]
    assert sorted(keys) == ["companion.prior.bias", "companion.prior.has_group", "companion.prior.membership",
                            "companion.prior.scale"]


def test_a_companion_checkpoint_round_trips(tmp_path):
    from ram_core.checkpoints import load_checkpoint, save_checkpoint
    from ram_core.model import build_model

    torch.manual_seed(0)
    cfg = make_cfg(input_size=64)
    model = build_model(cfg).eval()  # the package's ImageNet backbone, as the shipped models
    with torch.no_grad():
        model.head.companion.classifier.weight.normal_()
        model.head.companion.prior.scale.fill_(2.0)
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    loaded, info = load_checkpoint(path)
    assert info.config.companion == "csra" and info.config.companion_weight == 0.3
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert loaded.head.companion.prior.imagenet is loaded.head.prior.imagenet
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x).logits, loaded(x).logits)


def test_config_refuses_a_companion_without_the_recurrence_and_weights_outside_0_1():
    with pytest.raises(ValueError, match="companion needs the RAM head"):
        make_cfg(head="csra", region_skip=False, global_attention=0.0)
    with pytest.raises(ValueError, match="companion_weight"):
        make_cfg(companion_weight=1.5)
    with pytest.raises(ValueError, match="companion must be one of"):
        make_cfg(companion="gap")


def test_cli_sets_the_companion_and_another_head_on_the_default_recipe_drops_it():
    from ram_core.cli.train import add_model_args, config_from_args

    p = argparse.ArgumentParser()
    add_model_args(p)
    voc = ["aeroplane", "person", "dog"]
    cfg = config_from_args(p.parse_args(["--preset", "default", "--companion", "csra", "--companion-weight", "0.4"]), voc)
    assert (cfg.companion, cfg.companion_weight) == ("csra", 0.4)
    cfg = config_from_args(p.parse_args(["--preset", "default", "--head", "csra"]), voc)
    assert cfg.head == "csra" and cfg.companion == "none"


def test_flip_average_batches_and_traces_keep_the_branches():
    torch.manual_seed(0)
    cfg = make_cfg()
    head = build_head(cfg).eval()
    x = features()
    with torch.no_grad():
        out, mirrored = head(x), head(x.flip(-1))
    avg = average_with_mirror(out, mirrored)
    torch.testing.assert_close(avg.branch_logits, (out.branch_logits + mirrored.branch_logits) / 2)
    joined = concat_outputs([out.rows(slice(0, 2)), out.rows(slice(2, 4))])
    torch.testing.assert_close(joined.branch_logits, out.branch_logits)
    traces = traces_from_output(out, [f"{i}.jpg" for i in range(4)], [(70, 60)] * 4, CLASSES, False)
    t = traces[0]
    assert set(t.branch_scores) == {"recurrent", "companion"}
    assert t.branch_scores["companion"]["cat"] == pytest.approx(float(torch.sigmoid(out.branch_logits[0, 1, 0])),
                                                                abs=1e-5)
    back = AttentionTrace.from_json(t.to_json())
    assert back.branch_scores == t.branch_scores
    fig = trajectory_figure(t, ["cat"])
    xs = list(fig.data[1].x)
    assert xs[-3:] == ["Recurrent", "Companion", "Fused"]
    assert list(fig.data[1].y)[-3:] == pytest.approx([t.branch_scores["recurrent"]["cat"],
                                                      t.branch_scores["companion"]["cat"], t.scores["cat"]])


def test_the_inspect_caption_says_how_the_scores_are_fused():
    from ram_core.viz.figures import fusion_text

    text = fusion_text(make_cfg())
    assert "mean, in logits, of the global step and the best step" in text
    assert "30% / 70%" in text and "CSRA" in text
    assert "companion" not in fusion_text(make_cfg(companion="none"))
    assert "max over the attention steps" in fusion_text(make_cfg(companion="none", fusion="max"))


def test_the_sidebar_names_the_companion():
    from ram_core.app_support import head_text

    assert head_text(make_cfg()) == "recurrent attention, K = 3 + CSRA companion"
    assert head_text(make_cfg(companion="none")) == "recurrent attention, K = 3"
    assert "CSRA" in head_text(RAMConfig(class_names=CLASSES, head="csra"))
    assert "global pooling" in head_text(RAMConfig(class_names=CLASSES, head="baseline"))


def test_the_evaluate_page_gives_each_branch_its_map(tmp_path, monkeypatch):
    """An evaluation of a model with a companion: the report has both branches' mAP, and the page says them."""
    import json
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ram_core.backbones import RANDOM_INIT
    from ram_core.checkpoints import CheckpointInfo, save_checkpoint
    from ram_core.data import make_synthetic_voc
    from ram_core.eval_views import ENV_EVAL_DIR
    from ram_core.evaluation import evaluate_to_folder
    from ram_core.inference import Predictor
    from ram_core.model import build_model

    names = ["circle", "square", "triangle"]
    make_synthetic_voc(tmp_path / "scenes", 12, image_size=64, classes=names, seed=3)
    cfg = RAMConfig(class_names=names, input_size=64, num_steps=2, region_size=2, embed_dim=16, hidden_size=16,
                    companion="csra")
    torch.manual_seed(0)
    model = build_model(cfg, RANDOM_INIT).eval()
    ckpt = save_checkpoint(tmp_path / "two.safetensors", model, backbone_weights="checkpoint")
    predictor = Predictor(model, CheckpointInfo(cfg, "checkpoint", source="two"), torch.device("cpu"))
    evaluate_to_folder(predictor, "synthetic", tmp_path / "scenes", "trainval", tmp_path / "evals" / "two", workers=0)
    report = json.loads((tmp_path / "evals" / "two" / "report.json").read_text())
    assert set(report["branch_mAP"]) == {"recurrent", "companion"}
    monkeypatch.setenv(ENV_EVAL_DIR, str(tmp_path / "evals"))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(ckpt))
    root = Path(__file__).resolve().parent.parent
    at = AppTest.from_file(str(root / "app.py"), default_timeout=60)
    at.switch_page("pages/2_Evaluate.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(c.value for c in at.caption)
    assert (f"recurrent attention alone reaches mAP {report['branch_mAP']['recurrent']:.1f}" in text
            and f"companion (CSRA on the whole map) {report['branch_mAP']['companion']:.1f}" in text), text
