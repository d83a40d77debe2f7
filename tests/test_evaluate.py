"""`python -m ram_core evaluate`: report.json, predictions.jsonl, errors, checkpoint summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ram_core import metrics
from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import CheckpointInfo, read_metadata, save_checkpoint
from ram_core.cli import main
from ram_core.config import RAMConfig
from ram_core.data import build_dataset, make_synthetic_voc
from ram_core.evaluation import EvaluationError, evaluate_dataset, load_evaluation, write_evaluation
from ram_core.inference import Predictor
from ram_core.model import build_model

CLASSES = ["circle", "square", "triangle"]
SIX = ("CP", "CR", "CF1", "OP", "OR", "OF1")


def tiny_cfg(**kw) -> RAMConfig:
    return RAMConfig(class_names=list(CLASSES), input_size=64, num_steps=3, region_size=2,
                     embed_dim=16, hidden_size=16, **kw)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """16 synthetic scenes; trainval = 12 of them."""
    root = tmp_path_factory.mktemp("scenes")
    make_synthetic_voc(root, 16, image_size=64, classes=CLASSES, seed=1)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(), RANDOM_INIT).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model, backbone_weights="checkpoint")


@pytest.fixture(scope="module")
def evaluated(scenes, checkpoint, tmp_path_factory):
    """One CLI run shared by the schema tests (DataLoader workers on, as by default)."""
    out = tmp_path_factory.mktemp("eval")
    code = main(["evaluate", "--data", "synthetic", "--root", str(scenes), "--split", "trainval",
                 "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu", "--batch-size", "5",
                 "--workers", "2", "--no-progress"])
    assert code == 0
    return out


def run_cli(scenes, checkpoint, out, *extra) -> int:
    return main(["evaluate", "--data", "synthetic", "--root", str(scenes), "--split", "trainval",
                 "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu", "--workers", "0",
                 "--no-progress", *extra])


def test_report_has_the_metrics_in_range(evaluated, checkpoint):
    report = json.loads((evaluated / "report.json").read_text())
    for key in ("mAP", "per_class_ap", *SIX, "top3", "num_images", "checkpoint", "dataset", "threshold", "model",
                "step_mAP", "global_mAP", "box_hit_rates"):
        assert key in report, key
    assert report["num_images"] == 12
    assert report["checkpoint"] == str(checkpoint)
    assert report["dataset"]["kind"] == "synthetic" and report["dataset"]["split"] == "trainval"
    assert report["model"] == {**report["model"], "head": "ram", "num_steps": 3, "input_size": 64,
                               "backbone": "tf_efficientnet_lite0"}
    assert set(report["per_class_ap"]) == set(CLASSES)
    for value in [report["mAP"], *report["per_class_ap"].values(), *(report[k] for k in SIX),
                  *report["top3"].values(), *report["step_mAP"]]:
        assert value is None or 0.0 <= value <= 100.0
    assert len(report["step_mAP"]) == 3
    assert len(report["box_hit_rates"]["per_step"]) == 3


def test_predictions_have_one_line_per_image_with_the_trace_schema(evaluated, scenes):
    lines = (evaluated / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12
    dataset = build_dataset("synthetic", scenes, "trainval")
    for line, image_id in zip(lines, dataset.ids):
        record = json.loads(line)
        assert record["id"] == image_id
        assert record["image"].endswith(f"{image_id}.jpg")
        assert (record["width"], record["height"]) == (64, 64)
        assert set(record["ground_truth"]) <= set(CLASSES) and record["ground_truth"]
        assert set(record["scores"]) == set(record["global_scores"]) == set(record["max_step"]) == set(CLASSES)
        assert len(record["steps"]) == 3
        for step in record["steps"]:
            assert set(step) >= {"step", "box", "box_norm", "transform", "scores"}
            x0, y0, x1, y1 = step["box"]
            assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 64
        assert all(obj[0] in CLASSES and len(obj) == 6 for obj in record["objects"])


def test_ap_matches_the_metrics_on_the_stored_scores(evaluated, scenes):
    report, predictions = load_evaluation(evaluated)
    dataset = build_dataset("synthetic", scenes, "trainval")
    scores = np.array([[p["scores"][c] for c in CLASSES] for p in predictions])
    again = metrics.evaluate_scores(scores, dataset.targets, CLASSES, mask=dataset.eval_masks)
    assert report["per_class_ap"] == again["per_class_ap"]
    assert report["mAP"] == again["mAP"]
    assert {k: report[k] for k in SIX} == {k: again[k] for k in SIX}
    assert report["top3"] == again["top3"]


def test_malformed_annotation_is_a_clear_error_with_exit_code_2(scenes, checkpoint, tmp_path, capsys):
    broken = tmp_path / "broken"
    make_synthetic_voc(broken, 4, image_size=32, classes=CLASSES)
    victim = sorted((broken / "Annotations").glob("*.xml"))[0]
    victim.write_text("<annotation><object><name>circle</name>")  # cut short
    code = run_cli(broken, checkpoint, tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and victim.name in err and "Traceback" not in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_unreadable_photo_is_named_or_skipped(scenes, checkpoint, tmp_path, capsys):
    data = tmp_path / "data"
    make_synthetic_voc(data, 8, image_size=32, classes=CLASSES)
    dataset = build_dataset("synthetic", data, "trainval")
    photo = dataset.image_paths[1]
    photo.write_bytes(b"not a jpeg at all")
    assert run_cli(data, checkpoint, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert photo.name in err and "--skip-bad" in err and "Traceback" not in err

    assert run_cli(data, checkpoint, tmp_path / "b", "--skip-bad") == 0
    report, predictions = load_evaluation(tmp_path / "b")
    assert report["num_images"] == len(dataset) - 1 == len(predictions)
    assert len(report["skipped"]) == 1 and photo.name in report["skipped"][0]
    assert dataset.ids[1] not in {p["id"] for p in predictions}


def test_update_checkpoint_writes_the_summary_once(scenes, checkpoint, tmp_path, capsys):
    ckpt = tmp_path / "copy.safetensors"
    ckpt.write_bytes(checkpoint.read_bytes())
    assert read_metadata(ckpt).evaluation is None
    assert run_cli(scenes, ckpt, tmp_path / "a", "--update-checkpoint", "--limit", "4") == 0
    summary = read_metadata(ckpt).evaluation
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert summary["mAP"] == report["mAP"] and summary["num_images"] == 4
    assert run_cli(scenes, ckpt, tmp_path / "b", "--update-checkpoint", "--threshold", "0.9", "--limit", "4") == 0
    assert read_metadata(ckpt).evaluation == summary
    assert "already has an evaluation summary" in capsys.readouterr().out


def test_baseline_head_and_extra_dataset_classes(tmp_path):
    """A head without steps, on a dataset with a class the model does not know."""
    data = tmp_path / "data"
    make_synthetic_voc(data, 8, image_size=32, classes=[*CLASSES, "cross"], seed=3)
    dataset = build_dataset("synthetic", data, "trainval")
    torch.manual_seed(0)
    cfg = tiny_cfg(head="baseline")
    predictor = Predictor(build_model(cfg, RANDOM_INIT), CheckpointInfo(cfg, RANDOM_INIT, source="mem"),
                          torch.device("cpu"))
    calls = []
    result = evaluate_dataset(predictor, dataset, batch_size=4, workers=0, progress=lambda *a: calls.append(a))
    assert [c[0] for c in calls] == [4, 6] and calls[-1][1] == 6
    report = result.report
    assert report["class_names"] == CLASSES and report["classes_not_in_model"] == ["cross"]
    assert report["step_mAP"] == [] and "box_hit_rates" not in report and report["model"]["num_steps"] == 0
    paths = write_evaluation(result, tmp_path / "out", compress=True)
    assert paths["predictions"].name == "predictions.jsonl.gz"
    loaded, predictions = load_evaluation(tmp_path / "out")
    assert loaded["mAP"] == report["mAP"] and len(predictions) == 6
    assert all(p["steps"] == [] for p in predictions)


def test_load_evaluation_refuses_what_is_not_one(tmp_path):
    with pytest.raises(EvaluationError, match="no report.json"):
        load_evaluation(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(EvaluationError, match="not a readable JSON"):
        load_evaluation(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"per_class_ap": {"a": 1.0}}))
    with pytest.raises(EvaluationError, match="no predictions.jsonl"):
        load_evaluation(tmp_path)
