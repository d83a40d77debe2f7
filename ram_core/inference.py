"""Preprocessing and batched inference: images in, AttentionTraces out.

Images are resized to input_size x input_size without cropping, so that every box maps back to the
whole original image exactly (a box's fractions times the original width and height).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from .checkpoints import CheckpointInfo, load_checkpoint, model_from_bytes
from .config import RAMConfig
from .errors import CheckpointError
from .locations import ASSETS_DIR
from .model import RAMModel
from .trace import AttentionTrace, traces_from_output

ASSETS = ASSETS_DIR
DEFAULT_CHECKPOINT = ASSETS / "ram_default.safetensors"


def resolve_device(device: str | None = "auto") -> torch.device:
    """'auto' (or None): CUDA when torch sees a GPU, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    return dev


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return f"CPU ({torch.get_num_threads()} threads)"


def default_checkpoint() -> Path:
    if not DEFAULT_CHECKPOINT.is_file():
        raise CheckpointError(
            f"the embedded default model {DEFAULT_CHECKPOINT} is missing; pass --checkpoint PATH "
            "to a checkpoint written by `python -m ram_core train`"
        )
    return DEFAULT_CHECKPOINT


def preprocess(img: Image.Image, cfg: RAMConfig) -> torch.Tensor:
    """RGB PIL image -> (3, S, S) float tensor, resized (no crop) and normalised by the config."""
    s = cfg.input_size
    arr = np.asarray(img.resize((s, s), Image.BILINEAR), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    return (t - mean) / std


class ImageTransform:
    """Picklable preprocessing for DataLoader workers: preprocess(img, cfg), optionally flipped."""

    def __init__(self, cfg: RAMConfig, hflip: bool = False) -> None:
        self.cfg = cfg
        self.hflip = hflip

    def __call__(self, img: Image.Image) -> torch.Tensor:
        t = preprocess(img, self.cfg)
        return t.flip(-1) if self.hflip else t


def prepare_model(model: RAMModel, device: torch.device) -> RAMModel:
    """Move to device in eval mode; channels_last is the fast layout for these convnets on CPU and GPU."""
    return model.to(device).to(memory_format=torch.channels_last).eval()


def autocast_for(device: torch.device):
    """Mixed precision on CUDA (bf16 where supported); a no-op context on the CPU."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


@dataclass
class Predictor:
    """A loaded model ready for inference.  Safe to share between threads (Streamlit sessions): the
    forward pass runs under a lock, since one model on one device gains nothing from overlapping."""

    model: RAMModel
    info: CheckpointInfo
    device: torch.device
    batch_size: int = 8

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.model = prepare_model(self.model, self.device)

    @property
    def cfg(self) -> RAMConfig:
        return self.model.cfg

    @property
    def class_names(self) -> list[str]:
        return self.cfg.class_names

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | None = "auto",
                        backbone_weights: str | None = None) -> "Predictor":
        dev = resolve_device(device)
        model, info = load_checkpoint(path or default_checkpoint(), "cpu", backbone_weights)
        return cls(model, info, dev)

    @classmethod
    def from_bytes(cls, blob: bytes, name: str, device: str | None = "auto") -> "Predictor":
        dev = resolve_device(device)
        model, info = model_from_bytes(blob, name, "cpu")
        return cls(model, info, dev)

    @torch.inference_mode()
    def run_tensors(self, batch: torch.Tensor):
        """(B, 3, S, S) preprocessed batch -> RAMOutput (on the CPU, float32)."""
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with self.lock, autocast_for(self.device):
            out = self.model(batch)
        for name in ("logits", "global_logits", "step_logits", "transforms"):
            setattr(out, name, getattr(out, name).float().cpu())
        return out

    def predict(self, images: Sequence[tuple[str, Image.Image]], threshold: float = 0.5,
                class_thresholds: dict[str, float] | None = None) -> list[AttentionTrace]:
        """Traces for (name, RGB image) pairs, in batches of batch_size.  class_thresholds (e.g. the
        checkpoint's, self.info.class_thresholds) decide the traces' labels per class."""
        traces: list[AttentionTrace] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            t0 = time.perf_counter()
            batch = torch.stack([preprocess(img, self.cfg) for _, img in chunk])
            out = self.run_tensors(batch)
            seconds = (time.perf_counter() - t0) / len(chunk)
            traces += traces_from_output(
                out, [n for n, _ in chunk], [img.size for _, img in chunk], self.class_names,
                self.cfg.fuse_global, threshold, round(seconds, 4), activation=self.cfg.score_activation,
                class_thresholds=class_thresholds,
            )
        return traces

    def predict_one(self, name: str, img: Image.Image, threshold: float = 0.5) -> AttentionTrace:
        return self.predict([(name, img)], threshold)[0]


def iter_chunks(items: Iterable, n: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
