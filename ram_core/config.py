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


HEADS = ("ram", "baseline", "csra")
REGION_ENCODERS = ("pool", "flatten", "maxpool")
IMAGENET_MODES = ("prior", "init", "prior+init")
FUSIONS = ("max", "average")


def default_anchors(num_steps: int) -> list[list[float]]:
    """One anchor per step: the paper's five, repeated in order when K > 5."""
    return [list(PAPER_ANCHORS[k % len(PAPER_ANCHORS)]) for k in range(num_steps)]


CLASSIFICATION_LOSSES = ("bce", "softmax_mse", "sigmoid_mse")


@dataclass
class LossConfig:
    """Classification loss plus the three localization constraints (Sec. 3.3 of the paper):

        L = L_cls + gamma * (scale_weight * L_S + anchor_weight * L_A + positive_weight * L_P)

    The paper's values are gamma = 0.1, scale_weight = 1, anchor_weight = lambda1 = 0.01,
    positive_weight = lambda2 = 0.1 (presets.paper_config); gamma = 1 keeps the three weights as they
    are, which is how checkpoints written before gamma existed read.
    """

    # "softmax_mse": the paper's squared error between softmax(scores) and the label vector divided by
    # its L1 norm; "bce": binary cross-entropy with logits; "sigmoid_mse": squared error between
    # per-class sigmoids and the labels (not the paper's loss; "mse" in checkpoints of before).
    classification: str = "bce"
    anchor_weight: float = 0.1
    scale_weight: float = 0.1
    positive_weight: float = 0.1
    gamma: float = 1.0  # weight of the whole localization term
    alpha: float = 0.5  # scale constraint: penalise |s| above alpha
    beta: float = 0.1  # positive constraint: penalise s below beta
    # Per-step anchor points (t_x, t_y); None means default_anchors(num_steps).
    anchors: list[list[float]] | None = None

    def __post_init__(self) -> None:
        if self.classification == "mse":  # the old name of sigmoid_mse
            self.classification = "sigmoid_mse"
        if self.classification not in CLASSIFICATION_LOSSES:
            raise ValueError(f"loss.classification must be one of {', '.join(CLASSIFICATION_LOSSES)}, "
                             f"got {self.classification!r}")


@dataclass
class RAMConfig:
    """Everything that defines a model: rebuildable from this alone plus the weights."""

    class_names: list[str] = field(default_factory=list)
    backbone: str = "tf_efficientnet_lite0"
    input_size: int = 448
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # "ram": recurrent attention (heads/recurrent.py); "baseline": global average pool + linear;
    # "csra": class-specific residual attention (Zhu and Wu, ICCV 2021) (heads/pooling.py)
    head: str = "ram"
    # the named recipe this config was built from ("paper", "default"; "" for a hand-made one): shown
    # by `info` and the app, which also list every field where a model departs from the paper
    preset: str = ""
    num_steps: int = 5  # K, not counting the initial global step
    region_size: int = 7  # the spatial transformer samples region_size x region_size cells
    # "pool": average the sampled cells; "flatten": 1x1 conv + ReLU to region_channels, sample, flatten;
    # "maxpool": the reference implementation's: sample, 2x2 max pooling, flatten, fc (no ReLU), with an
    # optional linear 1x1 reduction to region_channels first (0: none, as on VGG16's 512 channels)
    region_encoder: str = "pool"
    region_channels: int = 128  # channels after the 1x1 reduction ("flatten", "maxpool")
    embed_dim: int = 512  # region feature fed to the LSTM
    hidden_size: int = 512  # LSTM hidden and cell size
    # z_k = ReLU(W_z h_k) of this size, from which the step's scores and the next transform are read
    # (the paper's "update rule of M"); 0: both are read off h_k directly
    z_size: int = 0
    # False: the LSTM state is reset before every step (an ablation: attention without memory)
    memory: bool = True
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
    # evidence mode: inhibition of return.  Where earlier steps (1..k-1) already looked, step k's
    # (standardised) evidence is lowered by this much, so later steps look for other objects; 0: off
    evidence_inhibition: float = 0.0
    init_scale: float = 0.5  # s_x = s_y at initialisation (anchored mode, and the bias in direct mode)
    fuse_global: bool = False  # paper default: the fused score is the max over steps 1..K only
    # "max": the image's scores are the category-wise max over the steps (the paper; fuse_global says
    # whether step 0 joins); "average": the mean of step 0's scores and the max over steps 1..K, the
    # whole photo and its best regions weighing the same (fuse_global must be off)
    fusion: str = "max"
    # ImageNet class indices per class (aligned with class_names), see imagenet_prior.py; None: the
    # ImageNet classifier is not used, as in the paper.  How the groups are used:
    #   "prior": each score adds the group's ImageNet probability as a logit (a learned scale and bias)
    #   "init":  the classifier that reads pooled features starts from the group's mean ImageNet
    #            classifier weights (baseline and CSRA heads; the RAM head's region skip)
    #   "prior+init": both
    imagenet_groups: list[list[int]] | None = None
    imagenet_mode: str = "prior"
    # CSRA head: logits = mean-pooled class scores + csra_lambda * attention-pooled class scores, the
    # attention a softmax over positions at temperature csra_temperature
    csra_lambda: float = 0.1
    csra_temperature: float = 1.0
    # RAM head with a region classifier (region_skip): step 0, the whole map, also adds this times the
    # class-specific attention pooling of the region classifier's class maps (CSRA's residual term,
    # at csra_temperature); 0: off, as in the paper
    global_attention: float = 0.0
    # RAM head: standardise each channel of the map (mean and std measured on the training photos'
    # features, stored with the weights) before the region encoder; the ImageNet prior, the region
    # classifier and the evidence map still read the raw map (feature_norm.py)
    feature_norm: bool = False
    # at inference, average the logits of the image and its mirror image (boxes: the image's own)
    test_time_flip: bool = False
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
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.region_encoder not in REGION_ENCODERS:
            raise ValueError(f"region_encoder must be one of {', '.join(REGION_ENCODERS)}, got {self.region_encoder!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if self.fusion == "average" and self.fuse_global:
            raise ValueError("fusion='average' already weighs the global step in; it needs fuse_global=False")
        if self.imagenet_mode not in IMAGENET_MODES:
            raise ValueError(f"imagenet_mode must be one of {', '.join(IMAGENET_MODES)}, got {self.imagenet_mode!r}")
        if self.region_encoder == "maxpool" and self.region_size % 2:
            raise ValueError(f"the maxpool region encoder needs an even region_size, got {self.region_size}")
        if self.global_attention and not (self.head == "ram" and self.region_skip):
            raise ValueError("global_attention needs the RAM head with region_skip (its region classifier scores the map)")
        if self.z_size < 0:
            raise ValueError(f"z_size must be 0 (none) or positive, got {self.z_size}")
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
    def score_activation(self) -> str:
        """How logits become the scores users see: a softmax over classes for a model trained with
        the paper's softmax loss, else a sigmoid per class."""
        return "softmax" if self.loss.classification == "softmax_mse" else "sigmoid"

    @property
    def uses_prior(self) -> bool:
        return bool(self.imagenet_groups) and "prior" in self.imagenet_mode

    @property
    def uses_imagenet_init(self) -> bool:
        return bool(self.imagenet_groups) and "init" in self.imagenet_mode

    @property
    def num_attention_steps(self) -> int:
        """K for a recurrent head, 0 for the heads without steps."""
        return self.num_steps if self.head == "ram" else 0

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

    @classmethod
    def paper(cls, class_names: list[str], **kwargs: Any) -> "RAMConfig":
        """The paper's model and loss (presets.paper_config; docs/PAPER.md)."""
        from .presets import paper_config

        return paper_config(class_names, **kwargs)

    def replace(self, **changes: Any) -> "RAMConfig":
        return dataclasses.replace(self, **changes)
