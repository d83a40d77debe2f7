"""An uploaded zip of photos and a labels file is unpacked safely into a folder dataset."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from ram_core.data import FolderDataset
from ram_core.data.archive import unpack_dataset_zip
from ram_core.errors import DatasetError


def jpeg(seed: int = 0, size=(40, 32)) -> bytes:
    arr = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def make_zip(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


def test_a_zipped_folder_becomes_a_folder_dataset_and_bad_photos_are_left_out(tmp_path):
    blob = make_zip({
        "shapes/labels.csv": b"image,labels\na.jpg,cat\nsub/b.jpg,dog;cat\n",
        "shapes/a.jpg": jpeg(1), "shapes/sub/b.jpg": jpeg(2),
        "shapes/cut.jpg": jpeg(3)[:300],  # truncated: left out and named
        "shapes/notes.txt": b"not a photo", "__MACOSX/shapes/._a.jpg": b"resource fork",
    })
    got = unpack_dataset_zip(blob, tmp_path / "uploads")
    assert got.root.name == "shapes" and got.labels_file.name == "labels.csv" and got.images == 2
    assert len(got.skipped) == 1 and "cut.jpg" in got.skipped[0] and "truncated" in got.skipped[0]
    assert got.ignored == 2 and not (got.root / "notes.txt").exists()
    ds = FolderDataset(got.root)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 2
    # the same upload again is not unpacked twice
    again = unpack_dataset_zip(blob, tmp_path / "uploads")
    assert again.root == got.root and again.skipped == got.skipped
    assert [p.name for p in (tmp_path / "uploads").iterdir()] == [got.digest]


@pytest.mark.parametrize("name", ["../evil.jpg", "/etc/evil.jpg", "a/../../evil.jpg", "C:/evil.jpg", "..\\evil.jpg"])
def test_a_member_that_would_land_outside_is_refused_and_nothing_is_written(tmp_path, name):
    blob = make_zip({"labels.csv": b"image,labels\na.jpg,cat\n", "a.jpg": jpeg(), name: jpeg(2)})
    with pytest.raises(DatasetError, match="outside its folder"):
        unpack_dataset_zip(blob, tmp_path / "uploads")
    assert not (tmp_path / "evil.jpg").exists()
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def test_a_symbolic_link_is_refused(tmp_path):
    blob = make_zip({"labels.csv": b"image,labels\na.jpg,cat\n", "a.jpg": jpeg()}, symlinks={"b.jpg": "/etc/passwd"})
    with pytest.raises(DatasetError, match="a link"):
        unpack_dataset_zip(blob, tmp_path / "uploads")


def test_limits_on_files_sizes_and_compression(tmp_path):
    files = {"labels.csv": b"image,labels\n", **{f"{k}.jpg": jpeg(k) for k in range(5)}}
    with pytest.raises(DatasetError, match="holds 6 files; at most 3"):
        unpack_dataset_zip(make_zip(files), tmp_path / "u", max_files=3)
    with pytest.raises(DatasetError, match=r"unpacks to .* KiB; at most 1000 bytes"):
        unpack_dataset_zip(make_zip(files), tmp_path / "u", max_total_bytes=1000)
    bomb = make_zip({"labels.csv": b"image,labels\n", "zeros.png": bytes(8 * 2**20)})
    with pytest.raises(DatasetError, match="zip bomb"):
        unpack_dataset_zip(bomb, tmp_path / "u")


def test_an_archive_without_labels_or_photos_or_not_a_zip_gets_a_message(tmp_path):
    with pytest.raises(DatasetError, match="no labels file"):
        unpack_dataset_zip(make_zip({"a.jpg": jpeg()}), tmp_path / "u")
    with pytest.raises(DatasetError, match="no readable photo"):
        unpack_dataset_zip(make_zip({"labels.csv": b"image,labels\n", "a.jpg": b"text"}), tmp_path / "u")
    with pytest.raises(DatasetError, match="not a readable zip"):
        unpack_dataset_zip(b"PK\x03\x04 not really", tmp_path / "u")
    assert not (tmp_path / "u").exists() or not any((tmp_path / "u").iterdir())  # no half-written folder
