"""A folder of images plus a labels file (CSV or JSON), for a user's own data.

Accepted labels files (image paths are relative to the folder):

* CSV with a header `image,labels`: labels separated by `;` (names may then hold spaces) or, when
  there is no `;`, by spaces.  An empty labels cell is an all-negative image.
* CSV with a header `image,<class 1>,<class 2>,...` and 0/1 in each class column.
* JSON `{"a.jpg": ["cat", "dog"], ...}` (a string value is split like the CSV labels cell), or
  `[{"image": "a.jpg", "labels": ["cat", "dog"]}, ...]`.

The image column may also be called filename, file or path; the labels column label or tags.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError
from .base import BadItems, MultiLabelDataset, check_photo, inside

IMAGE_COLUMNS = ("image", "filename", "file", "path")
LABEL_COLUMNS = ("labels", "label", "tags")
DEFAULT_LABEL_FILES = ("labels.csv", "labels.json")
LABEL_SUFFIXES = (".csv", ".tsv", ".json")  # a labels file is one of these: never any other file on the disk
_TRUE = {"1", "1.0", "true", "yes", "y"}
_FALSE = {"0", "0.0", "false", "no", "n", "", "-1"}

# One row of a labels file: (image path relative to the folder, label names, where it came from).
Row = tuple[str, list[str], str]


def split_labels(text: str) -> list[str]:
    """'cat; dog' -> ['cat', 'dog']; 'cat dog' -> ['cat', 'dog'] (spaces only split without ';')."""
    parts = text.split(";") if ";" in text else text.split()
    return [p.strip() for p in parts if p.strip()]


def _read_text(path: Path) -> str:
    if path.suffix.lower() not in LABEL_SUFFIXES:
        raise DatasetError(f"{path}: a labels file is a {', '.join(LABEL_SUFFIXES)} file")
    if not path.is_file():
        raise DatasetError(f"{path}: labels file not found")
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often write a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the labels file ({exc})") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _pick(header: list[str], names: Sequence[str]) -> int | None:
    for k, column in enumerate(header):
        if column in names:
            return k
    return None


def read_csv_rows(path: Path, bad: BadItems) -> tuple[list[Row], list[str] | None]:
    """Rows of a CSV labels file, and the class columns when it has one column per class."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # (line number where the record starts, record): quoted fields may span lines, blank lines are
    # skipped, and every message names the line a user sees in an editor
    table: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(_read_text(path)), delimiter=delimiter, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            hint = " (a quote that is never closed?)" if "end of data" in str(exc) or '"' in str(exc) else ""
            raise DatasetError(f"{path}, line {start}: cannot parse the CSV{hint}") from None
        if any(c.strip() for c in record):
            table.append((start, record))
    if not table:
        raise DatasetError(f"{path}: the labels file is empty")
    header_line, first = table[0]
    header = [c.strip().lower() for c in first]
    image_col = _pick(header, IMAGE_COLUMNS)
    if image_col is None:
        raise DatasetError(f"{path}, line {header_line}: the first row must be a header naming the image column "
                           f"('image,labels' or 'image,<class>,...'); it has {len(first)} column(s) and none is "
                           f"called {', '.join(IMAGE_COLUMNS)}")
    label_col = _pick(header, LABEL_COLUMNS) if len(header) == 2 else None
    class_cols = None if label_col is not None else [k for k in range(len(header)) if k != image_col]
    rows: list[Row] = []
    for line, record in table[1:]:
        where = f"{path}, line {line}"
        record = [c.strip() for c in record]
        if len(record) != len(header) or not record[image_col]:
            bad.report(f"{where}: expected {len(header)} columns with an image name, got {len(record)} column(s)"
                       + ("" if len(record) != len(header) else " and no image name"))
            continue
        if class_cols is None:
            rows.append((record[image_col], split_labels(record[label_col]), where))
            continue
        labels, ok = [], True
        for k in class_cols:
            value = record[k].lower()
            if value not in _TRUE | _FALSE:
                bad.report(f"{where}: column {first[k].strip()[:40]!r} must be 0 or 1, got {record[k][:20]!r}")
                ok = False
                break
            if value in _TRUE:
                labels.append(first[k].strip())
        if ok:
            rows.append((record[image_col], labels, where))
    columns = [first[k].strip() for k in class_cols] if class_cols is not None else None
    return rows, columns


def read_json_rows(path: Path, bad: BadItems) -> list[Row]:
    """Rows of a JSON labels file (a mapping image -> labels, or a list of records)."""
    try:
        data: Any = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: cannot parse the JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})") from None
    except RecursionError:
        raise DatasetError(f"{path}: the JSON nests too deeply to be a labels file") from None
    if isinstance(data, dict):
        items = [(image, labels, f"{path}, key {image!r}") for image, labels in data.items()]
    elif isinstance(data, list):
        items = []
        for k, record in enumerate(data):
            where = f"{path}, item {k}"
            if not isinstance(record, dict):
                bad.report(f"{where}: expected an object with 'image' and 'labels', got {_kind(record)}")
                continue
            image_key, label_key = _pick(list(record), IMAGE_COLUMNS), _pick(list(record), LABEL_COLUMNS)
            if image_key is None:
                bad.report(f"{where}: no 'image' field")
                continue
            keys = list(record)
            items.append((record[keys[image_key]], record[keys[label_key]] if label_key is not None else [], where))
    else:
        raise DatasetError(f"{path}: expected a JSON object or list, got {type(data).__name__}")
    rows: list[Row] = []
    for image, labels, where in items:
        if isinstance(labels, str):
            labels = split_labels(labels)
        if not isinstance(image, str) or not image or not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            bad.report(f"{where}: expected an image name and a list of label names")
            continue
        rows.append((image, [x.strip() for x in labels if x.strip()], where))
    return rows


def find_labels_file(root: Path, labels_file: str | os.PathLike | None) -> Path:
    """labels_file as given or relative to root; None: labels.csv or labels.json in root."""
    if labels_file is None:
        for candidate in DEFAULT_LABEL_FILES:
            if (root / candidate).is_file():
                return root / candidate
        raise DatasetError(f"{root}: no labels file given and neither {' nor '.join(DEFAULT_LABEL_FILES)} found")
    path = Path(labels_file)
    if not path.is_absolute() and not path.is_file():
        path = root / path
    return path


class FolderDataset(MultiLabelDataset):
    """Images under `root` labelled by a CSV or JSON file (formats in the module docstring).

    Args:
        root: the image folder.
        labels_file: path (absolute, or relative to root); None: labels.csv or labels.json in root.
        class_names: the label set and column order; None: the sorted union of the labels found.
            With class_names given, any other label is an error (unknown class).
        transform: PIL image -> tensor (default: 224 x 224, ImageNet normalisation).
        skip_bad: skip bad rows and missing photos instead of raising.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        labels_file: str | os.PathLike | None = None,
        class_names: Sequence[str] | None = None,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        skip_bad: bool = False,
        name: str | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: image folder not found")
        path = find_labels_file(root, labels_file)
        name = name or f"folder:{root.name}/{path.name}"
        bad = BadItems(skip_bad)
        if path.suffix.lower() == ".json":
            rows, columns = read_json_rows(path, bad), None
        else:
            rows, columns = read_csv_rows(path, bad)

        if class_names is None:
            class_names = columns if columns is not None else sorted({label for _, labels, _ in rows for label in labels})
        class_names = list(class_names)
        if not class_names:
            raise DatasetError(f"{path}: no class names: no labels found and none given")
        column = {c: k for k, c in enumerate(class_names)}

        ids, paths, targets, seen = [], [], [], set()
        for image, labels, where in rows:
            unknown = sorted(set(labels) - column.keys())
            if unknown:
                bad.report(f"{where}: unknown class name(s) {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(class_names)})")
                continue
            if image in seen:
                bad.report(f"{where}: image {image!r} is listed twice")
                continue
            photo = inside(root, image)
            if photo is None:
                bad.report(f"{where}: the image path leaves the dataset folder (an absolute path or '..')")
                continue
            if not check_photo(photo, where, bad):
                continue
            seen.add(image)
            target = np.zeros(len(class_names), np.float32)
            target[[column[label] for label in labels]] = 1.0
            ids.append(image)
            paths.append(photo)
            targets.append(target)
        bad.finish(name, len(ids), str(path))

        super().__init__(
            class_names=class_names,
            ids=ids,
            image_paths=paths,
            targets=np.stack(targets),
            transform=transform,
            name=name,
            skipped=bad.messages,
        )
        self.labels_file = path
