"""The Evaluate page's new controls through AppTest: picking per-class thresholds (F1 at both, the
switch, writing a checkpoint copy), the false-label matrix and its photos, the occlusion results in the
Attention tab, and the occlusion test when running an evaluation from the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ram_core.safe_text import unmd
from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import CheckpointInfo, read_metadata, save_checkpoint
from ram_core.config import RAMConfig
from ram_core.data import make_synthetic_voc
from ram_core.eval_views import ENV_EVAL_DIR, open_evaluation
from ram_core.evaluation import evaluate_to_folder
from ram_core.evaluation_extras import add_evaluation_extras
from ram_core.false_labels import false_label_images
from ram_core.inference import Predictor
from ram_core.model import build_model
from ram_core.occlusion import OCCLUSION_FILE

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["circle", "square", "triangle"]
TIMEOUT = 60


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A dataset, a checkpoint, and its evaluation with the occlusion tests (threshold 0.3, so that a
    random model has true positives to test)."""
    tmp = tmp_path_factory.mktemp("deeper")
    make_synthetic_voc(tmp / "scenes", 16, image_size=64, classes=CLASSES, seed=2)
    cfg = RAMConfig(class_names=list(CLASSES), input_size=64, num_steps=3, region_size=2, embed_dim=16, hidden_size=16)
    torch.manual_seed(0)
    model = build_model(cfg, RANDOM_INIT).eval()
    ckpt = save_checkpoint(tmp / "tiny.safetensors", model, backbone_weights="checkpoint")
    predictor = Predictor(model, CheckpointInfo(cfg, "checkpoint", source=str(ckpt)), torch.device("cpu"))
    out = tmp / "evals" / "tiny_val"
    result, _ = evaluate_to_folder(predictor, "synthetic", tmp / "scenes", "trainval", out, workers=0, threshold=0.3)
    add_evaluation_extras(predictor, result, out, occlusion=True)
    return {"root": tmp, "evals": tmp / "evals", "eval": out, "ckpt": ckpt}


@pytest.fixture
def page(setup, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(ENV_EVAL_DIR, str(setup["evals"]))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(setup["ckpt"]))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/2_Evaluate.py")
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def labels(at) -> set[str]:
    return {m.label for m in at.metric}


def test_picking_per_class_thresholds_shows_f1_at_both_and_writes_a_checkpoint_copy(page, setup):
    at = page
    assert "CF1 @ 0.30" in labels(at) and not any(t.key == "evaluate.use_class_thresholds" for t in at.toggle)
    at.number_input(key="evaluate.thr_min_positives").set_value(1)
    at.button(key="evaluate.pick_thresholds").click().run()
    assert not at.exception
    assert "CF1 @ own thr." in labels(at)
    table = next(d.value for d in at.dataframe if "AP" in d.value.columns)
    assert {"F1", "own threshold", "F1 @ own threshold"} <= set(table.columns)
    chosen = next(d.value for d in at.dataframe if "F1 @ single" in d.value.columns)
    assert (chosen["F1 @ class"] >= chosen["F1 @ single"] - 1e-9).all()  # chosen here: never worse here
    at.button(key="evaluate.write_thresholds").click().run()
    assert not at.exception and any("tiny_thresholds.safetensors" in s.value for s in at.success)
    assert any(d.proto.label == "Download the thresholds (JSON)" for d in at.get("download_button"))
    written = read_metadata(setup["ckpt"].with_name("tiny_thresholds.safetensors")).class_thresholds
    assert written and set(written) <= set(CLASSES)
    assert written == pytest.approx(dict(zip(chosen["class"], chosen["threshold"])), abs=1e-4)
    at.toggle(key="evaluate.use_class_thresholds").set_value(False).run()
    assert "CF1 @ 0.30" in labels(at)


def test_the_false_label_matrix_and_the_photos_behind_a_cell(page, setup):
    at = page
    at.slider(key="evaluate.threshold").set_value(0.0).run()  # every absent class becomes a false positive
    assert not at.exception
    data = open_evaluation(setup["eval"])
    at.selectbox(key="evaluate.false_row").select("circle").run()
    at.selectbox(key="evaluate.false_col").select("square").run()
    expected = false_label_images(data.scores, data.targets, data.masks, data.class_names, 0.0, "FP", "circle",
                                  "square")
    assert expected and any(f"**{len(expected)}** of" in m.value for m in at.markdown)
    captions = [c.value for c in at.caption if c.value.startswith("**") and "· circle" in c.value]
    assert len(captions) == min(len(expected), 12)  # one per photo shown
    squares = lambda: len(next(s for s in specs(at) if s["layout"]["meta"]["kind"] == "false_labels")["data"][0]["x"])  # noqa: E731
    few = squares()
    at.number_input(key="evaluate.false_min").set_value(1).run()
    assert squares() >= few > 0
    at.number_input(key="evaluate.false_min").set_value(1000).run()  # no cell is seen that often
    assert squares() == 0
    at.segmented_control(key="evaluate.false_kind").set_value("FN").run()
    assert not at.exception
    assert any("No misses" in unmd(i.value) for i in at.info)  # at 0.0 nothing is missed


def test_the_attention_tab_shows_the_occlusion_results(page, setup):
    at = page
    assert {"Drop, its step blanked", "Drop, random box", "True positives"} <= labels(at)
    classes = at.selectbox(key="evaluate.deletion_class")
    assert classes.options[0] == "all classes"
    classes.select(classes.options[1]).run()
    assert not at.exception
    (setup["eval"] / OCCLUSION_FILE).rename(setup["eval"] / "kept.json")
    try:
        at.run()
        assert any("Not measured for this evaluation" in c.value for c in at.caption)
    finally:
        (setup["eval"] / "kept.json").rename(setup["eval"] / OCCLUSION_FILE)


def test_running_an_evaluation_from_the_page_with_the_occlusion_test(setup, monkeypatch):
    from streamlit.testing.v1 import AppTest

    # a model that scores every class high: every positive is a true positive at the page's 0.5
    cfg = RAMConfig(class_names=list(CLASSES), input_size=64, num_steps=3, region_size=2, embed_dim=16, hidden_size=16)
    torch.manual_seed(0)
    model = build_model(cfg, RANDOM_INIT).eval()
    with torch.no_grad():
        model.head.classifier.bias.fill_(6.0)
    eager = save_checkpoint(setup["root"] / "eager.safetensors", model, backbone_weights="checkpoint")
    monkeypatch.setenv(ENV_EVAL_DIR, str(setup["evals"]))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(eager))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/2_Evaluate.py")
    at.run()
    out = setup["root"] / "from_page"
    at.selectbox(key="evaluate.kind").select("synthetic")
    at.text_input(key="evaluate.root").input(str(setup["root"] / "scenes"))
    at.text_input(key="evaluate.split").input("trainval")
    at.text_input(key="evaluate.out").input(str(out))
    at.number_input(key="evaluate.workers").set_value(0)
    at.checkbox(key="evaluate.run_occlusion").check()
    next(b for b in at.button if b.label == "Run evaluation").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert (out / "report.json").is_file() and (out / OCCLUSION_FILE).is_file()
    assert at.selectbox(key="evaluate.pick").value == str(out)  # opened, with its occlusion results
    assert {"Drop, its step blanked", "Drop, random box"} <= labels(at)
