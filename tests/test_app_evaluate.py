"""The Evaluate page through Streamlit's AppTest, on evaluations of a small generated dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ram_core.safe_text import unmd
from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import CheckpointInfo, save_checkpoint
from ram_core.config import RAMConfig
from ram_core.data import make_synthetic_voc
from ram_core.eval_views import ENV_EVAL_DIR, INSPECT_KEY
from ram_core.kept_photos import KEPT_KEY
from ram_core.evaluation import evaluate_to_folder
from ram_core.inference import Predictor
from ram_core.model import build_model

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["circle", "square", "triangle"]
TIMEOUT = 60


def tiny_model(head: str = "ram"):
    cfg = RAMConfig(class_names=list(CLASSES), input_size=64, num_steps=3, region_size=2, embed_dim=16,
                    hidden_size=16, head=head)
    torch.manual_seed(0 if head == "ram" else 1)
    return build_model(cfg, RANDOM_INIT).eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A dataset, a checkpoint, and two saved evaluations (RAM and baseline) in an evaluations folder."""
    tmp = tmp_path_factory.mktemp("evalpage")
    make_synthetic_voc(tmp / "scenes", 16, image_size=64, classes=CLASSES, seed=2)
    ram = tiny_model("ram")
    ckpt = save_checkpoint(tmp / "tiny.safetensors", ram, backbone_weights="checkpoint")
    for name, model in (("default_val", ram), ("baseline_val", tiny_model("baseline"))):
        predictor = Predictor(model, CheckpointInfo(model.cfg, "checkpoint", source=name), torch.device("cpu"))
        evaluate_to_folder(predictor, "synthetic", tmp / "scenes", "trainval", tmp / "evals" / name, workers=0)
    return {"root": tmp, "scenes": tmp / "scenes", "evals": tmp / "evals", "ckpt": ckpt}


@pytest.fixture
def app(setup, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(ENV_EVAL_DIR, str(setup["evals"]))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(setup["ckpt"]))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/2_Evaluate.py")
    return at.run()


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def metric(at, label: str):
    return next(m for m in at.metric if m.label == label)


def test_opens_the_default_evaluation_with_summary_and_per_class_table(app, setup):
    no_exception(app)
    assert app.title[0].value == "Evaluate"
    assert app.selectbox(key="evaluate.pick").value.endswith("default_val")
    assert app.selectbox(key="evaluate.compare").value.endswith("baseline_val")  # its baseline, picked for it
    report = json.loads((setup["evals"] / "default_val" / "report.json").read_text())
    assert metric(app, "mAP").value == f"{report['mAP']:.1f}"
    assert metric(app, "Images").value == "12"
    for label in ("CF1 @ 0.50", "OF1 @ 0.50", "CF1 top-3", "OF1 top-3"):
        metric(app, label)
    table = app.dataframe[0].value
    assert table["class"].tolist() == CLASSES
    assert {"AP", "positives", "precision", "recall", "F1"} <= set(table.columns)
    assert [t.label for t in app.tabs] == ["Per class", "Compare", "Browse", "False labels", "Attention"]


def test_threshold_and_comparison(app):
    app.slider(key="evaluate.threshold").set_value(0.3).run()
    no_exception(app)
    assert metric(app, "CF1 @ 0.30")
    assert {"Improved", "Regressed", "About the same"} <= {m.label for m in app.metric}
    cmp = next(d.value for d in app.dataframe if "ΔAP" in d.value.columns)
    assert sorted(cmp["class"]) == sorted(CLASSES)
    app.selectbox(key="evaluate.compare").set_value("(none)").run()
    no_exception(app)
    assert "Improved" not in {m.label for m in app.metric}


def test_browse_and_open_in_inspect_then_come_back(app, setup):
    app.slider(key="evaluate.threshold").set_value(0.42).run()
    app.segmented_control(key="evaluate.browse_kind").set_value("all").run()
    no_exception(app)
    buttons = [b for b in app.button if b.key and b.key.startswith("evaluate.inspect.")]
    assert len(buttons) == 12
    buttons[0].click().run()
    assert app.title[0].value == "Inspect"
    # the Inspect page took the hand-off into its kept photos (removable there) and cleared it
    assert INSPECT_KEY not in app.session_state
    (sent,) = app.session_state[KEPT_KEY].values()
    assert sent.origin == "evaluate" and (setup["scenes"] / "JPEGImages" / sent.name).read_bytes() == sent.data

    app.switch_page("pages/2_Evaluate.py").run()  # the page's choices survive the visit
    no_exception(app)
    assert app.slider(key="evaluate.threshold").value == 0.42
    assert app.segmented_control(key="evaluate.browse_kind").value == "all"


def test_run_an_evaluation_from_the_page_once(app, setup):
    out = setup["root"] / "from_page"
    app.selectbox(key="evaluate.kind").set_value("synthetic")
    app.text_input(key="evaluate.root").set_value(str(setup["scenes"]))
    app.text_input(key="evaluate.split").set_value("test")
    app.number_input(key="evaluate.workers").set_value(0)
    app.text_input(key="evaluate.out").set_value(str(out))
    next(b for b in app.button if b.label == "Run evaluation").click()
    app.run()
    no_exception(app)
    report = out / "report.json"
    assert report.is_file() and (out / "predictions.jsonl").is_file()
    assert app.selectbox(key="evaluate.pick").value == str(out)  # opened right away
    assert app.selectbox(key="evaluate.compare").value == "(none)"
    assert metric(app, "Images").value == "4" and not metric(app, "mAP").delta
    first = report.stat().st_mtime_ns

    next(b for b in app.button if b.label == "Run evaluation").click()
    app.run()
    no_exception(app)
    assert report.stat().st_mtime_ns == first  # the same evaluation again: reopened, not recomputed


def test_a_bad_dataset_root_is_an_error_on_the_page(app, setup):
    app.text_input(key="evaluate.root").set_value(str(setup["root"] / "nothing_here"))
    next(b for b in app.button if b.label == "Run evaluation").click()
    app.run()
    no_exception(app)
    assert any("could not run" in e.value for e in app.error)


def test_photos_moved_elsewhere_are_placeholders_until_the_root_is_given(setup, monkeypatch, tmp_path):
    """An evaluation made on another machine: its image paths do not exist here."""
    from streamlit.testing.v1 import AppTest

    moved = tmp_path / "evals" / "moved_val"
    moved.mkdir(parents=True)
    src = setup["evals"] / "default_val"
    report = json.loads((src / "report.json").read_text())
    report["dataset"]["root"] = "/elsewhere/scenes"
    (moved / "report.json").write_text(json.dumps(report))
    lines = [json.loads(x) for x in (src / "predictions.jsonl").read_text().splitlines()]
    for r in lines:
        r["image"] = r["image"].replace(str(setup["scenes"]), "/elsewhere/scenes")
    (moved / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    monkeypatch.setenv(ENV_EVAL_DIR, str(tmp_path / "evals"))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(setup["ckpt"]))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/2_Evaluate.py").run()
    at.segmented_control(key="evaluate.browse_kind").set_value("all").run()
    no_exception(at)
    assert any("not at their saved paths" in unmd(i.value) for i in at.info)
    inspect = [b for b in at.button if b.key and b.key.startswith("evaluate.inspect.")]
    assert len(inspect) == 12 and all(b.disabled for b in inspect)
    at.text_input(key="evaluate.root_override").set_value(str(setup["scenes"])).run()
    no_exception(at)
    assert not any("not at their saved paths" in unmd(i.value) for i in at.info)
    inspect = [b for b in at.button if b.key and b.key.startswith("evaluate.inspect.")]
    assert len(inspect) == 12 and not any(b.disabled for b in inspect)
