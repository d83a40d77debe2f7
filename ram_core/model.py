"""RAMModel = backbone (image -> feature map) + head (feature map -> scores).

The heads (ram_core/heads/) work on feature maps alone, so training can run from a cache of
frozen-backbone features.  The recurrence itself is in heads/recurrent.py, the spatial transformer in
sampler.py, the named recipes (the paper's model, the default model) in presets.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Sequence

import torch
from torch import nn

from .backbones import build_backbone, get_backbone_spec
from .config import RAMConfig
from .heads import (BaselineHead, CSRAHead, EvidenceLocalizer, RecurrentAttentionHead,  # noqa: F401
                    init_head_from_imagenet)
from .heads import build_head as _build_head
from .sampler import (box_to_transform, cell_centres, interpolation_weights, pool_region,  # noqa: F401
                      sample_region, transform_to_box, transform_to_theta)


@dataclass
class RAMOutput:
    """Raw outputs of a head for a batch.  K = 0 for the heads without steps."""

    logits: torch.Tensor  # (B, C) fused scores, before the sigmoid / softmax
    global_logits: torch.Tensor  # (B, C) scores of the initial whole-map step
    step_logits: torch.Tensor  # (B, K, C) scores of steps 1..K
    transforms: torch.Tensor  # (B, K, 4) (s_x, s_y, t_x, t_y) of steps 1..K
    # (B, 2, C) for a RAM head with a companion branch (cfg.companion): [:, 0] the recurrent branch's
    # own fused scores, [:, 1] the companion's; `logits` mixes the two.  Each branch is trained on
    # its own loss (losses.ram_loss).  None for every other head.
    branch_logits: torch.Tensor | None = None

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "RAMOutput":
        """The same output with fn applied to every tensor (rows, device, dtype...)."""
        return RAMOutput(*(None if t is None else fn(t) for t in (getattr(self, f.name) for f in fields(self))))

    def rows(self, index) -> "RAMOutput":
        """The images at `index` (a slice, a list or an index array)."""
        return self.apply(lambda t: t[index])


# RAMOutput's tensors by name, in order (what saved outputs hold: oof.npz, evaluation shards)
OUTPUT_FIELDS = tuple(f.name for f in fields(RAMOutput))


def concat_outputs(parts: Sequence[RAMOutput]) -> RAMOutput:
    """Several batches' outputs (same head) as one, in order."""
    first = parts[0]
    return RAMOutput(*(None if getattr(first, f) is None else torch.cat([getattr(p, f) for p in parts])
                       for f in OUTPUT_FIELDS))


def probabilities(logits: torch.Tensor, cfg: RAMConfig) -> torch.Tensor:
    """Logits (..., C) -> the scores users see: a softmax over classes for a model trained with the
    paper's softmax loss, a sigmoid per class otherwise (cfg.score_activation)."""
    logits = logits.float()
    return logits.softmax(-1) if cfg.score_activation == "softmax" else torch.sigmoid(logits)


def build_head(cfg: RAMConfig) -> nn.Module:
    return _build_head(cfg, get_backbone_spec(cfg.backbone).channels)


def average_with_mirror(out: RAMOutput, mirrored: RAMOutput) -> RAMOutput:
    """Test-time flip: the logits of an image and its mirror image averaged; the boxes stay the
    image's own (a box is where the model looked, not an average of two places)."""
    return RAMOutput(logits=(out.logits + mirrored.logits) / 2,
                     global_logits=(out.global_logits + mirrored.global_logits) / 2,
                     step_logits=(out.step_logits + mirrored.step_logits) / 2,
                     transforms=out.transforms,
                     branch_logits=None if out.branch_logits is None else (out.branch_logits + mirrored.branch_logits) / 2)


class RAMModel(nn.Module):
    """Backbone + head.  forward(images (B, 3, S, S) normalised) -> RAMOutput."""

    def __init__(self, cfg: RAMConfig, backbone: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.head = head if head is not None else build_head(cfg)
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> "RAMModel":
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()  # frozen BatchNorm statistics stay ImageNet's
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> RAMOutput:
        if self.cfg.test_time_flip and not self.training:
            b = images.shape[0]
            feats = self.features(torch.cat([images, images.flip(-1)]))  # one batch: both views
            out = self.head(feats)
            return average_with_mirror(out.rows(slice(None, b)), out.rows(slice(b, None)))
        return self.head(self.features(images))


def init_prior_from_backbone(head: nn.Module, backbone: nn.Module) -> None:
    """Copy the backbone's ImageNet classifier into the parts of the head that start from it."""
    if not getattr(head, "cfg", None) or not head.cfg.imagenet_groups:
        return
    classifier = getattr(backbone, "imagenet_classifier", None)
    if classifier is None:
        raise ValueError("imagenet_groups needs a backbone with an ImageNet classifier")
    init_head_from_imagenet(head, classifier)


def build_model(cfg: RAMConfig, backbone_weights: str | None = None) -> RAMModel:
    """A fresh model; backbone weights as in backbones.build_backbone."""
    backbone = build_backbone(cfg.backbone, backbone_weights)
    head = build_head(cfg)
    init_prior_from_backbone(head, backbone)
    return RAMModel(cfg, backbone, head)
