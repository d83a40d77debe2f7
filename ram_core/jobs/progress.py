"""A job's live progress: written by the training process, read by any number of app sessions.

The worker turns the training loop's progress events into `progress.json` in the job's folder (at
most every WRITE_INTERVAL seconds, and at once when the phase changes or an epoch ends), and checks
for the job's STOP file at every event: a stop request takes effect between two batches.  The page
reads the file and `estimate` turns it into elapsed and remaining time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from .. import finite_json

PROGRESS_FILE = "progress.json"
STOP_FILE = "STOP"
WRITE_INTERVAL = 0.5  # seconds between two writes of progress.json while nothing but a counter moves
PHASES = ("starting", "data", "features", "training", "evaluating")


class StopRequested(Exception):
    """Raised inside the training process at the first event after a stop was asked for."""


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(finite_json.dumps(data, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ProgressWriter:
    """The worker's side: `event(dict)` is the training loop's `progress` hook."""

    def __init__(self, job_dir: str | os.PathLike, clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(job_dir)
        self.path = self.dir / PROGRESS_FILE
        self.stop_file = self.dir / STOP_FILE
        self.clock = clock
        now = clock()
        self.state: dict[str, Any] = {"phase": "starting", "started": now, "updated": now, "phase_started": now}
        self._last_write = 0.0
        self._features_done: dict[tuple[str, str], int] = {}
        self.flush()

    def check_stop(self) -> None:
        if self.stop_file.exists():
            raise StopRequested("stop requested")

    def plan(self, **totals: Any) -> None:
        """What lies ahead, for the estimates: feature_images (to extract, all views), epochs,
        batches (per epoch), start_epoch (epochs already done when resuming)."""
        self.state.setdefault("plan", {}).update(totals)
        self.flush()

    def phase(self, name: str, **fields: Any) -> None:
        self.check_stop()
        if name != self.state.get("phase"):
            self.state["phase"] = name
            self.state["phase_started"] = self.clock()
        self.state.update(fields)
        self.flush()

    def event(self, event: dict[str, Any]) -> None:
        """The training loop's progress hook (TrainOptions.progress)."""
        self.check_stop()
        kind = event.get("phase")
        now = self.clock()
        force = False
        if kind == "features":
            if self.state["phase"] != "features":
                self.state.update(phase="features", phase_started=now)
                force = True
            self._features_done[(str(event.get("dataset")), str(event.get("view")))] = int(event["done"])
            self.state["features"] = {"dataset": event.get("dataset"), "view": event.get("view"),
                                      "done": int(event["done"]), "total": int(event["total"]),
                                      "images_done": sum(self._features_done.values())}
        elif kind in ("epoch", "epoch_end"):
            if self.state["phase"] != "training":
                self.state.update(phase="training", phase_started=now, training_started=now,
                                  first_epoch=int(event["epoch"]), batches_done=0)
                force = True
            if kind == "epoch":
                if event["batch"] > 0:
                    self.state["batches_done"] = self.state.get("batches_done", 0) + 1
                self.state.update(epoch=int(event["epoch"]), epochs=int(event["epochs"]),
                                  batch=int(event["batch"]), batches=int(event["batches"]))
            else:
                self.state.update(epoch=int(event["epoch"]), epochs=int(event["epochs"]),
                                  epochs_done=int(event["epoch"]), batch=self.state.get("batches", 0))
                force = True
        elif kind == "evaluating":
            if self.state["phase"] != "evaluating":
                self.state.update(phase="evaluating", phase_started=now)
                force = True
            self.state["evaluation"] = {"done": int(event["done"]), "total": int(event["total"])}
            force = force or event["done"] >= event["total"]
        self.state["updated"] = now
        if force or now - self._last_write >= WRITE_INTERVAL:
            self.flush()

    def flush(self) -> None:
        self.state["updated"] = self.clock()
        self._last_write = self.state["updated"]
        write_json_atomic(self.path, self.state)


def read_progress(job_dir: str | os.PathLike) -> dict[str, Any] | None:
    return read_json(Path(job_dir) / PROGRESS_FILE)


def estimate(progress: dict[str, Any] | None, now: float | None = None) -> dict[str, Any]:
    """{"elapsed": s, "remaining": s or None, "remaining_is_phase": bool} from a progress record.

    Remaining time follows the rate measured so far in the current phase: images per second while
    features are extracted (the epochs after it are not counted yet: remaining_is_phase), batches
    per second while training (over every epoch left), images per second during the evaluation.
    """
    if not progress:
        return {"elapsed": None, "remaining": None, "remaining_is_phase": False}
    now = time.time() if now is None else now
    elapsed = max(0.0, now - float(progress.get("started", now)))
    phase = progress.get("phase")
    since = max(1e-6, now - float(progress.get("phase_started", now)))
    remaining, phase_only = None, False
    if phase == "features":
        f = progress.get("features") or {}
        total = (progress.get("plan") or {}).get("feature_images") or f.get("total")
        done = f.get("images_done", f.get("done", 0))
        if done and total:
            remaining, phase_only = max(0.0, (total - done) * since / done), True
    elif phase == "training":
        done = progress.get("batches_done", 0)
        epochs, batches = progress.get("epochs"), progress.get("batches")
        if done and epochs and batches:
            left = (epochs - progress.get("epoch", 0)) * batches + (batches - progress.get("batch", 0))
            rate = done / max(1e-6, now - float(progress.get("training_started", now)))
            remaining = max(0.0, left / rate)
    elif phase == "evaluating":
        e = progress.get("evaluation") or {}
        if e.get("done") and e.get("total"):
            remaining, phase_only = max(0.0, (e["total"] - e["done"]) * since / e["done"]), False
    return {"elapsed": elapsed, "remaining": remaining, "remaining_is_phase": phase_only}


def format_seconds(seconds: float | None) -> str:
    """12 -> '12 s', 95 -> '1 min 35 s', 4000 -> '1 h 07 min'; None -> '—'."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"
