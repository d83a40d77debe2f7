"""The training-job runner the Train page drives: jobs run in their own process, one at a time, with
live progress; Stop, Resume, a killed process, and two sessions (or processes) sharing one queue.
Every job is a tiny recipe on a tiny generated folder dataset, so each takes a few seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ram_core.checkpoints import read_metadata
from ram_core.data.synthetic import make_synthetic_folder
from ram_core.jobs import ACTIVE, JobError, JobQueue, JobSpec, estimate
from ram_core.jobs.progress import ProgressWriter, StopRequested

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--region-size", "2", "--hidden-size", "8", "--embed-dim", "8", "--workers", "0", "--no-flip"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root, classes = make_synthetic_folder(tmp_path_factory.mktemp("photos"), 24, image_size=48, seed=5)
    return root, classes


@pytest.fixture
def queue(tmp_path):
    q = JobQueue(tmp_path / "jobs", tmp_path / "cache")
    yield q
    for job in q.jobs():  # never leave a training process behind, whatever the test did
        pid = job.status.get("pid")
        if job.state in ACTIVE and pid:
            try:
                os.killpg(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def tiny_spec(root, epochs=2, batch_size=8, extra_args=(), **kw) -> JobSpec:
    return JobSpec("folder", str(root), val_fraction=0.25, epochs=epochs, input_size=48, steps=2,
                   batch_size=batch_size, device="cpu", extra_args=[*TINY, *extra_args], **kw)


def wait_for(condition, timeout=120, poll=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_runs_in_its_own_process_to_the_end_with_progress_and_an_evaluated_checkpoint(photos, queue):
    root, classes = photos
    job = queue.submit(tiny_spec(root, name="first run"))
    status = job.status
    assert status["state"] == "running" and status["pid"] != os.getpid()
    phases = set()

    def ended():
        p = job.progress
        if p:
            phases.add(p["phase"])
        return job.state not in ACTIVE

    wait_for(ended, what="the job to end")
    assert job.state == "finished", job.status.get("error") or job.log_tail()
    assert {"features", "training"} & phases  # seen live, from another process
    history = job.history()
    assert [r["epoch"] for r in history] == [1, 2] and {"loss_total", "val_mAP"} <= set(history[0])
    progress = job.progress
    assert progress["epochs_done"] == 2 and progress["plan"]["train_images"] == 18
    assert estimate(progress)["elapsed"] > 0
    # the checkpoint carries the evaluation the picker shows; the Evaluate page can open its folder
    meta = read_metadata(job.best_checkpoint)
    report = json.loads((job.evaluation_dir / "report.json").read_text())
    assert meta.evaluation["mAP"] == report["mAP"] and report["num_images"] == 6
    assert report["dataset"]["val_fraction"] == 0.25 and report["class_names"] == classes
    assert meta.config.class_names == classes
    # the job is a `train` command line that can be repeated from a terminal
    assert job.argv[:4] == ["--data", "folder", "--root", str(root)] and job.argv[-2:] == ["--out", str(job.dir)]
    assert job.status["summary"]["epochs_done"] == 2


def test_a_fine_tuning_job_trains_the_backbone_from_the_images(photos, queue):
    """The page offers fine-tuning on a GPU; the job path is the same on a CPU, only slower."""
    root, _ = photos
    job = queue.submit(tiny_spec(root, epochs=1, fine_tune=True))
    assert "--fine-tune" in job.argv
    assert queue.wait(job.id, 180) == "finished", job.status.get("error") or job.log_tail()
    assert job.progress["plan"]["feature_images"] == 0  # no feature cache: images every step
    assert read_metadata(job.best_checkpoint).backbone_weights == "checkpoint"
    assert job.evaluation_dir is not None


def test_a_bad_option_is_refused_before_a_job_is_created(photos, queue):
    root, _ = photos
    with pytest.raises(JobError, match="unrecognized arguments: --bogus"):
        queue.submit(tiny_spec(root, extra_args=["--bogus"]))
    with pytest.raises(JobError, match="unknown recipe"):
        queue.submit(JobSpec("folder", str(root), recipe="no-such-recipe"))
    assert queue.jobs() == []


def test_a_broken_labels_file_fails_the_job_with_a_message_naming_the_line(queue, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "labels.csv").write_text("image,labels\na.jpg,circle\nb.jpg\n")
    job = queue.submit(tiny_spec(bad))
    assert queue.wait(job.id, 120) == "failed"
    assert "labels.csv, line 3: expected 2 columns" in job.status["error"], job.status["error"]


def test_two_sessions_share_one_queue_and_one_job_runs_at_a_time(photos, tmp_path):
    root, _ = photos
    a, b = JobQueue(tmp_path / "jobs", tmp_path / "cache"), JobQueue(tmp_path / "jobs", tmp_path / "cache")
    submitted = []
    threads = [threading.Thread(target=lambda q=q, n=n: submitted.append(q.submit(tiny_spec(root, epochs=1, name=n))))
               for q, n in ((a, "from-a"), (b, "from-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(a.jobs()) == len(b.jobs()) == 2  # each session sees the other's job
        running = [j for j in b.jobs() if j.state in ACTIVE]
        assert len(running) == 1 and len(a.waiting()) == 1
        first, second = running[0], a.waiting()[0]
        # no session looks at the queue now: the first job's process starts the second when it ends
        max_active = 0

        def second_done():
            nonlocal max_active
            max_active = max(max_active, sum(j.state in ACTIVE for j in a.jobs()))
            return a.get(second.id).state in ("finished", "failed")

        wait_for(second_done, what="the queued job to run")
        assert max_active == 1
        assert a.get(first.id).state == "finished" and a.get(second.id).state == "finished"
        assert a.get(second.id).progress["started"] >= first.status["ended"] - 1
    finally:
        for q in (a, b):
            for job in q.jobs():
                if job.state in ACTIVE and job.status.get("pid"):
                    os.killpg(int(job.status["pid"]), signal.SIGKILL)


def test_stop_between_batches_then_resume_from_the_last_finished_epoch(photos, queue):
    root, _ = photos
    epochs = 12
    job = queue.submit(tiny_spec(root, epochs=epochs, batch_size=2))  # 9 batches an epoch
    wait_for(lambda: (job.progress or {}).get("epochs_done", 0) >= 1 or job.state not in ACTIVE,
             what="the first epoch")
    assert queue.stop(job.id) == "stopping"
    assert job.state == "stopping"
    assert queue.wait(job.id, 120) == "stopped"
    done = len(job.history())
    assert 1 <= done < epochs, done
    assert (job.dir / "resume.pt").is_file() and not (job.dir / "STOP").exists()
    with pytest.raises(JobError, match="nothing to stop"):
        queue.stop(job.id)

    queue.resume(job.id)
    assert queue.wait(job.id, 180) == "finished", job.log_tail()
    assert [r["epoch"] for r in job.history()] == list(range(1, epochs + 1))
    assert f"resumed from {job.dir / 'resume.pt'} after epoch {done}" in job.log_tail(200)
    assert job.status["attempts"] == 2


def test_a_killed_training_process_is_noticed_and_the_job_resumes(photos, queue):
    root, _ = photos
    job = queue.submit(tiny_spec(root, epochs=10, batch_size=2))
    wait_for(lambda: (job.progress or {}).get("epochs_done", 0) >= 1 or job.state not in ACTIVE,
             what="the first epoch")
    os.killpg(int(job.status["pid"]), signal.SIGKILL)
    wait_for(lambda: queue.dispatch() is None and job.state == "failed", timeout=30, poll=0.1,
             what="the dead process to be noticed")
    assert "ended unexpectedly" in job.status["error"]
    queue.resume(job.id)
    assert queue.wait(job.id, 180) == "finished", job.log_tail()
    assert [r["epoch"] for r in job.history()] == list(range(1, 11))


def test_a_queued_job_is_cancelled_by_stop_and_another_process_sees_the_queue(photos, queue):
    root, _ = photos
    first = queue.submit(tiny_spec(root, epochs=1))
    second = queue.submit(tiny_spec(root, epochs=1))
    assert second.state == "queued" and queue.waiting()[0].id == second.id
    listing = subprocess.run(
        [sys.executable, "-c", ("import sys; from ram_core.jobs import JobQueue; "
                                "print(' '.join(f'{j.id}={j.state}' for j in JobQueue(sys.argv[1]).jobs()))"),
         str(queue.root)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert f"{second.id}=queued" in listing.stdout and f"{first.id}=" in listing.stdout, listing.stderr
    assert queue.stop(second.id) == "cancelled"
    assert queue.wait(first.id, 120) == "finished"
    assert second.state == "cancelled" and queue.dispatch() is None  # a cancelled job never starts


def test_progress_writer_raises_at_the_first_event_after_a_stop_request(tmp_path):
    clock = iter(range(100)).__next__
    writer = ProgressWriter(tmp_path, clock=lambda: float(clock()))
    writer.plan(feature_images=10, epochs=2, batches=4)
    writer.event({"phase": "features", "dataset": "d", "view": "orig", "done": 5, "total": 10})
    saved = json.loads((tmp_path / "progress.json").read_text())
    assert saved["phase"] == "features" and saved["features"]["images_done"] == 5
    remaining = estimate(saved, now=saved["updated"])
    assert remaining["remaining_is_phase"] and remaining["remaining"] > 0
    (tmp_path / "STOP").touch()
    with pytest.raises(StopRequested):
        writer.event({"phase": "epoch", "epoch": 1, "epochs": 2, "batch": 1, "batches": 4})


def test_remaining_time_follows_the_batch_rate():
    progress = {"phase": "training", "started": 0.0, "phase_started": 10.0, "training_started": 10.0,
                "batches_done": 5, "epoch": 2, "epochs": 4, "batch": 1, "batches": 4}
    # 5 batches in 10 s; left: the rest of epoch 2 (3) and epochs 3-4 (8) = 11 batches = 22 s
    assert estimate(progress, now=20.0) == {"elapsed": 20.0, "remaining": pytest.approx(22.0),
                                            "remaining_is_phase": False}


def test_a_job_keeps_its_own_output_folder_and_cache(photos, tmp_path):
    root, _ = photos
    for extra in (["--out", str(tmp_path / "elsewhere")], ["--cache-dir=/tmp/x"], ["--res"]):
        with pytest.raises(JobError, match="is not an option of a job"):
            tiny_spec(root, extra_args=extra).check()
