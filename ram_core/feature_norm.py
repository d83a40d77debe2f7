"""Per-channel standardisation of a frozen backbone's feature map for the recurrent path.

A frozen map's channels are non-negative with large means (ReLU6 on EfficientNet-Lite0): the part of
a region feature that differs between photos is small beside the part every photo shares, and the
paper's long path (fc -> LSTM -> z_k -> scores) trained on it barely moves (docs/PAPER.md, "Training
the paper's model on a frozen map").  With cfg.feature_norm the head subtracts each channel's mean and
divides by its standard deviation, both measured once on the training photos' features and stored in
the checkpoint: a fixed affine map, the same for every photo (as a frozen batch norm would be).
The paper fine-tunes VGG16 end to end instead, so `info` lists it as a departure.
"""

from __future__ import annotations

import numpy as np
import torch


def channel_stats(feats, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) array or tensor -> per-channel (mean, std), each (C,) float32, over N, H, W.
    Accumulated in float64 chunk by chunk (a cached split is large and may be float16)."""
    n = len(feats)
    if n == 0:
        raise ValueError("no features to measure")
    total = total_sq = None
    count = 0
    for s in range(0, n, chunk):
        x = torch.as_tensor(np.asarray(feats[s:s + chunk]) if not torch.is_tensor(feats) else feats[s:s + chunk])
        x = x.double().transpose(0, 1).flatten(1)  # (C, n*H*W)
        part, part_sq = x.sum(1), (x * x).sum(1)
        total = part if total is None else total + part
        total_sq = part_sq if total_sq is None else total_sq + part_sq
        count += x.shape[1]
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0)
    return mean.float(), var.sqrt().float().clamp_min(1e-3)  # a dead channel stays finite


def set_feature_stats(head: torch.nn.Module, feats) -> bool:
    """Measure the training features' per-channel statistics into a head with cfg.feature_norm;
    returns False (and does nothing) for a head without it."""
    if not getattr(getattr(head, "cfg", None), "feature_norm", False) or not hasattr(head, "feature_mean"):
        return False
    mean, std = channel_stats(feats)
    with torch.no_grad():
        head.feature_mean.copy_(mean)
        head.feature_std.copy_(std)
    return True
