"""Probing a drawn region: the head's own step 1 reproduced from its transform, known answers on a
hand-made model, test-time flip, heads without steps and bad boxes refused with a message."""

from __future__ import annotations

import json

import pytest
import torch

from known_models import STEP_BOXES, known_predictor, scene
from ram_core.config import RAMConfig
from ram_core.head_hooks import mirror_boxes, mirror_transforms, region_step_logits
from ram_core.heads import build_head
from ram_core.probe import ProbeError, box_fractions, check_probe_head, probe_regions
from ram_core.sampler import box_to_transform, transform_to_box

CLASSES = ["circle", "square", "triangle"]


def small(**changes) -> RAMConfig:
    cfg = RAMConfig(class_names=CLASSES, input_size=64, num_steps=3, region_size=4, embed_dim=16, hidden_size=16)
    return cfg.replace(**changes)


@pytest.mark.parametrize("changes", [
    {},  # pool encoder, direct transforms
    {"region_encoder": "flatten", "region_channels": 8, "transform_mode": "anchored"},
    {"region_encoder": "maxpool", "region_channels": 8, "z_size": 12, "init_scale": 1.0},  # the paper's shape
    {"memory": False, "region_skip": True, "dropout": 0.3},
    {"transform_mode": "evidence", "region_skip": True, "fuse_global": True},
])
def test_probing_the_heads_own_step_1_transform_gives_its_step_1_scores(changes):
    torch.manual_seed(0)
    head = build_head(small(**changes), 24).eval()
    with torch.no_grad():
        for p in head.parameters():  # away from the zero initialisations, so that every part counts
            p.add_(torch.randn_like(p) * 0.2)
        features = torch.randn(2, 24, 6, 6)
        out = head(features)
        probe = region_step_logits(head, features, out.transforms[:, :1])  # (B, 1, classes)
        later = region_step_logits(head, features, out.transforms[:, 1:])  # steps 2.. read as step 1
    assert probe.shape == (2, 1, 3)
    torch.testing.assert_close(probe[:, 0], out.step_logits[:, 0], atol=1e-5, rtol=1e-5)
    # a later step's transform read as the first step after the global one is not that later step
    # (its memory differs), unless the head has no memory
    same = torch.allclose(later, out.step_logits[:, 1:], atol=1e-5)
    assert same == (not small(**changes).memory)


def test_several_probes_in_one_batch_do_not_mix():
    torch.manual_seed(1)
    head = build_head(small(region_skip=True), 24).eval()
    features = torch.randn(1, 24, 6, 6)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.2, 0.1, 0.9, 0.6]]])
    with torch.no_grad():
        together = region_step_logits(head, features, box_to_transform(boxes))
        alone = [region_step_logits(head, features, box_to_transform(boxes[:, j:j + 1])) for j in range(3)]
    torch.testing.assert_close(together, torch.cat(alone, 1))


def test_a_probe_on_the_object_scores_its_class_and_one_elsewhere_does_not():
    predictor = known_predictor()
    image = scene(red_at=(0, 0, 16, 16), blue_at=(40, 40, 56, 56))
    on_red, on_blue, on_grey = probe_regions(predictor, image, [(0, 0, 32, 32), (32, 32, 64, 64), (0, 32, 32, 64)])
    assert on_red.scores["red"] > 0.99 and on_red.scores["blue"] < 0.01
    assert on_blue.scores["blue"] > 0.99 and on_blue.scores["red"] < 0.01
    assert max(on_grey.scores.values()) < 0.01
    assert on_red.top(1)[0][0] == "red"
    # the probe's M is the one whose box is the rectangle drawn
    assert on_red.transform == {"s_x": 0.5, "s_y": 0.5, "t_x": -0.5, "t_y": -0.5}
    assert on_red.box == [0.0, 0.0, 32.0, 32.0] and on_red.box_norm == [0.0, 0.0, 0.5, 0.5]
    json.dumps(on_red.to_json())


def test_the_probe_of_a_steps_own_box_gives_that_steps_scores():
    predictor = known_predictor()
    image = scene(red_at=(4, 4, 20, 20))
    trace = predictor.predict_one("scene", image)
    boxes = [trace.steps[k - 1].box for k in (1, 2, 5)]
    assert boxes == [list(map(float, STEP_BOXES[k])) for k in (1, 2, 5)]
    for probe, k in zip(probe_regions(predictor, image, boxes), (1, 2, 5)):
        for c in probe.scores:  # the known head's step scores depend only on its region
            assert probe.scores[c] == pytest.approx(trace.steps[k - 1].scores[c], abs=1e-4)


def test_with_test_time_flip_the_probe_reads_the_mirrored_box_in_the_mirror_image():
    predictor = known_predictor(test_time_flip=True)
    red = probe_regions(predictor, scene(red_at=(0, 0, 16, 16)), [(0, 0, 32, 32)])[0]
    # both views see the red quarter: the logits (5 and 5) average to 5; reading the unmirrored box in
    # the mirror image would average 5 and -5 to a score of 0.5
    assert red.scores["red"] > 0.99
    boxes = torch.tensor([[0.1, 0.2, 0.4, 0.9]])
    torch.testing.assert_close(transform_to_box(mirror_transforms(box_to_transform(boxes))), mirror_boxes(boxes))


def test_heads_without_steps_cannot_be_probed_and_say_so():
    for head in ("baseline", "csra"):
        with pytest.raises(ProbeError, match=f"the {head} head, which has no attention steps"):
            check_probe_head(small(head=head))
    check_probe_head(small())


@pytest.mark.parametrize("box, message", [
    ((10, 10, 10, 40), "less than one pixel"),
    ((200, 200, 300, 300), "less than one pixel"),
    ((0, 0, float("nan"), 5), "not a finite number"),
    ((1, 2, 3), "four numbers"),
])
def test_bad_boxes_are_refused_with_the_problem_named(box, message):
    with pytest.raises(ProbeError, match=message):
        box_fractions(box, 64, 48)


def test_box_corners_in_any_order_and_past_the_edges_are_clipped_to_the_image():
    assert box_fractions((60, 40, -10, 8), 64, 48) == [0.0, 8 / 48, 60 / 64, 40 / 48]


def test_probe_command_prints_the_probes_and_the_steps_as_json(tmp_path, capsys):
    from test_app_pages import SAMPLE, tiny_checkpoint

    from ram_core.cli import main
    from ram_core.imageio import open_image
    from ram_core.inference import Predictor

    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors", num_steps=3)
    rc = main(["probe", str(SAMPLE), "--box", "10", "20", "200", "260", "--box", "300", "300", "500", "500",
               "--checkpoint", str(ckpt), "--json", "--device", "cpu"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["box"] for p in out["probes"]] == [[10.0, 20.0, 200.0, 260.0], [300.0, 300.0, 500.0, 500.0]]
    assert len(out["steps"]) == 3 and "one step after the global step" in out["method"]
    expected = probe_regions(Predictor.from_checkpoint(ckpt, "cpu"), open_image(SAMPLE), [(10, 20, 200, 260)])[0]
    assert out["probes"][0]["scores"] == expected.scores
    assert out["probes"][0]["top"][0] == list(expected.top(1)[0])


def test_probe_command_on_a_baseline_head_says_it_cannot_be_probed(tmp_path, capsys):
    from test_app_pages import SAMPLE

    from ram_core.backbones import RANDOM_INIT
    from ram_core.checkpoints import save_checkpoint
    from ram_core.cli import main
    from ram_core.model import build_model

    cfg = RAMConfig(class_names=CLASSES, input_size=64, head="baseline")
    ckpt = save_checkpoint(tmp_path / "base.safetensors", build_model(cfg, RANDOM_INIT), backbone_weights="checkpoint")
    rc = main(["probe", str(SAMPLE), "--box", "0", "0", "50", "50", "--checkpoint", str(ckpt), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "baseline head, which has no attention steps" in err and "Traceback" not in err


def test_a_paper_preset_models_probe_scores_are_a_softmax():
    from known_models import Miniature
    from ram_core.checkpoints import CheckpointInfo
    from ram_core.inference import Predictor
    from ram_core.model import RAMModel
    from ram_core.presets import paper_config

    cfg = paper_config(["red", "blue", "green"], input_size=64, num_steps=3).replace(
        region_channels=4, embed_dim=8, hidden_size=8, z_size=8)
    torch.manual_seed(0)
    model = RAMModel(cfg, Miniature(), build_head(cfg, 3)).eval()
    predictor = Predictor(model, CheckpointInfo(cfg, "checkpoint"), torch.device("cpu"))
    image = scene()
    trace = predictor.predict_one("x", image)
    probe = probe_regions(predictor, image, [trace.steps[0].box])[0]
    assert sum(probe.scores.values()) == pytest.approx(1.0, abs=1e-4)
    for c in probe.scores:  # the paper's step 1 from its own M (boxes inside the image at the start)
        assert probe.scores[c] == pytest.approx(trace.steps[0].scores[c], abs=2e-3)
