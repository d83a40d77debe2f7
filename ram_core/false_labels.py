"""Which present labels come with false ones: co-occurrence of errors and true labels over a dataset.

For false positives: for each class f predicted where it is absent (its false-positive images), how
often each truly present class p occurs in those images, divided by how often p occurs at all:

    lift[f, p] = P(p present | f is a false positive) / P(p present)

A lift of 3 for (car, motorbike) says motorbike photos are three times more common among car's false
positives than among all photos: motorbikes make the model see cars.

For false negatives: for each class m missed where it is present, how often each other present class
p occurs in those images, divided by how often p occurs among the images where m is present (a missed
class is present by definition, so its usual companions are the right baseline):

    lift[m, p] = P(p present | m is missed) / P(p present | m present)

A lift above 1 says m is missed more often when p is in the photo (e.g. a person hidden by a horse).
Diagonal cells are undefined (NaN).  scores, targets, masks: (N, C); masks mark with 0 the labels left
out of evaluation (an error is only counted where its class is evaluated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

KINDS = ("FP", "FN")


@dataclass
class FalseLabelMatrix:
    """Rows: the class of the error; columns: the present class.  C classes."""

    kind: str  # "FP" or "FN"
    class_names: list[str]
    errors: np.ndarray  # (C,) images with an error of each row class
    counts: np.ndarray  # (C, C) of those, the images where the column class is present
    rate: np.ndarray  # (C, C) counts / errors (NaN for a row without errors)
    base: np.ndarray  # (C, C) the column class's usual rate (FP: the same in every row)
    lift: np.ndarray  # (C, C) rate / base (NaN where undefined, and on the diagonal)

    def strongest(self, n: int = 10, min_count: int = 2) -> list[tuple[str, str, float, int]]:
        """The n cells with the highest lift among those seen in at least min_count images:
        (error class, present class, lift, count)."""
        cells = [(self.lift[r, p], r, p) for r in range(len(self.class_names)) for p in range(len(self.class_names))
                 if self.counts[r, p] >= min_count and np.isfinite(self.lift[r, p])]
        cells.sort(key=lambda x: (-x[0], x[1], x[2]))
        return [(self.class_names[r], self.class_names[p], float(v), int(self.counts[r, p])) for v, r, p in cells[:n]]


def _thresholds(threshold, c: int) -> np.ndarray:
    t = np.asarray(threshold, dtype=np.float64)
    return np.full(c, float(t)) if t.ndim == 0 else t.reshape(c)


def error_mask(scores, targets, masks, threshold, kind: str) -> np.ndarray:
    """(N, C) bool: the false positives (kind "FP") or false negatives ("FN") at the threshold(s)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0.5
    masks = np.ones(scores.shape, bool) if masks is None else np.asarray(masks) > 0
    hit = scores >= _thresholds(threshold, scores.shape[1])[None]
    return ((~targets & hit) if kind == "FP" else (targets & ~hit)) & masks


def false_label_matrix(scores, targets, masks, class_names: Sequence[str], threshold,
                       kind: str = "FP") -> FalseLabelMatrix:
    """The co-occurrence of one kind of error with the present classes (see the module docstring).
    threshold: one for all classes, or (C,) per class."""
    err = error_mask(scores, targets, masks, threshold, kind).astype(np.float64)  # (N, C)
    present = (np.asarray(targets) > 0.5).astype(np.float64)  # (N, C)
    c = present.shape[1]
    errors = err.sum(0)
    counts = err.T @ present  # (C, C): [row, p] = images with an error of row where p is present
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = counts / errors[:, None]
        if kind == "FP":
            base = np.broadcast_to(present.mean(0), (c, c)).copy()
        else:  # among the images where the row class is present and evaluated
            masks_ = np.ones(present.shape, bool) if masks is None else np.asarray(masks) > 0
            with_row = (present * masks_).T  # (C, N)
            base = (with_row @ present) / with_row.sum(1)[:, None]
        lift = np.where(base > 0, rate / base, np.nan)
    np.fill_diagonal(lift, np.nan)
    return FalseLabelMatrix(kind, list(class_names), errors.astype(np.int64), counts.astype(np.int64),
                            rate, base, lift)


def false_label_images(scores, targets, masks, class_names: Sequence[str], threshold, kind: str,
                       error_class: str, present_class: str) -> list[int]:
    """Indices of the images with an error (kind) of error_class where present_class is present: false
    positives by descending score of error_class (the most confident first), false negatives by
    ascending score (the worst misses first)."""
    e, p = list(class_names).index(error_class), list(class_names).index(present_class)
    err = error_mask(scores, targets, masks, threshold, kind)[:, e]
    idx = np.flatnonzero(err & (np.asarray(targets)[:, p] > 0.5))
    s = np.asarray(scores, dtype=np.float64)[idx, e]
    order = np.argsort(s if kind == "FN" else -s, kind="stable")
    return [int(i) for i in idx[order]]
