"""Per-class thresholds: the max-F1 choice (known answers and a brute-force check), checking them in a
checkpoint's metadata, the checkpoint copy, and their use by predict, evaluate and traces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ram_core import metrics
from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import (META_KEY, CheckpointInfo, load_checkpoint, read_metadata, save_checkpoint,
                                  update_evaluation)
from ram_core.cli import main
from ram_core.config import RAMConfig
from ram_core.errors import CheckpointError
from ram_core.model import build_model
from ram_core.thresholds import (best_f1_threshold, best_f1_thresholds, default_copy_path, f1_table,
                                 metrics_at_class_thresholds, parse_class_thresholds, write_checkpoint_copy)
from ram_core.trace import AttentionTrace

CLASSES = ["circle", "square", "triangle"]


def test_the_threshold_with_the_best_f1_sits_between_two_scores():
    best = best_f1_threshold([0.9, 0.8, 0.7, 0.6, 0.3], [1, 1, 0, 1, 0])
    # predicting >= 0.6 gives P 3/4, R 1: F1 6/7, better than at 0.8 (0.8) or 0.3 (0.75)
    assert best["f1"] == pytest.approx(6 / 7) and best["threshold"] == pytest.approx(0.45)
    assert best["precision"] == 0.75 and best["recall"] == 1.0


def test_among_equal_f1s_the_highest_threshold_wins_and_no_positives_gives_none():
    # >= 0.8 and >= 0.2 both give F1 2/3 (P 1 R 1/2 and P 1/2 R 1)
    assert best_f1_threshold([0.8, 0.6, 0.4, 0.2], [1, 0, 0, 1])["threshold"] == pytest.approx(0.7)
    assert best_f1_threshold([0.5, 0.4], [0, 0]) is None


def test_best_f1_thresholds_maximise_f1_against_a_brute_force_search():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((200, 4)), 3)
    targets = rng.random((200, 4)) < np.array([0.5, 0.2, 0.05, 0.0])
    masks = rng.random((200, 4)) > 0.1
    chosen = best_f1_thresholds(scores, targets, masks, list("abcd"))
    assert set(chosen) == {"a", "b", "c"}  # d has no positive
    for c, name in enumerate("abc"):
        f1_at = lambda t: metrics.per_class_prf(scores[:, c], targets[:, c], t, masks[:, c])["f1"][0]  # noqa: E731
        brute = max(np.nan_to_num(f1_at(t)) for t in np.unique(scores[:, c]))
        assert f1_at(chosen[name]) == pytest.approx(brute)


def test_classes_with_too_few_positives_keep_the_single_threshold():
    scores = np.array([[0.9, 0.9], [0.2, 0.1], [0.8, 0.3]])
    targets = np.array([[1, 1], [0, 0], [1, 0]])
    assert set(best_f1_thresholds(scores, targets, None, ["a", "b"], min_positives=2)) == {"a"}


def test_masked_entries_do_not_count():
    scores = np.array([[0.9], [0.8], [0.7]])
    targets = np.array([[1], [0], [1]])
    assert best_f1_thresholds(scores, targets, np.array([[1], [0], [1]]), ["a"])["a"] == pytest.approx(0.7)
    assert best_f1_thresholds(scores, targets, None, ["a"])["a"] == pytest.approx(0.7)  # same best, 0.8 < 1
    assert best_f1_thresholds(scores, targets, np.array([[1], [1], [0]]), ["a"])["a"] == pytest.approx(0.85)


def test_f1_table_and_metrics_at_the_class_thresholds():
    scores = np.array([[0.9, 0.2], [0.3, 0.25], [0.1, 0.3]])
    targets = np.array([[1, 0], [1, 0], [0, 1]])
    table = f1_table(scores, targets, None, ["a", "b"], 0.5, {"a": 0.2, "b": 0.28})
    assert table["F1 @ single"].tolist() == pytest.approx([100 * 2 / 3, 0.0])  # b: a positive, no prediction
    assert table["F1 @ class"].tolist() == pytest.approx([100.0, 100.0])
    assert table["threshold"].tolist() == [0.2, 0.28]
    extra = metrics_at_class_thresholds(scores, targets, None, ["a", "b"], 0.5, {"a": 0.2})
    assert extra["class_thresholds"] == {"a": 0.2, "b": 0.5}
    assert extra["at_class_thresholds"]["CR"] == pytest.approx(50.0)  # a: 2/2, b: 0/1


@pytest.mark.parametrize("value, message", [
    ([0.5], "map class names"),
    ({"dog": 0.5}, "not one of the model's classes"),
    ({"circle": 1.5}, "between 0 and 1"),
    ({"circle": "high"}, "between 0 and 1"),
    ({"circle": True}, "between 0 and 1"),
])
def test_bad_class_thresholds_are_named(value, message):
    with pytest.raises(ValueError, match=message):
        parse_class_thresholds(value, CLASSES)
    assert parse_class_thresholds(None, CLASSES) is None
    assert parse_class_thresholds({"circle": 0}, CLASSES) == {"circle": 0.0}


@pytest.fixture
def checkpoint(tmp_path):
    cfg = RAMConfig(class_names=list(CLASSES), input_size=64, num_steps=2, region_size=2, embed_dim=8, hidden_size=8)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.safetensors", build_model(cfg, RANDOM_INIT), backbone_weights="checkpoint")


def test_the_copy_carries_the_thresholds_and_the_original_is_untouched(checkpoint):
    before = checkpoint.read_bytes()
    out = write_checkpoint_copy(checkpoint, default_copy_path(checkpoint), {"circle": 0.3}, chosen_on="runs/val")
    assert out.name == "tiny_thresholds.safetensors" and checkpoint.read_bytes() == before
    info = read_metadata(out)
    assert info.class_thresholds == {"circle": 0.3} and info.provenance["class_thresholds_from"] == "runs/val"
    assert read_metadata(checkpoint).class_thresholds is None
    a, _ = load_checkpoint(checkpoint)
    b, _ = load_checkpoint(out)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    update_evaluation(out, {"mAP": 50.0})  # rewriting the metadata keeps them
    assert read_metadata(out).class_thresholds == {"circle": 0.3}
    with pytest.raises(CheckpointError, match="is the checkpoint itself"):
        write_checkpoint_copy(checkpoint, checkpoint, {"circle": 0.3})
    with pytest.raises(CheckpointError, match="not one of the model's classes"):
        write_checkpoint_copy(checkpoint, checkpoint.with_name("x.safetensors"), {"dog": 0.3})


def test_a_checkpoint_with_broken_thresholds_is_refused_with_a_message(checkpoint, tmp_path):
    from safetensors.torch import load, save

    blob = checkpoint.read_bytes()
    info = read_metadata(checkpoint)
    meta = {**info.to_metadata(), "class_thresholds": {"circle": 7}}
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(save(load(blob), metadata={META_KEY: json.dumps(meta)}))
    with pytest.raises(CheckpointError, match=r"class_thresholds\['circle'\] must be a number between 0 and 1"):
        read_metadata(bad)


def test_traces_label_each_class_at_its_own_threshold():
    trace = AttentionTrace("x", 10, 10, ["a", "b", "c"], {"a": 0.9, "b": 0.3, "c": 0.2}, {}, [], {},
                           threshold=0.5, class_thresholds={"b": 0.25})
    assert trace.labels() == ["a", "b"]  # b at its own 0.25; c at the single 0.5
    assert trace.labels(0.1) == ["a", "b", "c"]  # a threshold given applies to every class
    again = AttentionTrace.from_json(json.loads(json.dumps(trace.to_json())))
    assert again.class_thresholds == {"b": 0.25} and again.labels() == ["a", "b"]
    assert "class_thresholds" not in AttentionTrace("x", 1, 1, ["a"], {"a": 0.1}, {}, [], {}).to_json()


def test_predict_uses_the_checkpoints_thresholds_unless_told_not_to(checkpoint, tmp_path, capsys):
    from test_app_pages import SAMPLE

    args = ["predict", str(SAMPLE), "--json", "--device", "cpu"]
    main(args + ["--checkpoint", str(checkpoint)])
    plain = json.loads(capsys.readouterr().out)
    low = {c: 0.0 for c in CLASSES}  # every class becomes a label
    copy = write_checkpoint_copy(checkpoint, tmp_path / "low.safetensors", low)
    main(args + ["--checkpoint", str(copy), "--threshold", "1.0"])
    used = json.loads(capsys.readouterr().out)
    assert sorted(used["labels"]) == sorted(CLASSES) and used["class_thresholds"] == low
    main(args + ["--checkpoint", str(copy), "--threshold", "1.0", "--single-threshold"])
    single = json.loads(capsys.readouterr().out)
    assert single["labels"] == [] and "class_thresholds" not in single
    assert used["scores"] == plain["scores"]


def test_thresholds_command_then_evaluate_reports_f1_at_both(tmp_path, capsys):
    from ram_core.data import make_synthetic_voc

    make_synthetic_voc(tmp_path / "scenes", 12, image_size=64, classes=CLASSES, seed=1)
    cfg = RAMConfig(class_names=list(CLASSES), input_size=64, num_steps=2, region_size=2, embed_dim=8, hidden_size=8)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model(cfg, RANDOM_INIT), backbone_weights="checkpoint")
    evaluate = ["evaluate", "--data", "synthetic", "--root", str(tmp_path / "scenes"), "--split", "trainval",
                "--device", "cpu", "--workers", "0", "--no-progress"]
    assert main(evaluate + ["--checkpoint", str(ckpt), "--out", str(tmp_path / "val")]) == 0
    assert "class_thresholds" not in json.loads((tmp_path / "val" / "report.json").read_text())
    capsys.readouterr()

    assert main(["thresholds", "--eval", str(tmp_path / "val"), "--checkpoint", str(ckpt), "--min-positives", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    copy = tmp_path / "m_thresholds.safetensors"
    assert out["checkpoint"] == str(copy) and read_metadata(copy).class_thresholds == out["class_thresholds"]
    rows = {r["class"]: r for r in out["classes"]}
    for name in out["class_thresholds"]:  # chosen on this evaluation: never worse than the single threshold
        assert rows[name]["F1 @ class"] >= rows[name]["F1 @ single"] - 1e-9

    assert main(evaluate + ["--checkpoint", str(copy), "--out", str(tmp_path / "again")]) == 0
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert set(report["class_thresholds"]) == set(CLASSES)
    assert {"CP", "CR", "CF1", "OP", "OR", "OF1"} == set(report["at_class_thresholds"])
    assert "per-class thresholds: CF1" in capsys.readouterr().out
    assert main(evaluate + ["--checkpoint", str(copy), "--out", str(tmp_path / "single"), "--single-threshold"]) == 0
    assert "class_thresholds" not in json.loads((tmp_path / "single" / "report.json").read_text())


def test_thresholds_command_names_a_missing_checkpoint(tmp_path, capsys):
    from ram_core.data import make_synthetic_voc
    from ram_core.evaluation import evaluate_to_folder
    from ram_core.inference import Predictor

    make_synthetic_voc(tmp_path / "scenes", 8, image_size=64, classes=CLASSES, seed=1)
    cfg = RAMConfig(class_names=list(CLASSES), input_size=64, num_steps=2, region_size=2, embed_dim=8, hidden_size=8)
    model = build_model(cfg, RANDOM_INIT).eval()
    predictor = Predictor(model, CheckpointInfo(cfg, "checkpoint", source="gone.safetensors"), torch.device("cpu"))
    evaluate_to_folder(predictor, "synthetic", tmp_path / "scenes", "trainval", tmp_path / "ev", workers=0)
    assert main(["thresholds", "--eval", str(tmp_path / "ev")]) == 2
    assert "give --checkpoint PATH" in capsys.readouterr().err
