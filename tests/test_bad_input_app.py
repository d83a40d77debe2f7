"""Bad input through the app (Streamlit's AppTest, no browser): the same bad images, checkpoints and
datasets as tests/test_bad_input_cli.py.  Each becomes a message on the page that names the file and
the problem; the page never shows a traceback; every valid image uploaded alongside is still shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ram_core.safe_text import unmd
from ram_core import app_support as app
from ram_core.data import make_synthetic_voc
from test_bad_input_cli import (BAD_CHECKPOINTS, PWNED, SHAPES, TINY_CLASSES, bad_checkpoints, bad_images,
                                photo_bytes, tiny_checkpoint, valid_images)

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
INSPECT = "pages/1_Inspect.py"
EVALUATE = "pages/2_Evaluate.py"
TIMEOUT = 120


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def shapes_checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("shapes") / "shapes.safetensors", classes=SHAPES, seed=1)


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    no_exception(at)
    if page:
        at.switch_page(page).run()
        no_exception(at)
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def upload_images(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    uploader = next(u for u in at.file_uploader if u.label == "Upload images")
    uploader.set_value([(name, data, "application/octet-stream") for name, data in files])
    at.run()
    no_exception(at)
    return at


def upload_checkpoint(at: AppTest, name: str, data: bytes) -> AppTest:
    uploader = next(u for u in at.sidebar.file_uploader if "checkpoint" in u.label)
    uploader.set_value((name, data, "application/octet-stream"))
    at.run()
    no_exception(at)
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def scored_classes(at: AppTest) -> set[str]:
    spec = next(json.loads(el.proto.spec) for el in at.get("plotly_chart")
                if json.loads(el.proto.spec)["layout"]["meta"]["kind"] == "scores")
    return set(spec["data"][0]["y"])


def test_every_bad_upload_is_named_and_every_good_one_is_shown(checkpoint, monkeypatch):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    good, bad = valid_images(), bad_images()
    names = [n for k in range(max(len(good), len(bad))) for n in (list(good)[k:k + 1] + list(bad)[k:k + 1])]
    files = [(n, (good.get(n) or bad[n])[0]) for n in names]  # bad files between good ones
    at = upload_images(start(INSPECT), files)
    errors = [unmd(e.value) for e in at.error]
    assert len(errors) == len(bad), errors
    for name, (_, message) in bad.items():
        assert any(f"{name}:" in e and message in e for e in errors), (name, errors)
    picker = at.selectbox(key="inspect.image")
    assert picker.options == [n for n, _ in files if n in good]  # none lost, in upload order
    sizes = {}
    for i, name in enumerate(picker.options):  # every valid image renders its page
        at.selectbox(key="inspect.image").set_value(i).run()
        no_exception(at)
        sizes[name] = metrics(at)["Image"]
        assert scored_classes(at) <= set(TINY_CLASSES)
    assert sizes["rotated.jpg"] == "40 × 80" and sizes["huge.jpg"] == "6000 × 4000"
    assert sizes["cmyk.jpg"] == "64 × 48" and sizes["animated.gif"] == "64 × 64"


def test_bad_checkpoint_uploads_are_messages_and_a_good_one_then_works(checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(tmp_path / "not_trained_yet.safetensors"))
    PWNED.unlink(missing_ok=True)
    at = start(INSPECT)
    at.sidebar.selectbox(key="ram_studio.w.checkpoint").set_value(app.UPLOAD_CHOICE).run()
    no_exception(at)
    for name, data in bad_checkpoints(checkpoint.read_bytes()).items():
        # the uploader takes .safetensors only: a torch.save zip has to come renamed
        upload_name = name if name.endswith(".safetensors") else name.replace(".", "_") + ".safetensors"
        upload_checkpoint(at, upload_name, data)
        errors = " ".join(unmd(e.value) for e in at.error)
        assert upload_name in errors and BAD_CHECKPOINTS[name] in errors, (name, errors)
        assert any(w.value == "No model loaded." for w in at.sidebar.warning)
        assert not at.get("plotly_chart")
    assert not PWNED.exists()  # the pickles' code never ran
    upload_checkpoint(at, "mine.safetensors", checkpoint.read_bytes())
    assert not at.error and any("mine.safetensors" in c.value for c in at.sidebar.caption)
    upload_images(at, [("photo.jpg", photo_bytes())])
    assert metrics(at)["Attention steps"] == "3"


def test_a_model_with_other_classes_scores_the_same_upload_with_its_own_classes(checkpoint, shapes_checkpoint,
                                                                                 monkeypatch):
    """Results are cached per (model, image): switching to a checkpoint with another class list must
    not show the first model's classes for an image already inspected."""
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    at = upload_images(start(INSPECT), [("photo.jpg", photo_bytes())])
    assert scored_classes(at) <= set(TINY_CLASSES)
    at.sidebar.selectbox(key="ram_studio.w.checkpoint").set_value(app.UPLOAD_CHOICE).run()
    upload_checkpoint(at, "shapes.safetensors", shapes_checkpoint.read_bytes())
    assert scored_classes(at) <= set(SHAPES) and metrics(at)["Top class"] in SHAPES
    at.sidebar.selectbox(key="ram_studio.w.checkpoint").set_value(app.DEFAULT_CHOICE).run()
    no_exception(at)
    assert scored_classes(at) <= set(TINY_CLASSES)


# --------------------------------------------------------------------------------------------------
# The Evaluate page


@pytest.fixture
def evaluate_page(shapes_checkpoint, monkeypatch, tmp_path):
    from ram_core.eval_views import ENV_EVAL_DIR

    monkeypatch.setenv(app.ENV_CHECKPOINT, str(shapes_checkpoint))
    monkeypatch.setenv(ENV_EVAL_DIR, str(tmp_path / "evaluations"))
    return start(EVALUATE)


def run_evaluation(at: AppTest, root: Path, kind: str = "synthetic", split: str = "trainval") -> AppTest:
    at.selectbox(key="evaluate.kind").set_value(kind)
    at.text_input(key="evaluate.root").set_value(str(root))
    at.text_input(key="evaluate.split").set_value(split)
    at.number_input(key="evaluate.workers").set_value(0)
    at.text_input(key="evaluate.out").set_value(str(root.parent / "out"))
    next(b for b in at.button if b.label == "Run evaluation").click()
    at.run()
    no_exception(at)
    return at


@pytest.mark.parametrize("damage,named,problem", [
    ("broken_xml", ".xml", "cannot parse the annotation XML"),
    ("missing_photo", ".jpg", "photo not found"),
    ("unknown_class", ".xml", "unknown class name"),
    ("damaged_photo", ".jpg", "truncated"),
])
def test_a_damaged_dataset_is_a_named_error_on_the_evaluate_page(damage, named, problem, evaluate_page, tmp_path):
    root = tmp_path / "data"
    make_synthetic_voc(root, 6, image_size=48, classes=SHAPES, seed=5)
    victim = (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()[0]
    xml, jpg = root / "Annotations" / f"{victim}.xml", root / "JPEGImages" / f"{victim}.jpg"
    if damage == "broken_xml":
        xml.write_text(xml.read_text()[:40])
    elif damage == "missing_photo":
        jpg.unlink()
    elif damage == "unknown_class":
        xml.write_text(xml.read_text().replace("<name>", "<name>griffin", 1))
    else:
        jpg.write_bytes(jpg.read_bytes()[:300])
    at = run_evaluation(evaluate_page, root)
    errors = " ".join(unmd(e.value) for e in at.error)
    assert "could not run" in errors and f"{victim}{named}" in errors and problem in errors, errors
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_dataset_with_no_class_of_the_model_is_a_clear_error(evaluate_page, tmp_path):
    root = tmp_path / "data"
    make_synthetic_voc(root, 4, image_size=48, classes=["diamond", "ring"], seed=6)
    at = run_evaluation(evaluate_page, root)
    errors = " ".join(unmd(e.value) for e in at.error)
    assert "no class in common" in errors and "diamond" in errors and "circle" in errors


def test_a_damaged_saved_evaluation_is_a_message(shapes_checkpoint, monkeypatch, tmp_path):
    from ram_core.eval_views import ENV_EVAL_DIR

    folder = tmp_path / "evaluations" / "broken"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text('{"format": "ram-studio-eval/1", "mAP": 5')  # cut short
    (folder / "predictions.jsonl").write_text('{"id": "1"')
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(shapes_checkpoint))
    monkeypatch.setenv(ENV_EVAL_DIR, str(tmp_path / "evaluations"))
    at = start(EVALUATE)
    errors = " ".join(unmd(e.value) for e in at.error)
    assert "cannot be read" in errors and "report.json" in errors, errors
