"""The packaged EfficientNet-Lite0 weights load into timm's architecture and classify correctly."""

import numpy as np
import torch
from PIL import Image, ImageDraw

from ram_core.backbones import build_backbone


def test_package_weights_load_and_give_confident_imagenet_predictions():
    backbone = build_backbone("tf_efficientnet_lite0").eval()
    # a plain synthetic image: checks the weights are real (random weights give near-uniform
    # outputs), without depending on photos.
    img = Image.new("RGB", (224, 224), (250, 250, 250))
    ImageDraw.Draw(img).ellipse((40, 40, 184, 184), fill=(240, 120, 0))
    x = (torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1) - 0.5) / 0.5
    with torch.inference_mode():
        feats = backbone(x[None])
        probs = backbone.imagenet_classifier(feats.mean((2, 3))).softmax(-1)[0]
    assert feats.shape == (1, 1280, 7, 7)
    assert probs.max() > 0.05  # 50x above uniform
