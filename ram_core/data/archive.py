"""Unpacking an uploaded zip of photos plus a labels file, safely, into a folder dataset.

A zip from a browser is untrusted.  unpack_dataset_zip:
  * writes only below its destination: absolute names, '..' parts, drive letters and symbolic links
    are refused, and every final path is checked to lie inside the destination;
  * limits the number of files, each file's size and the total size, counting the bytes actually
    decompressed (not the sizes the archive claims), and refuses members compressed more than
    MAX_RATIO times (zip bombs) and encrypted members;
  * keeps only images and labels files (.csv/.tsv/.json), and decodes every image with
    ram_core.imageio (truncated files, non-images and decompression bombs are left out and listed);
  * unpacks into a temporary folder renamed when complete, named by the archive's SHA-256, so the
    same upload is unpacked once and a half-written folder is never used.
The dataset's root is the folder of the shallowest labels.csv / labels.json (or, without one, of the
shallowest .csv/.json), so a zip of a folder works as well as a zip of its contents.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from ..errors import DatasetError, ImageReadError
from ..imageio import open_image
from .folder import DEFAULT_LABEL_FILES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
LABEL_SUFFIXES = {".csv", ".tsv", ".json"}
MAX_FILES = 50_000
MAX_FILE_BYTES = 64 * 2**20  # one photo or labels file
MAX_TOTAL_BYTES = 4 * 2**30
MAX_RATIO = 100  # photos hardly compress; a member that shrank 100 times is a bomb
DONE_FILE = ".unpacked.json"
_CHUNK = 2**20


@dataclass
class UnpackedDataset:
    """What an upload became: `root` holds the labels file; `skipped` says what was left out."""

    root: Path
    labels_file: Path
    images: int
    skipped: list[str] = field(default_factory=list)
    ignored: int = 0  # files that are neither photos nor labels files (read-me's, __MACOSX, ...)
    digest: str = ""


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n)} bytes"


def _safe_name(name: str) -> PurePosixPath | None:
    """The member's path inside the destination, or None when it must not be written."""
    name = name.replace("\\", "/")
    if not name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\0" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return PurePosixPath(*parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """The member's bytes, counted as they are decompressed: never more than its declared size,
    MAX_FILE_BYTES or what is left of the total budget."""
    limit = min(info.file_size, MAX_FILE_BYTES, budget)
    out = io.BytesIO()
    with archive.open(info) as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            if out.tell() + len(chunk) > limit:
                raise DatasetError(f"{info.filename}: more data than the archive declares or the limits allow "
                                   f"({_size(MAX_FILE_BYTES)} a file, {_size(MAX_TOTAL_BYTES)} in all)")
            out.write(chunk)
    return out.getvalue()


def _labels_root(label_files: list[PurePosixPath]) -> PurePosixPath:
    preferred = [p for p in label_files if p.name.lower() in DEFAULT_LABEL_FILES] or label_files
    best = min(preferred, key=lambda p: (len(p.parts), str(p)))
    return best.parent


def unpack_dataset_zip(
    source: bytes | str | os.PathLike,
    dest_root: str | os.PathLike,
    *,
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    progress: Callable[[int, int], None] | None = None,
) -> UnpackedDataset:
    """Unpack an uploaded zip (bytes or a path) into dest_root/<sha256 prefix>/ (see the module
    docstring); returns where the dataset is.  A DatasetError says why an archive is refused."""
    blob = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()[:16]
    dest_root = Path(dest_root)
    dest = dest_root / digest
    done = dest / DONE_FILE
    if done.is_file():  # the same upload again: reuse it
        saved = json.loads(done.read_text())
        return UnpackedDataset(**{**saved, "root": dest / saved["root"], "labels_file": dest / saved["labels_file"]})

    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"the upload is not a readable zip archive ({exc})") from None
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        if len(members) > max_files:
            raise DatasetError(f"the archive holds {len(members):,} files; at most {max_files:,} are accepted")
        declared = sum(i.file_size for i in members)
        if declared > max_total_bytes:
            raise DatasetError(f"the archive unpacks to {_size(declared)}; at most {_size(max_total_bytes)} "
                               "are accepted")
        wanted: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        skipped: list[str] = []
        ignored = 0
        for info in members:
            path = _safe_name(info.filename)
            if path is None or _is_symlink(info):
                raise DatasetError(f"the archive is refused: {info.filename!r} would be written outside its "
                                   "folder (an absolute path, '..', or a link)")
            if info.flag_bits & 0x1:
                raise DatasetError(f"{info.filename}: encrypted archives are not accepted")
            if info.file_size > MAX_FILE_BYTES:
                raise DatasetError(f"{info.filename}: {_size(info.file_size)} is more than the "
                                   f"{_size(MAX_FILE_BYTES)} allowed for one file")
            if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(1, info.compress_size):
                raise DatasetError(f"{info.filename}: compressed {info.file_size // max(1, info.compress_size)} "
                                   "times, refused as a likely zip bomb")
            suffix = path.suffix.lower()
            hidden = any(p.startswith(".") or p == "__MACOSX" for p in path.parts)
            if hidden or suffix not in IMAGE_SUFFIXES | LABEL_SUFFIXES:
                ignored += 1
                continue
            wanted.append((info, path))
        label_files = [p for _, p in wanted if p.suffix.lower() in LABEL_SUFFIXES]
        if not label_files:
            raise DatasetError("the archive holds no labels file: add labels.csv or labels.json next to the photos "
                               "(the README's 'Your own photos' section shows the format)")

        tmp = dest_root / f".{digest}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        base = tmp.resolve()
        try:
            budget, images = max_total_bytes, 0
            for k, (info, path) in enumerate(wanted, start=1):
                data = _read_member(archive, info, budget)
                budget -= len(data)
                target = (tmp / path).resolve()
                if base not in target.parents:
                    raise DatasetError(f"the archive is refused: {info.filename!r} would be written outside its folder")
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    try:
                        open_image(data, str(path))
                    except ImageReadError as exc:
                        skipped.append(str(exc))
                        continue
                    images += 1
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                if progress:
                    progress(k, len(wanted))
            if images == 0:
                raise DatasetError("the archive holds no readable photo" + (f" ({skipped[0]})" if skipped else ""))
            root = _labels_root(label_files)
            labels = next((root / n for n in DEFAULT_LABEL_FILES if (tmp / root / n).is_file()),
                          min((p for p in label_files if p.parent == root), key=str))
            result = UnpackedDataset(Path(root), Path(labels), images, skipped, ignored, digest)
            (tmp / DONE_FILE).write_text(json.dumps({**asdict(result), "root": str(root), "labels_file": str(labels)}))
            shutil.rmtree(dest, ignore_errors=True)  # an earlier attempt that never completed
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return UnpackedDataset(dest / result.root, dest / result.labels_file, images, skipped, ignored, digest)
