"""Does the attention matter?  Blank the region a step looked at and run the head again.

A region is blanked on the feature map, not on the photo: its cells are set to zero (a cell that the
box covers only in part is scaled down in proportion to the part covered), and the whole head runs
again on that map.  The backbone runs once per photo, so each test costs one head pass, and the
answer is about the head's use of the regions, not about how the backbone reacts to a grey patch.
The head runs in full, so later steps may look elsewhere once a region is gone: a step whose
removal changes nothing did not matter.

    occlude_steps(predictor, image)     one photo: the drop of every class's fused score when each
                                        step's region is blanked (StepOcclusion)
    dataset_occlusion(predictor, eval)  a saved evaluation's true positives: the drop of each one's
                                        score when the step that gave its max is blanked, against a
                                        box of the same size at a random place; and deletion curves
                                        (the score as steps are blanked in order of importance)
    write_occlusion / load_occlusion    occlusion.json beside report.json
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from . import finite_json
from .config import RAMConfig
from .errors import RAMError
from .head_hooks import head_output, mirror_boxes, view_features
from .inference import ImageTransform, Predictor, preprocess
from .model import probabilities, transform_to_box
from .trace import AttentionTrace

FORMAT = "ram-studio-occlusion/1"
OCCLUSION_FILE = "occlusion.json"
BLANK_EXPLANATION = (
    "A step's region is blanked on the feature map (its cells set to zero; a cell the box covers only in part "
    "is scaled down in proportion), then the whole head runs again on that map, so later steps may look "
    "elsewhere."
)
Progress = Callable[[int, int, float], None]  # (images done, images in total, seconds so far)


class OcclusionError(RAMError):
    """An occlusion test that cannot be run: a head without steps, or no true positive to test."""


def require_steps(cfg: RAMConfig) -> None:
    if cfg.num_attention_steps == 0:
        raise OcclusionError(f"this model has the {cfg.head} head, which has no attention steps: there is no "
                             "step region to remove (occlusion tests need a recurrent-attention (ram) head)")


# --------------------------------------------------------------------------------------------------
# Blanking boxes on a feature map


def cell_coverage(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 4) boxes (x0, y0, x1, y1) as fractions of the image -> (..., H, W): the fraction of
    each feature-map cell that the box covers (cell j of W spans j / W .. (j + 1) / W)."""

    def along(lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
        edges = torch.arange(n + 1, dtype=lo.dtype, device=lo.device) / n
        inside = torch.minimum(hi[..., None], edges[1:]) - torch.maximum(lo[..., None], edges[:-1])
        return inside.clamp(min=0) * n  # (..., n) in [0, 1]

    x0, y0, x1, y1 = boxes.unbind(-1)
    return along(y0, y1, height)[..., :, None] * along(x0, x1, width)[..., None, :]


def blank_boxes(features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """features (C, H, W) of one image, boxes (V, J, 4): V variants, each blanking the union of its
    J boxes (an empty box, e.g. all zeros, blanks nothing) -> (V, C, H, W)."""
    _, h, w = features.shape
    keep = (1 - cell_coverage(boxes.to(features.dtype), h, w)).prod(1)  # (V, H, W)
    return features[None] * keep[:, None]


def _views_blanked(views: list[torch.Tensor], i: int, boxes: torch.Tensor) -> list[torch.Tensor]:
    """Image i of each view with the variants' boxes blanked; in the mirror image, the mirrored boxes."""
    out = [blank_boxes(views[0][i], boxes)]
    if len(views) == 2:
        out.append(blank_boxes(views[1][i], mirror_boxes(boxes)))
    return out


def _probabilities(predictor: Predictor, views: list[torch.Tensor]) -> np.ndarray:
    """Fused probabilities (V, classes) of the head on V blanked variants."""
    return probabilities(head_output(predictor, views).logits, predictor.cfg).numpy().astype(np.float64)


def _clip(boxes: torch.Tensor) -> torch.Tensor:
    return boxes.clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# One photo


@dataclass
class StepOcclusion:
    """One photo: the fused scores as they are and with each step's region blanked.  K steps, C classes."""

    class_names: list[str]
    scores: np.ndarray  # (C,) fused probabilities of the photo as it is
    occluded: np.ndarray  # (K, C) the same with step k's region blanked
    boxes: np.ndarray  # (K, 4) the blanked boxes (fractions of the image, clipped to it)

    @property
    def drop(self) -> np.ndarray:
        """(K, C) how much each class's fused score falls when each step's region is blanked."""
        return self.scores[None] - self.occluded

    def step_effect(self) -> np.ndarray:
        """(K,) the largest change of any class's score when the step's region is blanked."""
        return np.abs(self.drop).max(1) if self.drop.size else np.zeros(0)

    def table(self, classes: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per class (default: all, highest score first): its score, and its drop per step."""
        if classes is None:
            classes = [self.class_names[j] for j in np.argsort(-self.scores, kind="stable")]
        order = list(classes)
        idx = [self.class_names.index(c) for c in order]
        table = pd.DataFrame({"class": list(order), "score": self.scores[idx]})
        for k in range(self.drop.shape[0]):
            table[f"step {k + 1}"] = self.drop[k, idx]
        return table


def occlude_steps(predictor: Predictor, image: Image.Image, trace: AttentionTrace | None = None) -> StepOcclusion:
    """Blank each step's region of one RGB image's feature map in turn and run the head again.
    The steps' boxes are the trace's (the model is run for one when none is given)."""
    cfg = predictor.cfg
    require_steps(cfg)
    trace = trace if trace is not None else predictor.predict_one("image", image)
    boxes = _clip(torch.tensor([s.box_norm for s in trace.steps], dtype=torch.float32))  # (K, 4)
    variants = torch.cat([torch.zeros(1, 1, 4), boxes[:, None]])  # nothing blanked, then each step's box
    views = view_features(predictor, preprocess(image, cfg)[None])
    probs = _probabilities(predictor, _views_blanked(views, 0, variants.to(views[0].device)))
    return StepOcclusion(list(cfg.class_names), probs[0], probs[1:], boxes.numpy().astype(np.float64))


# --------------------------------------------------------------------------------------------------
# A dataset's true positives


class _Photos(Dataset):
    """Item j -> (preprocessed photo, j); a photo that cannot be read any more gives an empty tensor."""

    def __init__(self, paths: Sequence[str], transform: ImageTransform) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, j: int):
        from .imageio import open_image

        try:
            return self.transform(open_image(self.paths[j])), j
        except RAMError:
            return torch.zeros(0), j


def max_steps(global_logits: torch.Tensor, step_logits: torch.Tensor, fuse_global: bool) -> np.ndarray:
    """(N, M) the step whose logit is each class's fused one (0 = the global step), as traces say.
    global_logits (N, M), step_logits (N, K, M)."""
    pool = torch.cat([global_logits[:, None], step_logits], 1) if fuse_global else step_logits
    return (pool.argmax(1) + (0 if fuse_global else 1)).numpy()


def random_boxes(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(K, 4) boxes inside the image -> boxes of the same sizes at uniformly random places in it."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    return np.stack([x0, y0, x0 + w, y0 + h], 1)


def _padded(sets: list[torch.Tensor], k: int) -> torch.Tensor:
    """Variants of up to K boxes each ((J, 4) tensors) -> (V, K, 4), padded with zero boxes (which blank nothing)."""
    out = torch.zeros(len(sets), k, 4)
    for v, bs in enumerate(sets):
        out[v, :len(bs)] = bs
    return out


def _image_records(predictor: Predictor, views: list[torch.Tensor], i: int, boxes: np.ndarray, rand: np.ndarray,
                   tps: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
    """The tests of one image's true positives.  boxes, rand: (K, 4) the steps' boxes and random boxes of
    the same sizes; tps: (model column, step that gave the max, class name)."""
    k = len(boxes)
    b, r = torch.tensor(boxes, dtype=torch.float32), torch.tensor(rand, dtype=torch.float32)
    # first pass: nothing, each step's box alone, each random box alone, all the steps' boxes
    first = [b[:0]] + [b[j:j + 1] for j in range(k)] + [r[j:j + 1] for j in range(k)] + ([b] if k > 1 else [])
    p1 = _probabilities(predictor, _views_blanked(views, i, _padded(first, k).to(views[0].device)))
    base, single, single_rand = p1[0], p1[1:k + 1], p1[k + 1:2 * k + 1]
    # second pass: per true positive, the steps blanked cumulatively in its order of importance (its
    # score's drop when each is blanked alone), and random boxes of the same sizes in the same order
    orders, second = [], []
    for col, _, _ in tps:
        order = np.argsort(-(base[col] - single[:, col]), kind="stable")
        orders.append(order)
        second += [b[order[:j]] for j in range(2, k)] + [r[order[:j]] for j in range(2, k + 1)]
    p2 = _probabilities(predictor, _views_blanked(views, i, _padded(second, k).to(views[0].device))) if second else None
    records, at = [], 0
    for (col, step, name), order in zip(tps, orders):
        ordered, randomly = [base[col], single[order[0], col]], [base[col], single_rand[order[0], col]]
        if k > 1:
            ordered += [p2[at + j, col] for j in range(k - 2)] + [p1[-1, col]]
            randomly += [p2[at + k - 2 + j, col] for j in range(k - 1)]
            at += 2 * k - 3
        records.append({
            "class": name, "step": int(step), "score": float(base[col]),
            "drop_step": float(base[col] - single[step - 1, col]) if step > 0 else None,
            "drop_random": float(base[col] - single_rand[step - 1, col]) if step > 0 else None,
            "by_importance": [float(v) for v in ordered], "random_order": [float(v) for v in randomly],
        })
    return records


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 5) if len(values) else None


def _trapezoid(y) -> float:
    y = np.asarray(y, dtype=np.float64)
    return float(((y[1:] + y[:-1]) / 2).sum())


def _area(curve: Sequence[float]) -> float | None:
    """Area under a curve over 0..K steps removed, per step (the mean height, trapezoids)."""
    if len(curve) < 2 or any(v is None for v in curve):
        return None
    return round(float(_trapezoid(curve) / (len(curve) - 1)), 5)


def summarise(records: list[dict[str, Any]], class_names: Sequence[str], k: int) -> dict[str, Any]:
    """Per class and over all true positives: mean drops (step that gave the max vs a random box of its
    size), how often the step's drop is the larger, and mean deletion curves."""

    def stats(rs: list[dict[str, Any]]) -> dict[str, Any]:
        tested = [r for r in rs if r["drop_step"] is not None]
        by_importance = [_mean([r["by_importance"][j] for r in rs]) for j in range(k + 1)] if rs else []
        random_order = [_mean([r["random_order"][j] for r in rs]) for j in range(k + 1)] if rs else []
        return {
            "true_positives": len(rs),
            "max_from_global": len(rs) - len(tested),
            "mean_score": _mean([r["score"] for r in rs]),
            "mean_drop_step": _mean([r["drop_step"] for r in tested]),
            "mean_drop_random": _mean([r["drop_random"] for r in tested]),
            "step_drops_more": _mean([float(r["drop_step"] > r["drop_random"]) for r in tested]),
            "deletion_curve": by_importance,
            "random_curve": random_order,
            "deletion_area": _area(by_importance),
            "random_area": _area(random_order),
        }

    per_class = {c: stats([r for r in records if r["class"] == c]) for c in class_names}
    overall = stats(records)
    defined = [s for s in per_class.values() if s["mean_drop_step"] is not None]
    overall["class_mean_drop_step"] = _mean([s["mean_drop_step"] for s in defined])
    overall["class_mean_drop_random"] = _mean([s["mean_drop_random"] for s in defined])
    return {"overall": overall, "per_class": per_class}


def dataset_occlusion(predictor: Predictor, result, *, seed: int = 0, batch_size: int = 8, workers: int = 0,
                      class_thresholds: dict[str, float] | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """The occlusion tests over an evaluation's true positives (an evaluation.EvaluationResult: its photos,
    scores, labels and step boxes; the model is the one that made it).

    A true positive is an (image, class) pair the class is labelled in, counted in the evaluation, and
    scored at or above the threshold (the evaluation's, or class_thresholds per class).  For each:
    blank the step that gave its fused score (a random box of the same size, at a place drawn with
    `seed`, for comparison) and measure the drop of its score; then blank the steps one by one in its
    order of importance (the drop each causes alone; random boxes of the same sizes in the same order
    for comparison) and record the score after each: the deletion curves.  A class whose max came from
    the global step (fuse_global) has no step region to remove: it is counted in max_from_global and
    in the curves.
    """
    cfg = predictor.cfg
    require_steps(cfg)
    k = cfg.num_attention_steps
    names = list(result.class_names)
    cols = [list(result.model_class_names).index(c) for c in names]
    thresholds = np.array([(class_thresholds or {}).get(c, result.threshold) for c in names])
    tp = (result.targets > 0.5) & (result.eval_masks > 0) & (result.scores >= thresholds[None])  # (N, C)
    out = result.outputs
    best = max_steps(out.global_logits, out.step_logits, cfg.fuse_global)  # (N, M)
    boxes = _clip(transform_to_box(out.transforms.float())).numpy().astype(np.float64)  # (N, K, 4)
    todo = [i for i in range(len(result.image_paths)) if tp[i].any()]
    if not todo:
        raise OcclusionError("the evaluation has no true positive to test (no labelled class scored at or above "
                             "its threshold)")
    rng = np.random.default_rng(seed)
    loader = DataLoader(_Photos([result.image_paths[i] for i in todo], ImageTransform(cfg)),
                        batch_size=max(1, batch_size), num_workers=max(0, workers))
    records: list[dict[str, Any]] = []
    unreadable, done, t0 = [], 0, time.perf_counter()
    for images, index in loader:
        ok = [j for j in range(len(index)) if images[j].numel()]
        unreadable += [result.image_paths[todo[int(index[j])]] for j in range(len(index)) if j not in ok]
        if ok:
            views = view_features(predictor, torch.stack([images[j] for j in ok]))
            for v, j in enumerate(ok):
                i = todo[int(index[j])]
                tps = [(cols[c], int(best[i, cols[c]]), names[c]) for c in np.flatnonzero(tp[i])]
                rand = random_boxes(boxes[i], rng)
                records += _image_records(predictor, views, v, boxes[i], rand, tps)
        done += len(index)
        if progress is not None:
            progress(done, len(todo), time.perf_counter() - t0)
    stats = summarise(records, names, k)
    report = getattr(result, "report", {}) or {}
    return {
        "format": FORMAT,
        "method": BLANK_EXPLANATION + " Each true positive's score is compared with and without the region of the "
                  "step that gave its fused score, and with a box of the same size at a random place.",
        "checkpoint": report.get("checkpoint"),
        "dataset": report.get("dataset"),
        "num_steps": k,
        "seed": seed,
        "threshold": float(result.threshold),
        "class_thresholds": dict(class_thresholds) if class_thresholds else None,
        "num_images_tested": len(todo) - len(unreadable),
        "unreadable": unreadable,
        "seconds": round(time.perf_counter() - t0, 2),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **stats,
    }


def write_occlusion(stats: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    path = Path(out_dir) / OCCLUSION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    from .output_folder import atomic_write_text

    atomic_write_text(path, [finite_json.dumps(stats, indent=2) + "\n"])
    return path


def load_occlusion(eval_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The occlusion.json of an evaluation folder, or None when it has none (or an unreadable one)."""
    path = Path(eval_dir) / OCCLUSION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT and "overall" in data else None


def summary_line(stats: dict[str, Any]) -> str:
    """One line for the terminal."""
    o = stats["overall"]

    def f(v):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    return (f"occlusion: {o['true_positives']} true positives; blanking the step that gave the max drops the score "
            f"by {f(o['mean_drop_step'])} on average, a random box of the same size by {f(o['mean_drop_random'])} "
            f"(the step drops more in {f(o['step_drops_more'])} of them); deletion area {f(o['deletion_area'])} "
            f"by importance vs {f(o['random_area'])} for random boxes")
