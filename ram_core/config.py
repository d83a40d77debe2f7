"""One dataclass that describes a RAM model completely.

The same object is written into every checkpoint's metadata and read back at inference, so a
checkpoint carries everything needed to rebuild its model (backbone, input size, normalisation,
number of steps, class names, loss weights).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# The paper's anchor layout for K = 5: the centre, then the four quadrant centres.  Coordinates are
# in the spatial transformer's normalised frame, [-1, 1] on each axis, (t_x, t_y).
PAPER_ANCHORS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (-0.5, -0.5),
    (0.5, -0.5),
    (-0.5, 0.5),
    (0.5, 0.5),
)


def default_anchors(num_steps: int) -> list[list[float]]:
    """One anchor per step: the paper's five, repeated in order when K > 5."""
    return [list(PAPER_ANCHORS[k % len(PAPER_ANCHORS)]) for k in range(num_steps)]


@dataclass
class LossConfig:
    """Classification loss plus the three localization constraints (Sec. 3.3 of the paper)."""

    classification: str = "bce"  # "bce" (BCE with logits) or "mse" (paper-style squared error)
    anchor_weight: float = 0.1
    scale_weight: float = 0.1
    positive_weight: float = 0.1
    alpha: float = 0.5  # scale constraint: penalise |s| above alpha
    beta: float = 0.1  # positive constraint: penalise s below beta
    # Per-step anchor points (t_x, t_y); None means default_anchors(num_steps).
    anchors: list[list[float]] | None = None

    def __post_init__(self) -> None:
        if self.classification not in ("bce", "mse"):
            raise ValueError(f"loss.classification must be 'bce' or 'mse', got {self.classification!r}")


@dataclass
class RAMConfig:
    """Everything that defines a model: rebuildable from this alone plus the weights."""

    class_names: list[str] = field(default_factory=list)
    backbone: str = "tf_efficientnet_lite0"
    input_size: int = 448
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    head: str = "ram"  # "ram" (recurrent attention) or "baseline" (global average pool + linear)
    num_steps: int = 5  # K, not counting the initial global step
    region_size: int = 7  # the spatial transformer samples region_size x region_size cells
    region_encoder: str = "pool"  # "pool": average the sampled cells; "flatten": keep their layout
    region_channels: int = 128  # channels after the 1x1 reduction used by the "flatten" encoder
    embed_dim: int = 512  # region feature fed to the LSTM
    hidden_size: int = 512  # LSTM hidden and cell size
    dropout: float = 0.0
    # The region's pooled feature also feeds a linear classifier directly (a skip around the
    # LSTM).  Off in the paper; it lets an ImageNet-initialised classifier score each region.
    region_skip: bool = False
    # "direct": the head outputs (s_x, s_y, t_x, t_y) as in the paper.  "anchored": the head outputs
    # offsets from step k's anchor and a base scale, which starts every step at its own anchor.
    # "evidence": the hidden state picks which classes' evidence to follow and the scale; the centre
    # is that evidence's soft-argmax around the step's anchor (model.EvidenceLocalizer).
    transform_mode: str = "direct"
    # evidence mode: how far (in the [-1, 1] frame) a step searches around its anchor, and how sharply
    # it follows the (standardised) evidence; 0.25 keeps the five steps in their own parts of the image
    evidence_sigma: float = 0.25
    evidence_sharpness: float = 2.7
    init_scale: float = 0.5  # s_x = s_y at initialisation (anchored mode, and the bias in direct mode)
    fuse_global: bool = False  # paper default: the fused score is the max over steps 1..K only
    # ImageNet class indices per class (aligned with class_names) for an ImageNet prior on the
    # scores (see imagenet_prior.py); None: no prior, as in the paper.
    imagenet_groups: list[list[int]] | None = None
    freeze_backbone: bool = True
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):
            self.loss = LossConfig(**self.loss)
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values (R, G, B), got {list(self.mean)} and {list(self.std)}")
        if any(float(v) <= 0 for v in self.std):
            raise ValueError(f"std values must be positive, got {list(self.std)}")
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.class_names = list(self.class_names)
        if self.head not in ("ram", "baseline"):
            raise ValueError(f"head must be 'ram' or 'baseline', got {self.head!r}")
        if self.region_encoder not in ("pool", "flatten"):
            raise ValueError(f"region_encoder must be 'pool' or 'flatten', got {self.region_encoder!r}")
        if self.transform_mode not in ("direct", "anchored", "evidence"):
            raise ValueError(f"transform_mode must be 'direct', 'anchored' or 'evidence', got {self.transform_mode!r}")
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {self.num_steps}")
        if self.input_size < 32:
            raise ValueError(f"input_size must be at least 32, got {self.input_size}")
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names has duplicates")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def anchors(self) -> list[list[float]]:
        anchors = self.loss.anchors or default_anchors(self.num_steps)
        if len(anchors) != self.num_steps:
            raise ValueError(f"{len(anchors)} anchors given for {self.num_steps} steps")
        return [list(map(float, a)) for a in anchors]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RAMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "RAMConfig":
        return dataclasses.replace(self, **changes)
