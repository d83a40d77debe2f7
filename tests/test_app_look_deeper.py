"""The Inspect page's "Look deeper" controls through AppTest: typing a probe box, clearing probes, the
occlusion button, a second model side by side, the per-class threshold switch; and the messages for
heads without steps."""

from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ram_core.safe_text import unmd
from ram_core import app_support as app
from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import save_checkpoint
from ram_core.config import RAMConfig
from ram_core.model import build_model
from ram_core.thresholds import write_checkpoint_copy
from test_app_pages import APP, INSPECT, SAMPLE, TIMEOUT, tiny_checkpoint, upload

CLASSES = ("person", "cat", "motorbike", "dog")


def specs_of(at: AppTest, kind: str) -> list[dict]:
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    return [s for s in specs if s["layout"]["meta"]["kind"] == kind]


def number(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


def open_inspect(checkpoint, monkeypatch, folders=None) -> AppTest:
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if folders is not None:
        at.sidebar.text_input(key="ram_studio.w.folders").input(str(folders)).run()
    at.switch_page(INSPECT).run()
    at = upload(at, ("astronaut.jpg", SAMPLE.read_bytes()))
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    ram = tiny_checkpoint(tmp / "ram.safetensors", num_steps=3)
    other = tiny_checkpoint(tmp / "zoo" / "ram_k2.safetensors", num_steps=2)
    cfg = RAMConfig(class_names=list(CLASSES), input_size=96, head="baseline")
    torch.manual_seed(1)
    base = save_checkpoint(tmp / "zoo" / "base.safetensors", build_model(cfg, RANDOM_INIT),
                           backbone_weights="checkpoint")
    low = write_checkpoint_copy(ram, tmp / "low.safetensors", {c: 0.0 for c in CLASSES})
    return {"ram": ram, "other": other, "base": base, "low": low, "zoo": tmp / "zoo"}


def test_a_typed_box_is_probed_shown_beside_the_steps_and_cleared(models, monkeypatch):
    at = open_inspect(models["ram"], monkeypatch)
    assert specs_of(at, "probe")[0]["layout"]["meta"]["probes"] == 0
    assert any("one step after the global step" in c.value for c in at.caption)  # the help says how
    for name, value in (("x0", 10), ("y0", 20), ("x1", 300), ("y1", 400)):
        number(at, name).set_value(value)
    next(b for b in at.button if b.label == "Probe this box").click().run()
    assert not at.exception and not at.error
    probe = specs_of(at, "probe")[0]
    assert probe["layout"]["meta"]["probes"] == 1
    assert [t["name"] for t in probe["data"] if t["name"].startswith("Probe")] == ["Probe 1"]
    table = next(d.value for d in at.dataframe if "region" in d.value.columns)
    assert table["region"].tolist() == ["Probe 1", "Step 1", "Step 2", "Step 3"]
    assert table["box (px)"].tolist()[0] == "10, 20, 300, 400"
    at.button(key="inspect.probe_clear").click().run()
    assert specs_of(at, "probe")[0]["layout"]["meta"]["probes"] == 0


def test_an_empty_typed_box_gives_a_message(models, monkeypatch):
    at = open_inspect(models["ram"], monkeypatch)
    number(at, "x0").set_value(50)
    number(at, "x1").set_value(50)
    next(b for b in at.button if b.label == "Probe this box").click().run()
    assert not at.exception
    assert any("cannot be probed" in e.value and "less than one pixel" in unmd(e.value) for e in at.error)


def test_the_occlusion_button_shows_each_steps_effect(models, monkeypatch):
    at = open_inspect(models["ram"], monkeypatch)
    assert not specs_of(at, "step_occlusion")
    at.button(key="inspect.occlusion").click().run()
    assert not at.exception
    assert {f"Step {k}" for k in (1, 2, 3)} <= {m.label for m in at.metric}
    heat = specs_of(at, "step_occlusion")[0]
    assert heat["data"][0]["x"] == ["Step 1", "Step 2", "Step 3"]
    assert any("feature map" in c.value for c in at.caption)
    at.slider(key="inspect.threshold").set_value(0.3).run()  # kept with the photo's result: no button again
    assert specs_of(at, "step_occlusion")


def test_heads_without_steps_say_they_cannot_be_probed_or_occluded(models, monkeypatch):
    at = open_inspect(models["base"], monkeypatch)
    infos = " ".join(unmd(i.value) for i in at.info)
    assert "cannot be probed this way" in infos and "no step region to remove" in infos
    assert not specs_of(at, "probe")


def test_a_second_model_side_by_side_with_their_disagreements(models, monkeypatch):
    at = open_inspect(models["ram"], monkeypatch, folders=models["zoo"])
    second = at.selectbox(key="inspect.second_model")
    assert any("ram_k2" in n for n in second.options) and any("base" in n for n in second.options)
    second.select(next(o for o in second.options if "ram_k2" in o)).run()
    assert not at.exception
    attention = [s for s in specs_of(at, "attention")]
    assert sorted(s["layout"]["meta"]["steps"] for s in attention) == [2, 3, 3]  # the main figure, A and B
    table = next(d.value for d in at.dataframe if "A − B" in d.value.columns)
    assert sorted(table["class"]) == sorted(CLASSES)
    gaps = table["A − B"].abs().tolist()
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0
    # the baseline as the second model: its photo, no boxes, and still the table
    second = at.selectbox(key="inspect.second_model")
    second.select(next(o for o in second.options if "base.safetensors" in o)).run()
    assert not at.exception
    assert any("no attention steps to draw" in c.value for c in at.caption)
    assert any("A − B" in d.value.columns for d in at.dataframe)


def test_the_checkpoints_per_class_thresholds_decide_the_labels_unless_switched_off(models, monkeypatch):
    at = open_inspect(models["low"], monkeypatch)
    assert any("Thresholds: **per class (4)**" in m.value for m in at.sidebar.markdown)
    at.slider(key="inspect.threshold").set_value(1.0).run()
    assert {m.label: m.value for m in at.metric}["Labels"] == "4"  # every class's own threshold is 0
    at.toggle(key="inspect.class_thresholds").set_value(False).run()
    assert {m.label: m.value for m in at.metric}["Labels"] == "0"
    plain = open_inspect(models["ram"], monkeypatch)
    assert not any(t.key == "inspect.class_thresholds" for t in plain.toggle)  # no thresholds, no switch
