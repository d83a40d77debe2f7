"""PASCAL VOC in the devkit layout: VOCdevkit/VOC2007/{Annotations, ImageSets/Main, JPEGImages}.

Labels follow the devkit's classification task: an image is positive for a class when it holds at
least one non-difficult object of that class.  A class present only as difficult objects is left out
of evaluation for that image (mask 0); `difficult=` says what training does with it.

Boxes are converted from VOC's 1-based inclusive corners to 0-based corners with x1/y1 exclusive
(x0 = xmin - 1, x1 = xmax), the convention of base.Box.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError
from .base import BadItems, Box, MultiLabelDataset, check_photo, is_plain_name
from .classes import VOC_CLASSES

DIFFICULT_MODES = ("ignore", "positive", "negative")


@dataclass
class VOCObject:
    """One annotated object; corners in pixels, 0-based, x1/y1 exclusive (None: no bndbox given)."""

    name: str
    difficult: bool
    box: tuple[float, float, float, float] | None


@dataclass
class VOCAnnotation:
    """One Annotations/{id}.xml: the image size (None where missing or zero) and its objects."""

    id: str
    filename: str | None
    width: int | None
    height: int | None
    objects: list[VOCObject] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Classes with at least one non-difficult object (the devkit's positives), sorted."""
        return sorted({o.name for o in self.objects if not o.difficult})

    @property
    def difficult_only_labels(self) -> list[str]:
        """Classes present only as difficult objects (the devkit leaves these out), sorted."""
        return sorted({o.name for o in self.objects} - set(self.labels))


def find_voc_dir(root: str | os.PathLike, year: int | str | None = None) -> Path:
    """The VOC folder (the one holding Annotations/ and ImageSets/) under `root`.

    `root` may be that folder itself, a folder holding VOC2007/ or VOC2012/, or one holding
    VOCdevkit/VOC20xx/.  With year=None and several years present, VOC2007 wins.
    """
    root = Path(root)
    if (root / "Annotations").is_dir() and year is None:
        return root
    parents = [root, root / "VOCdevkit"]
    years = [str(year)] if year is not None else ["2007", "2012"]
    for y in years:
        for parent in parents:
            if (parent / f"VOC{y}" / "Annotations").is_dir():
                return parent / f"VOC{y}"
    if year is None:
        # Any other VOC-style folder (a different year, or a renamed copy) when there is exactly one.
        found = [p for parent in parents if parent.is_dir() for p in sorted(parent.iterdir())
                 if (p / "Annotations").is_dir()]
        if len(found) == 1:
            return found[0]
    if (root / "Annotations").is_dir():
        return root
    wanted = f"VOC{year}" if year is not None else "VOC20xx"
    raise DatasetError(
        f"{root}: no VOC dataset found: expected Annotations/ in {wanted}/ or VOCdevkit/{wanted}/ "
        "under it (or in the folder itself)"
    )


def read_ids(path: Path) -> list[str]:
    """Image ids from an ImageSets file: the first word of each non-blank line."""
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.txt") if "_" not in p.stem) if path.parent.is_dir() else []
        hint = f" (splits there: {', '.join(available)})" if available else ""
        raise DatasetError(f"{path}: split file not found{hint}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the split file ({exc})") from None
    ids = [line.split()[0] for line in lines if line.strip()]
    if not ids:
        raise DatasetError(f"{path}: the split is empty (no image ids)")
    return ids


def _number(obj: ET.Element, tag: str) -> float | None:
    text = obj.findtext(tag)
    if text is None or not text.strip():
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"<{tag}> is not a finite number")
    return value


def parse_voc_xml(path: Path, image_id: str | None = None) -> VOCAnnotation:
    """Read one annotation file; DatasetError naming the file if it is missing or broken."""
    image_id = image_id or path.stem
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(f"{path}: cannot parse the annotation XML ({exc})") from None
    node = tree.getroot()
    try:
        size = node.find("size")
        width = height = None
        if size is not None:
            w, h = _number(size, "width"), _number(size, "height")
            # Some VOC2012 files give a size of 0; treat it as unknown rather than as a real size.
            width = int(w) if w else None
            height = int(h) if h else None
        objects = []
        for obj in node.iter("object"):
            name = (obj.findtext("name") or "").strip()
            if not name:
                raise ValueError("an <object> without a <name>")
            difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true", "True")
            box = None
            bndbox = obj.find("bndbox")
            if bndbox is not None:
                corners = [_number(bndbox, t) for t in ("xmin", "ymin", "xmax", "ymax")]
                if None in corners:
                    raise ValueError(f"object {name!r} has an incomplete <bndbox>")
                xmin, ymin, xmax, ymax = corners
                box = (xmin - 1.0, ymin - 1.0, xmax, ymax)
            objects.append(VOCObject(name=name, difficult=difficult, box=box))
    except ValueError as exc:
        raise DatasetError(f"{path}: malformed annotation ({exc})") from None
    return VOCAnnotation(id=image_id, filename=node.findtext("filename"), width=width, height=height, objects=objects)


def _resolve_ids_file(voc_dir: Path, ids_file: str | os.PathLike) -> Path:
    """ids_file as given, else relative to the VOC folder, else a split name under ImageSets/Main."""
    candidates = [Path(ids_file), voc_dir / ids_file, voc_dir / "ImageSets" / "Main" / ids_file,
                  voc_dir / "ImageSets" / "Main" / f"{ids_file}.txt"]
    for path in candidates:
        if path.is_file():
            return path
    return candidates[1]


def read_voc_annotations(
    root: str | os.PathLike,
    ids_file: str | os.PathLike,
    year: int | str | None = None,
    skip_bad: bool = False,
) -> dict[str, VOCAnnotation]:
    """Every annotation listed in `ids_file`, keyed by id in file order; the photos are not needed.

    For statistics over annotations that have no photo here, e.g.
    read_voc_annotations(".../VOCdevkit", "ImageSets/Main_all_annotated/trainval.txt").
    `ids_file` is a path, a path relative to the VOC folder, or a split name under ImageSets/Main.
    With skip_bad=True a broken file is left out with a warning instead of raising.
    """
    voc_dir = find_voc_dir(root, year)
    ids = read_ids(_resolve_ids_file(voc_dir, ids_file))
    bad = BadItems(skip_bad)
    annotations: dict[str, VOCAnnotation] = {}
    for image_id in ids:
        try:
            annotations[image_id] = parse_voc_xml(voc_dir / "Annotations" / f"{image_id}.xml", image_id)
        except DatasetError as exc:
            bad.report(str(exc))
    bad.finish(f"{voc_dir.name} annotations", len(annotations), str(voc_dir))
    return annotations


class VOCDataset(MultiLabelDataset):
    """One split of a VOC-layout dataset.

    Args:
        root: the VOC folder, or a folder holding VOC2007/, VOC2012/ or VOCdevkit/ (see find_voc_dir).
        split: "train", "val", "trainval", "test": ImageSets/Main/{split}.txt.
        year: 2007 or 2012 when root holds several.
        transform: PIL image -> tensor (default: 224 x 224, ImageNet normalisation).
        difficult: how training treats a class present only as difficult objects:
            "ignore" (target 0, mask 0; the devkit's evaluation rule), "positive" (target 1, mask 1)
            or "negative" (target 0, mask 1).  eval_masks always follows the devkit.
        skip_bad: skip images whose annotation or photo is missing or broken, instead of raising.
        ids_file: read the ids from this file instead of ImageSets/Main/{split}.txt.
        class_names: the label set (default: the 20 VOC classes); any other name is an error.

    Extra attributes: voc_dir, split, difficult, difficult_only ((N, C) bool).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "trainval",
        year: int | str | None = None,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        difficult: str = "ignore",
        skip_bad: bool = False,
        ids_file: str | os.PathLike | None = None,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        if difficult not in DIFFICULT_MODES:
            raise ValueError(f"difficult must be one of {DIFFICULT_MODES}, got {difficult!r}")
        class_names = list(class_names) if class_names is not None else list(VOC_CLASSES)
        class_index = {c: k for k, c in enumerate(class_names)}
        voc_dir = find_voc_dir(root, year)
        if ids_file is None and not is_plain_name(split):
            raise DatasetError(f"{split[:60]!r} is not a split name (a name such as trainval or test, without "
                               "folders)")
        ids_path = _resolve_ids_file(voc_dir, ids_file) if ids_file is not None else voc_dir / "ImageSets" / "Main" / f"{split}.txt"
        name = name or f"{voc_dir.name.lower()}/{split}"
        bad = BadItems(skip_bad)

        kept: list[tuple[VOCAnnotation, Path]] = []
        for line, image_id in enumerate(read_ids(ids_path), 1):
            if not is_plain_name(image_id):  # an id is a file name: one with folders would leave the dataset
                bad.report(f"{ids_path}: image id number {line} is not a plain file name")
                continue
            xml_path = voc_dir / "Annotations" / f"{image_id}.xml"
            try:
                ann = parse_voc_xml(xml_path, image_id)
            except DatasetError as exc:
                bad.report(str(exc))
                continue
            unknown = sorted({o.name for o in ann.objects} - class_index.keys())
            if unknown:
                bad.report(f"{xml_path}: unknown class name(s) {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(class_names)})")
                continue
            photo = voc_dir / "JPEGImages" / f"{image_id}.jpg"
            if not photo.is_file() and ann.filename and is_plain_name(ann.filename):
                photo = voc_dir / "JPEGImages" / ann.filename  # e.g. a .png named in <filename>
            if check_photo(photo, f"{xml_path.name}", bad):
                kept.append((ann, photo))
        bad.finish(name, len(kept), str(ids_path))

        n, c = len(kept), len(class_names)
        present = np.zeros((n, c), bool)  # at least one non-difficult object
        any_object = np.zeros((n, c), bool)
        boxes: list[list[Box]] = []
        for i, (ann, _) in enumerate(kept):
            image_boxes = []
            for obj in ann.objects:
                k = class_index[obj.name]
                any_object[i, k] = True
                present[i, k] |= not obj.difficult
                if obj.box is not None:
                    image_boxes.append((k, *obj.box, obj.difficult))
            boxes.append(image_boxes)
        difficult_only = any_object & ~present

        targets = present | (difficult_only if difficult == "positive" else False)
        masks = np.ones((n, c), np.float32)
        if difficult == "ignore":
            masks[difficult_only] = 0.0
        eval_masks = (~difficult_only).astype(np.float32)

        super().__init__(
            class_names=class_names,
            ids=[ann.id for ann, _ in kept],
            image_paths=[photo for _, photo in kept],
            targets=targets.astype(np.float32),
            masks=masks,
            boxes=boxes,
            transform=transform,
            name=name,
            skipped=bad.messages,
            image_sizes=[(ann.width, ann.height) if ann.width and ann.height else None for ann, _ in kept],
            eval_masks=eval_masks,
        )
        self.voc_dir = voc_dir
        self.split = split
        self.difficult = difficult
        self.difficult_only = difficult_only
