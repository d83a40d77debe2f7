"""The recurrent memorized-attention head (Wang et al., ICCV 2017), with the project's options.

The recurrence, in one place (RecurrentAttentionHead.forward):

    M_0 = identity                                    # step 0 sees the whole map
    for k = 0..K:
        f_k = encode(ST(f_I, M_k))                    # spatial transformer: no region proposals
        h_k, c_k = LSTM(f_k, (h_{k-1}, c_{k-1}))      # memory across steps (reset: cfg.memory=False)
        z_k = ReLU(W_z h_k)                           # cfg.z_size > 0; else z_k = h_k
        s_k = W_s z_k                                 # this region's class scores
        M_{k+1} = W_M z_k                             # where to look next, shears fixed at 0
    fused = category-wise max of s_1..s_K            # cfg.fuse_global: s_0 joins the max
                                                      # cfg.fusion="average": (s_0 + max_k s_k) / 2

With presets.paper_config this is the paper's model exactly (docs/PAPER.md, line by line).  The
project's default model adds, each behind its own config field: the evidence localizer
(transform_mode="evidence"), the ImageNet prior on every region's scores (imagenet_groups), a
linear classifier on each region's pooled feature beside the LSTM's (region_skip) and the global
step in the fusion (fuse_global).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import RAMConfig
from ..imagenet_prior import ImageNetGroupPrior
from .pooling import CSRAHead
from ..sampler import IDENTITY, cell_centres, pool_region, sample_region, sample_region_separable


def mix_branches(branches: torch.Tensor, cfg: RAMConfig) -> torch.Tensor:
    """(B, 2, classes) [recurrent, companion] logits -> (B, classes): w * recurrent + (1 - w) * companion,
    w the class's own weight (cfg.class_companion_weights) or cfg.companion_weight for all."""
    w = cfg.companion_weight
    if cfg.class_companion_weights is not None:
        w = branches.new_tensor(cfg.class_companion_weights)  # (classes,)
    return w * branches[:, 0] + (1 - w) * branches[:, 1]


class RegionEncoder(nn.Module):
    """The region feature f_k the LSTM reads: (B, C, H, W) map + (B, 4) transform -> (B, embed_dim).

    prepare() runs once per image (a 1x1 conv commutes with bilinear sampling, so reducing the whole
    map once is the same as reducing every sampled region), forward() once per step.
    """

    def __init__(self, cfg: RAMConfig, in_channels: int) -> None:
        super().__init__()
        self.kind, self.size = cfg.region_encoder, cfg.region_size
        self.separable = False  # True: sample without affine_grid (ONNX export), the same values
        r, ch = cfg.region_size, cfg.region_channels
        self.dropout = nn.Dropout(cfg.dropout)
        if self.kind == "pool":  # average of the sampled cells, then fc + ReLU
            self.reduce = None
            self.fc = nn.Sequential(nn.Linear(in_channels, cfg.embed_dim), nn.ReLU(inplace=True))
        elif self.kind == "flatten":  # 1x1 conv + ReLU, sample, flatten, fc + ReLU
            self.reduce = nn.Sequential(nn.Conv2d(in_channels, ch, 1), nn.ReLU(inplace=True))
            self.fc = nn.Sequential(nn.Linear(ch * r * r, cfg.embed_dim), nn.ReLU(inplace=True))
        else:  # "maxpool", the reference implementation: sample, 2x2 max pool, flatten, fc
            self.reduce = nn.Conv2d(in_channels, ch, 1) if ch > 0 else None  # linear, sizes only
            c = ch if ch > 0 else in_channels
            self.fc = nn.Linear(c * (r // 2) * (r // 2), cfg.embed_dim)

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        return self.reduce(features) if self.reduce is not None else features

    def forward(self, prepared: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
        if self.kind == "pool":
            return self.fc(self.dropout(pool_region(prepared, transform, self.size)))
        sample = sample_region_separable if self.separable else sample_region
        region = sample(prepared, transform, self.size)  # (B, C', r, r)
        if self.kind == "maxpool":
            region = F.max_pool2d(region, 2)  # (B, C', r/2, r/2)
        return self.fc(self.dropout(region.flatten(1)))


class EvidenceLocalizer(nn.Module):
    """transform_mode="evidence": where to look next, from the memory *and* the map.

    The paper's localizer reads the next transform off the memory alone.  Here the memory still
    decides: it picks which classes' evidence to follow (log-weights over classes) and the region's
    scale, and adds an offset; the centre is the soft-argmax of that evidence around the step's
    anchor.  So a step looks at the strongest evidence in its part of the image, and the anchor
    constraint keeps the steps spread out.  The evidence map is a 1x1 conv (C_in -> classes),
    initialised from the ImageNet classifier when the model has ImageNet groups.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: int, init_scale: float, sigma: float = 0.25,
                 sharpness: float = 2.7, inhibition: float = 0.0, explained: float = 0.0) -> None:
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
        self.inhibition = inhibition
        self.explained = explained

    def evidence_map(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, classes, H, W), once per image."""
        return self.evidence(features)

    @staticmethod
    def covered(transform: torch.Tensor, hh: int, ww: int, softness: float = 0.1) -> torch.Tensor:
        """(B, 4) transform -> (B, H*W) in [0, 1]: how much each cell centre lies inside its box
        (a soft indicator, so that it is smooth in the transform)."""
        ys, xs = torch.meshgrid(cell_centres(hh, transform.device), cell_centres(ww, transform.device), indexing="ij")
        s, t = transform[:, :2].abs(), transform[:, 2:]
        inside_x = torch.sigmoid((s[:, :1] - (xs.flatten()[None] - t[:, :1]).abs()) / softness)
        inside_y = torch.sigmoid((s[:, 1:] - (ys.flatten()[None] - t[:, 1:]).abs()) / softness)
        return inside_x * inside_y

    def forward(self, evidence: torch.Tensor, h: torch.Tensor, anchor: torch.Tensor,
                visited: torch.Tensor | None = None, explained: torch.Tensor | None = None) -> torch.Tensor:
        """evidence (B, classes, H, W), h (B, hidden), anchor (2,), visited (B, H*W) in [0, 1] or None
        (where earlier steps looked), explained (B, classes, H*W) in [0, 1] or None (where earlier
        steps looked times their probability of each class) -> transform (B, 4)."""
        _, _, hh, ww = evidence.shape
        ev = evidence.float().flatten(2)  # (B, classes, H*W)
        if explained is not None and self.explained:
            # in each class's own units (its spread over the map), so one strength fits every class
            ev = ev - self.explained * ev.std(2, keepdim=True).detach() * explained
        # a soft "max over the chosen classes": the query's log-weights shift each class's evidence,
        # and logsumexp keeps the peaks of every chosen class (a weighted mean would blur them)
        log_alpha = self.class_query(h).float().log_softmax(-1)  # (B, classes)
        e = torch.logsumexp(ev + log_alpha[:, :, None], 1)  # (B, H*W)
        e = (e - e.mean(1, keepdim=True)) / (e.std(1, keepdim=True) + 1e-5)
        if visited is not None and self.inhibition:
            e = e - self.inhibition * visited
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
        self.encoder = RegionEncoder(cfg, in_channels)
        self.lstm = nn.LSTMCell(cfg.embed_dim, cfg.hidden_size)
        # z_k = ReLU(W_z h_k): scores and the next transform are both read off z_k
        self.bottleneck = (nn.Sequential(nn.Linear(cfg.hidden_size, cfg.z_size), nn.ReLU(inplace=True))
                           if cfg.z_size > 0 else None)
        out_dim = cfg.z_size if cfg.z_size > 0 else cfg.hidden_size
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(out_dim, cfg.num_classes)  # W_s
        if cfg.uses_prior:  # the prior carries the start; memory learns what it adds
            nn.init.zeros_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)
        # Optional skip: the region's pooled feature scored directly, e.g. by an ImageNet-initialised
        # classifier, with the LSTM's classifier adding what memory contributes.
        self.region_classifier = nn.Linear(in_channels, cfg.num_classes) if cfg.region_skip else None
        if self.region_classifier is not None and cfg.uses_prior:
            nn.init.zeros_(self.region_classifier.weight)
            nn.init.zeros_(self.region_classifier.bias)
        # Optional: step 0 (the whole map) scored by its own pooled-feature classifier, not the regions'
        # (a region and a whole photo look different: person regions are parts of people)
        self.global_classifier = nn.Linear(in_channels, cfg.num_classes) if cfg.global_classifier else None
        if self.global_classifier is not None and cfg.uses_prior:
            nn.init.zeros_(self.global_classifier.weight)
            nn.init.zeros_(self.global_classifier.bias)
        self.prior = ImageNetGroupPrior(in_channels, cfg.imagenet_groups) if cfg.uses_prior else None
        if cfg.transform_mode == "evidence":
            self.localizer = EvidenceLocalizer(in_channels, cfg.num_classes, out_dim, cfg.init_scale,
                                               cfg.evidence_sigma, cfg.evidence_sharpness, cfg.evidence_inhibition,
                                               cfg.evidence_explained)
        else:
            self.localizer = nn.Linear(out_dim, 4)  # W_M: (s_x, s_y, t_x, t_y), shears fixed at 0
            nn.init.zeros_(self.localizer.weight)  # before training every step sees the same region:
            base = [cfg.init_scale, cfg.init_scale, 0.0, 0.0] if cfg.transform_mode == "direct" else [0.0] * 4
            with torch.no_grad():  # the whole map for the paper (init_scale 1)
                self.localizer.bias.copy_(torch.tensor(base))
        self.register_buffer("anchors", torch.tensor(cfg.anchors, dtype=torch.float32), persistent=False)
        # the companion branch: its own head on the whole (raw) map, its own loss (config.companion)
        self.companion = CSRAHead(cfg, in_channels, shared_prior=self.prior) if cfg.companion == "csra" else None
        if cfg.feature_norm:  # measured on the training features before training (feature_norm.py)
            self.register_buffer("feature_mean", torch.zeros(in_channels))
            self.register_buffer("feature_std", torch.ones(in_channels))

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """The map the region encoder samples, once per image: standardised per channel
        (cfg.feature_norm), then RegionEncoder.prepare."""
        if self.cfg.feature_norm:
            features = (features - self.feature_mean[:, None, None].to(features.dtype)) / \
                self.feature_std[:, None, None].to(features.dtype)
        return self.encoder.prepare(features)

    def attention_pooled(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, classes): sum_x softmax_x(T s_c(x)) s_c(x), s_c(x) the region
        classifier's score of class c at position x (CSRA's residual attention term)."""
        scorer = self.global_classifier if self.global_classifier is not None else self.region_classifier
        w, b = scorer.weight, scorer.bias
        maps = torch.matmul(w, features.flatten(2)) + b[:, None]  # (B, classes, H*W)
        return ((self.cfg.csra_temperature * maps).softmax(-1) * maps).sum(-1)

    def region_scores(self, z: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
        """A region step's class scores (B, classes) from its z (B, D) and pooled feature (B, C_in) or
        None, as the fused logits score steps 1..K, without dropout (the localizer's view of what a
        step found)."""
        logits = self.classifier(z)
        if region is not None:
            if self.region_classifier is not None:
                logits = logits + self.region_classifier(region)
            if self.prior is not None:
                logits = logits + self.prior(region)
        return logits

    def next_transform(self, z: torch.Tensor, step: int, evidence: torch.Tensor | None,
                       visited: torch.Tensor | None = None, explained: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, 4) transform M_step of step `step` (1-based)."""
        if evidence is not None:
            return self.localizer(evidence, z, self.anchors[step - 1], visited, explained)
        m = self.localizer(z)
        if self.cfg.transform_mode == "anchored":  # offsets from the step's anchor and the base scale
            m = m + torch.cat([m.new_full((2,), self.cfg.init_scale), self.anchors[step - 1]])
        return m

    def forward(self, features: torch.Tensor):
        from ..model import RAMOutput

        cfg = self.cfg
        b, k_steps = features.shape[0], cfg.num_steps
        prepared = self.prepare(features)
        evidence = self.localizer.evidence_map(features) if cfg.transform_mode == "evidence" else None
        needs_pooled = self.region_classifier is not None or self.prior is not None
        transform = features.new_tensor(IDENTITY).expand(b, 4)  # M_0
        inhibit = evidence is not None and cfg.evidence_inhibition > 0
        visited = None  # (B, H*W): where steps 1..k-1 looked (evidence mode with inhibition)
        explain = evidence is not None and cfg.evidence_explained > 0
        explained = None  # (B, classes, H*W): where steps 1..k-1 looked, times their class probabilities
        h = c = features.new_zeros(b, cfg.hidden_size)
        zs, pooled, transforms = [], [], []
        for k in range(k_steps + 1):
            f_k = self.encoder(prepared, transform)  # (B, embed)
            if not cfg.memory:  # ablation: every step starts from a blank state
                h = c = features.new_zeros(b, cfg.hidden_size)
            h, c = self.lstm(f_k, (h, c))
            z = self.bottleneck(h) if self.bottleneck is not None else h
            zs.append(z)
            if needs_pooled:
                pooled.append(pool_region(features, transform, cfg.region_size))  # (B, C_in)
            if k > 0:
                transforms.append(transform)
                if inhibit or explain:
                    now = EvidenceLocalizer.covered(transform, *evidence.shape[2:])  # (B, H*W)
                if inhibit:
                    visited = now if visited is None else torch.maximum(visited, now)
                if explain and k < k_steps:
                    # what this step found steers the later steps; it is not trained through them
                    with torch.no_grad():
                        p = self.region_scores(z, pooled[-1] if needs_pooled else None).float().sigmoid()
                    found = now[:, None, :] * p[:, :, None]  # (B, classes, H*W)
                    explained = found if explained is None else torch.maximum(explained, found)
            if k < k_steps:
                transform = self.next_transform(z, k + 1, evidence, visited, explained)
        # The scores do not feed the recurrence, so every step's are computed after the loop: one
        # product per classifier instead of K + 1 small ones (the same numbers).
        logits = self.classifier(self.dropout(torch.stack(zs, 1)))  # (B, K+1, classes)
        if needs_pooled:
            regions = torch.stack(pooled, 1)  # (B, K+1, C_in)
            if self.region_classifier is not None and self.global_classifier is not None:
                logits = logits + torch.cat([self.global_classifier(self.dropout(regions[:, :1])),
                                             self.region_classifier(self.dropout(regions[:, 1:]))], 1)
            elif self.region_classifier is not None:
                logits = logits + self.region_classifier(self.dropout(regions))
                if cfg.global_attention:  # step 0 also pools the class maps with class-specific attention
                    logits = torch.cat([logits[:, :1] + cfg.global_attention * self.attention_pooled(features)[:, None],
                                        logits[:, 1:]], 1)
            if self.prior is not None:
                logits = logits + self.prior(regions.flatten(0, 1)).view(b, k_steps + 1, -1)
        steps = logits[:, 1:]  # (B, K, classes): s_1..s_K
        if cfg.fusion == "average":  # the whole photo's view and the best regions' view, averaged
            fused = (logits[:, 0] + steps.amax(1)) / 2
        else:
            fused = (logits if cfg.fuse_global else steps).amax(1)
        branches = None
        if self.companion is not None:
            other = self.companion(features).logits  # (B, classes)
            branches = torch.stack([fused, other], 1)  # (B, 2, classes), each trained on its own loss
            fused = mix_branches(branches, cfg)
        return RAMOutput(logits=fused, global_logits=logits[:, 0], step_logits=steps,
                         transforms=torch.stack(transforms, 1), branch_logits=branches)
