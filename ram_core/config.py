"""One dataclass that describes a RAM model completely.

The same object is written into every checkpoint's metadata and read back at inference, so a
checkpoint carries everything needed to rebuild its model (backbone, input size, normalisation,
number of steps, class names, loss weights).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable

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
# a second head beside the recurrence, on the whole map, trained on its own loss ("none": off)
COMPANIONS = ("none", "csra")


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
    # evidence mode: inhibition by what is already explained, per class.  Where an earlier step looked
    # and scored class c with probability p, class c's evidence there is lowered by this many standard
    # deviations times p; the other classes' evidence is untouched, so a later step may come back to
    # the same place for another class (a dog held by a person).  0: off
    evidence_explained: float = 0.0
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
    # RAM head with region_skip: step 0 (the whole map) has its own pooled-feature classifier (and the
    # global attention reads its class maps); False: the regions' classifier scores step 0 as well
    global_classifier: bool = False
    # RAM head: standardise each channel of the map (mean and std measured on the training photos'
    # features, stored with the weights) before the region encoder; the ImageNet prior, the region
    # classifier and the evidence map still read the raw map (feature_norm.py)
    feature_norm: bool = False
    # RAM head: a companion branch on the whole map ("csra": a CSRA head with this config's dropout,
    # csra_lambda, csra_temperature and ImageNet groups), trained on its own classification loss
    # (the recurrent branch's loss does not reach it, nor its loss the recurrence: two views that
    # err differently).  The image's logits are companion_weight * the recurrent branch's fused
    # logits + (1 - companion_weight) * the companion's.  "none": off, as in the paper
    companion: str = "none"
    companion_weight: float = 0.5
    # per class, the recurrent branch's share (one number per class, in [0, 1]); None: companion_weight
    # for every class.  Chosen on out-of-fold predictions (training/fusion_weights.py): not trained
    class_companion_weights: list[float] | None = None
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
        if self.companion not in COMPANIONS:
            raise ValueError(f"companion must be one of {', '.join(COMPANIONS)}, got {self.companion!r}")
        if self.companion != "none" and self.head != "ram":
            raise ValueError(f"companion needs the RAM head (the {self.head} head has no recurrent branch)")
        if not 0.0 <= self.companion_weight <= 1.0:
            raise ValueError(f"companion_weight must be in [0, 1], got {self.companion_weight}")
        if self.class_companion_weights is not None:
            self.class_companion_weights = [float(w) for w in self.class_companion_weights]
            if self.companion == "none":
                raise ValueError("class_companion_weights needs a companion branch")
            if len(self.class_companion_weights) != len(self.class_names):
                raise ValueError(f"class_companion_weights needs one weight per class ({len(self.class_names)}), "
                                 f"got {len(self.class_companion_weights)}")
            if not all(0.0 <= w <= 1.0 for w in self.class_companion_weights):
                raise ValueError("class_companion_weights must all be in [0, 1]")
        if self.imagenet_mode not in IMAGENET_MODES:
            raise ValueError(f"imagenet_mode must be one of {', '.join(IMAGENET_MODES)}, got {self.imagenet_mode!r}")
        if self.region_encoder == "maxpool" and self.region_size % 2:
            raise ValueError(f"the maxpool region encoder needs an even region_size, got {self.region_size}")
        if self.global_classifier and not (self.head == "ram" and self.region_skip):
            raise ValueError("global_classifier needs the RAM head with region_skip")
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


# --------------------------------------------------------------------------------------------------
# Bounds: what a checkpoint's metadata may ask for.  check_config_dict runs on the raw JSON before any
# RAMConfig (or tensor) exists, so a hostile header (10^9 steps, a 10^6-wide LSTM, NaN mean) is refused
# with a message instead of exhausting memory.  Every field of RAMConfig and LossConfig has an entry;
# tests/test_checkpoint_bounds.py fails when a new field has none.

MAX_CLASSES = 10_000
MAX_NAME_CHARS = 200
MAX_IMAGENET_INDEX = 999
MAX_GROUP_SIZE = 1_000
# the head's parameters, estimated from the config (widths multiplied out) before anything is built
MAX_HEAD_PARAMETERS = 500_000_000  # the paper's VGG16 head has about 260 million


@dataclass(frozen=True)
class Bound:
    """What one config field accepts.  kind: "int", "float", "bool", "choice", "str", or "special"
    (checked by its own function in _SPECIAL_CHECKS); lo/hi are inclusive unless lo_open."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    lo_open: bool = False
    max_chars: int = MAX_NAME_CHARS


def _backbone_names() -> tuple[str, ...]:
    from .backbones import BACKBONES

    return tuple(BACKBONES)


CONFIG_BOUNDS: dict[str, Bound] = {
    "class_names": Bound("special"),
    "backbone": Bound("special"),  # a registered backbone (backbones.BACKBONES)
    "input_size": Bound("int", 32, 2048),
    "mean": Bound("special"),
    "std": Bound("special"),
    "head": Bound("choice", choices=HEADS),
    "preset": Bound("str", max_chars=64),
    "num_steps": Bound("int", 1, 64),
    "region_size": Bound("int", 1, 32),
    "region_encoder": Bound("choice", choices=REGION_ENCODERS),
    "region_channels": Bound("int", 0, 4096),
    "embed_dim": Bound("int", 1, 8192),
    "hidden_size": Bound("int", 1, 8192),
    "z_size": Bound("int", 0, 8192),
    "memory": Bound("bool"),
    "dropout": Bound("float", 0.0, 0.99),
    "region_skip": Bound("bool"),
    "transform_mode": Bound("choice", choices=("direct", "anchored", "evidence")),
    "evidence_sigma": Bound("float", 0.0, 4.0, lo_open=True),
    "evidence_sharpness": Bound("float", 0.0, 100.0),
    "evidence_inhibition": Bound("float", 0.0, 100.0),
    "evidence_explained": Bound("float", 0.0, 100.0),
    "init_scale": Bound("float", 0.0, 2.0, lo_open=True),
    "fuse_global": Bound("bool"),
    "fusion": Bound("choice", choices=FUSIONS),
    "imagenet_groups": Bound("special"),
    "imagenet_mode": Bound("choice", choices=IMAGENET_MODES),
    "csra_lambda": Bound("float", 0.0, 100.0),
    "csra_temperature": Bound("float", 0.0, 1000.0, lo_open=True),
    "global_attention": Bound("float", 0.0, 100.0),
    "global_classifier": Bound("bool"),
    "test_time_flip": Bound("bool"),
    "feature_norm": Bound("bool"),
    "companion": Bound("choice", choices=COMPANIONS),
    "companion_weight": Bound("float", 0.0, 1.0),
    "class_companion_weights": Bound("special"),
    "freeze_backbone": Bound("bool"),
    "loss": Bound("special"),
}

LOSS_BOUNDS: dict[str, Bound] = {
    "classification": Bound("choice", choices=CLASSIFICATION_LOSSES + ("mse",)),
    "anchor_weight": Bound("float", 0.0, 1000.0),
    "scale_weight": Bound("float", 0.0, 1000.0),
    "positive_weight": Bound("float", 0.0, 1000.0),
    "gamma": Bound("float", 0.0, 1000.0),
    "alpha": Bound("float", 0.0, 2.0),
    "beta": Bound("float", 0.0, 2.0),
    "anchors": Bound("special"),
}


class ConfigBoundsError(ValueError):
    """A config value outside its bounds (checkpoints turn it into a CheckpointError)."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_value(name: str, value: Any, bound: Bound) -> None:
    import math

    if bound.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigBoundsError(f"{name} must be true or false, got {_show(value)}")
    elif bound.kind == "int":
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ConfigBoundsError(f"{name} must be a whole number, got {_show(value)}")
        if not bound.lo <= value <= bound.hi:
            raise ConfigBoundsError(f"{name} must be between {bound.lo} and {bound.hi}, got {value}")
    elif bound.kind == "float":
        if not _is_number(value) or not math.isfinite(value):
            raise ConfigBoundsError(f"{name} must be a finite number, got {_show(value)}")
        low_ok = value > bound.lo if bound.lo_open else value >= bound.lo
        if not low_ok or value > bound.hi:
            low = f"above {bound.lo}" if bound.lo_open else f"at least {bound.lo}"
            raise ConfigBoundsError(f"{name} must be {low} and at most {bound.hi}, got {value}")
    elif bound.kind == "choice":
        if value not in bound.choices:
            raise ConfigBoundsError(f"{name} must be one of {', '.join(bound.choices)}, got {_show(value)}")
    elif bound.kind == "str":
        if not isinstance(value, str) or len(value) > bound.max_chars:
            raise ConfigBoundsError(f"{name} must be text of at most {bound.max_chars} characters")


def _show(value: Any) -> str:
    """A value for a message: short, and without the contents of long strings or containers."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"text of {len(value)} characters"
    if isinstance(value, (list, dict)):
        return f"a {'list' if isinstance(value, list) else 'JSON object'} of {len(value)} item(s)"
    return repr(value) if value is None or isinstance(value, (bool, int, float)) else type(value).__name__


def _check_class_names(value: Any, data: dict[str, Any]) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_CLASSES:
        raise ConfigBoundsError(f"class_names must be a list of 1 to {MAX_CLASSES} names, got {_show(value)}")
    for k, name in enumerate(value):
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
            raise ConfigBoundsError(f"class_names[{k}] must be a name of 1 to {MAX_NAME_CHARS} characters")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise ConfigBoundsError(f"class_names[{k}] holds control characters")


def _check_triple(name: str, positive: bool) -> Callable[[Any, dict], None]:
    def check(value: Any, data: dict[str, Any]) -> None:
        import math

        if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_number(v) for v in value):
            raise ConfigBoundsError(f"{name} needs 3 numbers (R, G, B), got {_show(value)}")
        if not all(math.isfinite(v) and abs(v) <= 10 for v in value):
            raise ConfigBoundsError(f"{name} values must be finite and between -10 and 10, got {list(value)}")
        if positive and not all(v >= 1e-4 for v in value):
            raise ConfigBoundsError(f"{name} values must be at least 0.0001, got {list(value)}")
    return check


def _check_backbone(value: Any, data: dict[str, Any]) -> None:
    names = _backbone_names()
    if value not in names:
        raise ConfigBoundsError(f"unknown backbone {_show(value)} (known: {', '.join(names)})")


def _check_imagenet_groups(value: Any, data: dict[str, Any]) -> None:
    if value is None:
        return
    classes = data.get("class_names")
    n = len(classes) if isinstance(classes, list) else None
    if not isinstance(value, list) or len(value) != n:
        raise ConfigBoundsError(f"imagenet_groups must be a list with one group per class ({n}), got {_show(value)}")
    for k, group in enumerate(value):
        if not isinstance(group, list) or len(group) > MAX_GROUP_SIZE:
            raise ConfigBoundsError(f"imagenet_groups[{k}] must be a list of at most {MAX_GROUP_SIZE} indices")
        for i in group:
            if not (isinstance(i, int) and not isinstance(i, bool)) or not 0 <= i <= MAX_IMAGENET_INDEX:
                raise ConfigBoundsError(f"imagenet_groups[{k}] holds {_show(i)}: ImageNet class indices are "
                                        f"whole numbers from 0 to {MAX_IMAGENET_INDEX}")


def _check_class_companion_weights(value: Any, data: dict[str, Any]) -> None:
    import math

    if value is None:
        return
    classes = data.get("class_names")
    n = len(classes) if isinstance(classes, list) else None
    if not isinstance(value, list) or len(value) != n:
        raise ConfigBoundsError(f"class_companion_weights must be a list of one weight per class ({n}), "
                                f"got {_show(value)}")
    for k, w in enumerate(value):
        if not _is_number(w) or not math.isfinite(w) or not 0 <= w <= 1:
            raise ConfigBoundsError(f"class_companion_weights[{k}] must be a number from 0 to 1, got {_show(w)}")


def _check_anchors(value: Any, data: dict[str, Any]) -> None:
    import math

    if value is None:
        return
    steps = data.get("num_steps", 5)
    if not isinstance(value, list) or len(value) != steps:
        raise ConfigBoundsError(f"loss.anchors must be a list of one (t_x, t_y) pair per step ({steps}), "
                                f"got {_show(value)}")
    for k, pair in enumerate(value):
        if (not isinstance(pair, list) or len(pair) != 2 or not all(_is_number(v) for v in pair)
                or not all(math.isfinite(v) and -2 <= v <= 2 for v in pair)):
            raise ConfigBoundsError(f"loss.anchors[{k}] must be two finite numbers between -2 and 2")


def _check_loss(value: Any, data: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise ConfigBoundsError(f"loss must be a JSON object, got {_show(value)}")
    unknown = sorted(set(value) - set(LOSS_BOUNDS))
    if unknown:
        raise ConfigBoundsError(f"unknown loss field(s): {', '.join(_show(u) for u in unknown[:5])}")
    for name, bound in LOSS_BOUNDS.items():
        if name not in value:
            continue
        if bound.kind == "special":
            _check_anchors(value[name], data)
        else:
            _check_value(f"loss.{name}", value[name], bound)


_SPECIAL_CHECKS: dict[str, Callable[[Any, dict], None]] = {
    "class_names": _check_class_names,
    "backbone": _check_backbone,
    "mean": _check_triple("mean", positive=False),
    "std": _check_triple("std", positive=True),
    "imagenet_groups": _check_imagenet_groups,
    "class_companion_weights": _check_class_companion_weights,
    "loss": _check_loss,
}


def estimated_head_parameters(data: dict[str, Any]) -> int:
    """About the head's parameter count, from the widths alone (nothing is built): the region
    encoder, the LSTM, the readouts and the ImageNet parts, multiplied out."""
    from .backbones import BACKBONES

    g = lambda k: int(data.get(k, getattr(RAMConfig, k, 0)) or 0)  # noqa: E731
    spec = BACKBONES.get(data.get("backbone", RAMConfig.backbone))
    channels = spec.channels if spec is not None else 2048
    classes = len(data.get("class_names") or [])
    embed, hidden, z, region = g("embed_dim"), g("hidden_size"), g("z_size"), g("region_size")
    encoder_kind = data.get("region_encoder", RAMConfig.region_encoder)
    reduced = g("region_channels") or channels
    if encoder_kind == "pool":
        encoder = channels * embed
    elif encoder_kind == "maxpool":
        encoder = channels * reduced + reduced * (region // 2) ** 2 * embed
    else:
        encoder = channels * reduced + reduced * region * region * embed
    lstm = 4 * hidden * (embed + hidden + 2)
    read = (z or hidden) * (classes + 4) * 2 + hidden * z + (channels + 2) * classes * 3
    imagenet = (channels + 1001) * 1000 + 1000 * classes
    if data.get("companion", "none") != "none":  # its classifier (it shares the ImageNet prior's weights)
        read += (channels + 1) * classes
    return int(encoder + lstm + read + imagenet)


def check_config_dict(data: Any) -> None:
    """Refuse a config (as read from JSON) with a field outside CONFIG_BOUNDS, an unknown field, or a
    head too large to build, before anything is allocated.  Raises ConfigBoundsError."""
    if not isinstance(data, dict):
        raise ConfigBoundsError(f"the config must be a JSON object, got {_show(data)}")
    unknown = sorted(set(data) - set(CONFIG_BOUNDS))
    if unknown:
        raise ConfigBoundsError(f"unknown config field(s): {', '.join(str(u)[:40] for u in unknown[:5])}")
    for name, bound in CONFIG_BOUNDS.items():
        if name not in data:
            continue
        if bound.kind == "special":
            _SPECIAL_CHECKS[name](data[name], data)
        else:
            _check_value(name, data[name], bound)
    params = estimated_head_parameters(data)
    if params > MAX_HEAD_PARAMETERS:
        raise ConfigBoundsError(f"the config asks for a head of about {params:,} parameters, more than the "
                                f"{MAX_HEAD_PARAMETERS:,} allowed (widths too large)")
