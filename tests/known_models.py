"""A hand-made RAM model whose answers are known, for the probe and the occlusion tests.

The backbone is an 8 x 8 average pooling of the raw RGB image (mean 0, std 1: no normalisation), so
the feature map is the image in miniature: a 64 x 64 image gives an 8 x 8 map of RGB cells.  The
head's steps are pinned to their anchors (anchored transforms with a zero localizer), at scale 0.5:
step 1 reads the centre half of the image, steps 2..5 the four quadrants (top-left, top-right,
bottom-left, bottom-right).  A step's scores come only from its region's mean colour (the region
skip; the LSTM's classifier is zero):

    logit(red)  = 40 * (R - (G + B) / 2) - 5        logit(blue) = 40 * (B - (R + G) / 2) - 5

so a region a quarter red scores red at sigmoid(5) = 0.993 and a grey region at sigmoid(-5) = 0.007.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from ram_core.checkpoints import CheckpointInfo
from ram_core.config import RAMConfig
from ram_core.heads.recurrent import RecurrentAttentionHead
from ram_core.inference import Predictor
from ram_core.model import RAMModel

CLASSES = ["red", "blue"]
SIZE = 64  # image side; the map is SIZE / 8 cells a side
GREY = (128, 128, 128)
# Step k's region in the image's pixels (anchors of config.PAPER_ANCHORS, scale 0.5)
STEP_BOXES = {1: (16, 16, 48, 48), 2: (0, 0, 32, 32), 3: (32, 0, 64, 32), 4: (0, 32, 32, 64), 5: (32, 32, 64, 64)}


class Miniature(nn.Module):
    """(B, 3, S, S) -> (B, 3, S/8, S/8): the image averaged over 8 x 8 pixel cells."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(images, 8)


def known_config(**changes) -> RAMConfig:
    cfg = RAMConfig(class_names=list(CLASSES), input_size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                    num_steps=5, region_size=4, region_encoder="pool", embed_dim=8, hidden_size=8,
                    transform_mode="anchored", init_scale=0.5, region_skip=True, fuse_global=False)
    return cfg.replace(**changes) if changes else cfg


def known_model(**changes) -> RAMModel:
    cfg = known_config(**changes)
    torch.manual_seed(0)
    head = RecurrentAttentionHead(cfg, in_channels=3)
    with torch.no_grad():
        head.classifier.weight.zero_()
        head.classifier.bias.zero_()
        head.localizer.weight.zero_()
        head.localizer.bias.zero_()
        head.region_classifier.weight.copy_(40 * torch.tensor([[1.0, -0.5, -0.5], [-0.5, -0.5, 1.0]]))
        head.region_classifier.bias.fill_(-5.0)
    return RAMModel(cfg, Miniature(), head).eval()


def known_predictor(**changes) -> Predictor:
    model = known_model(**changes)
    return Predictor(model, CheckpointInfo(model.cfg, "checkpoint", source="known model"), torch.device("cpu"))


def scene(red_at: tuple[int, int, int, int] | None = (0, 0, 16, 16), blue_at=None, size: int = SIZE) -> Image.Image:
    """A grey image with a pure red (and optionally blue) rectangle at (x0, y0, x1, y1) pixels."""
    arr = np.full((size, size, 3), GREY, np.uint8)
    if red_at is not None:
        x0, y0, x1, y1 = red_at
        arr[y0:y1, x0:x1] = (255, 0, 0)
    if blue_at is not None:
        x0, y0, x1, y1 = blue_at
        arr[y0:y1, x0:x1] = (0, 0, 255)
    return Image.fromarray(arr)
