"""Training jobs as folders, and the queue that runs them one at a time in a separate process.

    queue = JobQueue("runs/train")
    job = queue.submit(JobSpec("folder", "photos/", val_fraction=0.2))   # queued, started when free
    queue.stop(job.id); queue.resume(job.id)

Each job is a folder under the queue's root, which is also the training run's output folder:

    job.json        the spec, the exact `train` command line, the creation time
    status.json     queued | running | stopping | stopped | finished | failed | cancelled, the
                    process id, times, an error message
    progress.json   live progress (jobs/progress.py), written by the training process
    STOP            present while a stop is requested
    worker.log      the training process's output
    config.json, log.jsonl, best.safetensors, last.safetensors, resume.pt   (the training loop's)
    evaluation/     report.json + predictions.jsonl of the best checkpoint on the validation images

Everything lives in files, so a page reload, another session, or another app process on the same
folder sees the same jobs.  Changes of state happen under an exclusive lock on the root's
`.queue.lock` (fcntl.flock), so two sessions clicking at once still start one job.  `dispatch()`
starts the oldest queued job when none is running; it runs after every submit, in the training
process when its job ends, and whenever a page looks at the queue (which also notices a training
process that died without saying so, e.g. killed, and marks its job failed).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..locations import PACKAGE_DIR, work_dir
from .progress import PROGRESS_FILE, STOP_FILE, read_json, read_progress, write_json_atomic
from .spec import JobError, JobSpec

try:
    import fcntl
except ImportError:  # Windows: no flock; the threads of one app process are serialised by _THREAD_LOCK
    fcntl = None  # type: ignore[assignment]
_THREAD_LOCK = threading.RLock()

ROOT = work_dir()  # runs/train and cache/features live here (the checkout, or the current folder)
ENV_JOBS_DIR = "RAM_STUDIO_JOBS_DIR"  # where the app's training jobs live (default runs/train)
ENV_CACHE_DIR = "RAM_STUDIO_CACHE_DIR"  # the feature cache its jobs share (default cache/features)
JOB_FILE, STATUS_FILE, WORKER_LOG, EVAL_DIR = "job.json", "status.json", "worker.log", "evaluation"
QUEUED, RUNNING, STOPPING, STOPPED, FINISHED, FAILED, CANCELLED = (
    "queued", "running", "stopping", "stopped", "finished", "failed", "cancelled")
ACTIVE = (RUNNING, STOPPING)
ENDED = (STOPPED, FINISHED, FAILED, CANCELLED)
RESUMABLE = (STOPPED, FAILED)

# Training processes this Python process started: polled (which also reaps them) rather than probed.
_CHILDREN: dict[int, subprocess.Popen] = {}


def default_jobs_dir() -> Path:
    """$RAM_STUDIO_JOBS_DIR, else (served mode) train/ in the write folder, else runs/train."""
    from ..served import write_root

    env = os.environ.get(ENV_JOBS_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    served_out = write_root()
    return served_out / "train" if served_out is not None else ROOT / "runs" / "train"


def default_cache_dir() -> Path:
    """$RAM_STUDIO_CACHE_DIR, else (served mode) cache/ in the write folder, else cache/features."""
    from ..served import write_root

    env = os.environ.get(ENV_CACHE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    served_out = write_root()
    return served_out / "cache" if served_out is not None else ROOT / "cache" / "features"


def _now() -> float:
    return time.time()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:40] or "run"


@dataclass
class Job:
    """A job folder, read fresh from disk on every property access that needs it."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def record(self) -> dict[str, Any]:
        return read_json(self.dir / JOB_FILE) or {}

    @property
    def spec(self) -> JobSpec:
        return JobSpec.from_dict(self.record["spec"])

    @property
    def name(self) -> str:
        return self.record.get("name") or self.id

    @property
    def argv(self) -> list[str]:
        return list(self.record.get("argv") or [])

    @property
    def status(self) -> dict[str, Any]:
        return read_json(self.dir / STATUS_FILE) or {"state": FAILED, "error": "status.json is missing or damaged"}

    @property
    def state(self) -> str:
        return self.status.get("state", FAILED)

    @property
    def progress(self) -> dict[str, Any] | None:
        return read_progress(self.dir)

    @property
    def best_checkpoint(self) -> Path | None:
        path = self.dir / "best.safetensors"
        return path if path.is_file() else None

    @property
    def evaluation_dir(self) -> Path | None:
        path = self.dir / EVAL_DIR
        return path if (path / "report.json").is_file() else None

    @property
    def can_resume(self) -> bool:
        return self.state in RESUMABLE

    def history(self) -> list[dict[str, Any]]:
        """log.jsonl: one record per finished epoch (loss terms, validation metrics, seconds)."""
        path = self.dir / "log.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # never torn (the loop rewrites it atomically), but a reader must not fail
        return out

    def log_tail(self, lines: int = 30) -> str:
        path = self.dir / WORKER_LOG
        if not path.is_file():
            return ""
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 64_000))
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])

    def elapsed(self, now: float | None = None) -> float:
        """Seconds this job has run, over all its attempts."""
        s = self.status
        total = float(s.get("elapsed_before", 0.0))
        if s.get("started") and s.get("state") in ACTIVE:
            total += (now or _now()) - float(s["started"])
        elif s.get("started") and s.get("ended"):
            total += float(s["ended"]) - float(s["started"])
        return total


class JobQueue:
    """The jobs under one folder; at most one of them runs at a time."""

    def __init__(self, root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_jobs_dir()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.python = python
        self.env = env

    # -- reading -------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        if not self.root.is_dir():
            return []
        found = [Job(p) for p in self.root.iterdir() if p.is_dir() and (p / JOB_FILE).is_file()]
        return sorted(found, key=lambda j: (-float(j.record.get("created", 0)), j.id))

    def get(self, job_id: str) -> Job:
        if not job_id or "/" in job_id or "\\" in job_id or job_id in (".", "..") \
                or not (self.root / job_id / JOB_FILE).is_file():
            raise JobError(f"no training job {job_id!r} in {self.root}")
        return Job(self.root / job_id)

    def active(self) -> Job | None:
        return next((j for j in self.jobs() if j.state in ACTIVE), None)

    def waiting(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        queued = [j for j in self.jobs() if j.state == QUEUED]
        return sorted(queued, key=lambda j: (float(j.status.get("queued", 0)), j.id))

    # -- changing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            with _THREAD_LOCK:
                yield
            return
        with open(self.root / ".queue.lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _set_status(self, job: Job, **fields: Any) -> dict[str, Any]:
        status = {**job.status, **fields} if (job.dir / STATUS_FILE).is_file() else dict(fields)
        write_json_atomic(job.dir / STATUS_FILE, status)
        return status

    def submit(self, spec: JobSpec, start: bool = True) -> Job:
        """Create a job (its command line checked first) and queue it; start it if none is running."""
        spec.check()
        created = _now()
        stamp = _dt.datetime.fromtimestamp(created).strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(spec.name or f'{spec.recipe}-{Path(str(spec.root)).name}')}"
        with self.locked():
            job_dir, k = self.root / base, 1
            while job_dir.exists():
                k += 1
                job_dir = self.root / f"{base}-{k}"
            job_dir.mkdir(parents=True)
            job = Job(job_dir)
            record = {"id": job.id, "name": spec.name or job.id, "created": created, "spec": spec.to_dict(),
                      "argv": spec.train_argv(str(job_dir.resolve()), str(self.cache_dir.resolve()))}
            write_json_atomic(job_dir / JOB_FILE, record)
            self._set_status(job, state=QUEUED, queued=created, attempts=0, elapsed_before=0.0)
        if start:
            self.dispatch()
        return job

    def stop(self, job_id: str) -> str:
        """A queued job is cancelled; a running one is asked to stop after its current batch (its
        last finished epoch stays on disk, and Resume continues from it).  Returns the new state."""
        with self.locked():
            job = self.get(job_id)
            state = job.state
            if state == QUEUED:
                self._end(job, CANCELLED)
                return CANCELLED
            if state in ACTIVE:
                (job.dir / STOP_FILE).touch()
                self._set_status(job, state=STOPPING, stop_requested=_now())
                return STOPPING
            raise JobError(f"job {job.name!r} is {state}: nothing to stop")

    def resume(self, job_id: str) -> Job:
        """Queue a stopped or failed job again; it continues from its last finished epoch."""
        with self.locked():
            job = self.get(job_id)
            if job.state not in RESUMABLE:
                raise JobError(f"job {job.name!r} is {job.state}; only a stopped or failed job can be resumed")
            (job.dir / STOP_FILE).unlink(missing_ok=True)
            self._set_status(job, state=QUEUED, queued=_now(), resume=True, error=None)
        self.dispatch()
        return job

    def dispatch(self) -> Job | None:
        """Settle jobs whose process is gone, then start the oldest queued job if none is running.
        Returns the running job, if any."""
        with self.locked():
            running = None
            for job in self.jobs():
                status = job.status
                if status.get("state") not in ACTIVE:
                    continue
                if _process_alive(status.get("pid"), job.dir):
                    running = running or job
                    continue
                # the process ended without recording how (killed, out of memory, the machine rebooted)
                stopped = status.get("state") == STOPPING
                self._end(job, STOPPED if stopped else FAILED, None if stopped else (
                    "the training process ended unexpectedly (killed?); Resume continues from the last "
                    "finished epoch. Last output:\n" + job.log_tail(8)))
            if running is not None:
                return running
            waiting = self.waiting()
            if not waiting:
                return None
            job = waiting[0]
            self._start(job)
            return job

    def _start(self, job: Job) -> None:
        (job.dir / STOP_FILE).unlink(missing_ok=True)
        (job.dir / PROGRESS_FILE).unlink(missing_ok=True)
        env = dict(self.env if self.env is not None else os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_DIR.parent), *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(job.dir / WORKER_LOG, "ab") as log:
            log.write(f"\n=== attempt {int(job.status.get('attempts', 0)) + 1}, "
                      f"{_dt.datetime.now().isoformat(timespec='seconds')} ===\n".encode())
            log.flush()
            # a session of its own: the job outlives a restart of the app, and Ctrl-C in the app's
            # terminal does not reach it
            proc = subprocess.Popen([self.python, "-m", "ram_core.jobs.worker", str(job.dir.resolve())],
                                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        self._set_status(job, state=RUNNING, pid=proc.pid, started=_now(), ended=None, error=None,
                         attempts=int(job.status.get("attempts", 0)) + 1)

    def _end(self, job: Job, state: str, error: str | None = None, **fields: Any) -> None:
        status = job.status
        now = _now()
        before = float(status.get("elapsed_before", 0.0))
        if status.get("started") and status.get("state") in ACTIVE:
            before += now - float(status["started"])
        (job.dir / STOP_FILE).unlink(missing_ok=True)
        self._set_status(job, state=state, ended=now, error=error, pid=None, started=None,
                         elapsed_before=before, **fields)

    def finish(self, job: Job, state: str, error: str | None = None, **fields: Any) -> None:
        """Record how a job's attempt ended (called by the training process itself)."""
        if state not in ENDED:
            raise ValueError(f"not an end state: {state}")
        with self.locked():
            self._end(job, state, error, **fields)

    def wait(self, job_id: str, timeout: float = 600, poll: float = 0.2) -> str:
        """Block until the job has ended (tests and scripts); returns its state."""
        deadline = _now() + timeout
        while True:
            self.dispatch()
            state = self.get(job_id).state
            if state in ENDED:
                return state
            if _now() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)


def _process_alive(pid: Any, job_dir: Path) -> bool:
    """Whether `pid` is the training process of `job_dir` and still running (not a zombie, and not
    another process that was given the same id later)."""
    if not pid:
        return False
    pid = int(pid)
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if ") Z" in (proc / "stat").read_text():
                return False
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return False
        return str(job_dir.resolve()) in cmdline
    return True
