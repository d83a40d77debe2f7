"""Shared fixtures: small models and images made on the fly (no test reads ../shared)."""

from __future__ import annotations

import os

import ram_core  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch starts its threads)

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture
def small_cfg():
    from ram_core.config import RAMConfig

    return RAMConfig(class_names=list(CLASSES), input_size=128, num_steps=3, region_size=4,
                     embed_dim=32, hidden_size=32)


@pytest.fixture
def random_model(small_cfg):
    """The real EfficientNet-Lite0 architecture with random weights (asked for explicitly)."""
    from ram_core.backbones import RANDOM_INIT
    from ram_core.model import build_model

    torch.manual_seed(0)
    return build_model(small_cfg, RANDOM_INIT).eval()


@pytest.fixture
def photo(tmp_path):
    """A 200x150 RGB JPEG with some structure."""
    rng = np.random.default_rng(0)
    arr = (rng.random((150, 200, 3)) * 255).astype(np.uint8)
    arr[30:90, 40:120] = (220, 30, 30)
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, quality=90)
    return path
