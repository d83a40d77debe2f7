"""The structured trace of one image: what the CLI prints, the app draws and the tests check.

Per step: the transform (s_x, s_y, t_x, t_y), the box as fractions of the image and in the original
image's pixels, and the step's scores; the global step's scores; the fused scores; for each class,
which step supplied its fused (max) score; for a model with a companion branch, both branches' own
scores.  `to_json()` is the `predict --json` schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .model import RAMOutput, transform_to_box


# the branches of RAMOutput.branch_logits, in order
BRANCH_NAMES = ("recurrent", "companion")


@dataclass
class StepTrace:
    step: int  # 1..K
    transform: dict[str, float]  # s_x, s_y, t_x, t_y in the sampler's [-1, 1] frame
    box_norm: list[float]  # x0, y0, x1, y1 as fractions of the image, unclipped
    box: list[float]  # x0, y0, x1, y1 in original-image pixels, clipped to the image
    scores: dict[str, float]  # class -> probability

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:n]


@dataclass
class AttentionTrace:
    image: str
    width: int  # original image size, after EXIF rotation
    height: int
    class_names: list[str]
    scores: dict[str, float]  # fused
    global_scores: dict[str, float]
    steps: list[StepTrace]
    max_step: dict[str, int]  # class -> step that gave its fused score (0 = the global step)
    threshold: float = 0.5
    seconds: float | None = None  # inference time for this image (its share of the batch)
    extra: dict[str, Any] = field(default_factory=dict)
    # per-class thresholds (the checkpoint's, thresholds.py); a class without one uses `threshold`
    class_thresholds: dict[str, float] | None = None
    # a model with a companion branch (config.companion): {"recurrent": scores, "companion": scores},
    # the two branches' own scores before they are mixed into `scores`; None otherwise
    branch_scores: dict[str, dict[str, float]] | None = None

    def threshold_of(self, name: str) -> float:
        return (self.class_thresholds or {}).get(name, self.threshold)

    def labels(self, threshold: float | None = None) -> list[str]:
        """Classes at or above their threshold, highest score first: the per-class thresholds when the
        trace has them, else its single threshold; a threshold given here applies to every class."""
        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])
        if threshold is not None:
            return [c for c, p in ranked if p >= threshold]
        return [c for c, p in ranked if p >= self.threshold_of(c)]

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:n]

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "labels": self.labels(),
            "threshold": self.threshold,
            **({"class_thresholds": self.class_thresholds} if self.class_thresholds else {}),
            "scores": self.scores,
            "global_scores": self.global_scores,
            "max_step": self.max_step,
            **({"branch_scores": self.branch_scores} if self.branch_scores else {}),
            "steps": [
                {"step": s.step, "box": s.box, "box_norm": s.box_norm, "transform": s.transform, "scores": s.scores}
                for s in self.steps
            ],
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AttentionTrace":
        names = list(data["scores"])
        return cls(
            image=data["image"],
            width=int(data["width"]),
            height=int(data["height"]),
            class_names=names,
            scores={k: float(v) for k, v in data["scores"].items()},
            global_scores={k: float(v) for k, v in data["global_scores"].items()},
            steps=[StepTrace(int(s["step"]), s["transform"], list(s["box_norm"]), list(s["box"]), s["scores"])
                   for s in data["steps"]],
            max_step={k: int(v) for k, v in data.get("max_step", {}).items()},
            threshold=float(data.get("threshold", 0.5)),
            seconds=data.get("seconds"),
            class_thresholds=({k: float(v) for k, v in data["class_thresholds"].items()}
                              if data.get("class_thresholds") else None),
            branch_scores=({b: {k: float(v) for k, v in sc.items()} for b, sc in data["branch_scores"].items()}
                           if data.get("branch_scores") else None),
        )


def _round(x: float, nd: int = 5) -> float:
    return round(float(x), nd)


def traces_from_output(output: RAMOutput, names: list[str], sizes: list[tuple[int, int]],
                       class_names: list[str], fuse_global: bool, threshold: float = 0.5,
                       seconds: float | None = None, activation: str = "sigmoid",
                       class_thresholds: dict[str, float] | None = None) -> list[AttentionTrace]:
    """Turn a batch's RAMOutput into one AttentionTrace per image.  sizes: (width, height) each.
    activation: "sigmoid" (per class) or "softmax" (over classes; models trained with the paper's
    loss), as RAMConfig.score_activation says.  class_thresholds: per-class thresholds for labels."""
    act = (lambda x: x.float().softmax(-1)) if activation == "softmax" else (lambda x: torch.sigmoid(x.float()))
    fused = act(output.logits).cpu()
    glob = act(output.global_logits).cpu()
    steps = act(output.step_logits).cpu()  # (B, K, C)
    transforms = output.transforms.float().cpu()  # (B, K, 4)
    branches = act(output.branch_logits).cpu() if output.branch_logits is not None else None  # (B, 2, C)
    boxes = transform_to_box(transforms)  # (B, K, 4) fractions
    k = steps.shape[1]
    if k:
        # which step's logit is the fused one (with a softmax, each step's probabilities are normalised
        # on their own, so the logits, not the probabilities, say which step gave the max)
        step_logits = output.step_logits.float().cpu()
        pool = torch.cat([output.global_logits.float().cpu()[:, None], step_logits], 1) if fuse_global else step_logits
        arg = pool.argmax(1) + (0 if fuse_global else 1)  # (B, C) step index, 0 = global
    else:
        arg = torch.zeros_like(fused, dtype=torch.long)
    traces = []
    for i, (name, (w, h)) in enumerate(zip(names, sizes)):
        step_list = []
        for j in range(k):
            bn = [_round(v) for v in boxes[i, j].tolist()]
            px = [
                _round(min(max(bn[0], 0.0), 1.0) * w, 1),
                _round(min(max(bn[1], 0.0), 1.0) * h, 1),
                _round(min(max(bn[2], 0.0), 1.0) * w, 1),
                _round(min(max(bn[3], 0.0), 1.0) * h, 1),
            ]
            s_x, s_y, t_x, t_y = (_round(v) for v in transforms[i, j].tolist())
            step_list.append(StepTrace(
                step=j + 1,
                transform={"s_x": s_x, "s_y": s_y, "t_x": t_x, "t_y": t_y},
                box_norm=bn,
                box=px,
                scores={c: _round(p) for c, p in zip(class_names, steps[i, j].tolist())},
            ))
        traces.append(AttentionTrace(
            image=name,
            width=int(w),
            height=int(h),
            class_names=list(class_names),
            scores={c: _round(p) for c, p in zip(class_names, fused[i].tolist())},
            global_scores={c: _round(p) for c, p in zip(class_names, glob[i].tolist())},
            steps=step_list,
            max_step={c: int(a) for c, a in zip(class_names, arg[i].tolist())},
            threshold=threshold,
            seconds=seconds,
            class_thresholds=dict(class_thresholds) if class_thresholds else None,
            branch_scores=None if branches is None else {
                b: {c: _round(p) for c, p in zip(class_names, branches[i, j].tolist())}
                for j, b in enumerate(BRANCH_NAMES)},
        ))
    return traces
