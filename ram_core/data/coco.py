"""MS-COCO instances annotations as a multi-label dataset.

An image is positive for a category when it has at least one annotation of it (crowd annotations
included, as in ML-GCN's preprocessing); images without annotations are kept as all-negative.
Categories are ordered by id, so the 80 standard ones give the standard column order.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError
from .base import BadItems, Box, MultiLabelDataset, check_photo, inside, is_plain_name


def find_coco_split(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """(images folder, instances JSON) for a split under a COCO root.

    `split` is "train"/"val" (2017 layout tried first, then 2014) or a full name such as "val2014".
    Layout: root/annotations/instances_{name}.json and root/{name}/ (or root/images/{name}/).
    """
    root = Path(root)
    if not is_plain_name(split):  # a split is a name; one with folders or '..' would leave the dataset
        raise DatasetError(f"{split[:60]!r} is not a COCO split name (train, val, val2014, ...)")
    names = [split] if any(ch.isdigit() for ch in split) else [f"{split}2017", f"{split}2014"]
    looked_for = []
    for name in names:
        annotations = root / "annotations" / f"instances_{name}.json"
        for images in (root / name, root / "images" / name):
            looked_for.append(f"{annotations.relative_to(root)} + {images.relative_to(root)}/")
            if annotations.is_file() and images.is_dir():
                return images, annotations
    raise DatasetError(f"{root}: no COCO split {split!r} found (looked for {'; '.join(looked_for)})")


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot parse the JSON ({exc})") from None
    except RecursionError:
        raise DatasetError(f"{path}: the JSON nests too deeply to be a COCO file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc})") from None


class COCODataset(MultiLabelDataset):
    """Images of one COCO instances file, labelled by the categories of their annotations.

    Args:
        images_dir: the folder holding the files named by images[].file_name.
        annotations_json: instances_{split}.json.
        transform: PIL image -> tensor (default: 224 x 224, ImageNet normalisation).
        skip_bad: skip missing photos and annotations that name an unknown image or category.
    Extra attribute: category_ids, the COCO id of each class (aligned with class_names).
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        annotations_json: str | os.PathLike,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        skip_bad: bool = False,
        name: str | None = None,
    ) -> None:
        images_dir, json_path = Path(images_dir), Path(annotations_json)
        data = _load_json(json_path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
            raise DatasetError(f"{json_path}: not a COCO instances file (needs 'images' and 'categories' lists)")
        name = name or f"coco/{json_path.stem.removeprefix('instances_')}"
        try:
            categories = sorted(data["categories"], key=lambda cat: int(cat["id"]))
            category_ids = [int(cat["id"]) for cat in categories]
            class_names = [str(cat["name"]) for cat in categories]
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{json_path}: malformed 'categories' entry ({type(exc).__name__}: {exc})") from None
        if not categories:
            raise DatasetError(f"{json_path}: the 'categories' list is empty")
        repeated = sorted({cid for cid in category_ids if category_ids.count(cid) > 1})
        if repeated:  # which one would a label mean?  Not guessed: refused
            raise DatasetError(f"{json_path}: category id {repeated[0]} is listed more than once in 'categories'")
        if len(set(class_names)) != len(class_names):
            name_ = next(n for n in class_names if class_names.count(n) > 1)
            raise DatasetError(f"{json_path}: category name {name_[:60]!r} is used by two category ids")
        column = {cid: k for k, cid in enumerate(category_ids)}
        bad = BadItems(skip_bad)

        ids, paths, sizes, row_of, listed = [], [], [], {}, set()
        for entry in data["images"]:
            try:
                image_id, file_name = entry["id"], str(entry["file_name"])
                hash(image_id)
                size = (int(entry["width"]), int(entry["height"])) if "width" in entry and "height" in entry else None
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                bad.report(f"{json_path}: malformed image entry {entry!r:.120} ({type(exc).__name__}: {exc})")
                continue
            if image_id in listed:  # two photos under one id: its annotations would go to either
                bad.report(f"{json_path}: image id {str(image_id)[:40]} is listed more than once in 'images'")
                continue
            listed.add(image_id)
            if size is not None and min(size) <= 0:
                bad.report(f"{json_path}: image id {str(image_id)[:40]} has a size of {size[0]} x {size[1]} pixels")
                continue
            photo = inside(images_dir, file_name)
            if photo is None:
                bad.report(f"{json_path}: the file name of image id {str(image_id)[:40]} leaves the images folder")
                continue
            if not check_photo(photo, f"image id {image_id} in {json_path.name}", bad):
                continue
            row_of[image_id] = len(ids)
            ids.append(str(image_id))
            paths.append(photo)
            sizes.append(size)

        targets = np.zeros((len(ids), len(class_names)), np.float32)
        boxes: list[list[Box]] = [[] for _ in ids]
        for ann in data.get("annotations") or []:
            try:
                image_id, category_id = ann["image_id"], int(ann["category_id"])
            except (KeyError, TypeError, ValueError) as exc:
                bad.report(f"{json_path}: malformed annotation {ann!r:.120} ({type(exc).__name__}: {exc})")
                continue
            if category_id not in column:
                bad.report(f"{json_path}: annotation {ann.get('id')} has unknown category id {category_id}")
                continue
            row = row_of.get(image_id)
            if row is None:
                if image_id not in listed:
                    bad.report(f"{json_path}: annotation {ann.get('id')} refers to image id {image_id}, "
                               "which is not in 'images'")
                continue  # otherwise its image was skipped, and that is already reported
            k = column[category_id]
            targets[row, k] = 1.0
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError):
                continue  # the label stands without a box; boxes are only drawn, never trained on
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                bad.report(f"{json_path}: annotation {str(ann.get('id'))[:40]} has a NaN or infinite bbox")
                continue
            boxes[row].append((k, x, y, x + w, y + h, bool(ann.get("iscrowd", 0))))
        bad.finish(name, len(ids), str(json_path))

        super().__init__(
            class_names=class_names,
            ids=ids,
            image_paths=paths,
            targets=targets,
            boxes=boxes,
            transform=transform,
            name=name,
            skipped=bad.messages,
            image_sizes=sizes,
        )
        self.category_ids = category_ids
