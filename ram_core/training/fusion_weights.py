"""Per-class fusion weights of a RAM head with a companion branch, chosen on out-of-fold predictions.

The two branches are trained on their own losses, so the weight that mixes them (config
companion_weight: the recurrent branch's share) is not trained: it can be chosen afterwards, on
scores from models that never saw the photos.  Cross-validation on the VOC photos says the branches
are worth different amounts for different classes (MODEL_CARD.md: for person, the companion alone in
every fold), but a class with a handful of positives cannot choose its own weight reliably.  So:

    classes with >= min_positives counted positives: their own weight (max of their AP over the grid)
    every other class: the config's companion_weight, fixed before any fitting

(Fitting one shared weight for the other classes as well was measured and lost: seed 0 of the CV,
80.41 vs 80.45 at 448 and 80.87 vs 80.98 at 576; MODEL_CARD.md.)

`nested_fold_weights` measures that procedure honestly: each fold's photos are mixed with weights
chosen on the other folds' out-of-fold scores only.

How many positives are enough to choose can itself be chosen on the data (`choose_min_positives`:
the bar among MIN_POSITIVES_CHOICES whose nested-CV mAP is highest).  `nested_fold_choices` measures
that larger procedure just as honestly: for each fold, the bar and then the weights are chosen on the
other folds' photos alone (the bar by a CV inside them), so the fold's photos choose nothing.

Arrays: branch logits (N, 2, C) as [recurrent, companion]; targets and masks (N, C).
"""

from __future__ import annotations

import numpy as np

from .. import metrics

WEIGHT_GRID = tuple(round(0.1 * k, 1) for k in range(11))
MIN_POSITIVES = 50
MIN_POSITIVES_CHOICES = (50, 20, 10)  # the bars choose_min_positives picks from (largest first)


def mix(branch_logits: np.ndarray, weights: np.ndarray | float) -> np.ndarray:
    """(N, 2, C), weights (C,) or a number -> (N, C) logits: w * recurrent + (1 - w) * companion."""
    w = np.asarray(weights, dtype=branch_logits.dtype)
    return w * branch_logits[:, 0] + (1 - w) * branch_logits[:, 1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _best(values: np.ndarray) -> float:
    """The grid weight with the highest value (NaN counts as lowest); ties go to the weight nearest
    0.5, the mix chosen before any fitting."""
    clean = np.nan_to_num(values, nan=-np.inf)
    nearest_first = sorted(range(len(WEIGHT_GRID)), key=lambda i: abs(WEIGHT_GRID[i] - 0.5))
    return next(WEIGHT_GRID[i] for i in nearest_first if clean[i] == clean.max())


def choose_class_weights(branch_logits: np.ndarray, targets: np.ndarray, masks: np.ndarray,
                         base_weight: float = 0.5, min_positives: int = MIN_POSITIVES) -> np.ndarray:
    """(C,) weights: a class's own for classes with >= min_positives positives (masked), base_weight
    for the rest."""
    positives = ((targets > 0.5) & (masks > 0)).sum(0)
    frequent = np.flatnonzero(positives >= min_positives)
    weights = np.full(targets.shape[1], float(base_weight))
    if len(frequent):
        aps = np.stack([metrics.per_class_ap(_sigmoid(mix(branch_logits[..., frequent], w)), targets[:, frequent],
                                             masks[:, frequent]) for w in WEIGHT_GRID])  # (grid, frequent)
        weights[frequent] = [_best(aps[:, i]) for i in range(len(frequent))]
    return weights


def nested_fold_weights(branch_logits: np.ndarray, targets: np.ndarray, masks: np.ndarray, folds: np.ndarray,
                        base_weight: float = 0.5, min_positives: int = MIN_POSITIVES) -> dict[int, np.ndarray]:
    """fold -> (C,) weights chosen on the out-of-fold scores of the other folds' photos only."""
    out = {}
    for f in sorted(set(folds.tolist())):
        rest = folds != f
        out[f] = choose_class_weights(branch_logits[rest], targets[rest], masks[rest], base_weight, min_positives)
    return out


def mix_by_fold(branch_logits: np.ndarray, folds: np.ndarray, weights: dict[int, np.ndarray]) -> np.ndarray:
    """(N, C) logits, each photo mixed with its own fold's weights."""
    out = np.empty(branch_logits[:, 0].shape, dtype=branch_logits.dtype)
    for f, w in weights.items():
        rows = folds == f
        out[rows] = mix(branch_logits[rows], w)
    return out


def fold_maps(logits: np.ndarray, targets: np.ndarray, masks: np.ndarray, folds: np.ndarray,
              evaluated: np.ndarray) -> list[float]:
    """Each fold's mAP (x 100) over the `evaluated` classes (C,) bool, folds in order."""
    probs = _sigmoid(logits)
    return [float(np.nanmean(metrics.per_class_ap(probs[folds == f], targets[folds == f], masks[folds == f])[evaluated])
                  * 100) for f in sorted(set(folds.tolist()))]


def fold_map(logits: np.ndarray, targets: np.ndarray, masks: np.ndarray, folds: np.ndarray,
             evaluated: np.ndarray) -> float:
    """The CV's measure: the mean of fold_maps."""
    return float(np.mean(fold_maps(logits, targets, masks, folds, evaluated)))


def choose_min_positives(branch_logits: np.ndarray, targets: np.ndarray, masks: np.ndarray, folds: np.ndarray,
                         evaluated: np.ndarray, base_weight: float = 0.5,
                         choices: tuple[int, ...] = MIN_POSITIVES_CHOICES) -> tuple[int, dict[int, float]]:
    """(bar, {bar: nested-CV mAP}) on these photos: each bar's weights chosen per fold on the other
    folds.  Ties go to the larger bar (fewer classes choosing, the safer side)."""
    scores = {}
    for bar in choices:
        weights = nested_fold_weights(branch_logits, targets, masks, folds, base_weight, bar)
        scores[bar] = fold_map(mix_by_fold(branch_logits, folds, weights), targets, masks, folds, evaluated)
    best = max(scores.values())
    return max(b for b, v in scores.items() if v == best), scores


def nested_fold_choices(branch_logits: np.ndarray, targets: np.ndarray, masks: np.ndarray, folds: np.ndarray,
                        evaluated: np.ndarray, base_weight: float = 0.5,
                        choices: tuple[int, ...] = MIN_POSITIVES_CHOICES) -> dict[int, tuple[int, np.ndarray]]:
    """fold -> (bar, (C,) weights), both chosen on the other folds' photos only (the bar by a CV over
    those folds)."""
    out = {}
    for f in sorted(set(folds.tolist())):
        rest = folds != f
        bar, _ = choose_min_positives(branch_logits[rest], targets[rest], masks[rest], folds[rest], evaluated,
                                      base_weight, choices)
        out[f] = (bar, choose_class_weights(branch_logits[rest], targets[rest], masks[rest], base_weight, bar))
    return out
