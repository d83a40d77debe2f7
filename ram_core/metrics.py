"""Multi-label metrics: per-class AP, mAP, CP/CR/CF1/OP/OR/OF1 at a threshold and for the top-k.

Pure numpy.  Shapes: scores and targets are (N, C) for N images and C classes (or (N,) for one
class); targets are 0/1 (values above 0.5 count as positive); an optional mask (N, C) marks with 0
the entries left out of evaluation altogether (e.g. VOC's difficult-only classes): a masked entry
is neither a positive, a negative, nor a prediction.

Conventions follow ML-GCN's evaluation code (Chen et al., CVPR 2019), which most multi-label papers
since report, with the differences written where they occur.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

AP_MODES = ("nonint", "voc07")


def _as_2d(scores, targets, mask):
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64) > 0.5
    if scores.ndim == 1:
        scores, targets = scores[:, None], targets.reshape(-1, 1)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must both be (N, C)")
    if mask is None:
        keep = np.ones(scores.shape, bool)
    else:
        keep = np.asarray(mask, dtype=np.float64).reshape(scores.shape) > 0
    return scores, targets, keep


def _ranked_hits(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Targets (bool) sorted by descending score; ties keep the input order (a stable sort)."""
    order = np.argsort(-scores, kind="stable")
    return targets[order]


def average_precision(scores, targets, mode: str = "nonint") -> float:
    """Average precision of one class; nan when there are no positives.

    Rank the N images by descending score (ties keep their input order).  With TP(i) the number of
    positives among the first i, precision P(i) = TP(i) / i and recall R(i) = TP(i) / #positives.

    "nonint" (ML-GCN, and sklearn's average_precision_score when scores have no ties):
        AP = (1 / #positives) * sum over the ranks i of the positives of P(i).
    "voc07" (the VOC2007 devkit's 11-point interpolated AP):
        AP = (1 / 11) * sum over t in {0, 0.1, ..., 1} of max{P(i) : R(i) >= t} (0 if no such i).

    scores, targets: (N,).
    """
    if mode not in AP_MODES:
        raise ValueError(f"mode must be one of {AP_MODES}, got {mode!r}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1) > 0.5
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} differ in length")
    num_pos = int(targets.sum())
    if num_pos == 0:
        return math.nan
    hits = _ranked_hits(scores, targets)
    true_pos = np.cumsum(hits)
    precision = true_pos / np.arange(1, len(hits) + 1)
    if mode == "nonint":
        return float(precision[hits].sum() / num_pos)
    recall = true_pos / num_pos
    # t = k / 10 rather than np.arange(0, 1.1, 0.1): 3 * 0.1 > 0.3 would miss a recall of exactly 0.3.
    points = [precision[recall >= k / 10].max(initial=0.0) for k in range(11)]
    return float(np.mean(points))


def per_class_ap(scores, targets, mask=None, mode: str = "nonint") -> np.ndarray:
    """(C,) AP of each class over its unmasked images; nan for a class with no unmasked positive."""
    scores, targets, keep = _as_2d(scores, targets, mask)
    return np.array([average_precision(scores[keep[:, c], c], targets[keep[:, c], c], mode)
                     for c in range(scores.shape[1])])


def mean_ap(ap) -> float:
    """Mean over the classes whose AP is defined (nanmean); nan when none is."""
    ap = np.asarray(ap, dtype=np.float64)
    defined = ap[~np.isnan(ap)]
    return float(defined.mean()) if defined.size else math.nan


def _counts(predicted: np.ndarray, targets: np.ndarray, keep: np.ndarray):
    """Per-class (correct, predicted, positive) counts over unmasked entries, each (C,)."""
    predicted, targets = predicted & keep, targets & keep
    return (predicted & targets).sum(0), predicted.sum(0), targets.sum(0)


def _summary(correct: np.ndarray, num_predicted: np.ndarray, num_positive: np.ndarray) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 (fractions in [0, 1]) from per-class counts.

    Per class c: P_c = correct_c / predicted_c (0 when nothing is predicted, as ML-GCN does),
    R_c = correct_c / positives_c.  CP and CR are the means of P_c and R_c over the classes with at
    least one positive (ML-GCN averages over all classes, which assumes every class has one);
    CF1 = 2 CP CR / (CP + CR).  OP = sum correct / sum predicted, OR = sum correct / sum positives,
    pooled over all classes; OF1 = 2 OP OR / (OP + OR).  A ratio with a zero denominator is nan,
    except P_c as above, OP = 0 when nothing is predicted, and F1 = 0 when both P and R are 0.
    (ML-GCN's code also counts 1 prediction for each class with none in OP's denominator, a side
    effect of its P_c guard; here OP divides by the true number of predictions.)
    """
    defined = num_positive > 0
    precision = np.divide(correct, num_predicted, out=np.zeros(len(correct)), where=num_predicted > 0)
    recall = np.divide(correct, num_positive, out=np.zeros(len(correct)), where=defined)
    cp = float(precision[defined].mean()) if defined.any() else math.nan
    cr = float(recall[defined].mean()) if defined.any() else math.nan
    op = float(correct.sum() / num_predicted.sum()) if num_predicted.sum() > 0 else 0.0
    or_ = float(correct.sum() / num_positive.sum()) if num_positive.sum() > 0 else math.nan
    return {"CP": cp, "CR": cr, "CF1": _f1(cp, cr), "OP": op, "OR": or_, "OF1": _f1(op, or_)}


def _f1(p: float, r: float) -> float:
    if math.isnan(p) or math.isnan(r):
        return math.nan
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def prf_at_threshold(scores, targets, threshold: float = 0.5, mask=None) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 (fractions) with label c predicted for image n when scores[n, c] >= threshold.

    ">=" as ML-GCN (which thresholds logits at 0, i.e. probabilities at 0.5).  Definitions, and the
    handling of empty denominators (a class with no predictions has precision 0 in CP; classes
    without positives are left out of CP and CR; OP is 0 when nothing at all is predicted), in
    _summary.  scores, targets, mask: (N, C).
    """
    scores, targets, keep = _as_2d(scores, targets, mask)
    return _summary(*_counts(scores >= threshold, targets, keep))


def top_k_predictions(scores, k: int = 3, threshold: float | None = None) -> np.ndarray:
    """(N, C) bool: the k highest-scoring classes of each image (ties: the lower class index first).

    With a threshold, only those of the k that also score >= threshold (ML-GCN's released code does
    this with threshold 0 on logits, i.e. 0.5 on probabilities; the CNN-RNN/RAM papers' top-3
    predicts exactly three labels, which is threshold=None).
    """
    scores = np.asarray(scores, dtype=np.float64)
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    predicted = np.zeros(scores.shape, bool)
    np.put_along_axis(predicted, top, True, axis=1)
    if threshold is not None:
        predicted &= scores >= threshold
    return predicted


def prf_top_k(scores, targets, k: int = 3, mask=None, threshold: float | None = None) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 (fractions) with the labels predicted = each image's top-k classes.

    The top k are chosen over all classes, then masked entries are left out of the counts as
    everywhere else.  threshold: see top_k_predictions (None: exactly k labels per image).
    Definitions in _summary.
    """
    scores, targets, keep = _as_2d(scores, targets, mask)
    return _summary(*_counts(top_k_predictions(scores, k, threshold), targets, keep))


def per_class_prf(scores, targets, threshold: float = 0.5, mask=None) -> dict[str, np.ndarray]:
    """Per-class table at a threshold: each value a (C,) array.

    precision = correct / predicted (nan when nothing is predicted: unlike CP, the table shows it as
    undefined), recall = correct / positives (nan without positives), f1 = 2 P R / (P + R) (nan when
    either is nan, 0 when both are 0), num_positives, num_predicted (ints, unmasked entries only).
    """
    scores, targets, keep = _as_2d(scores, targets, mask)
    correct, num_predicted, num_positive = _counts(scores >= threshold, targets, keep)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(num_predicted > 0, correct / np.maximum(num_predicted, 1), np.nan)
        recall = np.where(num_positive > 0, correct / np.maximum(num_positive, 1), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1[np.isnan(precision) | np.isnan(recall)] = np.nan
    return {"precision": precision, "recall": recall, "f1": f1,
            "num_positives": num_positive.astype(np.int64), "num_predicted": num_predicted.astype(np.int64)}


def precision_recall_curve(scores, targets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of one class when predicting score >= t, for each distinct score t.

    Returns (precision, recall, thresholds), three (M,) arrays with thresholds descending (M = the
    number of distinct scores), so recall rises along the arrays.  Tied scores enter together.
    recall is nan when there are no positives.  scores, targets: (N,).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1) > 0.5
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} differ in length")
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], targets[order]
    true_pos = np.cumsum(hits)
    # The last position of each run of equal scores: predicting score >= t takes the whole run.
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True]) if len(scores) else np.array([], int)
    precision = true_pos[last] / (last + 1.0)
    num_pos = int(targets.sum())
    recall = true_pos[last] / num_pos if num_pos else np.full(len(last), np.nan)
    return precision, recall, scores[last]


def _percent(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * float(value), 4)


def evaluate_scores(
    scores,
    targets,
    class_names: Sequence[str],
    mask=None,
    threshold: float = 0.5,
    ap_mode: str = "nonint",
    top_k: int = 3,
    top_k_threshold: float | None = None,
) -> dict:
    """The evaluation summary of scores (N, C) against targets (N, C), JSON-serialisable.

    Keys: mAP; per_class_ap {class: AP}; CP, CR, CF1, OP, OR, OF1 at `threshold`; top3 {the same six
    for the top_k labels per image (top_k = 3 by default; key name kept)}; all in percent (None where
    undefined).  num_images, num_positives {class: unmasked positives}, num_classes_evaluated
    (classes with an AP), threshold, ap_mode, top_k.
    """
    scores, target_bool, keep = _as_2d(scores, targets, mask)
    if len(class_names) != scores.shape[1]:
        raise ValueError(f"{len(class_names)} class names for {scores.shape[1]} score columns")
    ap = per_class_ap(scores, target_bool, keep, ap_mode)
    at_threshold = prf_at_threshold(scores, target_bool, threshold, keep)
    top = prf_top_k(scores, target_bool, top_k, keep, top_k_threshold)
    positives = (target_bool & keep).sum(0)
    return {
        "mAP": _percent(mean_ap(ap)),
        "per_class_ap": {name: _percent(v) for name, v in zip(class_names, ap)},
        **{key: _percent(v) for key, v in at_threshold.items()},
        "top3": {key: _percent(v) for key, v in top.items()},
        "top_k": int(top_k),
        "num_images": int(scores.shape[0]),
        "num_positives": {name: int(k) for name, k in zip(class_names, positives)},
        "num_classes_evaluated": int((~np.isnan(ap)).sum()),
        "threshold": float(threshold),
        "ap_mode": ap_mode,
    }
