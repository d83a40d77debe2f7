"""predictions.npz: the columns `evaluate` writes beside predictions.jsonl hold the same numbers, the
app opens them without parsing the JSONL, and older folders (JSONL only) still open."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import save_checkpoint
from ram_core.cli import main
from ram_core.config import RAMConfig
from ram_core.data import make_synthetic_voc
from ram_core.eval_columns import COLUMNS_FILE, ragged, read_columns
from ram_core.eval_views import ColumnRecords, open_evaluation, summary
from ram_core.evaluation import EvaluationError

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module", params=["ram", "baseline"])
def evaluated(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"columns_{request.param}")
    make_synthetic_voc(tmp / "scenes", 14, image_size=64, classes=CLASSES, seed=5)
    torch.manual_seed(0)
    cfg = RAMConfig(class_names=[*CLASSES, "extra"], input_size=64, num_steps=3, region_size=2, embed_dim=16,
                    hidden_size=16, head=request.param)
    from ram_core.model import build_model

    ckpt = save_checkpoint(tmp / "m.safetensors", build_model(cfg, RANDOM_INIT).eval(), backbone_weights="checkpoint")
    out = tmp / "eval"
    assert main(["evaluate", "--data", "synthetic", "--root", str(tmp / "scenes"), "--split", "trainval",
                 "--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu", "--workers", "0",
                 "--no-progress", "--threshold", "0.3"]) == 0
    return out


def test_evaluate_writes_columns_the_report_names(evaluated):
    report = json.loads((evaluated / "report.json").read_text())
    assert report["columns"] == COLUMNS_FILE and (evaluated / COLUMNS_FILE).is_file()
    cols = read_columns(evaluated / COLUMNS_FILE)
    assert cols["scores"].dtype == np.float64 and cols["class_names"].tolist() == report["class_names"]


def test_columns_hold_the_numbers_of_the_jsonl(evaluated):
    fast = open_evaluation(evaluated)
    slow = open_evaluation(evaluated, prefer_columns=False)
    assert isinstance(fast.records, ColumnRecords) and isinstance(slow.records, list)
    assert fast.class_names == slow.class_names and fast.ids == slow.ids and fast.images == slow.images
    np.testing.assert_array_equal(fast.sizes, slow.sizes)
    for key in ("scores", "global_scores", "step_scores", "box_norm", "transforms"):
        np.testing.assert_allclose(getattr(fast, key), getattr(slow, key), atol=1.01e-5, err_msg=key)
    for key in ("max_step", "targets", "masks"):
        np.testing.assert_array_equal(getattr(fast, key), getattr(slow, key), err_msg=key)
    # the same metrics as the report, from either
    report = fast.report
    assert summary(fast, 0.3)["mAP"] == pytest.approx(report["mAP"], abs=1e-3)
    assert summary(slow, 0.3)["mAP"] == pytest.approx(report["mAP"], abs=1e-3)
    # each record, made on demand, is the JSONL's record for the evaluated classes
    for i in (0, len(fast) - 1):
        a, b = fast.records[i], slow.records[i]
        assert (a["id"], a["image"], a["width"], a["height"]) == (b["id"], b["image"], b["width"], b["height"])
        assert a["ground_truth"] == b["ground_truth"]
        assert a.get("objects") == b.get("objects") and a.get("ignored") == b.get("ignored")
        for cls in fast.class_names:
            assert a["scores"][cls] == pytest.approx(b["scores"][cls], abs=1.01e-5)
            assert a["max_step"][cls] == b["max_step"][cls]
        assert len(a["steps"]) == len(b["steps"])
        for sa, sb in zip(a["steps"], b["steps"]):
            assert sa["step"] == sb["step"] and sa["box_norm"] == pytest.approx(sb["box_norm"], abs=1.01e-5)
    with pytest.raises(IndexError):
        fast.records[len(fast)]


def test_an_older_folder_with_jsonl_only_still_opens(evaluated, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    report = json.loads((evaluated / "report.json").read_text())
    report.pop("columns")
    (old / "report.json").write_text(json.dumps(report))
    (old / "predictions.jsonl").write_bytes((evaluated / "predictions.jsonl").read_bytes())
    data = open_evaluation(old)
    assert isinstance(data.records, list) and len(data) == report["num_images"]
    # a report written again without "columns" is not paired with columns left beside it
    (old / COLUMNS_FILE).write_bytes(b"stale, not even an npz")
    assert isinstance(open_evaluation(old).records, list)


def test_damaged_columns_are_named(evaluated, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.json").write_bytes((evaluated / "report.json").read_bytes())
    (bad / COLUMNS_FILE).write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(EvaluationError, match=COLUMNS_FILE):
        open_evaluation(bad)
    arrays = dict(np.load(evaluated / COLUMNS_FILE))
    arrays.pop("scores")
    np.savez(bad / COLUMNS_FILE, **arrays)
    with pytest.raises(EvaluationError, match="missing scores"):
        open_evaluation(bad)


def test_ragged_rows():
    flat, offsets = ragged([[1, 2], [], [3]])
    assert flat.tolist() == [1, 2, 3] and offsets.tolist() == [0, 2, 2, 3]


def test_columns_command_converts_an_older_jsonl_only_folder(tmp_path, capsys):
    """An evaluation written before the columns existed: `columns DIR` adds them."""
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parent.parent / "assets" / "evaluations" / "default_cv"
    old = tmp_path / "default_cv"
    shutil.copytree(src, old)
    # made as an evaluation from before the columns: JSONL only
    (old / "predictions.npz").unlink(missing_ok=True)
    report = json.loads((old / "report.json").read_text())
    report.pop("columns", None)
    (old / "report.json").write_text(json.dumps(report))
    slow = open_evaluation(old)
    assert isinstance(slow.records, list)
    assert main(["columns", str(old)]) == 0
    assert "wrote" in capsys.readouterr().out
    fast = open_evaluation(old)
    assert isinstance(fast.records, ColumnRecords) and fast.ids == slow.ids and fast.images == slow.images
    for key in ("scores", "global_scores", "max_step", "targets", "masks"):
        np.testing.assert_array_equal(getattr(fast, key), getattr(slow, key), err_msg=key)
    np.testing.assert_allclose(fast.box_norm, slow.box_norm, atol=1e-6)
    for i in (0, 100, len(fast) - 1):
        a, b = fast.records[i], slow.records[i]
        assert a["ground_truth"] == b["ground_truth"] and a.get("objects") == b.get("objects")
    assert summary(fast, 0.5)["mAP"] == pytest.approx(summary(slow, 0.5)["mAP"])
