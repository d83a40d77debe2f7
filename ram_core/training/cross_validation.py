"""K-fold cross-validation of head recipes on cached frozen-backbone features.

Every recipe choice of the default model (epochs, lr, localizer, prior, fusion, ...) is made by the
mean out-of-fold mAP, and every number in the model card comes from out-of-fold predictions: each
photo is scored by a model that never saw it.

    folds = stratified_folds(targets, masks, k=5, seed=0)        # fixed by the seed
    result = cross_validate(cfg, recipe, views, targets, masks, folds)
    result.oof                                                   # RAMOutput of every photo, out of fold

Folds are balanced by iterative stratification (Sechidis et al., 2011): photos of the rarest class are
dealt out first, each to the fold that still needs most of that class, so a class with five positives
has one in each of five folds.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .. import metrics
from ..config import RAMConfig
from ..feature_norm import set_feature_stats
from ..losses import ram_loss
from ..model import RAMOutput, average_with_mirror, build_head, concat_outputs, probabilities
from .loop import _lr_lambda
from .param_groups import head_param_groups


@dataclass
class Recipe:
    """How a head is trained (the model itself is the RAMConfig)."""

    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    warmup_epochs: int = 1
    flip_views: bool = True  # train on the photo and its mirror image (one of the two per epoch)
    companion_lr: float | None = None  # the companion branch's own rate (param_groups.py); None: lr


def stratified_folds(targets: np.ndarray, masks: np.ndarray | None = None, k: int = 5, seed: int = 0) -> np.ndarray:
    """(N,) fold index in 0..k-1 for N photos with (N, C) 0/1 targets: iterative stratification.

    Each fold wants N/k photos and (positives of c)/k photos of each class c.  Repeatedly take the
    class with the fewest photos still to place, and deal its photos one by one to the fold that
    wants most of that class (ties: the fold that wants most photos, then at random).  Photos without
    any label are dealt last by fold size.
    """
    rng = np.random.default_rng(seed)
    y = (np.asarray(targets) > 0.5) & ((np.asarray(masks) > 0) if masks is not None else True)
    n, c = y.shape
    fold = np.full(n, -1)
    want_total = np.full(k, n / k)
    want_class = np.tile(y.sum(0) / k, (k, 1))  # (k, C)
    left = np.ones(n, bool)
    while left.any():
        remaining = y[left].sum(0)
        if remaining.max() == 0:
            break
        cls = int(np.argmin(np.where(remaining > 0, remaining, np.iinfo(np.int64).max)))
        for i in rng.permutation(np.flatnonzero(left & y[:, cls])):
            best = np.lexsort((rng.random(k), -want_total, -want_class[:, cls]))[0]
            fold[i] = best
            left[i] = False
            want_total[best] -= 1
            want_class[best] -= y[i]
    for i in rng.permutation(np.flatnonzero(left)):
        best = np.lexsort((rng.random(k), -want_total))[0]
        fold[i] = best
        want_total[best] -= 1
    return fold


class ViewBatches:
    """Shuffled batches of (features, targets, masks) from in-memory views, one view per photo per
    epoch: the batches `train` draws from its feature cache, without a DataLoader's per-item copies.
    Views are converted to float32 once (N, C, h, w each)."""

    def __init__(self, views: list[np.ndarray], targets: np.ndarray, masks: np.ndarray, batch_size: int,
                 seed: int) -> None:
        self.views = [torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for v in views]
        self.targets = torch.from_numpy(np.asarray(targets, np.float32))
        self.masks = torch.from_numpy(np.asarray(masks, np.float32))
        self.batch_size, self.seed = batch_size, seed

    def __len__(self) -> int:
        return math.ceil(len(self.targets) / self.batch_size)

    def epoch(self, epoch: int):
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.targets), generator=g)
        which = torch.randint(len(self.views), (len(self.targets),), generator=g)
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            x = torch.empty((len(idx), *self.views[0].shape[1:]))
            for v, view in enumerate(self.views):
                sel = which[idx] == v
                if sel.any():
                    x[sel] = view[idx[sel]]
            yield x, self.targets[idx], self.masks[idx]


def fit_head(cfg: RAMConfig, recipe: Recipe, views: list[np.ndarray], targets: np.ndarray, masks: np.ndarray,
             seed: int = 0, init: Callable[[torch.nn.Module], None] | None = None,
             log: Callable[[dict], None] | None = None) -> torch.nn.Module:
    """Train a fresh head on cached feature maps (each view (N, C, h, w)) for recipe.epochs epochs,
    in memory, the way `train` does (AdamW, one warm-up epoch then cosine, one view per photo per
    epoch).  init(head) sets starting weights, e.g. from the ImageNet classifier."""
    torch.manual_seed(seed)
    head = build_head(cfg)
    if init is not None:
        init(head)
    set_feature_stats(head, views[0])
    batches = ViewBatches(views if recipe.flip_views else views[:1], targets, masks, recipe.batch_size, seed)
    optimizer = torch.optim.AdamW(head_param_groups(head, recipe.lr, recipe.companion_lr),
                                  weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(recipe.epochs, recipe.warmup_epochs,
                                                                        len(batches)))
    anchors = torch.tensor(cfg.anchors) if cfg.num_attention_steps else torch.zeros(0, 2)
    for epoch in range(recipe.epochs):
        torch.manual_seed(seed * 1000 + epoch)
        head.train()
        total, count = 0.0, 0
        for x, y, m in batches.epoch(epoch):
            terms = ram_loss(head(x), y, cfg.loss, anchors, m)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            scheduler.step()
            total += float(terms.total.detach()) * len(x)
            count += len(x)
        if not math.isfinite(total):
            raise FloatingPointError(f"the training loss became {total} in epoch {epoch + 1}")
        if log is not None:
            log({"epoch": epoch + 1, "loss": total / max(count, 1)})
    return head.eval()


@torch.inference_mode()
def head_outputs(head: torch.nn.Module, feats: np.ndarray, mirrored: np.ndarray | None = None,
                 batch_size: int = 128) -> RAMOutput:
    """RAMOutput of a head over cached features (N, C, h, w); with `mirrored` (the mirror images'
    features), the test-time-flip average."""
    head.eval()
    parts = []
    for s in range(0, len(feats), batch_size):
        out = head(torch.from_numpy(np.asarray(feats[s:s + batch_size])).float())
        if mirrored is not None:
            out = average_with_mirror(out, head(torch.from_numpy(np.asarray(mirrored[s:s + batch_size])).float()))
        parts.append(out)
    return concat_outputs(parts)


@dataclass
class CVResult:
    """Out-of-fold outputs of every photo and the per-fold / pooled metrics."""

    cfg: RAMConfig
    recipe: Recipe
    seed: int
    folds: np.ndarray  # (N,)
    oof: RAMOutput  # (N, ...) each photo scored by the model of the fold that left it out
    oof_scores: np.ndarray  # (N, C) probabilities
    fold_mAP: list[float]  # mAP (selected classes) within each fold
    pooled_ap: np.ndarray  # (C,) AP of the pooled out-of-fold scores
    selected: np.ndarray  # (C,) bool: classes counted in the mAP
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    # the same fold models' out-of-fold outputs with test-time flip toggled (when mirrored maps exist)
    oof_other: RAMOutput | None = None

    @property
    def mAP(self) -> float:
        """The selection metric: mean over folds of the fold's mAP on the selected classes."""
        return float(np.mean(self.fold_mAP))

    @property
    def pooled_mAP(self) -> float:
        return float(np.nanmean(self.pooled_ap[self.selected]) * 100)

    def summary(self) -> dict[str, Any]:
        return {"mAP_mean_over_folds": self.mAP, "mAP_std_over_folds": float(np.std(self.fold_mAP)),
                "fold_mAP": self.fold_mAP, "pooled_mAP": self.pooled_mAP, "seed": self.seed,
                "seconds": round(self.seconds, 1), "recipe": asdict(self.recipe), **self.extra}


def selected_classes(targets: np.ndarray, masks: np.ndarray, min_positives: int = 5) -> np.ndarray:
    """(C,) classes with at least min_positives counted positives over the whole set."""
    return ((targets > 0.5) & (masks > 0)).sum(0) >= min_positives


def cross_validate(cfg: RAMConfig, recipe: Recipe, views: list[np.ndarray], targets: np.ndarray,
                   eval_masks: np.ndarray, folds: np.ndarray, seed: int = 0, train_masks: np.ndarray | None = None,
                   test_time_flip: bool = False, min_positives: int = 5,
                   init: Callable[[torch.nn.Module], None] | None = None,
                   log: Callable[[str], None] | None = None, only_folds: list[int] | None = None) -> CVResult:
    """Train on all folds but one, score the one left out, for every fold.

    views[0] is the photos' features, views[1] (optional) their mirror images'.  The mAP of a fold is
    over the classes with >= min_positives positives in the whole set (`selected`) that have a
    positive in that fold.  test_time_flip averages each photo's logits with its mirror image's.
    """
    t0 = time.perf_counter()
    train_masks = eval_masks if train_masks is None else train_masks
    n = len(targets)
    selected = selected_classes(targets, eval_masks, min_positives)
    parts: dict[int, RAMOutput] = {}
    other_parts: dict[int, RAMOutput] = {}
    fold_map, other_map = [], []  # other_map: the same fold models with test-time flip toggled
    for f in sorted(set(folds.tolist())):
        if only_folds is not None and f not in only_folds:  # quick looks only: not a CV result
            continue
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        head = fit_head(cfg, recipe, [v[tr] for v in views], targets[tr], train_masks[tr], seed=seed, init=init)
        out = head_outputs(head, views[0][te])
        # the same fold model with test-time flip averaging (and without it): both measured, one kept
        other = head_outputs(head, views[0][te], views[1][te]) if len(views) > 1 else None
        if test_time_flip and other is not None:
            out, other = other, out
        parts[f] = out
        if other is not None:
            other_parts[f] = other
        ap = metrics.per_class_ap(probabilities(out.logits, cfg).numpy(), targets[te], eval_masks[te])
        fold_map.append(float(np.nanmean(ap[selected]) * 100))
        if other is not None:
            ap = metrics.per_class_ap(probabilities(other.logits, cfg).numpy(), targets[te], eval_masks[te])
            other_map.append(float(np.nanmean(ap[selected]) * 100))
        if log:
            log(f"  fold {f}: mAP {fold_map[-1]:.2f}"
                + (f" ({'without' if test_time_flip else 'with'} test-time flip: {other_map[-1]:.2f})" if other_map else "")
                + f"  ({time.perf_counter() - t0:.0f} s)")
    if only_folds is not None:
        return CVResult(cfg, recipe, seed, folds, parts[min(parts)], np.zeros(0), fold_map, np.zeros(0),
                        selected, time.perf_counter() - t0, {"only_folds": only_folds})
    # reassemble in photo order
    order = np.concatenate([np.flatnonzero(folds == f) for f in sorted(parts)])
    stacked = concat_outputs([parts[f] for f in sorted(parts)])
    inverse = np.empty(n, int)
    inverse[order] = np.arange(n)
    oof = stacked.rows(inverse)
    oof_other = concat_outputs([other_parts[f] for f in sorted(parts)]).rows(inverse) if other_parts else None
    oof_scores = probabilities(oof.logits, cfg).numpy()
    pooled = metrics.per_class_ap(oof_scores, targets, eval_masks)
    extra = {}
    if other_map:
        extra["other_flip_setting"] = {"test_time_flip": not test_time_flip, "fold_mAP": other_map,
                                       "mAP_mean_over_folds": float(np.mean(other_map))}
    return CVResult(cfg, recipe, seed, folds, oof, oof_scores, fold_map, pooled, selected,
                    time.perf_counter() - t0, extra, oof_other)
