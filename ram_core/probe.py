"""Probe a region: the model's scores for a box the user draws.

The box is turned into the spatial transformer's M = [[s_x, 0, t_x], [0, s_y, t_y]] (the inverse of
how a step's box is drawn), the region is sampled through the same spatial transformer with that M,
and the RAM head reads it as one step after the global step (head_hooks.region_step_logits).  So a
probe answers "what would a step that looked here have said?", in the same units as the steps.

Only heads with attention steps (ram) can be probed: the baseline and CSRA heads score the whole
feature map at once, there is no step that could read a region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from PIL import Image

from .config import RAMConfig
from .errors import RAMError
from .head_hooks import mirror_transforms, region_step_logits, running, view_features
from .inference import Predictor, preprocess
from .model import probabilities
from .sampler import box_to_transform

# What a probe is, in the words the app's help, the CLI and the README use.
PROBE_EXPLANATION = ("The region is sampled through the same spatial transformer with the M of that rectangle "
                     "and read by the head as one step after the global step.")


class ProbeError(RAMError):
    """A probe that cannot be run: a head without steps, or a box that is not a box of the image."""


def check_probe_head(cfg: RAMConfig) -> None:
    """ProbeError unless the model has a head with attention steps."""
    if cfg.head != "ram":
        raise ProbeError(
            f"this model has the {cfg.head} head, which has no attention steps: it scores the whole feature map "
            "at once, so no step can read a region and a region cannot be probed this way. Probing needs a "
            "recurrent-attention (ram) head."
        )


@dataclass
class RegionProbe:
    """The model's scores for one box of an image."""

    box: list[float]  # x0, y0, x1, y1 in original-image pixels, clipped to the image
    box_norm: list[float]  # the same as fractions of the image
    transform: dict[str, float]  # s_x, s_y, t_x, t_y of the M that samples it
    scores: dict[str, float]  # class -> probability (as the steps' scores)

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:n]

    def to_json(self, top: int = 3) -> dict[str, Any]:
        return {"box": self.box, "box_norm": self.box_norm, "transform": self.transform, "scores": self.scores,
                "top": [[c, p] for c, p in self.top(top)]}


def box_fractions(box: Sequence[float], width: int, height: int) -> list[float]:
    """A box (x0, y0, x1, y1) in pixels of a width x height image -> fractions of the image, clipped to it.
    ProbeError when it is not four finite numbers, is empty, or lies outside the image."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ProbeError(f"a box is four numbers x0 y0 x1 y1 (pixels), got {list(box)!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ProbeError(f"the box {[x0, y0, x1, y1]} has a value that is not a finite number")
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if cx1 - cx0 < 1 or cy1 - cy0 < 1:
        raise ProbeError(f"the box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] covers less than one pixel of the "
                         f"{width}x{height} image")
    return [cx0 / width, cy0 / height, cx1 / width, cy1 / height]


def probe_regions(predictor: Predictor, image: Image.Image, boxes: Sequence[Sequence[float]]) -> list[RegionProbe]:
    """The model's scores for each box (x0, y0, x1, y1 in the image's pixels) of an RGB image, all
    probes in one batch.  ProbeError for a head without steps or a bad box."""
    cfg = predictor.cfg
    check_probe_head(cfg)
    if not boxes:
        return []
    w, h = image.size
    fractions = [box_fractions(b, w, h) for b in boxes]
    transforms = box_to_transform(torch.tensor(fractions, dtype=torch.float32))  # (P, 4)
    views = view_features(predictor, preprocess(image, cfg)[None])
    with running(predictor):
        logits = region_step_logits(predictor.model.head, views[0], transforms[None].to(predictor.device))
        if len(views) == 2:  # the model averages with the mirror image: probe the mirrored box there too
            mirrored = region_step_logits(predictor.model.head, views[1],
                                          mirror_transforms(transforms)[None].to(predictor.device))
            logits = (logits + mirrored) / 2
    probs = probabilities(logits[0].float().cpu(), cfg)  # (P, classes)
    out = []
    for f, m, p in zip(fractions, transforms.tolist(), probs.tolist()):
        out.append(RegionProbe(
            box=[round(f[0] * w, 1), round(f[1] * h, 1), round(f[2] * w, 1), round(f[3] * h, 1)],
            box_norm=[round(v, 5) for v in f],
            transform=dict(zip(("s_x", "s_y", "t_x", "t_y"), (round(v, 5) for v in m))),
            scores={c: round(v, 5) for c, v in zip(cfg.class_names, p)},
        ))
    return out
