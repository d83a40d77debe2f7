"""The recurrent memorized-attention model (Wang et al., ICCV 2017) and its baseline head.

RAMModel = backbone (image -> feature map) + head (feature map -> scores).  The heads work on
feature maps alone, so training can run from a cache of frozen-backbone features.

The recurrence, in one place (RecurrentAttentionHead.forward):
    M_0 = identity                              # the initial step sees the whole map
    for k = 0..K:
        region_k = grid_sample(features, affine_grid(M_k))    # (B, C, r, r), no proposals
        h_k, c_k = LSTM(encode(region_k), (h_{k-1}, c_{k-1}))  # memory across steps
        scores_k = classify(h_k)                               # this region's label scores
        M_{k+1}  = localize(h_k)                               # where to look next
    fused = max over k = 1..K of scores_k (category-wise); optionally k = 0 too
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone, get_backbone_spec
from .config import RAMConfig
from .imagenet_prior import ImageNetGroupPrior


@dataclass
class RAMOutput:
    """Raw outputs of a head for a batch.  K = 0 for the baseline head."""

    logits: torch.Tensor  # (B, C) fused scores, before the sigmoid
    global_logits: torch.Tensor  # (B, C) scores of the initial whole-map step
    step_logits: torch.Tensor  # (B, K, C) scores of steps 1..K
    transforms: torch.Tensor  # (B, K, 4) (s_x, s_y, t_x, t_y) of steps 1..K


def transform_to_theta(transforms: torch.Tensor) -> torch.Tensor:
    """(..., 4) (s_x, s_y, t_x, t_y) -> (..., 2, 3) affine matrices [[s_x, 0, t_x], [0, s_y, t_y]]."""
    s_x, s_y, t_x, t_y = transforms.unbind(-1)
    zero = torch.zeros_like(s_x)
    return torch.stack(
        [torch.stack([s_x, zero, t_x], -1), torch.stack([zero, s_y, t_y], -1)], dim=-2
    )


def transform_to_box(transforms: torch.Tensor) -> torch.Tensor:
    """(..., 4) transforms -> (..., 4) boxes (x0, y0, x1, y1) as fractions of the image.

    affine_grid maps the output grid's [-1, 1] to input coordinates s * u + t, so the sampled region
    spans t - |s| .. t + |s| in the input's [-1, 1] frame (a negative s mirrors the region).  Not
    clipped: a box may reach outside the image, where the sampler reads zeros.
    """
    s_x, s_y, t_x, t_y = transforms.unbind(-1)
    s_x, s_y = s_x.abs(), s_y.abs()
    x0 = (t_x - s_x + 1) / 2
    x1 = (t_x + s_x + 1) / 2
    y0 = (t_y - s_y + 1) / 2
    y1 = (t_y + s_y + 1) / 2
    return torch.stack([x0, y0, x1, y1], -1)


def sample_region(features: torch.Tensor, transforms: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly sample a size x size region of features (B, C, H, W) at transforms (B, 4):
    the spatial transformer's affine_grid + grid_sample."""
    theta = transform_to_theta(transforms).to(features.dtype)
    grid = F.affine_grid(theta, [features.shape[0], features.shape[1], size, size], align_corners=False)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def interpolation_weights(scale: torch.Tensor, shift: torch.Tensor, out_size: int, in_size: int) -> torch.Tensor:
    """(B,) scale and shift along one axis -> (B, out_size, in_size) bilinear weights.

    Output sample u sits at s * o_u + t in the input's [-1, 1] frame (o_u the u-th cell centre, as in
    affine_grid with align_corners=False), i.e. at pixel p = ((s * o_u + t + 1) * in_size - 1) / 2,
    and takes weight max(0, 1 - |p - j|) from input cell j.  Cells outside the map simply do not
    exist, which is grid_sample's zero padding.
    """
    o = (torch.arange(out_size, device=scale.device, dtype=scale.dtype) * 2 + 1) / out_size - 1
    p = ((scale[:, None] * o + shift[:, None] + 1) * in_size - 1) / 2  # (B, out)
    j = torch.arange(in_size, device=scale.device, dtype=scale.dtype)
    # floor-based, like grid_sample, so that gradients agree at sample points that fall exactly on
    # cell centres (the identity step and the anchors do)
    low = p.detach().floor()[:, :, None]
    frac = p[:, :, None] - low
    return (1 - frac) * (j == low) + frac * (j == low + 1)


def pool_region(features: torch.Tensor, transforms: torch.Tensor, size: int) -> torch.Tensor:
    """The mean of sample_region over its size x size samples, (B, C), without sampling them.

    M = [[s_x, 0, t_x], [0, s_y, t_y]] has no rotation or shear, so bilinear sampling separates into
    one interpolation matrix per axis, and averaging is linear: average each axis's weights first,
    then one batched product with the map.  Same values and gradients as grid_sample + mean, about
    twice as fast on the CPU for a 1280-channel map (the region's full feature, for the prior).
    """
    t = transforms.to(features.dtype)
    wy = interpolation_weights(t[:, 1], t[:, 3], size, features.shape[2]).mean(1)  # (B, H)
    wx = interpolation_weights(t[:, 0], t[:, 2], size, features.shape[3]).mean(1)  # (B, W)
    weights = (wy[:, :, None] * wx[:, None, :]).flatten(1)  # (B, H*W)
    return torch.bmm(features.flatten(2), weights[:, :, None])[:, :, 0]


def cell_centres(n: int, device=None) -> torch.Tensor:
    """(n,) centres of n cells in the sampler's [-1, 1] frame (align_corners=False)."""
    return (torch.arange(n, device=device, dtype=torch.float32) * 2 + 1) / n - 1


class EvidenceLocalizer(nn.Module):
    """transform_mode="evidence": where to look next, from the memory *and* the map.

    The paper's localizer reads the next transform off the hidden state alone.  Here the hidden state
    still decides: it picks which classes' evidence to follow (log-weights over classes) and the
    region's scale, and adds an offset; the centre is the soft-argmax of that evidence around the
    step's anchor.  So a step looks at the strongest evidence in its part of the image, and the
    anchor constraint keeps the steps spread out.  The evidence map is a 1x1 conv (C_in -> classes),
    initialised from the ImageNet classifier when the model has an ImageNet prior.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: int, init_scale: float, sigma: float = 0.25,
                 sharpness: float = 2.7) -> None:
        super().__init__()
        self.evidence = nn.Conv2d(in_channels, num_classes, 1)
        self.class_query = nn.Linear(hidden, num_classes)
        nn.init.zeros_(self.class_query.weight)  # every class weighs the same at the start
        nn.init.zeros_(self.class_query.bias)
        self.adjust = nn.Linear(hidden, 4)  # (ds_x, ds_y, dt_x, dt_y)
        nn.init.normal_(self.adjust.weight, std=1e-3)
        nn.init.zeros_(self.adjust.bias)
        self.log_sharpness = nn.Parameter(torch.tensor(float(sharpness)).log())
        self.init_scale = init_scale
        self.sigma = sigma

    def evidence_map(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, classes, H, W), once per image."""
        return self.evidence(features)

    def forward(self, evidence: torch.Tensor, h: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """evidence (B, classes, H, W), h (B, hidden), anchor (2,) -> transform (B, 4)."""
        b, _, hh, ww = evidence.shape
        # a soft "max over the chosen classes": the query's log-weights shift each class's evidence,
        # and logsumexp keeps the peaks of every chosen class (a weighted mean would blur them)
        log_alpha = self.class_query(h).float().log_softmax(-1)  # (B, classes)
        e = torch.logsumexp(evidence.float().flatten(2) + log_alpha[:, :, None], 1)  # (B, H*W)
        e = (e - e.mean(1, keepdim=True)) / (e.std(1, keepdim=True) + 1e-5)
        ys, xs = torch.meshgrid(cell_centres(hh, h.device), cell_centres(ww, h.device), indexing="ij")
        xs, ys = xs.flatten(), ys.flatten()  # (H*W,)
        near = -((xs - anchor[0]) ** 2 + (ys - anchor[1]) ** 2) / (2 * self.sigma ** 2)
        w = (e * self.log_sharpness.exp() + near).softmax(-1)  # (B, H*W)
        centre = torch.stack([(w * xs).sum(1), (w * ys).sum(1)], -1)  # (B, 2)
        adjust = self.adjust(h)
        return torch.cat([self.init_scale + adjust[:, :2], centre + adjust[:, 2:]], -1)


class RecurrentAttentionHead(nn.Module):
    """Spatial transformer + LSTM over a feature map (B, C, H, W); see the module docstring."""

    def __init__(self, cfg: RAMConfig, in_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        r = cfg.region_size
        if cfg.region_encoder == "pool":
            self.reduce = None
            encoder_in = in_channels
        else:
            # A 1x1 conv commutes with bilinear sampling, so reduce the whole map once per image
            # and sample the cheap reduced map at every step.
            self.reduce = nn.Sequential(nn.Conv2d(in_channels, cfg.region_channels, 1), nn.ReLU(inplace=True))
            encoder_in = cfg.region_channels * r * r
        self.encoder = nn.Sequential(nn.Linear(encoder_in, cfg.embed_dim), nn.ReLU(inplace=True))
        self.lstm = nn.LSTMCell(cfg.embed_dim, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_classes)
        if cfg.imagenet_groups:  # the prior carries the start; memory learns what it adds
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)
        # Optional skip: the region's pooled feature scored directly, e.g. by an ImageNet-initialised
        # classifier, with the LSTM's classifier adding what memory contributes.
        self.region_classifier = nn.Linear(in_channels, cfg.num_classes) if cfg.region_skip else None
        if self.region_classifier is not None and cfg.imagenet_groups:
            nn.init.zeros_(self.region_classifier.weight)
            nn.init.zeros_(self.region_classifier.bias)
        self.prior = ImageNetGroupPrior(in_channels, cfg.imagenet_groups) if cfg.imagenet_groups else None
        if cfg.transform_mode == "evidence":
            self.localizer = EvidenceLocalizer(in_channels, cfg.num_classes, cfg.hidden_size, cfg.init_scale,
                                               cfg.evidence_sigma, cfg.evidence_sharpness)
        else:
            self.localizer = nn.Linear(cfg.hidden_size, 4)
            nn.init.normal_(self.localizer.weight, std=1e-3)
            if cfg.transform_mode == "direct":
                with torch.no_grad():
                    self.localizer.bias.copy_(torch.tensor([cfg.init_scale, cfg.init_scale, 0.0, 0.0]))
            else:
                nn.init.zeros_(self.localizer.bias)
        self.register_buffer("anchors", torch.tensor(cfg.anchors, dtype=torch.float32), persistent=False)

    def _next_transform(self, h: torch.Tensor, step: int, evidence: torch.Tensor | None) -> torch.Tensor:
        """(B, hidden) -> (B, 4) transform of step `step` (1-based)."""
        if evidence is not None:
            return self.localizer(evidence, h, self.anchors[step - 1])
        raw = self.localizer(h)
        if self.cfg.transform_mode == "direct":
            return raw
        base = torch.cat([raw.new_full((2,), self.cfg.init_scale), self.anchors[step - 1]])
        return raw + base

    def forward(self, features: torch.Tensor) -> RAMOutput:
        cfg = self.cfg
        b = features.shape[0]
        reduced = self.reduce(features) if self.reduce is not None else None
        evidence = self.localizer.evidence_map(features) if isinstance(self.localizer, EvidenceLocalizer) else None
        identity = features.new_tensor([1.0, 1.0, 0.0, 0.0]).expand(b, 4)
        h = c = features.new_zeros(b, cfg.hidden_size)
        transform = identity
        hidden, pooled_all, transforms = [], [], []
        for k in range(cfg.num_steps + 1):
            pooled = pool_region(features, transform, cfg.region_size)  # (B, C)
            if reduced is None:
                encoded = self.encoder(self.dropout(pooled))
            else:
                encoded = self.encoder(sample_region(reduced, transform, cfg.region_size).flatten(1))
            h, c = self.lstm(encoded, (h, c))
            hidden.append(h)
            pooled_all.append(pooled)
            if k > 0:
                transforms.append(transform)
            if k < cfg.num_steps:
                transform = self._next_transform(h, k + 1, evidence)
        # The scores do not feed the recurrence, so every step's are computed at once after the loop:
        # one product per classifier instead of K + 1 small ones (the same numbers).
        hs = torch.stack(hidden, 1)  # (B, K+1, hidden)
        pooled = torch.stack(pooled_all, 1)  # (B, K+1, C_in)
        logits = self.classifier(self.dropout(hs))  # (B, K+1, classes)
        if self.region_classifier is not None:
            logits = logits + self.region_classifier(self.dropout(pooled))
        if self.prior is not None:
            logits = logits + self.prior(pooled.flatten(0, 1)).view(b, cfg.num_steps + 1, -1)
        steps = logits[:, 1:]  # (B, K, classes)
        pool = logits if cfg.fuse_global else steps
        return RAMOutput(
            logits=pool.amax(1),
            global_logits=logits[:, 0],
            step_logits=steps,
            transforms=torch.stack(transforms, 1),
        )


class BaselineHead(nn.Module):
    """Global average pooling + linear classifier on the same features: RAM's point of comparison."""

    def __init__(self, cfg: RAMConfig, in_channels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(in_channels, cfg.num_classes)
        self.prior = ImageNetGroupPrior(in_channels, cfg.imagenet_groups) if cfg.imagenet_groups else None
        if self.prior is not None:  # the prior carries the start; the linear part learns the rest
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor) -> RAMOutput:
        pooled = features.mean((2, 3))
        logits = self.classifier(self.dropout(pooled))
        if self.prior is not None:
            logits = logits + self.prior(pooled)
        b, c = logits.shape
        return RAMOutput(
            logits=logits,
            global_logits=logits,
            step_logits=logits.new_zeros(b, 0, c),
            transforms=logits.new_zeros(b, 0, 4),
        )


def build_head(cfg: RAMConfig) -> nn.Module:
    channels = get_backbone_spec(cfg.backbone).channels
    return RecurrentAttentionHead(cfg, channels) if cfg.head == "ram" else BaselineHead(cfg, channels)


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
        return self.head(self.features(images))


def init_prior_from_backbone(head: nn.Module, backbone: nn.Module) -> None:
    """Copy the backbone's ImageNet classifier into the head's prior, if both exist."""
    prior = getattr(head, "prior", None)
    if prior is None:
        return
    classifier = getattr(backbone, "imagenet_classifier", None)
    if classifier is None:
        raise ValueError("imagenet_groups needs a backbone with an ImageNet classifier")
    prior.load_imagenet(classifier)
    localizer = getattr(head, "localizer", None)
    if isinstance(localizer, EvidenceLocalizer):
        # each class's evidence map starts as the mean ImageNet classifier direction of its group
        with torch.no_grad():
            for c, group in enumerate(head.cfg.imagenet_groups):
                if group:
                    localizer.evidence.weight[c, :, 0, 0] = classifier.weight[group].mean(0)
                    localizer.evidence.bias[c] = classifier.bias[group].mean()


def build_model(cfg: RAMConfig, backbone_weights: str | None = None) -> RAMModel:
    """A fresh model; backbone weights as in backbones.build_backbone."""
    backbone = build_backbone(cfg.backbone, backbone_weights)
    head = build_head(cfg)
    init_prior_from_backbone(head, backbone)
    return RAMModel(cfg, backbone, head)
