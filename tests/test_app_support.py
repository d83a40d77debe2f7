"""ram_core.app_support's plain functions: checkpoints in folders, the cached model, reading uploads,
the samples, per-session result caching (no Streamlit page run here; see test_app_pages.py)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from ram_core import app_support as app
from ram_core.checkpoints import save_checkpoint
from ram_core.errors import CheckpointError
from ram_core.trace import AttentionTrace


def jpeg_bytes(size=(64, 48), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def huge_png_header(width=9_000, height=8_000) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_checkpoints_are_found_recursively_newest_first(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    old = tmp_path / "runs" / "a" / "old.safetensors"
    new = tmp_path / "runs" / "new.safetensors"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (1_000_000, 1_000_000))
    (tmp_path / "runs" / ".new.safetensors.tmp.safetensors").write_bytes(b"")  # an atomic-write temporary
    (tmp_path / "runs" / "notes.txt").write_text("not a checkpoint")
    found = app.list_checkpoints([tmp_path / "runs", tmp_path / "runs" / "a", tmp_path / "missing"])
    assert found == [new.resolve(), old.resolve()]


def test_folders_are_parsed_relative_to_the_repository():
    assert app.parse_folders("assets, runs/voc ;/abs/path") == [app.ROOT / "assets", app.ROOT / "runs/voc",
                                                                Path("/abs/path")]
    assert app.default_folders()[0] == app.ROOT / "assets"


def test_default_checkpoint_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(app.ENV_CHECKPOINT, raising=False)
    assert app.default_checkpoint_path() == app.ROOT / "assets" / "ram_default.safetensors"
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(tmp_path / "m.safetensors"))
    assert app.default_checkpoint_path() == tmp_path / "m.safetensors"


def test_model_is_loaded_once_per_checkpoint_and_device(random_model, tmp_path):
    path = save_checkpoint(tmp_path / "tiny.safetensors", random_model, backbone_weights="checkpoint")
    source = app.ModelSource("file", "tiny", str(path))
    first = app.load_predictor(source, "cpu")
    assert app.load_predictor(source, "cpu") is first
    assert hasattr(first, "lock")  # forward passes of concurrent sessions are serialised
    upload = app.ModelSource(app.UPLOAD_CHOICE, "tiny.safetensors", blob=path.read_bytes())
    from_upload = app.load_predictor(upload, "cpu")
    assert app.load_predictor(upload, "cpu") is from_upload
    assert from_upload.class_names == first.class_names
    # A rewritten checkpoint (new size or time) is a new cache entry.
    save_checkpoint(path, random_model, backbone_weights="checkpoint", provenance={"data": "again"})
    os.utime(path, (2_000_000_000, 2_000_000_000))
    assert app.load_predictor(source, "cpu") is not first


def test_missing_default_and_broken_checkpoints_raise_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="default model .* is not in this copy"):
        app.load_predictor(app.ModelSource(app.DEFAULT_CHOICE, "x", str(tmp_path / "none.safetensors")), "cpu")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"PK\x03\x04 a zip pickle")
    with pytest.raises(CheckpointError, match="pickle"):
        app.load_predictor(app.ModelSource("file", "bad", str(bad)), "cpu")


def test_uploads_become_images_or_clear_errors():
    good = app.read_image_input("photo.jpg", jpeg_bytes())
    assert good.error is None and good.image.size == (64, 48) and len(good.digest) == 64
    not_image = app.read_image_input("notes.jpg", b"hello, not a JPEG")
    assert not_image.image is None and "notes.jpg: not an image" in not_image.error
    truncated = app.read_image_input("cut.jpg", jpeg_bytes((400, 300))[:200])
    assert truncated.image is None and "cut.jpg" in truncated.error
    bomb = app.read_image_input("bomb.png", huge_png_header())
    assert bomb.image is None and "72,000,000 pixels" in bomb.error and "decompression bomb" in bomb.error
    empty = app.read_image_input("empty.png", b"")
    assert "empty" in empty.error


def test_bundled_samples_are_small_licensed_photos():
    samples = app.list_samples()
    assert [s.title for s in samples] == ["Astronaut", "Cat", "Motorcycle"]
    readme = (app.SAMPLES_DIR / "README.md").read_text()
    for s in samples:
        assert s.path.stat().st_size < 150_000
        assert f"`{s.name}`" in readme  # source and licence recorded per photo
        assert app.read_image_input(s.name, s.read(), "sample").error is None


class CountingPredictor:
    """Stands in for a Predictor: counts the images it is asked to run."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def predict(self, images, threshold=0.5):
        self.seen += [n for n, _ in images]
        return [AttentionTrace(n, img.width, img.height, ["a"], {"a": 0.9}, {"a": 0.5}, [], {"a": 0})
                for n, img in images]


def test_results_are_cached_per_model_and_image():
    predictor = CountingPredictor()
    cache = app.LRU(8)
    a = app.read_image_input("a.jpg", jpeg_bytes(color=(1, 2, 3)))
    b = app.read_image_input("b.jpg", jpeg_bytes(color=(200, 200, 3)))
    bad = app.read_image_input("bad.jpg", b"nope")
    first = app.inspect_images(predictor, "m1", [a, bad, b], cache)
    assert [r.name for r in first] == ["a.jpg", "b.jpg"] and predictor.seen == ["a.jpg", "b.jpg"]
    again = app.inspect_images(predictor, "m1", [b, a], cache)
    assert predictor.seen == ["a.jpg", "b.jpg"]  # nothing re-run
    assert again[1] is first[0]
    renamed = app.inspect_images(predictor, "m1", [app.ImageInput("copy.jpg", a.digest, a.image)], cache)
    assert renamed[0].trace.image == "copy.jpg" and predictor.seen == ["a.jpg", "b.jpg"]
    app.inspect_images(predictor, "m2", [a], cache)  # another model: run again
    assert predictor.seen == ["a.jpg", "b.jpg", "a.jpg"]


def test_lru_forgets_the_least_recently_used():
    lru = app.LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get_recent("a") == 1
    lru.put("c", 3)
    assert list(lru) == ["a", "c"]


def test_pages_are_listed_by_number_with_titles(tmp_path):
    for name in ("2_Evaluate.py", "1_Inspect.py", "10_Model_card.py", "_helpers.py"):
        (tmp_path / name).write_text("")
    assert app.list_pages(tmp_path) == [
        (f"{tmp_path.name}/1_Inspect.py", "Inspect"),
        (f"{tmp_path.name}/2_Evaluate.py", "Evaluate"),
        (f"{tmp_path.name}/10_Model_card.py", "Model card"),
    ]


def test_evaluation_map_is_found_where_the_evaluator_put_it():
    assert app.evaluation_map({"mAP": 0.81}) == 0.81
    assert app.evaluation_map({"metrics": {"map": 79.5}}) == 79.5
    assert app.evaluation_map(None) is None and app.evaluation_map({"other": 1}) is None
    both = {"mAP": 82.3, "mAP_test_time_flip": 83.8}
    assert app.evaluation_map(both) == 82.3 and app.evaluation_map(both, test_time_flip=True) == 83.8
    assert app.evaluation_map({"mAP": 82.3}, test_time_flip=True) == 82.3  # never measured with flips


def test_the_shipped_models_map_is_its_cross_validated_map():
    """A checkpoint with only a training val_mAP shows it on the Home page; the shipped model stores
    its cross-validated mAP as its evaluation summary, which the Home page and the picker show."""
    assert app.training_val_map({"val_mAP": 73.0119, "val_CF1": 53.3}) == 73.0119
    assert app.evaluation_map({"val_mAP": 73.0119}) is None  # not an evaluation (the picker's labels)
    predictor = app.Predictor.from_checkpoint(None, "cpu")
    facts = app.describe_model(predictor)
    # it runs with flip averaging, so it shows the cross-validation's flip-averaged number and says so
    evaluation = predictor.info.evaluation
    assert predictor.cfg.test_time_flip and evaluation["mAP_test_time_flip"] != evaluation["mAP"]
    assert facts["mAP"] == f"{evaluation['mAP_test_time_flip']:.1f}"
    assert f"({evaluation['mAP']:.1f} without)" in facts["mAP from"]
    # its provenance names the training machine's dataset by its folder's name, not an absolute path
    assert "/" not in facts["Trained on"].split()[0]


def test_shipped_models_have_names_in_the_picker(tmp_path):
    from ram_core.app_support import bundled_model_name
    from ram_core.locations import ASSETS_DIR

    assert bundled_model_name(ASSETS_DIR / "ram_paper.safetensors") == "Paper's model (RDAR)"
    assert bundled_model_name(ASSETS_DIR / "ram_baseline.safetensors") == "Strongest baseline (CSRA)"
    assert bundled_model_name(tmp_path / "ram_paper.safetensors") is None  # a user's file keeps its own name
    assert bundled_model_name(ASSETS_DIR / "ram_default.safetensors") is None


def test_the_picker_shows_the_number_for_the_setting_a_model_runs_with():
    """The shipped default runs with flip averaging: its picker label carries the flip-averaged CV mAP,
    the paper's model (flip off) its plain one."""
    from ram_core.checkpoints import read_metadata
    from ram_core.locations import ASSETS_DIR

    default = read_metadata(ASSETS_DIR / "ram_default.safetensors").evaluation
    paper = read_metadata(ASSETS_DIR / "ram_paper.safetensors")
    assert app.checkpoint_map(ASSETS_DIR / "ram_default.safetensors") == default["mAP_test_time_flip"]
    assert not paper.config.test_time_flip
    assert app.checkpoint_map(ASSETS_DIR / "ram_paper.safetensors") == paper.evaluation["mAP"]
