"""The one dataset type every source (VOC, COCO, a folder, synthetic scenes) is turned into.

A dataset is a list of image files with a multi-hot target and an evaluation mask per image, plus the
boxes the source gives (for figures only; training never reads them).  Photos are checked to exist
when the dataset is built, and decoded only when an item is read.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError, ImageReadError
from ..imageio import open_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224

# (class index, x0, y0, x1, y1, difficult): pixel coordinates with the origin at the top-left corner
# of the image, x1/y1 exclusive (so x1 - x0 is the width), as COCO's [x, y, w, h] gives them.
Box = tuple[int, float, float, float, float, bool]


def default_transform(img: Image.Image) -> torch.Tensor:
    """Resize to 224 x 224 and normalise with ImageNet's mean/std: a (3, 224, 224) float tensor."""
    img = img.convert("RGB").resize((DEFAULT_SIZE, DEFAULT_SIZE), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels - mean) / std


class BadItems:
    """Collects the problems found while building a dataset: raise at once, or skip and report.

    With skip_bad=False the first problem raises DatasetError; with skip_bad=True each problem is kept
    as a message, and finish() warns once with the count.  An empty dataset is an error either way.
    """

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.messages: list[str] = []

    def report(self, message: str) -> None:
        if not self.skip_bad:
            raise DatasetError(message)
        self.messages.append(message)

    def finish(self, dataset_name: str, num_kept: int, source: str) -> None:
        if num_kept == 0:
            detail = f"; {len(self.messages)} item(s) skipped, the first: {self.messages[0]}" if self.messages else ""
            raise DatasetError(f"{source}: no usable images in {dataset_name}{detail}")
        if self.messages:
            warnings.warn(
                f"{dataset_name}: skipped {len(self.messages)} bad item(s) (see dataset.skipped); "
                f"the first: {self.messages[0]}",
                stacklevel=3,
            )


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+ -]{0,199}")


def is_plain_name(name: str) -> bool:
    """A split name or a VOC image id: a file name without folders (nothing that can leave a folder)."""
    return isinstance(name, str) and bool(_PLAIN_NAME.fullmatch(name)) and ".." not in name


def inside(root: Path, relative: str) -> Path | None:
    """root / relative, normalised, when it stays inside root; else None: a labels row or an annotation
    that names `../../etc/passwd` or an absolute path leaves the dataset.  The check is on the path as
    written (symbolic links inside the folder are its owner's choice, e.g. photos linked from a shared
    store); callers open the normalised path returned, so what was checked is what is opened."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or os.path.isabs(relative):
        return None
    base = os.path.normpath(os.path.abspath(root))
    path = os.path.normpath(os.path.join(base, relative))
    return Path(path) if path.startswith(base + os.sep) else None


def check_photo(path: Path, item: str, bad: BadItems) -> bool:
    """True when the photo exists; otherwise report it (cheap: no decoding)."""
    if os.path.isfile(path):
        return True
    bad.report(f"{path}: photo not found (for {item})")
    return False


class MultiLabelDataset(torch.utils.data.Dataset):
    """Images with multi-hot targets.  Item i is (image (3, H, W), target (C,), mask (C,), i).

    Attributes:
        class_names: C names, the order of the target columns.
        ids: N image ids (file stem for VOC, image id for COCO, relative path for a folder).
        image_paths: N paths.
        targets: (N, C) float32 in {0, 1}.
        masks: (N, C) float32; 0 where a label is left out (of the loss and of evaluation), 1 otherwise.
        eval_masks: (N, C) float32; the mask evaluation must use.  Equal to masks except for VOC with
            difficult="positive"/"negative", where it keeps the devkit's rule (difficult-only
            classes left out) whatever training does with them.
        boxes: N lists of Box (empty where the source has none).
        image_sizes: N (width, height) from the annotations, or None where the source has none.
        skipped: messages for the items left out because they were bad (skip_bad=True).
        name: a short label such as "voc2007/val".
    """

    def __init__(
        self,
        class_names: Sequence[str],
        ids: Sequence[str],
        image_paths: Sequence[str | os.PathLike],
        targets: np.ndarray,
        masks: np.ndarray | None = None,
        boxes: Sequence[list[Box]] | None = None,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        name: str = "dataset",
        skipped: Sequence[str] = (),
        image_sizes: Sequence[tuple[int, int] | None] | None = None,
        eval_masks: np.ndarray | None = None,
    ) -> None:
        n, c = len(ids), len(class_names)
        self.class_names = list(class_names)
        self.ids = list(ids)
        self.image_paths = [Path(p) for p in image_paths]
        self.targets = np.asarray(targets, dtype=np.float32).reshape(n, c)
        self.masks = np.ones((n, c), np.float32) if masks is None else np.asarray(masks, np.float32).reshape(n, c)
        self.eval_masks = self.masks if eval_masks is None else np.asarray(eval_masks, np.float32).reshape(n, c)
        self.boxes = [list(b) for b in boxes] if boxes is not None else [[] for _ in range(n)]
        self.image_sizes = list(image_sizes) if image_sizes is not None else [None] * n
        self.transform = transform or default_transform
        self.name = name
        self.skipped = list(skipped)
        if not (len(self.image_paths) == len(self.boxes) == len(self.image_sizes) == n):
            raise ValueError("ids, image_paths, boxes and image_sizes must have the same length")
        if len(set(self.class_names)) != c:
            raise ValueError("class_names has duplicates")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, i: int) -> Image.Image:
        """Photo i as an upright 8-bit RGB PIL image; DatasetError naming the file if it cannot be read."""
        try:
            return open_image(self.image_paths[i])
        except ImageReadError as exc:
            raise DatasetError(f"{self.name}, image {self.ids[i]!r}: {exc}") from None

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        image = self.transform(self.image(i))
        return image, torch.from_numpy(self.targets[i]), torch.from_numpy(self.masks[i]), i

    def labels(self, i: int) -> list[str]:
        """The names of the positive classes of image i."""
        return [self.class_names[c] for c in np.flatnonzero(self.targets[i] > 0.5)]

    def positives_per_class(self) -> dict[str, int]:
        """Images counted as positive for each class (mask 1 and target 1)."""
        counts = ((self.targets > 0.5) & (self.masks > 0)).sum(axis=0)
        return {name: int(k) for name, k in zip(self.class_names, counts)}

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> "MultiLabelDataset":
        """A new dataset with items `indices` (in that order), sharing the transform."""
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1)]
        return MultiLabelDataset(
            class_names=self.class_names,
            ids=[self.ids[i] for i in idx],
            image_paths=[self.image_paths[i] for i in idx],
            targets=self.targets[idx],
            masks=self.masks[idx],
            boxes=[self.boxes[i] for i in idx],
            transform=self.transform,
            name=name or f"{self.name}[{len(idx)} of {len(self)}]",
            image_sizes=[self.image_sizes[i] for i in idx],
            eval_masks=self.eval_masks[idx],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {self.num_classes} classes)"
