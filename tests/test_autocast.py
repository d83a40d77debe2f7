"""Mixed precision: on a GPU every forward runs under bf16 autocast (inference.autocast_for).  These
tests run the same autocast on the CPU, so CI sees what an H200 showed: the ImageNet prior turned a
confident photo into NaN scores (its group probability rounded to 1.0 in bf16)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ram_core.data.classes import VOC_CLASSES
from ram_core.imagenet_prior import ImageNetGroupPrior
from ram_core.losses import ram_loss
from ram_core.heads import init_head_from_imagenet
from ram_core.model import build_head
from ram_core.presets import default_config

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _confident_classifier(channels: int, hot: int) -> nn.Linear:
    """An ImageNet classifier that is all but certain of ImageNet class `hot` for positive features."""
    lin = nn.Linear(channels, 1000)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[hot] = 1.0
    return lin


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])  # fp16: GPUs without bf16
def test_prior_of_a_confident_photo_is_finite_under_autocast(dtype):
    groups = [[3, 4], []]  # class 0 holds ImageNet class 3; class 1 has no group (like person)
    prior = ImageNetGroupPrior(16, groups)
    prior.load_imagenet(_confident_classifier(16, hot=3))
    pooled = torch.full((2, 16), 4.0)  # ImageNet logit 64 for class 3: its group's probability is 1 - 1e-26
    with torch.autocast("cpu", dtype=dtype):
        out = prior(pooled)
    assert torch.isfinite(out).all(), out
    assert (out[:, 1] == 0).all()  # no group, no prior
    assert (out[:, 0] > 10).all()  # clamped at 1 - 1e-6: logit log(1e6) = 13.8


def test_default_head_trains_to_finite_losses_under_bf16_autocast():
    torch.manual_seed(0)
    cfg = default_config(list(VOC_CLASSES), input_size=192)  # 6 x 6 map
    head = build_head(cfg)
    person = cfg.class_names.index("person")
    hot = cfg.imagenet_groups[cfg.class_names.index("cat")][0]
    init_head_from_imagenet(head, _confident_classifier(1280, hot))
    weights = [0.5] * len(cfg.class_names)
    weights[person] = 0.0  # the companion alone, as the shipped default does for person
    head.cfg = cfg = cfg.replace(class_companion_weights=weights)
    feats = torch.rand(4, 1280, 6, 6) * 4  # a confident "cat" map
    targets = torch.zeros(4, len(cfg.class_names))
    targets[:, cfg.class_names.index("cat")] = 1
    opt = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):
        with torch.autocast(**BF16):
            out = head(feats)
            total = ram_loss(out, targets, cfg.loss, torch.tensor(cfg.anchors), torch.ones_like(targets)).total
        assert torch.isfinite(out.logits.float()).all() and torch.isfinite(total), total
        opt.zero_grad()
        total.backward()
        opt.step()
