"""Bad input through the command line: every bad image, checkpoint or dataset gives one clear error that
names the file and the problem (exit code 1 for unreadable images, 2 for unusable checkpoints and
datasets), never a traceback, and no valid input next to it is lost.

The bad files are made here (`bad_images`, `bad_checkpoints`); tests/test_bad_input_app.py feeds the same
ones to the app.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ram_core.checkpoints import save_checkpoint
from ram_core.cli import main
from ram_core.config import RAMConfig
from ram_core.data import build_dataset, make_synthetic_voc

ROOT = Path(__file__).resolve().parent.parent
TINY_CLASSES = ("person", "cat", "motorbike", "dog")
SHAPES = ["circle", "square", "triangle", "cross"]
PWNED = Path("/tmp/ram_studio_bad_input_pwned")


# --------------------------------------------------------------------------------------------------
# Files made on the fly


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png(width: int, height: int, bit_depth: int, colour_type: int, row: bytes) -> bytes:
    """A PNG written by hand, for pixel formats Pillow does not write (48-bit RGB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    raw = b"".join(b"\0" + row for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def photo_bytes(seed: int = 0, size: tuple[int, int] = (120, 90)) -> bytes:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    arr[10:50, 20:70] = (230, 40, 30)
    return encode(Image.fromarray(arr), "JPEG", quality=90)


def exif_rotated_jpeg() -> bytes:
    """80 x 40 pixels stored, EXIF orientation 6 (rotate 90 degrees clockwise to view): upright it is
    40 x 80 with the white half at the top."""
    img = Image.new("RGB", (80, 40), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 40, 40))  # left half white: after rotating clockwise, the top
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def real_bomb_png(width: int = 9_000, height: int = 8_000) -> bytes:
    """A genuine (fully decodable) 72-megapixel PNG of zeros: ~70 KB on disk, ~200 MB once decoded."""
    return encode(Image.new("L", (width, height)), "PNG")


def bomb_header_png(width: int, height: int) -> bytes:
    """Only the header claims width x height; the pixel data is a few bytes."""
    return _png(width, height, 8, 2, b"")[:33] + _png(1, 1, 8, 2, b"\0\0\0")[33:]


@functools.lru_cache(maxsize=1)
def valid_images() -> dict[str, tuple[bytes, dict]]:
    """Unusual but valid images: name -> (bytes, what the decoded image must be)."""
    red = Image.new("RGB", (64, 48), (255, 0, 0))
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gradient = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    return {
        "cmyk.jpg": (encode(red.convert("CMYK"), "JPEG", quality=95), {"size": (64, 48), "mean": (255, 0, 0)}),
        "grey16.png": (encode(Image.fromarray(gradient), "PNG"), {"size": (64, 48), "spread": True}),
        "rgb48.png": (_png(32, 32, 16, 2, b"\xff\xff\x00\x00\x00\x00" * 32), {"size": (32, 32), "mean": (255, 0, 0)}),
        "animated.gif": (encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0),
                         {"size": (64, 64), "mean": (255, 0, 0)}),  # the first frame
        "animated.webp": (encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True),
                          {"size": (64, 64), "mean": (255, 0, 0)}),
        "rotated.jpg": (exif_rotated_jpeg(), {"size": (40, 80), "top_white": True}),
        "transparent.png": (encode(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG"),
                            {"size": (32, 32), "mean": (255, 255, 255)}),  # over white
        "png_named.jpg": (encode(red, "PNG"), {"size": (64, 48), "mean": (255, 0, 0)}),  # wrong extension
        "smallest.png": (encode(Image.new("RGB", (8, 8), (0, 0, 255)), "PNG"), {"size": (8, 8)}),
        "huge.jpg": (encode(Image.new("RGB", (6000, 4000), (20, 180, 40)), "JPEG", quality=60),
                     {"size": (6000, 4000)}),
        "photo.jpg": (photo_bytes(), {"size": (120, 90)}),
    }


@functools.lru_cache(maxsize=1)
def bad_images() -> dict[str, tuple[bytes, str]]:
    """Files with image extensions that are not usable images: name -> (bytes, expected message part)."""
    jpeg = photo_bytes(1)
    png = encode(Image.open(io.BytesIO(jpeg)), "PNG")  # noisy: most of the file is pixel data
    return {
        "notes.jpg": (b"just some text, not a picture\n", "not an image"),
        "page.png": (b"<!doctype html><html><body>404 Not Found</body></html>", "not an image"),
        "empty.jpg": (b"", "empty (0 bytes)"),
        "cut.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "header_only.jpg": (jpeg[:300], "truncated"),
        "cut.png": (png[: len(png) // 2], "truncated"),
        "bomb.png": (real_bomb_png(), "decompression bomb"),
        "bomb_header.png": (bomb_header_png(40_000, 40_000), "decompression bomb"),  # past Pillow's own limit
        "tiny.png": (encode(Image.new("RGB", (4, 4)), "PNG"), "too small"),
        "one_pixel.gif": (encode(Image.new("P", (1, 1)), "GIF"), "too small"),
    }


def check_decoded(img: Image.Image, want: dict, name: str) -> None:
    assert img.mode == "RGB", name
    assert img.size == want["size"], name
    arr = np.asarray(img, dtype=np.float32)
    if "mean" in want:
        np.testing.assert_allclose(arr.reshape(-1, 3).mean(0), want["mean"], atol=6, err_msg=name)
    if want.get("spread"):  # 16 bits scaled, not clipped at 255 (which would make it all white)
        assert arr[:, 0].mean() < 10 and arr[:, -1].mean() > 245 and len(np.unique(arr)) > 32, name
    if want.get("top_white"):
        assert arr[:30].mean() > 240 and arr[50:].mean() < 15, name


def tiny_checkpoint(path: Path, classes=TINY_CLASSES, seed: int = 0) -> Path:
    from ram_core.backbones import RANDOM_INIT
    from ram_core.model import build_model

    cfg = RAMConfig(class_names=list(classes), input_size=96, num_steps=3, region_size=3, embed_dim=16,
                    hidden_size=16, transform_mode="anchored", init_scale=0.3)
    torch.manual_seed(seed)
    return save_checkpoint(path, build_model(cfg, RANDOM_INIT).eval(), backbone_weights="checkpoint",
                           provenance={"data": "random weights for tests"})


def rewrite_metadata(blob: bytes, edit) -> bytes:
    """The same tensors under an edited header: edit(header dict, metadata dict) changes them in place."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = json.loads(header["__metadata__"]["ram_studio"])
    edit(header, meta)
    header["__metadata__"]["ram_studio"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + blob[8 + n:]


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {PWNED}",))


# Checkpoint files that must be refused: name -> the part of the message that states the problem.
BAD_CHECKPOINTS = {
    "evil.pt": "pickle",
    "evil.safetensors": "pickle",
    "truncated.safetensors": "truncated",
    "cut_header.safetensors": "truncated",
    "empty.safetensors": "too short",
    "text.safetensors": "not a safetensors file",
    "fewer_classes.safetensors": "does not match its config",
    "wider_head.safetensors": "shape",
    "unknown_backbone.safetensors": "unknown backbone",
    "unknown_field.safetensors": "unknown config field",
    "no_offsets.safetensors": "data_offsets",
    "array_header.safetensors": "not a JSON object",
    "bad_steps.safetensors": "num_steps",
}


def bad_checkpoints(good: bytes) -> dict[str, bytes]:
    """The BAD_CHECKPOINTS files, made from a good checkpoint's bytes."""
    zipped = io.BytesIO()
    torch.save({"state_dict": RunsCode()}, zipped)

    def set_config(**changes):
        return lambda header, meta: meta["config"].update(changes)

    def drop_offsets(header, meta):
        key = next(k for k in header if k != "__metadata__")
        del header[key]["data_offsets"]

    files = {
        "evil.pt": zipped.getvalue(),
        "evil.safetensors": pickle.dumps({"weights": RunsCode()}),
        "truncated.safetensors": good[: len(good) // 2],
        "cut_header.safetensors": good[:200],
        "empty.safetensors": b"",
        "text.safetensors": b"this is not a model, just text" * 4,
        "fewer_classes.safetensors": rewrite_metadata(good, set_config(class_names=["cat", "dog"])),
        "wider_head.safetensors": rewrite_metadata(good, set_config(hidden_size=48)),
        "unknown_backbone.safetensors": rewrite_metadata(good, set_config(backbone="resnet9000")),
        "unknown_field.safetensors": rewrite_metadata(good, set_config(colour="blue")),
        "no_offsets.safetensors": rewrite_metadata(good, drop_offsets),
        "array_header.safetensors": struct.pack("<Q", 8) + b"[1, 2]  ",
        "bad_steps.safetensors": rewrite_metadata(good, set_config(num_steps=0)),
    }
    assert files.keys() == BAD_CHECKPOINTS.keys()
    return files


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for name, (data, _) in {**valid_images(), **bad_images()}.items():
        (folder / name).write_bytes(data)
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


# --------------------------------------------------------------------------------------------------
# Images


def test_unusual_valid_images_decode_upright_in_8_bit_rgb():
    from ram_core.imageio import open_image

    for name, (data, want) in valid_images().items():
        check_decoded(open_image(data, name), want, name)


def test_every_bad_image_is_a_named_error_and_every_good_one_is_predicted(image_dir, checkpoint, capsys):
    good, bad = valid_images(), bad_images()
    # interleaved, so that bad files sit inside the batches of good ones
    names = [n for pair in zip(list(good) + [None] * len(bad), list(bad) + [None] * len(good)) for n in pair if n]
    paths = [image_dir / n for n in names] + [image_dir / "missing.jpg", image_dir]
    code, out, err = run(capsys, "predict", *paths, "--checkpoint", checkpoint, "--json", "--device", "cpu",
                         "--batch-size", "4")
    assert code == 1  # some images could not be read
    traces = [json.loads(line) for line in out.splitlines()]
    assert [Path(t["image"]).name for t in traces] == [n for n in names if n in good]  # none lost, in order
    for name, (_, message) in bad.items():
        line = next((x for x in err.splitlines() if f"{image_dir / name}:" in x), None)
        assert line is not None and line.startswith("error: ") and message in line, (name, err)
    assert f"{image_dir / 'missing.jpg'}: file not found" in err
    assert f"{len(bad) + 2} of {len(paths)} image(s) could not be read" in err
    by_name = {Path(t["image"]).name: t for t in traces}
    assert (by_name["rotated.jpg"]["width"], by_name["rotated.jpg"]["height"]) == (40, 80)  # upright
    assert (by_name["huge.jpg"]["width"], by_name["huge.jpg"]["height"]) == (6000, 4000)
    assert all(len(t["steps"]) == 3 and len(t["scores"]) == len(TINY_CLASSES) for t in traces)


def test_a_good_image_scores_the_same_next_to_bad_ones_as_alone(image_dir, checkpoint, capsys):
    code, alone, _ = run(capsys, "predict", image_dir / "photo.jpg", "--checkpoint", checkpoint, "--json",
                         "--device", "cpu")
    assert code == 0
    code, mixed, _ = run(capsys, "predict", image_dir / "notes.jpg", image_dir / "photo.jpg", image_dir / "cut.jpg",
                         "--checkpoint", checkpoint, "--json", "--device", "cpu")
    assert code == 1
    a, b = json.loads(alone), json.loads(mixed)
    assert a["labels"] == b["labels"]
    for c in a["scores"]:
        assert abs(a["scores"][c] - b["scores"][c]) < 1e-4


def test_predict_in_a_real_process_exits_1_and_prints_no_traceback(image_dir, checkpoint):
    proc = subprocess.run(
        [sys.executable, "-m", "ram_core", "predict", str(image_dir / "notes.jpg"), str(image_dir / "photo.jpg"),
         str(image_dir / "bomb.png"), "--checkpoint", str(checkpoint), "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "notes.jpg: not an image" in proc.stderr and "decompression bomb" in proc.stderr
    assert "photo.jpg" in proc.stdout and "labels:" in proc.stdout


# --------------------------------------------------------------------------------------------------
# Checkpoints


@pytest.fixture(scope="module")
def bad_checkpoint_dir(checkpoint, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_ckpts")
    for name, data in bad_checkpoints(checkpoint.read_bytes()).items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("name", list(BAD_CHECKPOINTS))
def test_predict_with_a_bad_checkpoint_is_a_named_error_and_runs_no_code(name, bad_checkpoint_dir, image_dir,
                                                                        checkpoint, capsys):
    PWNED.unlink(missing_ok=True)
    message = BAD_CHECKPOINTS[name]
    path = bad_checkpoint_dir / name
    code, out, err = run(capsys, "predict", image_dir / "photo.jpg", "--checkpoint", path, "--device", "cpu")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and str(path) in err and message in err, err
    assert not PWNED.exists()


def test_info_names_what_is_wrong_with_a_checkpoint_without_loading_it(bad_checkpoint_dir, checkpoint, capsys):
    metadata_problems = {"evil.pt", "evil.safetensors", "truncated.safetensors", "empty.safetensors",
                         "text.safetensors", "unknown_backbone.safetensors", "unknown_field.safetensors",
                         "no_offsets.safetensors", "array_header.safetensors"}
    for name in sorted(metadata_problems):
        code, _, err = run(capsys, "info", bad_checkpoint_dir / name)
        assert code == 2 and BAD_CHECKPOINTS[name] in err, (name, err)
    assert run(capsys, "info", bad_checkpoint_dir / "missing.safetensors")[0] == 2
    code, out, _ = run(capsys, "info", checkpoint)
    assert code == 0 and json.loads(out)["config"]["class_names"] == list(TINY_CLASSES)


def test_a_directory_or_missing_file_as_checkpoint(tmp_path, image_dir, capsys):
    for path in (tmp_path, tmp_path / "nope.safetensors"):
        code, _, err = run(capsys, "predict", image_dir / "photo.jpg", "--checkpoint", path, "--device", "cpu")
        assert code == 2 and "not found" in err and str(path) in err


def test_a_checkpoint_for_other_classes_cannot_evaluate_a_dataset(checkpoint, tmp_path, capsys):
    data = tmp_path / "shapes"
    make_synthetic_voc(data, 6, image_size=48, classes=SHAPES[:3], seed=2)
    code, _, err = run(capsys, "evaluate", "--data", "synthetic", "--root", data, "--split", "trainval",
                       "--checkpoint", checkpoint, "--out", tmp_path / "out", "--device", "cpu", "--workers", "0",
                       "--no-progress")
    assert code == 2
    assert "no class in common" in err and "person" in err and "circle" in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_checkpoint_sharing_some_classes_evaluates_those_and_says_which_are_left_out(tmp_path, capsys):
    data = tmp_path / "shapes"
    make_synthetic_voc(data, 8, image_size=48, classes=SHAPES, seed=2)
    ckpt = tiny_checkpoint(tmp_path / "two.safetensors", classes=("square", "circle", "dog"))
    code, _, err = run(capsys, "evaluate", "--data", "synthetic", "--root", data, "--split", "trainval",
                       "--checkpoint", ckpt, "--out", tmp_path / "out", "--device", "cpu", "--workers", "0",
                       "--no-progress")
    assert code == 0
    assert "not evaluated (the model does not know them): triangle, cross" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["class_names"] == ["square", "circle"]  # the model's order
    assert report["num_images"] == len(build_dataset("synthetic", data, "trainval"))


# --------------------------------------------------------------------------------------------------
# Datasets


def _voc(tmp_path: Path, n: int = 8) -> tuple[Path, list[str]]:
    root = tmp_path / "voc"
    make_synthetic_voc(root, n, image_size=48, classes=SHAPES, seed=4)
    ids = (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    return root, ids


def _break_voc(kind: str, root: Path, ids: list[str]) -> tuple[str, str]:
    """Damage one item; (the file the message must name, the problem it must state)."""
    victim = ids[1]
    if kind == "missing_photo":
        (root / "JPEGImages" / f"{victim}.jpg").unlink()
        return f"{victim}.jpg", "photo not found"
    if kind == "broken_xml":
        (root / "Annotations" / f"{victim}.xml").write_text("<annotation><object><name>circle</na")
        return f"{victim}.xml", "cannot parse the annotation XML"
    if kind == "unknown_class":
        xml = root / "Annotations" / f"{victim}.xml"
        xml.write_text(xml.read_text().replace("<name>", "<name>unicorn", 1))
        return f"{victim}.xml", "unknown class name"
    if kind == "missing_xml":
        (root / "Annotations" / f"{victim}.xml").unlink()
        return f"{victim}.xml", "annotation file not found"
    raise ValueError(kind)


@pytest.fixture(scope="module")
def shapes_checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("shapes") / "shapes.safetensors", classes=SHAPES)


@pytest.mark.parametrize("kind", ["missing_photo", "broken_xml", "unknown_class", "missing_xml"])
def test_a_bad_voc_item_stops_evaluate_with_its_name_or_is_skipped_alone(kind, shapes_checkpoint, tmp_path, capsys):
    root, ids = _voc(tmp_path)
    named, problem = _break_voc(kind, root, ids)
    args = ["evaluate", "--data", "synthetic", "--root", root, "--split", "trainval", "--checkpoint", shapes_checkpoint,
            "--device", "cpu", "--workers", "0", "--no-progress"]
    code, _, err = run(capsys, *args, "--out", tmp_path / "a")
    assert code == 2 and named in err and problem in err, err
    code, out, err = run(capsys, *args, "--out", tmp_path / "b", "--skip-bad")
    assert code == 0, err
    assert "skipped 1" in out + err or "1 bad item" in out + err
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["num_images"] == len(ids) - 1  # only the broken one left out


def _coco(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images, annotations = [], []
    for i in range(4):
        (root / "val2017" / f"{i}.jpg").write_bytes(photo_bytes(i, (64, 48)))
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48})
        annotations.append({"id": 100 + i, "image_id": i, "category_id": 1 + i % 2, "bbox": [1, 2, 20, 20]})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "cat"}]}
    return root, data


@pytest.mark.parametrize("kind,problem", [
    ("broken_json", "cannot parse the JSON"),
    ("not_coco", "not a COCO instances file"),
    ("missing_photo", "photo not found"),
    ("unknown_category", "unknown category id 7"),
])
def test_a_bad_coco_file_is_a_named_error(kind, problem, checkpoint, tmp_path, capsys):
    root, data = _coco(tmp_path)
    ann = root / "annotations" / "instances_val2017.json"
    if kind == "missing_photo":
        (root / "val2017" / "2.jpg").unlink()
    elif kind == "unknown_category":
        data["annotations"][0]["category_id"] = 7
    ann.write_text(json.dumps(data if kind != "not_coco" else [data]))
    if kind == "broken_json":
        ann.write_text(ann.read_text()[:-40])
    code, _, err = run(capsys, "evaluate", "--data", "coco", "--root", root, "--split", "val",
                       "--checkpoint", checkpoint, "--out", tmp_path / "out", "--device", "cpu", "--workers", "0",
                       "--no-progress")
    assert code == 2 and problem in err, err
    assert "instances_val2017.json" in err or "2.jpg" in err


@pytest.mark.parametrize("labels_name,content,problem", [
    ("labels.csv", "image,labels\na.jpg,cat\nc.jpg,dog\n", "photo not found"),
    ("labels.json", '{"a.jpg": ["cat"], "b.jpg": ["dog"', "cannot parse the JSON"),
    ("labels.csv", "a.jpg,cat\n", "header"),
])
def test_a_bad_folder_labels_file_is_a_named_error(labels_name, content, problem, checkpoint, tmp_path, capsys):
    root = tmp_path / "folder"
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (root / name).write_bytes(photo_bytes(3, (64, 48)))
    (root / labels_name).write_text(content)
    code, _, err = run(capsys, "evaluate", "--data", "folder", "--root", root, "--checkpoint", checkpoint,
                       "--out", tmp_path / "out", "--device", "cpu", "--workers", "0", "--no-progress")
    assert code == 2 and problem in err and (labels_name in err or "c.jpg" in err), err


def test_train_names_a_broken_annotation_and_a_damaged_photo(tmp_path, capsys):
    root, ids = _voc(tmp_path, 12)
    common = ["train", "--data", "synthetic", "--root", root, "--split", "trainval", "--input-size", "64",
              "--steps", "2", "--region-size", "3", "--hidden-size", "16", "--embed-dim", "16", "--epochs", "1",
              "--batch-size", "4", "--cache-dir", tmp_path / "cache", "--device", "cpu", "--workers", "0"]
    named, problem = _break_voc("broken_xml", root, ids)
    code, _, err = run(capsys, *common, "--out", tmp_path / "a")
    assert code == 2 and named in err and problem in err
    (root / "Annotations" / f"{ids[1]}.xml").unlink()
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for i in ids if i != ids[1]))
    photo = root / "JPEGImages" / f"{ids[2]}.jpg"
    photo.write_bytes(photo.read_bytes()[:200])  # truncated: found only when its pixels are read
    code, _, err = run(capsys, *common, "--out", tmp_path / "b")
    assert code == 2 and ids[2] in err and "truncated" in err, err


def test_a_folder_label_the_model_does_not_know_is_named_and_its_image_still_evaluated(checkpoint, tmp_path,
                                                                                       capsys):
    """A folder's class list is whatever its labels file says, so 'unicorn' is a class of the dataset
    that the model cannot score: said so, and the image still counts for the classes both share."""
    root = tmp_path / "folder"
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (root / name).write_bytes(photo_bytes(3, (64, 48)))
    (root / "labels.csv").write_text("image,labels\na.jpg,cat\nb.jpg,unicorn;dog\n")
    code, _, err = run(capsys, "evaluate", "--data", "folder", "--root", root, "--checkpoint", checkpoint,
                       "--out", tmp_path / "out", "--device", "cpu", "--workers", "0", "--no-progress")
    assert code == 0
    assert "not evaluated (the model does not know them): unicorn" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["num_images"] == 2 and report["class_names"] == ["cat", "dog"]


def test_a_checkpoint_whose_normalisation_is_not_three_numbers_is_refused(checkpoint, image_dir, tmp_path, capsys):
    bad = tmp_path / "mean.safetensors"
    bad.write_bytes(rewrite_metadata(checkpoint.read_bytes(), lambda h, m: m["config"].update(mean=[0.5])))
    code, _, err = run(capsys, "predict", image_dir / "photo.jpg", "--checkpoint", bad, "--device", "cpu")
    assert code == 2 and "mean" in err
