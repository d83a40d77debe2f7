"""An ImageNet prior for the class scores: most VOC classes have ImageNet counterparts.

The frozen ImageNet classifier of the backbone gives, for any pooled feature (B, D), a softmax over
the 1000 ImageNet classes.  A target class c is mapped to a group G_c of ImageNet classes (aeroplane =
airliner + warplane + wing, dog = the 118 dog breeds, ...), and its prior logit is

    prior_c = a_c * logit(sum_{i in G_c} softmax(z)_i) + b_c,   a_c = 1 and b_c = 0 at the start,

so an untrained head already reads the VOC classes off ImageNet; training adjusts a_c and b_c
(and the rest of the head learns what the prior misses).  Classes without a group get no prior.
Both the RAM head (on every region) and the baseline head (on the whole map) can use it, so the two
are compared on identical features and identical priors.
"""

from __future__ import annotations

import torch
from torch import nn

# ImageNet-1k class indices per PASCAL VOC class (standard ILSVRC-2012 index order).
VOC_IMAGENET_GROUPS: dict[str, list[int]] = {
    "aeroplane": [404, 895, 908],  # airliner, warplane, wing
    "bicycle": [444, 671],  # tandem, mountain bike
    "bird": list(range(7, 25)) + list(range(80, 101)) + list(range(127, 147)),
    "boat": [472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 871, 914],
    "bottle": [440, 720, 737, 898, 901, 907],
    "bus": [654, 779, 874],  # minibus, school bus, trolleybus
    "car": [407, 436, 468, 479, 511, 581, 609, 627, 656, 661, 717, 734, 751, 817],
    "cat": [281, 282, 283, 284, 285],
    "chair": [423, 559, 765, 857],
    "cow": [345, 346, 347],  # ox, water buffalo, bison
    "diningtable": [532],
    "dog": list(range(151, 269)),
    "horse": [339, 603],  # sorrel, horse cart
    "motorbike": [665, 670],  # moped, motor scooter
    # No ImageNet class is a person.  A group of what people wear and do (academic gown, groom, scuba
    # diver, ... PERSON_PROXIES) was tried and lowered person AP in 5-fold CV (CSRA head: 80.0 with
    # it, 85.8 without; docs in assets/MODEL_CARD.md), so person has no group: its classifier
    # learns from the photos alone.
    "person": [],
    "pottedplant": [738],
    "sheep": [348, 349],
    "sofa": [831],
    "train": [466, 547, 565, 705, 820, 829],
    "tvmonitor": [664, 782, 851],
}


# The person proxies left out above, kept so the experiment can be repeated.
PERSON_PROXIES = [400, 578, 610, 617, 655, 834, 841, 869, 981, 982, 983]


def groups_for(class_names: list[str]) -> list[list[int]]:
    """Groups aligned with class_names; unknown classes get an empty group (no prior)."""
    return [list(VOC_IMAGENET_GROUPS.get(c, [])) for c in class_names]


class ImageNetGroupPrior(nn.Module):
    """pooled features (B, D) -> prior logits (B, C); zero for classes without a group."""

    def __init__(self, in_channels: int, groups: list[list[int]], num_imagenet: int = 1000,
                 shared: "ImageNetGroupPrior | None" = None) -> None:
        super().__init__()
        if shared is not None:
            # another prior's frozen ImageNet classifier, read but not registered here: the weights
            # (5 MB for Lite0) are stored and moved once, by the module that owns them
            object.__setattr__(self, "_shared", shared)
        else:
            self.imagenet = nn.Linear(in_channels, num_imagenet)
            self.imagenet.requires_grad_(False)  # ImageNet's classifier stays as it is
        member = torch.zeros(num_imagenet, len(groups))
        for c, group in enumerate(groups):
            member[group, c] = 1.0
        self.register_buffer("membership", member)  # (1000, C)
        self.register_buffer("has_group", (member.sum(0) > 0).float())  # (C,)
        self.scale = nn.Parameter(torch.ones(len(groups)))
        self.bias = nn.Parameter(torch.zeros(len(groups)))

    def __getattr__(self, name: str):
        if name == "imagenet" and "_shared" in self.__dict__:
            return self.__dict__["_shared"].imagenet
        return super().__getattr__(name)

    def load_imagenet(self, classifier: nn.Linear) -> None:
        with torch.no_grad():
            self.imagenet.weight.copy_(classifier.weight)
            self.imagenet.bias.copy_(classifier.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        # In float32 with autocast off: under bf16 autocast (the GPU's default here) the matmul's group
        # probability was rounded to bf16, where 1 - 1e-6 is 1.0, so a confident photo gave
        # log1p(-1) = -inf, and inf * has_group = NaN for the classes without a group (seen on an H200:
        # NaN scores for a VOC photo, NaN loss in training).
        with torch.autocast(pooled.device.type, enabled=False):
            probs = self.imagenet(pooled.float()).softmax(-1)  # (B, 1000)
            p = (probs @ self.membership).clamp(1e-6, 1 - 1e-6)  # (B, C) group probability
            prior = torch.log(p) - torch.log1p(-p)
            return ((self.scale * prior + self.bias) * self.has_group).to(pooled.dtype)
