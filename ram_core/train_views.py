"""What the Train page shows and does, as plain functions (no Streamlit here, except the session
hand-offs to the other pages, which only write into the session-state mapping they are given).

    resolve_data_root        a typed dataset folder -> a checked path (the one place user paths enter)
    unpack_upload            an uploaded zip -> a folder dataset under the jobs' uploads folder
    preview_data             the classes a spec's data holds and how many photos each has, with warnings
    curves_figure            loss terms and validation mAP per epoch, from a job's log.jsonl
    progress_view            phase, progress fractions, elapsed and remaining time of a job
    open_in_inspect / open_in_evaluate   what the "Open in ..." buttons hand to those pages
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, MutableMapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .data.archive import UnpackedDataset, unpack_dataset_zip
from .errors import DatasetError
from .locations import work_dir
from .jobs import Job, JobQueue, JobSpec, estimate, format_seconds
from .jobs.spec import parse_train_args
from .jobs.store import ACTIVE, FAILED, FINISHED, QUEUED, STOPPED, STOPPING

ROOT = work_dir()  # relative paths typed on the Train page start here
MIN_TRAIN_PHOTOS = 5  # fewer positive training photos: the class is hardly learnable
UPLOADS = "_uploads"  # under the jobs folder: the app writes to one place
FORMATS = {"voc": "PASCAL VOC (VOCdevkit)", "coco": "MS-COCO (annotations/instances_*.json)",
           "folder": "Image folder + labels.csv / labels.json"}
DEFAULT_SPLITS = {"voc": ("trainval", "test"), "coco": ("train", "val"), "folder": ("", "")}
# log.jsonl key -> (legend name, colour): the total loss dark and thick, then the classification loss
# and the three localization constraints
LOSS_TERMS = {"loss_total": ("total", "#111827"), "loss_classification": ("classification", "#2563eb"),
              "loss_anchor": ("anchor", "#f59e0b"), "loss_scale": ("scale", "#10b981"),
              "loss_positive": ("positive", "#db2777")}
MAP_COLOR = "#7c3aed"
STATE_ICONS = {QUEUED: ":material/hourglass_top:", "running": ":material/directions_run:",
               STOPPING: ":material/pending:", STOPPED: ":material/pause_circle:",
               FINISHED: ":material/check_circle:", FAILED: ":material/error:", "cancelled": ":material/cancel:"}
PHASE_TEXT = {"starting": "Starting the training process", "data": "Reading the data, building the model",
              "features": "Extracting backbone features (once per photo and view)", "training": "Training",
              "evaluating": "Evaluating the best checkpoint on the validation photos"}


# --------------------------------------------------------------------------------------------------
# Data


def resolve_data_root(text: str) -> Path:
    """A dataset folder as the user typed it: '~' expanded, relative paths from the repository.
    The one place a typed data path enters the app (a later access check belongs here)."""
    from .served import resolve_read

    text = (text or "").strip()
    if not text:
        raise DatasetError("give the dataset folder")
    path = resolve_read(text, "The dataset folder", local_base=ROOT)  # refused outside the served roots
    if not path.is_dir():
        raise DatasetError(f"{text}: no such folder on this machine")
    return path


def check_served_paths(spec: JobSpec) -> None:
    """Served mode: every file a job would read is inside the served roots (PathRefused otherwise): the
    dataset folder, a labels file or split named by path, and --backbone-weights, as the job's command
    line has them (options typed under "More options" included).  Local mode: nothing."""
    from . import served

    if not served.is_served():
        return
    args = spec.check()  # what the job will really run: "More options" may repeat --root or --split
    if args.data == "synthetic":  # generated into its folder when missing: that folder is written to
        served.resolve_write(args.root, "The synthetic dataset's folder")
    served.check_dataset_paths(args.data, args.root, (args.split, args.val_split))
    weights = getattr(args, "backbone_weights", None)
    if weights and weights != "random":
        served.resolve_read(weights, "The backbone weights file")


def uploads_dir(queue: JobQueue) -> Path:
    return queue.root / UPLOADS


def unpack_upload(blob: bytes, queue: JobQueue, progress=None) -> UnpackedDataset:
    """An uploaded zip unpacked (safely, once per content) under the jobs folder."""
    return unpack_dataset_zip(blob, uploads_dir(queue), progress=progress)


def data_stamp(spec: JobSpec) -> tuple:
    """Changes when the data's files change (for caching a preview)."""
    root = Path(spec.root)
    paths = [root] + ([p for p in root.iterdir() if p.suffix.lower() in (".csv", ".tsv", ".json")]
                      if spec.data == "folder" and root.is_dir() else [])
    out = []
    for p in sorted(paths):
        try:
            s = p.stat()
            out.append((str(p), s.st_mtime_ns, s.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


@dataclass
class DataPreview:
    train_name: str
    val_name: str | None
    num_train: int
    num_val: int
    table: pd.DataFrame  # class, training photos, validation photos
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def preview_data(spec: JobSpec) -> DataPreview:
    """Read the data as the job will (the same `train` options), and count each class's photos.
    Raises DatasetError (naming the file and line) when the data cannot be read."""
    from .cli.train import datasets_from_args

    args = parse_train_args(spec.train_argv())
    train_set, val_set, _ = datasets_from_args(args)
    train_counts = train_set.positives_per_class()
    val_counts = val_set.positives_per_class() if val_set is not None else {}
    table = pd.DataFrame({"class": train_set.class_names,
                          "training photos": [train_counts[c] for c in train_set.class_names]})
    if val_set is not None:
        table["validation photos"] = [val_counts.get(c, 0) for c in train_set.class_names]
    return DataPreview(train_set.name, val_set.name if val_set is not None else None, len(train_set),
                       len(val_set) if val_set is not None else 0, table, class_warnings(table),
                       list(train_set.skipped) + (list(val_set.skipped) if val_set is not None else []))


def class_warnings(table: pd.DataFrame, min_train: int = MIN_TRAIN_PHOTOS) -> list[str]:
    """Warnings for the classes with too few photos to learn or to measure."""
    out = []
    none = table.loc[table["training photos"] == 0, "class"].tolist()
    few = table.loc[(table["training photos"] > 0) & (table["training photos"] < min_train), "class"].tolist()
    if none:
        out.append(f"No training photo for {_names(none)}: the model cannot learn {'it' if len(none) == 1 else 'them'}.")
    if few:
        out.append(f"Fewer than {min_train} training photos for {_names(few)}: expect weak, unstable scores.")
    if "validation photos" in table:
        unmeasured = table.loc[table["validation photos"] == 0, "class"].tolist()
        if unmeasured:
            out.append(f"No validation photo for {_names(unmeasured)}: left out of the validation mAP.")
    return out


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"**{n}**" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --------------------------------------------------------------------------------------------------
# Jobs


def job_label(job: Job) -> str:
    """'shapes-run · finished · mAP 84.4' (for lists and pickers)."""
    status = job.status
    text = f"{job.name} · {status.get('state', '?')}"
    summary = status.get("summary") or {}
    if summary.get("mAP") is not None:
        text += f" · mAP {summary['mAP']:.1f}"
    return text


def curves_figure(history: list[dict[str, Any]], title: str = "") -> go.Figure:
    """Loss terms (left) and validation mAP (right) per epoch, from log.jsonl records."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss", "Validation mAP"), horizontal_spacing=0.1)
    epochs = [r.get("epoch") for r in history]
    for key, (name, color) in LOSS_TERMS.items():
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=epochs, y=values, name=name, mode="lines+markers",
                                     line={"width": 3 if key == "loss_total" else 1.5, "color": color}),
                          row=1, col=1)
    for key, name, dash in (("val_mAP", "mAP, all classes", "solid"),
                            ("val_mAP_selected", "mAP, classes with enough positives", "dot")):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=epochs, y=values, name=name, mode="lines+markers",
                                     line={"dash": dash, "color": MAP_COLOR}), row=1, col=2)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(history) <= 15 else None)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="mAP (%)", row=1, col=2)
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10}, title=title or None,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
                      meta={"kind": "train_curves", "epochs": len(history)})
    return fig


@dataclass
class ProgressView:
    phase: str
    text: str
    features: float | None  # fraction of the feature images extracted
    features_text: str
    epochs: float | None  # fraction of the epochs done (within the epoch by batches)
    epochs_text: str
    elapsed: str
    remaining: str
    remaining_label: str  # "Remaining (features)" while only the extraction can be estimated
    best_map: float | None
    epochs_done: str  # "3 / 30"


def progress_view(job: Job, now: float | None = None) -> ProgressView:
    """What the page shows of a job's progress, from progress.json, status.json and log.jsonl."""
    now = time.time() if now is None else now
    p = job.progress or {}
    state = job.state
    phase = p.get("phase", "starting") if state in ACTIVE else state
    plan = p.get("plan") or {}
    est = estimate(p, now) if state in ACTIVE else {"remaining": None, "remaining_is_phase": False}
    history = job.history()
    f = p.get("features") or {}
    total_f = plan.get("feature_images") or 0
    features, features_text = None, ""
    if total_f:
        done = min(total_f, f.get("images_done", 0))
        if p.get("phase") in ("training", "evaluating") or p.get("epochs_done"):
            done = total_f  # extraction finished (or came from the cache)
        features, features_text = done / total_f, f"{done} / {total_f} images"
    epochs_total = p.get("epochs") or plan.get("epochs") or _epochs_asked(job)
    epochs, epochs_text = None, ""
    if epochs_total:
        finished = len(history)
        batch, batches = p.get("batch", 0), p.get("batches") or plan.get("batches") or 1
        in_epoch = batch / batches if p.get("phase") == "training" and p.get("epoch", 0) > finished else 0.0
        epochs = min(1.0, (finished + in_epoch) / epochs_total)
        epochs_text = f"epoch {min(epochs_total, finished + (1 if in_epoch else 0)) or 0} / {epochs_total}"
        if in_epoch:
            epochs_text += f" · batch {batch} / {batches}"
    remaining = format_seconds(est["remaining"])
    remaining_label = "Remaining (features)" if est["remaining"] is not None and est["remaining_is_phase"] else "Remaining"
    maps = [r.get("val_mAP") for r in history if r.get("val_mAP") is not None]
    text = PHASE_TEXT.get(phase, phase.capitalize()) if state in ACTIVE else state.capitalize()
    if state == STOPPING:
        text = "Stopping after the current batch"
    return ProgressView(phase, text, features, features_text, epochs, epochs_text, format_seconds(job.elapsed(now)),
                        remaining, remaining_label, max(maps) if maps else None, f"{len(history)} / {epochs_total or '?'}")


def _epochs_asked(job: Job) -> int | None:
    try:
        return parse_train_args(job.argv).epochs
    except Exception:  # noqa: BLE001 - a label must not fail
        return None


def queue_table(jobs: list[Job]) -> pd.DataFrame:
    """The waiting jobs, in the order they will run."""
    rows = []
    for k, job in enumerate(jobs, start=1):
        spec = job.spec
        rows.append({"#": k, "job": job.name, "data": f"{spec.data}: {spec.root}", "recipe": spec.recipe,
                     "queued": time.strftime("%H:%M:%S", time.localtime(float(job.status.get("queued") or 0)))})
    return pd.DataFrame(rows)


def command_line(job: Job) -> str:
    """The job as a terminal command."""
    import shlex

    return "python -m ram_core train " + " ".join(shlex.quote(a) for a in job.argv)


# --------------------------------------------------------------------------------------------------
# Hand-offs to the other pages (session-state keys they read)

MODEL_STORE = "ram_studio.model_choice"  # app_support's picker store: {"checkpoint", "folders", "device"}
EVALUATE_PENDING = "evaluate.pending"  # pages/2_Evaluate.py applies these widget values on its next run
EVALUATE_STORE, EVALUATE_PICK, EVALUATE_FOLDERS = "evaluate.store", "evaluate.pick", "evaluate.folders"
INSPECT_PATH = "inspect_path"  # eval_views.INSPECT_KEY: the photo the Inspect page opens


def first_validation_photo(job: Job) -> Path | None:
    """A photo of the job's validation set (from its evaluation), to show in Inspect."""
    eval_dir = job.evaluation_dir
    if eval_dir is None:
        return None
    from .evaluation import find_predictions

    path = find_predictions(eval_dir)
    if path is None or path.suffix == ".gz":
        return None
    with open(path, encoding="utf-8") as f:
        line = f.readline()
    try:
        image = Path(json.loads(line)["image"])
        if not image.is_absolute():  # relative to the dataset root the report names
            root = json.loads((Path(eval_dir) / "report.json").read_text(encoding="utf-8"))["dataset"]["root"]
            image = Path(root) / image
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return image if image.is_file() else None


def open_in_inspect(state: MutableMapping, job: Job) -> None:
    """Make the job's best checkpoint the model on every page, with a validation photo in Inspect."""
    from . import app_support

    app_support.choose_checkpoint(job.best_checkpoint, state)
    photo = first_validation_photo(job)
    if photo is not None:
        state[INSPECT_PATH] = str(photo)


def open_in_evaluate(state: MutableMapping, job: Job) -> None:
    """Make the job's best checkpoint the model, and its evaluation the one the Evaluate page opens."""
    from . import app_support
    from . import eval_views as ev

    app_support.choose_checkpoint(job.best_checkpoint, state)
    eval_dir = job.evaluation_dir
    if eval_dir is None:
        return
    store = state.get(EVALUATE_STORE) or {}
    text = store.get(EVALUATE_FOLDERS) or ", ".join(ev.short_path(p) for p in ev.default_eval_folders())
    found = [p for p in ev.list_evaluations(ev.parse_folders(text)) if p.resolve() == eval_dir.resolve()]
    if found:
        pick = str(found[0])
    else:
        text = f"{text}, {ev.short_path(eval_dir)}" if text.strip() else ev.short_path(eval_dir)
        pick = str(next(p for p in ev.list_evaluations(ev.parse_folders(text)) if p.resolve() == eval_dir.resolve()))
    state[EVALUATE_PENDING] = {EVALUATE_FOLDERS: text, EVALUATE_PICK: pick}
