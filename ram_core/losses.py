"""Classification loss and the three localization constraints of the paper (Sec. 3.3).

    L = L_cls + gamma * (scale_weight * L_S + anchor_weight * L_A + positive_weight * L_P)

Batches: every term is a mean over the images of the batch of a per-image loss; per image, the
classification loss sums over classes and each constraint sums over the steps 1..K (step 0, the
whole map, is not constrained: it is not predicted).  Each constraint is exactly zero inside its
allowed region.  Transforms are (B, K, 4) as (s_x, s_y, t_x, t_y).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import LossConfig
from .model import RAMOutput


def anchor_loss(transforms: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """1/2 [(t_x - c_x)^2 + (t_y - c_y)^2] per step, with anchors (K, 2) the (c_x, c_y) of steps 1..K."""
    centres = transforms[..., 2:]  # (B, K, 2)
    return 0.5 * ((centres - anchors.to(centres)) ** 2).sum(-1).sum(-1).mean()


def scale_loss(transforms: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """max(|s_x| - alpha, 0)^2 + max(|s_y| - alpha, 0)^2: keeps regions from growing past alpha."""
    scales = transforms[..., :2]
    return (F.relu(scales.abs() - alpha) ** 2).sum(-1).sum(-1).mean()


def positive_loss(transforms: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """max(beta - s_x, 0) + max(beta - s_y, 0): keeps scales positive (no mirrored regions)."""
    scales = transforms[..., :2]
    return F.relu(beta - scales).sum(-1).sum(-1).mean()


def normalised_targets(targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's ground-truth probability vector: the label vector divided by its L1 norm (B, C).
    An image without a (counted) label keeps an all-zero vector."""
    t = targets if mask is None else targets * mask
    return t / t.sum(1, keepdim=True).clamp(min=1.0)


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "bce",
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-label loss on fused logits (B, C) against {0, 1} targets (B, C): a sum over classes,
    averaged over the batch.

    mask (B, C), optional: 0 where a label is to be ignored (VOC 'difficult'-only classes).
    "softmax_mse": the paper's, (softmax(logits) - y / |y|_1)^2; "bce": binary cross-entropy with
    logits; "sigmoid_mse": (sigmoid(logits) - y)^2.
    """
    if kind == "softmax_mse":
        per = (logits.float().softmax(1) - normalised_targets(targets, mask)) ** 2
    elif kind == "bce":
        per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    elif kind in ("sigmoid_mse", "mse"):
        per = (torch.sigmoid(logits) - targets) ** 2
    else:
        raise ValueError(f"unknown classification loss {kind!r}")
    if mask is not None:
        per = per * mask
    return per.sum(1).mean()


@dataclass
class LossTerms:
    total: torch.Tensor
    classification: torch.Tensor
    anchor: torch.Tensor
    scale: torch.Tensor
    positive: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "classification", "anchor", "scale", "positive")}


def ram_loss(output: RAMOutput, targets: torch.Tensor, cfg: LossConfig, anchors: torch.Tensor,
             mask: torch.Tensor | None = None) -> LossTerms:
    """Classification loss plus the weighted localization constraints, each term kept separately.

    A head with a companion branch (output.branch_logits (B, 2, C)) is trained with one
    classification loss per branch, summed: each branch learns to classify on its own, and the
    mixture in output.logits is not trained (config.companion)."""
    if output.branch_logits is not None:
        cls = sum(classification_loss(output.branch_logits[:, i], targets, cfg.classification, mask)
                  for i in range(output.branch_logits.shape[1]))
    else:
        cls = classification_loss(output.logits, targets, cfg.classification, mask)
    zero = cls.new_zeros(())
    if output.transforms.shape[1] == 0:  # heads without steps: nothing to constrain
        return LossTerms(cls, cls, zero, zero, zero)
    a = anchor_loss(output.transforms, anchors)
    s = scale_loss(output.transforms, cfg.alpha)
    p = positive_loss(output.transforms, cfg.beta)
    total = cls + cfg.gamma * (cfg.scale_weight * s + cfg.anchor_weight * a + cfg.positive_weight * p)
    return LossTerms(total, cls, a, s, p)
