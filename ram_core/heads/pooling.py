"""Heads without recurrence, on the same feature maps as RAM: its points of comparison.

BaselineHead: global average pooling + linear classifier.
CSRAHead: class-specific residual attention (Zhu and Wu, "Residual Attention: A Simple but Effective
    Method for Multi-Label Recognition", ICCV 2021): every class scores every position with one
    linear classifier (a 1x1 conv), s_c(x) = w_c . f(x); the logit is the mean of s_c over positions
    (identical to the baseline's) plus lambda times an attention-pooled score,
        sum_x softmax_x(T s_c(x)) s_c(x),
    i.e. the baseline plus a cheap one-layer spatial attention per class.

Both can start from the ImageNet classifier (cfg.imagenet_mode): "prior" adds the group's ImageNet
probability as a logit; "init" starts the linear classifier at the mean ImageNet classifier weights of
the class's group (init_from_imagenet, called when the backbone is known).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import RAMConfig
from ..imagenet_prior import ImageNetGroupPrior


def _no_steps(logits: torch.Tensor):
    from ..model import RAMOutput

    b, c = logits.shape
    return RAMOutput(logits=logits, global_logits=logits, step_logits=logits.new_zeros(b, 0, c),
                     transforms=logits.new_zeros(b, 0, 4))


class BaselineHead(nn.Module):
    """Global average pooling + linear classifier: (B, C, H, W) -> logits (B, classes)."""

    def __init__(self, cfg: RAMConfig, in_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(in_channels, cfg.num_classes)
        self.prior = ImageNetGroupPrior(in_channels, cfg.imagenet_groups) if cfg.uses_prior else None
        if self.prior is not None:  # the prior carries the start; the linear part learns the rest
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor):
        pooled = features.mean((2, 3))
        logits = self.classifier(self.dropout(pooled))
        if self.prior is not None:
            logits = logits + self.prior(pooled)
        return _no_steps(logits)


class CSRAHead(nn.Module):
    """Class-specific residual attention: (B, C, H, W) -> logits (B, classes)."""

    def __init__(self, cfg: RAMConfig, in_channels: int, shared_prior: ImageNetGroupPrior | None = None) -> None:
        """shared_prior: another head's prior whose frozen ImageNet classifier this one reads (a
        companion branch); its own scale and bias are still its own."""
        super().__init__()
        self.cfg = cfg
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(in_channels, cfg.num_classes)  # applied at every position
        self.prior = (ImageNetGroupPrior(in_channels, cfg.imagenet_groups, shared=shared_prior)
                      if cfg.uses_prior else None)
        if self.prior is not None:
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)

    def class_maps(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, classes, H*W): every position's class scores s_c(x).

        Dropout drops feature channels (the same channels at every position of an image): applied
        to the classifier's columns per image, it costs a (B, classes, C_in) mask instead of one the
        size of the map."""
        x = features.flatten(2)  # (B, C_in, H*W)
        w = self.classifier.weight  # (classes, C_in)
        if self.training and self.cfg.dropout > 0:
            keep = self.dropout(torch.ones(x.shape[0], 1, x.shape[1], device=x.device, dtype=w.dtype))
            return torch.bmm(w * keep, x.to(w.dtype)) + self.classifier.bias[:, None]
        return torch.matmul(w, x.to(w.dtype)) + self.classifier.bias[:, None]

    def forward(self, features: torch.Tensor):
        s = self.class_maps(features)  # (B, classes, H*W)
        base = s.mean(-1)  # = classifier(mean-pooled features): the baseline's logit
        attention = (self.cfg.csra_temperature * s).softmax(-1)
        logits = base + self.cfg.csra_lambda * (attention * s).sum(-1)
        if self.prior is not None:
            logits = logits + self.prior(features.mean((2, 3)))
        return _no_steps(logits)


def init_from_imagenet(linear: nn.Linear, classifier: nn.Linear, groups: list[list[int]]) -> None:
    """Start each class's row of `linear` at the mean ImageNet classifier row (and bias) of its group;
    classes without a group keep their initialisation."""
    with torch.no_grad():
        for c, group in enumerate(groups):
            if group:
                linear.weight[c] = classifier.weight[group].mean(0)
                linear.bias[c] = classifier.bias[group].mean()
