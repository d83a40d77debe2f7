"""A saved evaluation as columns: predictions.npz beside predictions.jsonl.

predictions.jsonl is one JSON object per image, readable by anyone, but a COCO val evaluation
(40,504 images, 80 classes, K = 5) is 560 MB of it: ~10 s and 2.6 GB to parse into dicts.  The
columns hold the same numbers as arrays (N images, C evaluated classes, K steps):

    ids, images (N,) str             image id, photo path relative to the dataset root
    sizes (N, 2) int32               decoded width, height
    scores, global_scores (N, C)     float32, rounded to 5 decimals as in the JSONL
    step_scores (N, K, C)            float32
    transforms, box_norm (N, K, 4)   float32 (s_x, s_y, t_x, t_y) and (x0, y0, x1, y1) fractions
    max_step (N, C) int8             the step that gave the fused score (0 = global)
    targets, masks (N, C) bool       ground truth, counted in the metrics
    truth_*                          each image's dataset labels (any class): names + ragged indices
    object_*                         each image's annotated boxes: class, box, difficult (ragged)

which numpy opens in well under a second (benchmarks/bench_eval_open.py).  The report names the file
(report["columns"]), so a report.json written again by an older version, without it, is not paired
with stale columns.  Scores are float32 on disk and rounded back to 5 decimals when read, so every
threshold comparison gives what the JSONL's numbers give.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

COLUMNS_FILE = "predictions.npz"
COLUMNS_FORMAT = "ram-studio-eval-columns/1"
SCORE_DECIMALS = 5
REQUIRED = ("format", "class_names", "ids", "images", "sizes", "scores", "global_scores", "step_scores",
            "transforms", "box_norm", "max_step", "targets", "masks", "truth_names", "truth_index",
            "truth_offsets", "object_names", "object_class", "object_box", "object_difficult", "object_offsets")


def ragged(lists: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """[[a, b], [], [c]] -> (flat values, offsets (N + 1,)): row i is flat[offsets[i]:offsets[i + 1]]."""
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(lists) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = [v for row in lists for v in row]
    return np.asarray(flat), offsets


def _names_index(lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = sorted({c for row in lists for c in row})
    index = {c: k for k, c in enumerate(names)}
    flat, offsets = ragged([[index[c] for c in row] for row in lists])
    return np.asarray(names, dtype=str), flat.astype(np.int32).reshape(-1), offsets


def columns_from_result(result) -> dict[str, np.ndarray]:
    """The columns of an evaluation.EvaluationResult (the numbers its predictions.jsonl holds)."""
    from .evaluation import step_columns  # the same rounding and max-step rule as the traces
    from .locations import path_in_root

    steps = step_columns(result)
    truth_names, truth_index, truth_offsets = _names_index(result.ground_truth or [[] for _ in result.ids])
    objects = result.objects or [[] for _ in result.ids]
    object_names = sorted({o[0] for row in objects for o in row})
    name_index = {c: k for k, c in enumerate(object_names)}
    _, object_offsets = ragged(objects)
    flat = [o for row in objects for o in row]
    return {
        "format": np.asarray(COLUMNS_FORMAT),
        "class_names": np.asarray(result.class_names, dtype=str),
        "ids": np.asarray(result.ids, dtype=str),
        "images": np.asarray([path_in_root(p, result.data_root) for p in result.image_paths], dtype=str),
        "sizes": np.asarray(result.sizes, np.int32).reshape(len(result.ids), 2),
        "scores": np.asarray(result.scores, np.float32),
        "global_scores": steps["global_scores"].astype(np.float32),
        "step_scores": steps["step_scores"].astype(np.float32),
        "transforms": steps["transforms"].astype(np.float32),
        "box_norm": steps["box_norm"].astype(np.float32),
        "max_step": steps["max_step"].astype(np.int8),
        "targets": np.asarray(result.targets) > 0.5,
        "masks": np.asarray(result.eval_masks) > 0,
        "truth_names": truth_names,
        "truth_index": truth_index,
        "truth_offsets": truth_offsets,
        "object_names": np.asarray(object_names, dtype=str),
        "object_class": np.asarray([name_index[o[0]] for o in flat], np.int32),
        "object_box": np.asarray([o[1:5] for o in flat], np.float32).reshape(len(flat), 4),
        "object_difficult": np.asarray([bool(o[5]) for o in flat], bool),
        "object_offsets": object_offsets,
    }


def columns_from_eval_data(data) -> dict[str, np.ndarray]:
    """The columns of an evaluation read from its JSONL (eval_views.EvalData: arrays plus its records),
    for a folder written before the columns existed (`ram-studio columns DIR`)."""
    records = data.records
    truth_names, truth_index, truth_offsets = _names_index([r.get("ground_truth") or [] for r in records])
    objects = [r.get("objects") or [] for r in records]
    object_names = sorted({o[0] for row in objects for o in row})
    name_index = {c: k for k, c in enumerate(object_names)}
    _, object_offsets = ragged(objects)
    flat = [o for row in objects for o in row]
    return {
        "format": np.asarray(COLUMNS_FORMAT),
        "class_names": np.asarray(data.class_names, dtype=str),
        "ids": np.asarray(data.ids, dtype=str),
        "images": np.asarray(data.images, dtype=str),
        "sizes": np.asarray(data.sizes, np.int32).reshape(len(data.ids), 2),
        "scores": np.asarray(data.scores, np.float32),
        "global_scores": np.asarray(data.global_scores, np.float32),
        "step_scores": np.asarray(data.step_scores, np.float32),
        "transforms": np.asarray(data.transforms, np.float32),
        "box_norm": np.asarray(data.box_norm, np.float32),
        "max_step": np.asarray(data.max_step, np.int8),
        "targets": np.asarray(data.targets, bool),
        "masks": np.asarray(data.masks, bool),
        "truth_names": truth_names,
        "truth_index": truth_index,
        "truth_offsets": truth_offsets,
        "object_names": np.asarray(object_names, dtype=str),
        "object_class": np.asarray([name_index[o[0]] for o in flat], np.int32),
        "object_box": np.asarray([o[1:5] for o in flat], np.float32).reshape(len(flat), 4),
        "object_difficult": np.asarray([bool(o[5]) if len(o) > 5 else False for o in flat], bool),
        "object_offsets": object_offsets,
    }


def write_columns(path: str | os.PathLike, columns: dict[str, np.ndarray]) -> Path:
    """np.savez (uncompressed: it opens fastest) to a temporary file, then renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **columns)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_columns(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a predictions.npz, checked; scores rounded back to 5 decimals (float64).
    Raises ValueError naming what is wrong."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in REQUIRED if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not an evaluation's columns (missing {', '.join(missing)})")
        if str(z["format"]) != COLUMNS_FORMAT:
            raise ValueError(f"{path}: columns of format {z['format']}, this version reads {COLUMNS_FORMAT}")
        cols = {k: z[k] for k in z.files}
    n, c = len(cols["ids"]), len(cols["class_names"])
    for key in ("scores", "global_scores", "targets", "masks", "max_step"):
        if cols[key].shape != (n, c):
            raise ValueError(f"{path}: {key} has shape {cols[key].shape}, expected {(n, c)}")
    for key in ("scores", "global_scores"):
        cols[key] = np.round(cols[key].astype(np.float64), SCORE_DECIMALS)
    return cols


def ragged_row(flat: np.ndarray, offsets: np.ndarray, i: int) -> np.ndarray:
    return flat[offsets[i]:offsets[i + 1]]
