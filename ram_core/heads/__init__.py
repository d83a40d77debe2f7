"""Heads: feature map (B, C, H, W) -> RAMOutput, chosen by RAMConfig.head.

    "ram"       recurrent.RecurrentAttentionHead: the paper's recurrence (and the default model's options)
    "baseline"  pooling.BaselineHead: global average pooling + linear
    "csra"      pooling.CSRAHead: class-specific residual attention (Zhu and Wu, ICCV 2021)
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..config import RAMConfig
from .pooling import BaselineHead, CSRAHead, init_from_imagenet
from .recurrent import EvidenceLocalizer, RecurrentAttentionHead, RegionEncoder

HEAD_BUILDERS: dict[str, Callable[[RAMConfig, int], nn.Module]] = {
    "ram": RecurrentAttentionHead,
    "baseline": BaselineHead,
    "csra": CSRAHead,
}


def build_head(cfg: RAMConfig, in_channels: int) -> nn.Module:
    return HEAD_BUILDERS[cfg.head](cfg, in_channels)


def init_head_from_imagenet(head: nn.Module, classifier: nn.Linear) -> None:
    """Copy the backbone's ImageNet classifier into whatever parts of the head start from it."""
    cfg: RAMConfig = head.cfg
    if not cfg.imagenet_groups:
        return
    prior = getattr(head, "prior", None)
    if prior is not None:
        prior.load_imagenet(classifier)
    if cfg.uses_imagenet_init:
        targets = ([head.region_classifier, head.global_classifier] if isinstance(head, RecurrentAttentionHead)
                   else [head.classifier])
        for target in targets:
            if target is not None:
                init_from_imagenet(target, classifier, cfg.imagenet_groups)
    companion = getattr(head, "companion", None)
    if companion is not None:  # the companion branch starts from ImageNet the way its own head would
        init_head_from_imagenet(companion, classifier)
    localizer = getattr(head, "localizer", None)
    if isinstance(localizer, EvidenceLocalizer):
        # each class's evidence map starts as its group's mean ImageNet classifier direction
        import torch

        with torch.no_grad():
            for c, group in enumerate(cfg.imagenet_groups):
                if group:
                    localizer.evidence.weight[c, :, 0, 0] = classifier.weight[group].mean(0)
                    localizer.evidence.bias[c] = classifier.bias[group].mean()


__all__ = ["BaselineHead", "CSRAHead", "EvidenceLocalizer", "HEAD_BUILDERS", "RecurrentAttentionHead",
           "RegionEncoder", "build_head", "init_head_from_imagenet"]
