"""Does the attention matter: blanking boxes on a feature map, one photo's steps, and a dataset's true
positives, on the hand-made model of known_models (steps pinned to the centre and the four quadrants)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from known_models import known_predictor, scene
from ram_core.evaluation import evaluate_to_folder
from ram_core.occlusion import (OCCLUSION_FILE, OcclusionError, blank_boxes, cell_coverage, dataset_occlusion,
                                load_occlusion, occlude_steps, random_boxes, require_steps, summarise,
                                write_occlusion)

CORNERS = [(0, 0, 16, 16), (48, 0, 64, 16), (0, 48, 16, 64), (48, 48, 64, 64)]  # quadrant k + 2's outer corner


def test_cell_coverage_is_the_fraction_of_each_cell_inside_the_box():
    cov = cell_coverage(torch.tensor([0.0, 0.0, 0.5, 0.5]), 4, 4)
    assert torch.equal(cov, torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    thin = cell_coverage(torch.tensor([0.1, 0.0, 0.2, 1.0]), 2, 4)  # 4 columns of width 0.25
    torch.testing.assert_close(thin, torch.tensor([[0.4, 0, 0, 0], [0.4, 0, 0, 0]]))
    assert cell_coverage(torch.zeros(4), 3, 3).sum() == 0  # an empty box covers nothing


def test_blank_boxes_zeroes_the_union_of_each_variants_boxes():
    features = torch.ones(2, 4, 4)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]],  # one box (and an empty one)
                          [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]])  # two boxes
    out = blank_boxes(features, boxes)
    assert out.shape == (2, 2, 4, 4)
    assert out[0, 0].sum() == 12 and out[0, :, :2, :2].sum() == 0
    assert out[1, 0].sum() == 8 and out[1, :, 2:, 2:].sum() == 0


def test_only_the_step_that_looked_at_the_object_matters():
    predictor = known_predictor()
    for quadrant, corner in enumerate(CORNERS):
        occ = occlude_steps(predictor, scene(red_at=corner))
        red = occ.class_names.index("red")
        assert occ.scores[red] > 0.99
        step = quadrant + 2  # steps 2..5 read the four quadrants, step 1 the centre
        assert occ.drop[step - 1, red] > 0.98  # blanking its region takes the object away
        others = [k for k in range(5) if k != step - 1]
        assert np.abs(occ.drop[others]).max() < 1e-6  # blanking anywhere else changes nothing
        assert int(np.argmax(occ.step_effect())) == step - 1
        table = occ.table()
        assert table["class"].tolist()[0] == "red"
        assert table.loc[0, f"step {step}"] == pytest.approx(occ.drop[step - 1, red])


def test_with_test_time_flip_the_mirrored_box_is_blanked_in_the_mirror_image():
    predictor = known_predictor(test_time_flip=True)
    occ = occlude_steps(predictor, scene(red_at=CORNERS[0]))
    red = occ.class_names.index("red")
    # both views lose the red quarter: the averaged logit falls from 5 to -5 (blanking the unmirrored
    # box in the mirror image would leave it at 0, a score of 0.5)
    assert occ.occluded[1, red] < 0.01


def test_heads_without_steps_are_refused_with_a_message():
    from ram_core.config import RAMConfig

    with pytest.raises(OcclusionError, match="the baseline head, which has no attention steps"):
        require_steps(RAMConfig(class_names=["a"], head="baseline"))


def test_random_boxes_keep_the_sizes_and_stay_in_the_image():
    boxes = np.array([[0.1, 0.2, 0.6, 0.4], [0.0, 0.0, 1.0, 0.3]])
    for seed in range(20):
        r = random_boxes(boxes, np.random.default_rng(seed))
        np.testing.assert_allclose(r[:, 2:] - r[:, :2], boxes[:, 2:] - boxes[:, :2])
        assert (r >= 0).all() and (r <= 1 + 1e-12).all()


@pytest.fixture(scope="module")
def corner_scenes(tmp_path_factory):
    """20 scenes, each with a red square in one quadrant's outer corner and, in half of them, a blue one
    in another quadrant's; evaluated by the known model."""
    root = tmp_path_factory.mktemp("corners")
    rng = np.random.default_rng(0)
    rows = ["image,labels"]
    for n in range(20):
        q = rng.permutation(4)
        blue = CORNERS[q[1]] if n % 2 else None
        scene(red_at=CORNERS[q[0]], blue_at=blue).save(root / f"{n:02d}.png")
        rows.append(f"{n:02d}.png,red" + (";blue" if blue else ""))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    predictor = known_predictor()
    result, _ = evaluate_to_folder(predictor, "folder", root, None, root / "eval", workers=0)
    return predictor, result, root


def test_over_a_dataset_the_step_that_gave_the_max_matters_more_than_a_random_box(corner_scenes):
    predictor, result, _ = corner_scenes
    stats = dataset_occlusion(predictor, result, seed=0, batch_size=6)
    o = stats["overall"]
    assert o["true_positives"] == 30 and stats["num_images_tested"] == 20  # 20 red + 10 blue
    assert o["max_from_global"] == 0  # the known model leaves the global step out of the max
    assert o["mean_drop_step"] > 0.98
    assert o["mean_drop_random"] < 0.6
    assert o["step_drops_more"] > 0.75
    # by importance the first step blanked takes the object away; random boxes of the same sizes in the
    # same order do it later, on average
    curve, rand = o["deletion_curve"], o["random_curve"]
    assert len(curve) == 6 and curve[0] > 0.99 and max(curve[1:]) < 0.02
    assert rand[1] > curve[1] + 0.3 and o["random_area"] > o["deletion_area"]
    assert stats["per_class"]["blue"]["true_positives"] == 10
    assert stats["per_class"]["red"]["mean_drop_step"] > 0.98
    json.dumps(stats, allow_nan=False)


def test_occlusion_json_round_trips_and_a_missing_one_is_none(corner_scenes, tmp_path):
    predictor, result, root = corner_scenes
    assert load_occlusion(tmp_path) is None
    stats = dataset_occlusion(predictor, result, seed=1)
    path = write_occlusion(stats, tmp_path)
    assert path.name == OCCLUSION_FILE and load_occlusion(tmp_path) == json.loads(path.read_text())
    path.write_text("{broken")
    assert load_occlusion(tmp_path) is None


def test_summarise_counts_global_maxima_apart_and_averages_the_curves():
    records = [
        {"class": "a", "step": 2, "score": 0.9, "drop_step": 0.8, "drop_random": 0.1, "by_importance": [0.9, 0.1, 0.0],
         "random_order": [0.9, 0.8, 0.5]},
        {"class": "a", "step": 0, "score": 0.7, "drop_step": None, "drop_random": None,
         "by_importance": [0.7, 0.5, 0.2], "random_order": [0.7, 0.7, 0.6]},
    ]
    s = summarise(records, ["a", "b"], 2)
    a = s["per_class"]["a"]
    assert a["true_positives"] == 2 and a["max_from_global"] == 1
    assert a["mean_drop_step"] == 0.8 and a["mean_drop_random"] == 0.1 and a["step_drops_more"] == 1.0
    assert a["deletion_curve"] == [0.8, 0.3, 0.1] and a["random_curve"] == [0.8, 0.75, 0.55]
    assert a["deletion_area"] == pytest.approx((0.8 / 2 + 0.3 + 0.1 / 2) / 2)
    assert s["per_class"]["b"]["true_positives"] == 0 and s["per_class"]["b"]["mean_drop_step"] is None


def test_an_evaluation_without_true_positives_is_refused(corner_scenes):
    import dataclasses

    predictor, result, _ = corner_scenes
    empty = dataclasses.replace(result, scores=np.zeros_like(result.scores))
    with pytest.raises(OcclusionError, match="no true positive"):
        dataset_occlusion(predictor, empty)


def test_evaluate_occlusion_writes_occlusion_json_and_a_run_without_it_removes_a_stale_one(tmp_path, capsys):
    from ram_core.backbones import RANDOM_INIT
    from ram_core.checkpoints import save_checkpoint
    from ram_core.cli import main
    from ram_core.config import RAMConfig
    from ram_core.data import make_synthetic_voc
    from ram_core.model import build_model

    classes = ["circle", "square", "triangle"]
    make_synthetic_voc(tmp_path / "scenes", 12, image_size=64, classes=classes, seed=1)
    torch.manual_seed(0)
    cfg = RAMConfig(class_names=classes, input_size=64, num_steps=3, region_size=2, embed_dim=16, hidden_size=16)
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", build_model(cfg, RANDOM_INIT), backbone_weights="checkpoint")
    out = tmp_path / "eval"
    args = ["evaluate", "--data", "synthetic", "--root", str(tmp_path / "scenes"), "--split", "trainval",
            "--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu", "--workers", "0", "--no-progress",
            "--threshold", "0.3"]  # random weights: a low threshold gives true positives to test
    assert main(args + ["--occlusion"]) == 0
    stats = load_occlusion(out)
    assert stats is not None and stats["num_steps"] == 3 and stats["overall"]["true_positives"] > 0
    assert len(stats["overall"]["deletion_curve"]) == 4 and set(stats["per_class"]) <= set(classes)
    assert "occlusion:" in capsys.readouterr().out
    assert main(args) == 0
    assert not (out / OCCLUSION_FILE).exists()

    base = save_checkpoint(tmp_path / "base.safetensors", build_model(cfg.replace(head="baseline"), RANDOM_INIT),
                           backbone_weights="checkpoint")
    rc = main(args[:8] + [str(base)] + args[9:] + ["--occlusion", "--out", str(tmp_path / "base_eval")])
    assert rc == 2 and "no attention steps" in capsys.readouterr().err
    assert not (tmp_path / "base_eval").exists()  # refused before evaluating


@pytest.mark.parametrize("fuse_global", [False, True])
def test_the_step_that_gave_the_max_is_the_one_the_traces_name(fuse_global):
    from ram_core.model import RAMOutput
    from ram_core.occlusion import max_steps
    from ram_core.trace import traces_from_output

    torch.manual_seed(0)
    step_logits = torch.randn(6, 3, 4)
    global_logits = torch.randn(6, 4)
    fused = torch.cat([global_logits[:, None], step_logits], 1).amax(1) if fuse_global else step_logits.amax(1)
    out = RAMOutput(fused, global_logits, step_logits, torch.zeros(6, 3, 4))
    traces = traces_from_output(out, ["x"] * 6, [(10, 10)] * 6, list("abcd"), fuse_global)
    best = max_steps(global_logits, step_logits, fuse_global)
    assert [[t.max_step[c] for c in "abcd"] for t in traces] == best.tolist()
    assert (best == 0).any() == fuse_global  # the global step gives some maxima only when fused


def test_with_the_global_step_in_the_fusion_the_object_still_needs_its_step():
    # the known model with fuse_global: the global step sees the red corner diluted over the whole map
    # (redness 1/16: logit 40/16 - 5 < 0), so the quadrant's step still gives the max
    predictor = known_predictor(fuse_global=True)
    occ = occlude_steps(predictor, scene(red_at=CORNERS[0]))
    red = occ.class_names.index("red")
    assert occ.drop[1, red] > 0.9 and np.abs(np.delete(occ.drop[:, red], 1)).max() < 1e-6


def test_a_paper_preset_model_is_occluded_in_softmax_scores():
    from ram_core.checkpoints import CheckpointInfo
    from ram_core.inference import Predictor
    from ram_core.model import RAMModel
    from ram_core.presets import paper_config

    from known_models import Miniature

    cfg = paper_config(["red", "blue", "green"], input_size=64, num_steps=3).replace(
        region_channels=4, embed_dim=8, hidden_size=8, z_size=8)
    from ram_core.heads import build_head

    torch.manual_seed(0)
    model = RAMModel(cfg, Miniature(), build_head(cfg, 3)).eval()
    predictor = Predictor(model, CheckpointInfo(cfg, "checkpoint"), torch.device("cpu"))
    occ = occlude_steps(predictor, scene(red_at=CORNERS[0]))
    assert occ.occluded.shape == (3, 3)
    np.testing.assert_allclose(occ.occluded.sum(1), 1.0, atol=1e-5)  # a softmax over the classes
    np.testing.assert_allclose(occ.scores.sum(), 1.0, atol=1e-5)
