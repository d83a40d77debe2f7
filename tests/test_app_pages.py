"""The Streamlit pages run headless with AppTest on a tiny random-weights checkpoint (given through
RAM_STUDIO_CHECKPOINT): uploads, the attention boxes, the trajectory chart, labels, bad uploads,
the shared model picker, and a missing default model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ram_core.safe_text import unmd
from ram_core import app_support as app
from ram_core.checkpoints import save_checkpoint
from ram_core.config import RAMConfig

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
INSPECT = "pages/1_Inspect.py"
SAMPLE = ROOT / "assets" / "samples" / "astronaut.jpg"
TIMEOUT = 120  # the first run builds the model; later runs take well under a second


def tiny_checkpoint(path: Path, num_steps: int = 3, classes=("person", "cat", "motorbike", "dog")) -> Path:
    """Random weights; anchored transforms so that each step's box is in a different place."""
    from ram_core.backbones import RANDOM_INIT
    from ram_core.model import build_model

    cfg = RAMConfig(class_names=list(classes), input_size=96, num_steps=num_steps, region_size=3, embed_dim=16,
                    hidden_size=16, transform_mode="anchored", init_scale=0.3)
    torch.manual_seed(0)
    return save_checkpoint(path, build_model(cfg, RANDOM_INIT).eval(), backbone_weights="checkpoint",
                           provenance={"data": "nothing (random weights for tests)"})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture
def inspect_page(checkpoint, monkeypatch):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    at.switch_page(INSPECT).run()
    assert not at.exception
    return at


def plotly_specs(at: AppTest) -> dict[str, dict]:
    """Plotly figures on the page by their meta.kind ('attention', 'trajectory', 'scores')."""
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    return {s["layout"]["meta"]["kind"]: s for s in specs}


def drawn_boxes(spec: dict) -> list[str]:
    return [t["name"] for t in spec["data"] if t["name"].startswith("Step ") and t["name"] != "Step 0 (global)"
            and t["x"][0] is not None]


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    uploader = next(u for u in at.file_uploader if u.label == "Upload images")
    uploader.set_value([(name, data, "image/jpeg") for name, data in files])
    return at.run()


def test_home_page_explains_the_model_and_shows_the_device(checkpoint, monkeypatch):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "RAM Studio"
    assert any("spatial transformer" in m.value for m in at.markdown)
    assert {m.label: m.value for m in at.metric}["Steps (K)"] == "3"
    assert any("CPU" in m.value for m in at.markdown)  # the device, on the page
    assert any("CPU" in c.value for c in at.sidebar.caption)  # and in the shared sidebar
    assert [p.label for p in at.sidebar.page_link] == ["Home", "Inspect", *(
        ["Evaluate"] if (ROOT / "pages" / "2_Evaluate.py").is_file() else []), *(
        ["Train"] if (ROOT / "pages" / "3_Train.py").is_file() else [])]


def test_upload_shows_boxes_trajectories_and_labels(inspect_page):
    at = upload(inspect_page, ("astronaut.jpg", SAMPLE.read_bytes()))
    assert not at.exception and not at.error
    specs = plotly_specs(at)
    assert drawn_boxes(specs["attention"]) == ["Step 1", "Step 2", "Step 3"]  # K boxes
    assert [f["name"] for f in specs["attention"]["frames"]] == ["global", "1", "2", "3", "all"]
    lines = [t["name"] for t in specs["trajectory"]["data"] if t.get("showlegend") is not False]
    assert len(lines) == 4 and specs["trajectory"]["layout"]["xaxis"]["categoryarray"][-1] == "Fused"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Attention steps"] == "3" and metrics["Image"] == "512 × 512"
    assert metrics["Inference"].endswith(" ms")
    assert any(h.value == "#### Labels" for h in at.markdown)
    assert len(at.get("image")) == 3  # one crop per step
    downloads = [d.proto.label for d in at.get("download_button")]
    assert downloads == ["Annotated PNG", "Steps as animated GIF", "JSON trace"]


def test_threshold_changes_labels_without_running_the_model_again(inspect_page, monkeypatch):
    at = upload(inspect_page, ("astronaut.jpg", SAMPLE.read_bytes()))
    calls = []
    original = app.Predictor.predict
    monkeypatch.setattr(app.Predictor, "predict", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    labels = {}
    for t in (0.0, 1.0):
        at.slider(key="inspect.threshold").set_value(t).run()
        assert not at.exception
        labels[t] = {m.label: m.value for m in at.metric}["Labels"]
    assert labels == {0.0: "4", 1.0: "0"}
    assert calls == []  # cached per (model, image): the slider never re-ran the model


def test_bad_uploads_give_messages_and_the_good_image_still_works(inspect_page):
    from test_app_support import huge_png_header

    photo = SAMPLE.read_bytes()
    at = upload(inspect_page, ("notes.jpg", b"just some text"), ("astronaut.jpg", photo),
                ("cut.jpg", photo[:600]), ("bomb.png", huge_png_header()))
    assert not at.exception
    errors = " ".join(unmd(e.value) for e in at.error)
    assert "notes.jpg: not an image" in errors
    assert "cut.jpg" in errors and "truncated" in errors
    assert "bomb.png" in errors and "decompression bomb" in errors
    assert drawn_boxes(plotly_specs(at)["attention"]) == ["Step 1", "Step 2", "Step 3"]


def test_several_images_and_a_sample(inspect_page):
    at = inspect_page
    at.pills(key="inspect.samples").set_value(["cat.jpg"])
    at = upload(at, ("astronaut.jpg", SAMPLE.read_bytes()))
    assert not at.exception
    picker = at.selectbox(key="inspect.image")
    assert picker.options == ["astronaut.jpg", "cat.jpg"]
    picker.set_value(1).run()
    assert not at.exception
    assert plotly_specs(at)["attention"]["layout"]["meta"]["image"] == "cat.jpg"


def test_missing_default_model_gives_a_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(tmp_path / "not_trained_yet.safetensors"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("not in this copy" in unmd(i.value) for i in at.info)
    at.switch_page(INSPECT).run()
    assert not at.exception
    assert any("not in this copy" in i.value and "python -m ram_core train" in unmd(i.value) for i in at.info)
    assert not at.get("plotly_chart")


def test_model_choice_is_shared_between_pages(checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(tmp_path / "missing.safetensors"))
    other = tiny_checkpoint(tmp_path / "runs" / "k2.safetensors", num_steps=2)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.sidebar.text_input(key="ram_studio.w.folders").input(str(tmp_path / "runs")).run()
    choice = at.sidebar.selectbox(key="ram_studio.w.checkpoint")
    assert str(other.resolve()) in choice.options
    choice.set_value(str(other.resolve())).run()
    assert {m.label: m.value for m in at.metric}["Steps (K)"] == "2"
    at.switch_page(INSPECT).run()
    assert not at.exception and not any("not in this copy" in unmd(i.value) for i in at.info)  # not the missing default
    assert at.sidebar.selectbox(key="ram_studio.w.checkpoint").value == str(other.resolve())
    at = upload(at, ("astronaut.jpg", SAMPLE.read_bytes()))
    assert drawn_boxes(plotly_specs(at)["attention"]) == ["Step 1", "Step 2"]


def test_an_uploaded_checkpoint_is_used_with_its_metadata(checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(tmp_path / "missing.safetensors"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.sidebar.selectbox(key="ram_studio.w.checkpoint").set_value(app.UPLOAD_CHOICE).run()
    uploader = next(u for u in at.sidebar.file_uploader if "checkpoint" in u.label)
    uploader.set_value(("mine.safetensors", checkpoint.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert any("mine.safetensors" in c.value for c in at.sidebar.caption)
    assert any("random weights for tests" in m.value for m in at.sidebar.markdown)  # provenance shown
    # A pickle uploaded as a checkpoint: a message, not a traceback.
    uploader = next(u for u in at.sidebar.file_uploader if "checkpoint" in u.label)
    uploader.set_value(("evil.safetensors", b"PK\x03\x04 pickled zip", "application/octet-stream"))
    at.run()
    assert not at.exception
    assert any("pickle" in unmd(e.value) for e in at.error)


def test_an_image_sent_from_the_evaluate_page_opens_in_inspect(inspect_page):
    inspect_page.session_state["inspect_path"] = str(SAMPLE)
    inspect_page.run()
    assert not inspect_page.exception
    assert len(drawn_boxes(plotly_specs(inspect_page)["attention"])) == 3
