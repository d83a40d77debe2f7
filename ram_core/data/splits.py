"""Holding out a fraction of a training set for validation, reproducibly.

Which images go to validation depends only on the seed and each image's id, not on the order of the
labels file: an image is held out when its hash(seed, id) is among the smallest `fraction` of all
hashes.  The same data and seed always give the same split, on any machine, and `split_digest`
names it in a run's config so that a later run can check it used the same one.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from ..errors import DatasetError
from .base import MultiLabelDataset


def _rank(seed: int, image_id: str) -> str:
    return hashlib.sha1(f"{seed}\0{image_id}".encode()).hexdigest()


def held_out_indices(ids: Sequence[str], fraction: float, seed: int) -> list[int]:
    """Indices (in dataset order) of the round(fraction * N) images held out; at least one, and at
    least one left for training."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"the held-out fraction must be between 0 and 1 (exclusive), got {fraction}")
    n = len(ids)
    if n < 2:
        raise DatasetError(f"holding out a validation set needs at least 2 images, the training set has {n}")
    n_val = min(n - 1, max(1, round(fraction * n)))
    order = sorted(range(n), key=lambda i: _rank(seed, str(ids[i])))
    return sorted(order[:n_val])


def hold_out(dataset: MultiLabelDataset, fraction: float, seed: int = 0) -> tuple[MultiLabelDataset, MultiLabelDataset]:
    """(train, validation): the dataset split by held_out_indices; names say what was done."""
    val_idx = held_out_indices(dataset.ids, fraction, seed)
    held = set(val_idx)
    train_idx = [i for i in range(len(dataset)) if i not in held]
    pct = f"{100 * fraction:g}%"
    train = dataset.subset(train_idx, name=f"{dataset.name} minus {pct} held out (seed {seed})")
    val = dataset.subset(val_idx, name=f"{dataset.name} {pct} held out (seed {seed})")
    return train, val


def split_digest(ids: Sequence[str]) -> str:
    """A short fingerprint of a list of image ids (order-independent)."""
    return hashlib.sha1("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:16]
