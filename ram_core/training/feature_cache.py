"""On-disk cache of frozen-backbone feature maps: extract once, train the head many times.

One entry per (backbone, weights, input size, normalisation, view, dataset ids): a float16 array
(N, C, h, w) in `features.npy` plus `meta.json` with a CRC32 per image.  Entries are written under a
temporary name and renamed when complete, so a killed extraction never leaves a half entry; on open,
every image's CRC is checked and damaged rows are recomputed (and the entry repaired in place).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ..config import RAMConfig
from ..inference import ImageTransform, autocast_for

VIEWS = ("orig", "hflip")


def cache_key(cfg: RAMConfig, dataset_name: str, ids: list[str], view: str, weights: str) -> str:
    spec = {
        "backbone": cfg.backbone,
        "weights": weights,
        "input_size": cfg.input_size,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "view": view,
        "dataset": dataset_name,
        "ids": hashlib.sha1("\n".join(ids).encode()).hexdigest(),
        "version": 1,
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _row_crc(row: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(row).view(np.uint8))


@torch.inference_mode()
def extract_features(backbone: torch.nn.Module, dataset, cfg: RAMConfig, view: str, device: torch.device,
                     indices: list[int] | None = None, batch_size: int = 16, workers: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Feature maps (n, C, h, w) float16 for dataset[indices] (all by default) under a view."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; choose from {VIEWS}")
    old_transform = dataset.transform
    dataset.transform = ImageTransform(cfg, hflip=(view == "hflip"))
    try:
        subset = Subset(dataset, indices if indices is not None else range(len(dataset)))
        loader = DataLoader(subset, batch_size=batch_size, num_workers=workers,
                            pin_memory=device.type == "cuda", persistent_workers=False)
        backbone = backbone.to(device).to(memory_format=torch.channels_last).eval()
        out, done = [], 0
        for images, *_ in loader:
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with autocast_for(device):
                feats = backbone(images)
            out.append(feats.float().cpu().numpy().astype(np.float16))
            done += len(images)
            if progress:
                progress(done, len(subset))
        return np.concatenate(out) if out else np.zeros((0,), np.float16)
    finally:
        dataset.transform = old_transform


class FeatureCache:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> tuple[np.ndarray | None, list[int]]:
        """(features or None, indices of damaged rows).  None when there is no complete entry."""
        entry = self.entry(key)
        meta_path, feat_path = entry / "meta.json", entry / "features.npy"
        if not (meta_path.is_file() and feat_path.is_file()):
            return None, []
        try:
            meta = json.loads(meta_path.read_text())
            feats = np.load(feat_path, mmap_mode="r")
            if list(feats.shape) != meta["shape"]:
                return None, []
        except (ValueError, KeyError, OSError, json.JSONDecodeError):
            return None, []  # unreadable entry: rebuild it whole
        feats = np.array(feats)  # into memory: training reads every row every epoch
        bad = [i for i, crc in enumerate(meta["crc32"]) if _row_crc(feats[i]) != crc]
        return feats, bad

    def save(self, key: str, feats: np.ndarray, info: dict) -> None:
        entry = self.entry(key)
        tmp = entry.with_name(entry.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "features.npy", feats)
        meta = {**info, "shape": list(feats.shape), "crc32": [_row_crc(r) for r in feats]}
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)

    def get_or_build(self, backbone: torch.nn.Module, dataset, cfg: RAMConfig, view: str, device: torch.device,
                     weights: str, batch_size: int = 16, workers: int = 0,
                     log: Callable[[str], None] = print,
                     progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The features of every image of `dataset`; `progress(done, total)` follows the extraction
        (called once with done == total on a cache hit) and may raise to stop it."""
        key = cache_key(cfg, dataset.name, list(dataset.ids), view, weights)
        feats, bad = self.load(key)
        if feats is not None and not bad:
            log(f"feature cache hit: {dataset.name} {view} ({feats.shape[0]} images) in {self.entry(key)}")
            if progress:
                progress(len(feats), len(feats))
            return feats
        if feats is not None:
            log(f"feature cache: {len(bad)} damaged entr{'y' if len(bad) == 1 else 'ies'} in {self.entry(key)}; recomputing them")
            feats[bad] = extract_features(backbone, dataset, cfg, view, device, bad, batch_size, workers,
                                          progress=progress)
        else:
            log(f"extracting {cfg.backbone} features: {dataset.name} {view} ({len(dataset)} images)")
            bar = _progress_bar(len(dataset), f"features {view}")

            def both(done: int, total: int) -> None:
                bar(done, total)
                if progress:
                    progress(done, total)

            feats = extract_features(backbone, dataset, cfg, view, device, None, batch_size, workers, progress=both)
        self.save(key, feats, {"dataset": dataset.name, "view": view, "backbone": cfg.backbone,
                               "input_size": cfg.input_size, "ids": list(dataset.ids)})
        return feats


def _progress_bar(total: int, desc: str) -> Callable[[int, int], None]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", disable=None)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
