"""Synthetic multi-label scenes in the VOC layout, for tests and quick experiments.

Each image holds 1..max_objects small shapes (15-40% of the side) at random places on a noisy,
blotchy background with grey clutter, so a model has to find the objects rather than read a global
colour statistic.  Every class is one shape with its own colour and texture.  The same seed gives
the same files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DatasetError

# Per shape: base colour (RGB in [0, 1]) and texture.  Colours are saturated so that they stand out
# from the low-saturation background; textures differ so colour alone is not the only cue.
SHAPE_STYLES: dict[str, tuple[tuple[float, float, float], str]] = {
    "circle": ((0.90, 0.15, 0.10), "solid"),
    "square": ((0.10, 0.30, 0.95), "stripes"),
    "triangle": ((0.10, 0.80, 0.20), "checker"),
    "cross": ((0.95, 0.85, 0.05), "solid"),
    "diamond": ((0.85, 0.10, 0.85), "dots"),
    "ring": ((0.05, 0.85, 0.90), "stripes"),
}
SIZE_RANGE = (0.15, 0.40)  # object side as a fraction of the image side
MAX_IOU = 0.25  # placement retries keep objects mostly visible


def _shape_mask(shape: str, size: int, x0: int, y0: int, s: int) -> np.ndarray:
    """(size, size) bool mask of one shape inside the square box (x0, y0, x0 + s, y0 + s)."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    x1, y1, cx, cy = x0 + s - 1, y0 + s - 1, x0 + s / 2, y0 + s / 2
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=255)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=255)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=255)
    elif shape == "cross":
        w = max(2, s // 3)
        draw.rectangle((x0, cy - w / 2, x1, cy + w / 2), fill=255)
        draw.rectangle((cx - w / 2, y0, cx + w / 2, y1), fill=255)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=255)
    elif shape == "ring":
        draw.ellipse((x0, y0, x1, y1), fill=255)
        t = max(2, s // 4)
        draw.ellipse((x0 + t, y0 + t, x1 - t, y1 - t), fill=0)
    return np.asarray(canvas) > 127


def _texture(kind: str, size: int, period: float, phase: float) -> np.ndarray:
    """(size, size) brightness factor in [0.55, 1] for one texture."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "stripes":
        pattern = (np.sin((yy + phase) * 2 * np.pi / period) > 0).astype(np.float32)
    elif kind == "checker":
        pattern = (((xx + phase) // (period / 2) + (yy + phase) // (period / 2)) % 2).astype(np.float32)
    elif kind == "dots":
        pattern = ((np.sin((xx + phase) * 2 * np.pi / period) * np.sin((yy + phase) * 2 * np.pi / period)) > 0.3).astype(np.float32)
    else:
        pattern = np.ones((size, size), np.float32)
    return 0.55 + 0.45 * pattern


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float image: smooth low-saturation blotches, grey clutter shapes, pixel noise."""
    coarse = rng.uniform(0.25, 0.75, (6, 6, 1)) + rng.normal(0, 0.04, (6, 6, 3))
    coarse_img = Image.fromarray((np.clip(coarse, 0, 1) * 255).astype(np.uint8), "RGB")
    image = np.asarray(coarse_img.resize((size, size), Image.BICUBIC), np.float32) / 255.0
    clutter = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(clutter)
    for _ in range(rng.integers(3, 7)):
        points = rng.uniform(0, size, (int(rng.integers(3, 6)), 2))
        draw.polygon([tuple(p) for p in points], fill=int(rng.integers(60, 200)))
    clutter_arr = np.asarray(clutter, np.float32)[..., None] / 255.0
    image = np.where(clutter_arr > 0, 0.5 * image + 0.5 * clutter_arr, image)
    return image + rng.normal(0, 0.05, image.shape).astype(np.float32)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / float(area(a) + area(b) - inter)


def render_scene(rng: np.random.Generator, size: int, classes: Sequence[str], max_objects: int):
    """One scene: (uint8 image (size, size, 3), [(class name, x0, y0, x1, y1)] tight boxes, x1/y1 exclusive)."""
    image = _background(rng, size)
    placed: list[tuple[int, int, int, int]] = []
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        name = classes[int(rng.integers(len(classes)))]
        for _attempt in range(20):
            s = int(rng.uniform(*SIZE_RANGE) * size)
            x0, y0 = int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))
            box = (x0, y0, x0 + s, y0 + s)
            if all(_iou(box, other) < MAX_IOU for other in placed):
                break
        else:
            continue  # no room left for this one
        mask = _shape_mask(name, size, x0, y0, s)
        if not mask.any():
            continue
        colour, texture = SHAPE_STYLES[name]
        shade = np.clip(np.asarray(colour) + rng.normal(0, 0.05, 3), 0, 1).astype(np.float32)
        pixels = _texture(texture, size, period=float(rng.uniform(5, 9)), phase=float(rng.uniform(0, 9)))
        image = np.where(mask[..., None], pixels[..., None] * shade, image)
        ys, xs = np.nonzero(mask)
        placed.append(box)
        objects.append((name, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    image = image + rng.normal(0, 0.03, image.shape)  # sensor noise over the objects too
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), objects


def _annotation_xml(image_id: str, size: int, objects) -> str:
    parts = [
        "<annotation>", "\t<folder>synthetic</folder>", f"\t<filename>{image_id}.jpg</filename>",
        f"\t<size>\n\t\t<width>{size}</width>\n\t\t<height>{size}</height>\n\t\t<depth>3</depth>\n\t</size>",
    ]
    for name, x0, y0, x1, y1 in objects:
        # VOC corners are 1-based and inclusive: xmin = x0 + 1, xmax = (x1 - 1) + 1.
        parts.append(
            f"\t<object>\n\t\t<name>{name}</name>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
            f"\t\t\t<xmin>{x0 + 1}</xmin>\n\t\t\t<ymin>{y0 + 1}</ymin>\n"
            f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>"
        )
    parts.append("</annotation>\n")
    return "\n".join(parts)


def make_synthetic_voc(
    out_dir: str | os.PathLike,
    num_images: int,
    image_size: int = 160,
    classes: Sequence[str] = ("circle", "square", "triangle", "cross"),
    seed: int = 0,
    max_objects: int = 3,
) -> tuple[Path, list[str]]:
    """Write `num_images` scenes as a VOC folder at out_dir; return (out_dir, class names).

    Layout: JPEGImages/{id}.jpg, Annotations/{id}.xml, ImageSets/Main/{train,val,trainval,test}.txt
    (train 50%, val 25%, test 25%, trainval = train + val) and classes.txt (one name a line).
    Read it with VOCDataset(out_dir, split, class_names=classes).  Shapes available: SHAPE_STYLES.
    """
    classes = list(classes)
    unknown = [c for c in classes if c not in SHAPE_STYLES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names from {sorted(SHAPE_STYLES)}, got {classes}")
    if num_images < 3:
        raise ValueError("num_images must be at least 3 (one per split)")
    if image_size < 32 or max_objects < 1:
        raise ValueError("image_size must be at least 32 and max_objects at least 1")
    root = Path(out_dir)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    ids = [f"{k:06d}" for k in range(num_images)]
    for image_id in ids:
        pixels, objects = render_scene(rng, image_size, classes, max_objects)
        Image.fromarray(pixels, "RGB").save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        (root / "Annotations" / f"{image_id}.xml").write_text(_annotation_xml(image_id, image_size, objects))

    order = [ids[k] for k in rng.permutation(num_images)]
    n_val = n_test = max(1, round(0.25 * num_images))
    n_train = num_images - n_val - n_test
    splits = {"train": sorted(order[:n_train]), "val": sorted(order[n_train:n_train + n_val]),
              "test": sorted(order[n_train + n_val:])}
    splits["trainval"] = sorted(splits["train"] + splits["val"])
    for split, split_ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    return root, classes


def read_class_names(root: str | os.PathLike) -> list[str]:
    """The class names make_synthetic_voc wrote to root/classes.txt."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise DatasetError(f"{path}: not found (is {root} a dataset written by make_synthetic_voc?)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def make_synthetic_folder(
    out_dir: str | os.PathLike,
    num_images: int,
    image_size: int = 96,
    classes: Sequence[str] = ("circle", "square", "triangle"),
    seed: int = 0,
    max_objects: int = 2,
    labels_format: str = "csv",
) -> tuple[Path, list[str]]:
    """Write `num_images` scenes as an image folder with labels.csv (`image,labels`, labels joined by
    ';') or labels.json ({image: [labels]}), the layout `FolderDataset` and the Train page read."""
    classes = list(classes)
    unknown = [c for c in classes if c not in SHAPE_STYLES]
    if unknown or not classes:
        raise ValueError(f"classes must be names from {sorted(SHAPE_STYLES)}, got {classes}")
    if labels_format not in ("csv", "json"):
        raise ValueError(f"labels_format must be 'csv' or 'json', got {labels_format!r}")
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels: dict[str, list[str]] = {}
    for k in range(num_images):
        pixels, objects = render_scene(rng, image_size, classes, max_objects)
        name = f"images/{k:05d}.jpg"
        Image.fromarray(pixels, "RGB").save(root / name, quality=90)
        labels[name] = sorted({obj[0] for obj in objects})
    if labels_format == "csv":
        (root / "labels.csv").write_text("image,labels\n" + "".join(f"{n},{';'.join(v)}\n" for n, v in labels.items()))
    else:
        import json

        (root / "labels.json").write_text(json.dumps(labels, indent=1))
    return root, classes
