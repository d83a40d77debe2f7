"""Per-class thresholds: one decision threshold per class instead of one for all.

Multi-label scores are not calibrated alike across classes (a rare class rarely reaches 0.5, and a
softmax model's scores share one unit of mass), so users tune a threshold per class.  Here it is the
one that maximises the class's F1 on a saved evaluation (best_f1_thresholds).  The thresholds live
in a checkpoint's metadata (`class_thresholds`, {class: threshold}); `predict`, the app and `evaluate`
use them when present, unless told to use the single threshold.

Thresholds chosen on an evaluation flatter the F1 measured on that same evaluation: choose them on a
validation split and judge them on another (`evaluate` on the test split reports both).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import finite_json
from . import metrics
from .locations import ASSETS_DIR, work_dir

FORMAT = "ram-studio-thresholds/1"


def parse_class_thresholds(value: Any, class_names: Sequence[str]) -> dict[str, float] | None:
    """A checkpoint's `class_thresholds` entry, checked: None, or {class of the model: number in [0, 1]}.
    ValueError naming the problem otherwise."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"class_thresholds must map class names to numbers, got {type(value).__name__}")
    known = set(class_names)
    out = {}
    for name, t in value.items():
        if name not in known:
            raise ValueError(f"class_thresholds names {str(name)[:60]!r}, which is not one of the model's classes")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0.0 <= float(t) <= 1.0):
            raise ValueError(f"class_thresholds[{name!r}] must be a number between 0 and 1, got {str(t)[:40]}")
        out[str(name)] = float(t)
    return out


def thresholds_array(class_names: Sequence[str], threshold: float,
                     class_thresholds: Mapping[str, float] | None) -> np.ndarray:
    """(C,) each class's threshold: its own when it has one, else the single `threshold`."""
    ct = class_thresholds or {}
    return np.array([float(ct.get(c, threshold)) for c in class_names], dtype=np.float64)


def best_f1_threshold(scores, targets) -> dict[str, float] | None:
    """The threshold t that maximises one class's F1 when predicting score >= t.  scores, targets (N,).

    Candidates are the distinct scores; t is placed halfway between the chosen score and the next
    lower one, so that it predicts the same images and does not sit on a score.  Among equal F1s the
    highest threshold wins (fewer predictions).  None when the class has no positive (F1 undefined).
    Returns {"threshold", "f1", "precision", "recall"}.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    precision, recall, cuts = metrics.precision_recall_curve(scores, targets)
    if not len(cuts) or np.isnan(recall).all():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    j = int(np.argmax(f1))  # the first maximum: the highest threshold among ties
    t = (cuts[j] + cuts[j + 1]) / 2 if j + 1 < len(cuts) else cuts[j]
    return {"threshold": round(float(t), 6), "f1": float(f1[j]), "precision": float(precision[j]),
            "recall": float(recall[j])}


def best_f1_thresholds(scores, targets, masks, class_names: Sequence[str], min_positives: int = 1) -> dict[str, float]:
    """{class: the threshold that maximises its F1} over the unmasked entries; classes with fewer than
    min_positives positives (at least 1) are left out: they keep the single threshold (a threshold
    fitted to one or two positives says little).  scores, targets, masks: (N, C)."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0.5
    masks = np.ones(scores.shape, bool) if masks is None else np.asarray(masks) > 0
    out = {}
    for c, name in enumerate(class_names):
        if (targets[:, c] & masks[:, c]).sum() < max(1, min_positives):
            continue
        best = best_f1_threshold(scores[masks[:, c], c], targets[masks[:, c], c])
        if best is not None:
            out[name] = best["threshold"]
    return out


def f1_table(scores, targets, masks, class_names: Sequence[str], threshold: float,
             class_thresholds: Mapping[str, float]):
    """One row per class: positives, its threshold, and precision, recall, F1 (percent) at the single
    threshold and at its own (a pandas DataFrame).  A class with positives and no prediction has F1 0
    (metrics.per_class_prf leaves it undefined, which would drop it from a mean of F1s); without
    positives F1 is undefined (NaN)."""
    import pandas as pd

    def prf(t):
        out = metrics.per_class_prf(scores, targets, t, masks)
        out["f1"] = np.where(np.isnan(out["f1"]) & (out["num_positives"] > 0), 0.0, out["f1"])
        return out

    single = prf(threshold)
    own_t = thresholds_array(class_names, threshold, class_thresholds)
    own = prf(own_t)  # broadcasts over the classes
    return pd.DataFrame({
        "class": list(class_names),
        "positives": single["num_positives"],
        "threshold": own_t,
        "F1 @ single": 100 * single["f1"],
        "F1 @ class": 100 * own["f1"],
        "precision @ class": 100 * own["precision"],
        "recall @ class": 100 * own["recall"],
    })


def metrics_at_class_thresholds(scores, targets, masks, class_names: Sequence[str], threshold: float,
                                class_thresholds: Mapping[str, float]) -> dict[str, Any]:
    """CP, CR, CF1, OP, OR, OF1 (percent) at the per-class thresholds, plus the thresholds: the keys
    `evaluate` adds to report.json when the model has per-class thresholds."""
    t = thresholds_array(class_names, threshold, class_thresholds)
    values = metrics.prf_at_threshold(scores, targets, t, masks)
    return {
        "class_thresholds": {c: float(v) for c, v in zip(class_names, t)},
        "at_class_thresholds": {k: (None if math.isnan(v) else round(100.0 * v, 4)) for k, v in values.items()},
    }


def add_to_report(report_path: str | os.PathLike, extra: Mapping[str, Any]) -> None:
    """Add keys to a written report.json (atomically)."""
    path = Path(report_path)
    report = json.loads(path.read_text(encoding="utf-8"))
    report.update(extra)
    from .output_folder import atomic_write_text

    atomic_write_text(path, [finite_json.dumps(report, indent=2) + "\n"])


def evaluated_checkpoint(report: Mapping[str, Any], eval_dir: str | os.PathLike | None = None) -> Path | None:
    """The checkpoint a report names, if it is here: as written, from the repository root, or from the
    evaluation's folder; else None."""
    named = report.get("checkpoint")
    if not named:
        return None
    for candidate in (Path(named), work_dir() / named, ASSETS_DIR.parent / named, *([Path(eval_dir) / named] if eval_dir else [])):
        if candidate.is_file():
            return candidate
    return None


def default_copy_path(checkpoint: str | os.PathLike) -> Path:
    """runs/x/best.safetensors -> runs/x/best_thresholds.safetensors"""
    p = Path(checkpoint)
    return p.with_name(f"{p.stem}_thresholds{p.suffix or '.safetensors'}")


def write_checkpoint_copy(checkpoint: str | os.PathLike, out: str | os.PathLike,
                          class_thresholds: Mapping[str, float], chosen_on: str | None = None) -> Path:
    """A copy of `checkpoint` (same tensors) whose metadata holds the per-class thresholds (and, in its
    provenance, the evaluation they were chosen on).  The original is never overwritten."""
    from safetensors.torch import load, save

    from .checkpoints import META_KEY, _atomic_write, read_metadata_bytes
    from .errors import CheckpointError

    src, dst = Path(checkpoint), Path(out)
    if dst.resolve() == src.resolve():
        raise CheckpointError(f"{dst} is the checkpoint itself: the thresholds go into a copy (give another --out)")
    if not src.is_file():
        raise CheckpointError(f"checkpoint not found: {src}")
    blob = src.read_bytes()
    info = read_metadata_bytes(blob, str(src))
    try:
        info.class_thresholds = parse_class_thresholds(dict(class_thresholds), info.config.class_names)
    except ValueError as exc:
        raise CheckpointError(f"{src}: {exc}") from None
    from .locations import display_path

    # the evaluation's folder relative to the work folder (not this machine's absolute path)
    chosen_on = display_path(chosen_on) if chosen_on and os.path.isabs(chosen_on) else chosen_on
    info.provenance = {**info.provenance, "class_thresholds_from": chosen_on or "unknown",
                       "class_thresholds_rule": "max F1 per class"}
    _atomic_write(dst, save(load(blob), metadata={META_KEY: finite_json.dumps(info.to_metadata())}))
    return dst
