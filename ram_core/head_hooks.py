"""Running a model's parts on inputs it did not choose itself: the hooks the region probe and the
occlusion tests use.  The heads' semantics are not touched; these functions only call their parts.

    view_features(predictor, batch)           backbone features of each image, and of its mirror image
                                              when the model averages with it (test_time_flip)
    head_output(predictor, views)             the whole head on given feature views, logits averaged
                                              over the views as RAMModel.forward does
    region_step_logits(head, features, M)     the RAM head's scores for one step on transforms M, read
                                              as the step after the global step
    mirror_transforms / mirror_boxes          a transform or box of the image, in the mirror image
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .inference import Predictor, autocast_for
from .model import RAMOutput, average_with_mirror
from .sampler import IDENTITY, pool_region


@contextmanager
def running(predictor: Predictor):
    """Inference mode, the predictor's lock (it is shared between app sessions) and its autocast."""
    with torch.inference_mode(), predictor.lock, autocast_for(predictor.device):
        yield


def view_features(predictor: Predictor, batch: torch.Tensor) -> list[torch.Tensor]:
    """(B, 3, S, S) preprocessed images -> [(B, C, H, W)] features, or [image's, mirror image's] when
    the model averages each image with its mirror image at inference (cfg.test_time_flip)."""
    model = predictor.model
    batch = batch.to(predictor.device).contiguous(memory_format=torch.channels_last)
    with running(predictor):
        if model.cfg.test_time_flip:
            b = batch.shape[0]
            feats = model.features(torch.cat([batch, batch.flip(-1)]))
            return [feats[:b], feats[b:]]
        return [model.features(batch)]


def head_output(predictor: Predictor, views: list[torch.Tensor]) -> RAMOutput:
    """The head on each view (B, C, H, W) of the same images; with two views (image, mirror image) the
    logits are averaged and the boxes are the first view's, as RAMModel.forward does.  On the CPU."""
    head = predictor.model.head
    with running(predictor):
        outs = [head(v) for v in views]
        out = outs[0] if len(outs) == 1 else average_with_mirror(outs[0], outs[1])
    return out.apply(lambda t: t.float().cpu())


def mirror_transforms(transforms: torch.Tensor) -> torch.Tensor:
    """(..., 4) (s_x, s_y, t_x, t_y) of the image -> the same region of the mirror image."""
    return transforms * transforms.new_tensor([1.0, 1.0, -1.0, 1.0])


def mirror_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) boxes (x0, y0, x1, y1) as fractions of the image -> the same boxes in the mirror image."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([1 - x1, y0, 1 - x0, y1], -1)


def region_step_logits(head, features: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """The RAM head's logits for one step that reads the regions `transforms` (B, P, 4) of features
    (B, C, H, W), as the step after the global step: the global step runs on the whole map (M_0 =
    identity), then each of the P regions is sampled through the same spatial transformer with its
    own M, read by the LSTM from the global step's state and scored as any step's region.
    Returns (B, P, classes).

    With the transform the head itself chose for step 1, this is exactly the head's step-1 logits
    (tests/test_probe.py checks it): the probe is the head's step 1 with M replaced.
    """
    from .heads.recurrent import RecurrentAttentionHead

    if not isinstance(head, RecurrentAttentionHead):
        raise TypeError(f"{type(head).__name__} has no attention steps to run")
    cfg = head.cfg
    b, p = transforms.shape[:2]
    prepared = head.prepare(features)  # standardised when the head does (cfg.feature_norm)
    h = c = features.new_zeros(b, cfg.hidden_size)
    identity = features.new_tensor(IDENTITY).expand(b, 4)
    h, c = head.lstm(head.encoder(prepared, identity), (h, c))  # the global step: M_0 on the whole map
    if not cfg.memory:  # the head resets its state before every step
        h = c = torch.zeros_like(h)
    m = transforms.reshape(b * p, 4).to(features.dtype)
    region = head.encoder(prepared.repeat_interleave(p, 0), m)  # (B*P, embed)
    h, c = head.lstm(region, (h.repeat_interleave(p, 0), c.repeat_interleave(p, 0)))
    z = head.bottleneck(h) if head.bottleneck is not None else h
    logits = head.classifier(head.dropout(z))
    if head.region_classifier is not None or head.prior is not None:
        pooled = pool_region(features.repeat_interleave(p, 0), m, cfg.region_size)  # (B*P, C_in)
        if head.region_classifier is not None:
            logits = logits + head.region_classifier(head.dropout(pooled))
        if head.prior is not None:
            logits = logits + head.prior(pooled)
    return logits.view(b, p, -1)
