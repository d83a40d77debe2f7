"""Datasets: VOC, COCO, a folder with a labels file, synthetic scenes; all as MultiLabelDataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from ..errors import DatasetError
from .base import Box, MultiLabelDataset, default_transform
from .classes import COCO_CLASSES, VOC_CLASSES
from .coco import COCODataset, find_coco_split
from .folder import FolderDataset
from .synthetic import make_synthetic_voc, read_class_names
from .voc import VOCAnnotation, VOCDataset, read_voc_annotations

DATASET_KINDS = ("voc", "coco", "folder", "synthetic")
_GENERATOR_OPTIONS = ("num_images", "image_size", "classes", "seed", "max_objects")


def _folder_labels_file(root: Path, split: str | None) -> Path | None:
    """split names the labels file (a path, or a stem such as "train" for train.csv/train.json)."""
    if not split:
        return None
    for candidate in (Path(split), root / split, root / f"{split}.csv", root / f"{split}.json"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{root}: no labels file {split!r} (nor {split}.csv / {split}.json) found")


def build_dataset(
    kind: str,
    root: str | os.PathLike,
    split: str | None = None,
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
    **kw: Any,
) -> MultiLabelDataset:
    """A dataset by kind; extra keywords go to the dataset class.

    voc:       VOCDataset(root, split, ...)            split: train/val/trainval/test
    coco:      COCODataset(*find_coco_split(root, split), ...)   split: train/val/val2014/...
    folder:    FolderDataset(root, labels_file, ...)   split: the labels file; None: labels.csv/json
    synthetic: VOCDataset over a make_synthetic_voc folder with its classes.txt; when root holds no
               dataset yet, one is generated first (num_images (default 200), image_size, classes,
               seed, max_objects are passed to the generator).
    """
    root = Path(root)
    if kind == "voc":
        return VOCDataset(root, split or "trainval", transform=transform, **kw)
    if kind == "coco":
        images_dir, annotations = find_coco_split(root, split or "val")
        return COCODataset(images_dir, annotations, transform=transform, **kw)
    if kind == "folder":
        return FolderDataset(root, _folder_labels_file(root, split), transform=transform, **kw)
    if kind == "synthetic":
        generator = {k: kw.pop(k) for k in _GENERATOR_OPTIONS if k in kw}
        if not (root / "Annotations").is_dir():
            make_synthetic_voc(root, generator.pop("num_images", 200), **generator)
        split = split or "train"
        return VOCDataset(root, split, transform=transform, class_names=read_class_names(root),
                          name=f"synthetic/{split}", **kw)
    raise ValueError(f"unknown dataset kind {kind!r}; choose from {', '.join(DATASET_KINDS)}")


__all__ = [
    "Box", "COCODataset", "COCO_CLASSES", "DATASET_KINDS", "FolderDataset", "MultiLabelDataset",
    "VOCAnnotation", "VOCDataset", "VOC_CLASSES", "build_dataset", "default_transform",
    "find_coco_split", "make_synthetic_voc", "read_class_names", "read_voc_annotations",
]
