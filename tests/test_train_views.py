"""What the Train page shows, as plain functions: class warnings, curves, a job's progress, the typed
data root, and the hand-offs to the model picker, Inspect and Evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ram_core import train_views as tv
from ram_core.errors import DatasetError
from ram_core.jobs import Job
from ram_core.jobs.progress import write_json_atomic


def test_class_warnings_name_the_rare_and_the_unmeasured_classes():
    table = pd.DataFrame({"class": ["cat", "dog", "yak", "emu"], "training photos": [40, 3, 0, 12],
                          "validation photos": [9, 1, 0, 0]})
    warnings = tv.class_warnings(table)
    assert len(warnings) == 3
    assert "No training photo for **yak**" in warnings[0]
    assert "Fewer than 5 training photos for **dog**" in warnings[1]
    assert "No validation photo for **yak**, **emu**" in warnings[2]
    assert tv.class_warnings(table.iloc[:1]) == []


def test_curves_have_every_loss_term_and_the_validation_map():
    history = [{"epoch": e, "loss_total": 2.0 / e, "loss_classification": 1.5 / e, "loss_anchor": 0.2,
                "loss_scale": 0.1, "loss_positive": 0.0, "val_mAP": 50.0 + e, "val_mAP_selected": 55.0 + e}
               for e in (1, 2, 3)]
    fig = tv.curves_figure(history)
    names = [t.name for t in fig.data]
    assert names == ["total", "classification", "anchor", "scale", "positive", "mAP, all classes",
                     "mAP, classes with enough positives"]
    assert list(fig.data[5].y) == [51.0, 52.0, 53.0] and fig.data[5].xaxis == "x2"
    assert fig.layout.meta["kind"] == "train_curves" and fig.layout.meta["epochs"] == 3
    no_val = tv.curves_figure([{k: v for k, v in r.items() if not k.startswith("val")} for r in history])
    assert [t.name for t in no_val.data][-1] == "positive"


def _job(tmp_path: Path, state: str, progress: dict | None, epochs_logged: int) -> Job:
    job_dir = tmp_path / "job"
    job_dir.mkdir(parents=True)
    write_json_atomic(job_dir / "job.json", {"name": "j", "created": 0, "spec": {"data": "folder", "root": "x"},
                                             "argv": ["--data", "folder", "--root", "x", "--epochs", "4",
                                                      "--out", str(job_dir)]})
    write_json_atomic(job_dir / "status.json", {"state": state, "started": 100.0, "elapsed_before": 30.0})
    if progress is not None:
        write_json_atomic(job_dir / "progress.json", progress)
    (job_dir / "log.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "val_mAP": 60.0 + e}) + "\n"
                                               for e in range(epochs_logged)))
    return Job(job_dir)


def test_progress_view_of_a_job_half_way_through_training(tmp_path):
    progress = {"phase": "training", "started": 100.0, "phase_started": 110.0, "training_started": 110.0,
                "plan": {"feature_images": 50, "epochs": 4, "batches": 10},
                "features": {"images_done": 50}, "batches_done": 15, "epoch": 2, "epochs": 4,
                "batch": 5, "batches": 10}
    view = tv.progress_view(_job(tmp_path, "running", progress, 1), now=125.0)
    assert view.features == 1.0 and view.features_text == "50 / 50 images"
    assert view.epochs == pytest.approx(1.5 / 4) and view.epochs_text == "epoch 2 / 4 · batch 5 / 10"
    assert view.elapsed == "55 s"  # 30 s of an earlier attempt + 25 s of this one
    assert view.remaining == "25 s" and view.remaining_label == "Remaining"  # 25 batches left at 1 per s
    assert view.best_map == 60.0 and view.epochs_done == "1 / 4" and view.text == "Training"


def test_progress_view_while_features_are_extracted_and_after_the_end(tmp_path):
    progress = {"phase": "features", "started": 100.0, "phase_started": 104.0, "plan": {"feature_images": 40},
                "features": {"images_done": 10, "done": 10, "total": 20}}
    view = tv.progress_view(_job(tmp_path, "running", progress, 0), now=109.0)
    assert view.features == 0.25 and view.remaining == "15 s" and view.remaining_label == "Remaining (features)"
    assert view.epochs_done == "0 / 4"  # the epochs asked for, from the job's command line
    ended = tv.progress_view(_job(tmp_path / "b", "stopped", None, 2), now=500.0)
    assert ended.text == "Stopped" and ended.remaining == "—" and ended.epochs_done == "2 / 4"


def test_a_typed_data_root_is_checked(tmp_path):
    assert tv.resolve_data_root(f"  {tmp_path}  ") == tmp_path
    assert tv.resolve_data_root("assets") == tv.ROOT / "assets"  # relative to the repository
    with pytest.raises(DatasetError, match="no such folder"):
        tv.resolve_data_root(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="give the dataset folder"):
        tv.resolve_data_root(" ")


def test_open_in_evaluate_picks_the_jobs_evaluation_and_its_checkpoint(tmp_path, monkeypatch):
    from ram_core import app_support

    monkeypatch.setenv("RAM_STUDIO_EVAL_DIR", str(tmp_path / "elsewhere"))
    job = _job(tmp_path, "finished", None, 1)
    (job.dir / "best.safetensors").write_bytes(b"0")
    (job.dir / "evaluation").mkdir()
    (job.dir / "evaluation" / "report.json").write_text("{}")
    state: dict = {}
    tv.open_in_evaluate(state, job)
    pending = state[tv.EVALUATE_PENDING]
    assert Path(pending[tv.EVALUATE_PICK]).resolve() == (job.dir / "evaluation").resolve()
    assert str(tmp_path / "elsewhere") in pending[tv.EVALUATE_FOLDERS]  # the user's folders kept
    store = state[app_support._STORE]
    assert store["checkpoint"] == str((job.dir / "best.safetensors").resolve())
    assert str(job.dir.resolve()) in store["folders"]


def test_the_picker_labels_a_checkpoint_with_its_evaluations_map(tmp_path, small_cfg):
    import os

    from ram_core import app_support
    from ram_core.backbones import RANDOM_INIT
    from ram_core.checkpoints import save_checkpoint, update_evaluation
    from ram_core.model import build_model

    path = save_checkpoint(tmp_path / "best.safetensors", build_model(small_cfg, RANDOM_INIT),
                           backbone_weights="checkpoint", evaluation={"val_mAP": 40.0})
    assert app_support.checkpoint_map(path) is None  # per-epoch numbers only: no evaluation yet
    update_evaluation(path, {"val_mAP": 40.0, "mAP": 71.25})
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1000))  # a new stamp, as on disk
    assert app_support.checkpoint_map(path) == 71.25
    assert app_support.checkpoint_map(tmp_path / "missing.safetensors") is None
