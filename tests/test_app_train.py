"""The Train page through Streamlit's AppTest: the data preview and its warnings, the recipe's values,
bad input as messages, a short job started from the page and followed to the end, and the hand-off
of its checkpoint to the model picker, Inspect and Evaluate."""

from __future__ import annotations

import io
import json
import os
import signal
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ram_core.safe_text import unmd
from ram_core.data.synthetic import make_synthetic_folder
from ram_core.jobs import ACTIVE, JobQueue, recipe_values
from ram_core.jobs.store import ENV_CACHE_DIR, ENV_JOBS_DIR

ROOT = Path(__file__).resolve().parent.parent
TRAIN = "pages/3_Train.py"
TIMEOUT = 120
TINY = "--region-size 2 --hidden-size 8 --embed-dim 8 --workers 0 --no-flip --device cpu"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root, classes = make_synthetic_folder(tmp_path_factory.mktemp("photos"), 24, image_size=48, seed=6)
    return root, classes


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_JOBS_DIR, str(tmp_path / "jobs"))
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(tmp_path / "no_default.safetensors"))  # no model needed
    queue = JobQueue(tmp_path / "jobs", tmp_path / "cache")
    yield queue
    for job in queue.jobs():
        if job.state in ACTIVE and job.status.get("pid"):
            try:
                os.killpg(int(job.status["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def open_train(jobs) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page(TRAIN)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def classes_table(at: AppTest):
    """The preview's table (the one with a 'class' column)."""
    return next(d.value for d in at.dataframe if "class" in d.value.columns)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_the_page_previews_classes_with_counts_and_warns_about_rare_ones(jobs, photos, tmp_path):
    root, _ = photos
    at = open_train(jobs)
    assert at.title[0].value == "Train"
    assert any("No training is running" in unmd(i.value) for i in at.info)
    # a folder where one class has a single photo
    rare = tmp_path / "rare"
    (rare / "images").mkdir(parents=True)
    lines = ["image,labels"]
    for k, p in enumerate(sorted((root / "images").glob("*.jpg"))[:12]):
        (rare / "images" / p.name).write_bytes(p.read_bytes())
        lines.append(f"images/{p.name},{'circle;unicorn' if k == 0 else 'circle' if k % 2 else 'square'}")
    (rare / "labels.csv").write_text("\n".join(lines) + "\n")
    at.text_input(key="train.root").set_value(str(rare)).run()
    no_exception(at)
    table = classes_table(at)
    assert table["class"].tolist() == ["circle", "square", "unicorn"]
    assert table["training photos"].sum() + table["validation photos"].sum() == 6 + 6 + 1
    warnings = " ".join(unmd(w.value) for w in at.warning)
    assert "unicorn" in warnings and ("Fewer than 5" in warnings or "No training photo" in warnings)
    assert not at.button(key="train.start").disabled


def test_the_recipe_fills_the_options_and_a_baseline_has_no_steps(jobs):
    at = open_train(jobs)
    paper = recipe_values("paper")
    at.selectbox(key="train.recipe").set_value("paper").run()
    no_exception(at)
    assert at.number_input(key="train.input_size").value == paper["input_size"]
    assert at.number_input(key="train.steps").value == paper["steps"]
    assert at.number_input(key="train.epochs").value == paper["epochs"]
    assert at.number_input(key="train.lr").value == pytest.approx(paper["lr"])  # the preset's 3e-4
    at.selectbox(key="train.recipe").set_value("baseline").run()
    assert at.number_input(key="train.steps").disabled
    assert at.toggle(key="train.fine_tune").disabled == (not __import__("torch").cuda.is_available())


def test_bad_input_gets_messages_naming_the_problem(jobs, photos, tmp_path):
    root, _ = photos
    at = open_train(jobs)
    at.text_input(key="train.root").set_value(str(tmp_path / "nowhere")).run()
    no_exception(at)
    assert any("no such folder" in unmd(e.value) for e in at.error)
    assert at.button(key="train.start").disabled
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "labels.csv").write_text("image,labels\nx.jpg,cat\n\ny.jpg,dog,extra\n")
    at.text_input(key="train.root").set_value(str(bad)).run()
    assert any("labels.csv, line" in unmd(e.value) for e in at.error), [unmd(e.value) for e in at.error]
    at.text_input(key="train.root").set_value(str(root)).run()
    at.text_input(key="train.extra").set_value("--bogus-option").run()
    no_exception(at)
    assert any("unrecognized arguments: --bogus-option" in unmd(e.value) for e in at.error)


def test_an_uploaded_zip_is_unpacked_and_previewed_and_a_bad_one_is_refused(jobs, photos):
    root, classes = photos
    at = open_train(jobs)
    at.segmented_control(key="train.source").set_value("upload").run()
    no_exception(at)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mine/labels.csv", (root / "labels.csv").read_text())
        for p in sorted((root / "images").glob("*.jpg")):
            z.write(p, f"mine/images/{p.name}")
    _upload(at, "mine.zip", buf.getvalue())
    no_exception(at)
    assert any("24 photos unpacked" in s.value for s in at.success)
    assert classes_table(at)["class"].tolist() == classes
    assert (jobs.root / "_uploads").is_dir()
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("labels.csv", "image,labels\n")
        z.writestr("../escape.jpg", b"x")
    _upload(at, "evil.zip", evil.getvalue())
    no_exception(at)
    assert any("outside its folder" in unmd(e.value) for e in at.error)


def _upload(at: AppTest, name: str, data: bytes) -> None:
    uploader = next(u for u in at.file_uploader if u.key == "train.zip")
    uploader.set_value([(name, data, "application/zip")])
    at.run()


def wait_until(at: AppTest, condition, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        no_exception(at)
        if condition(at):
            return at
        time.sleep(0.5)
    raise AssertionError("the page never showed what was expected")


def test_a_short_run_started_from_the_page_ends_with_curves_and_opens_in_evaluate(jobs, photos):
    root, _ = photos
    at = open_train(jobs)
    at.text_input(key="train.root").set_value(str(root)).run()
    at.number_input(key="train.epochs").set_value(2)
    at.number_input(key="train.input_size").set_value(64)
    at.number_input(key="train.steps").set_value(2)
    at.number_input(key="train.batch_size").set_value(8)
    at.text_input(key="train.extra").set_value(TINY)
    at.text_input(key="train.name").set_value("page-run").run()
    no_exception(at)
    assert not at.error, [unmd(e.value) for e in at.error]
    at.button(key="train.start").click().run()
    no_exception(at)
    job = jobs.jobs()[0]
    assert job.name == "page-run" and "--epochs" in job.argv and "2" in job.argv
    # a second session sees the same job
    other = open_train(jobs)
    assert any("page-run" in m.value for m in other.markdown) or any(
        "page-run" in s for s in other.selectbox(key="train.selected").options)
    wait_until(at, lambda a: jobs.get(job.id).state == "finished" and a.get("plotly_chart"))
    at.run()
    curves = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    curve = next(c for c in curves if c["layout"].get("meta", {}).get("kind") == "train_curves")
    assert curve["layout"]["meta"]["epochs"] == 2
    assert {t["name"] for t in curve["data"]} >= {"total", "classification", "mAP, all classes"}
    # the new checkpoint is in the picker, with its evaluation
    picker = at.sidebar.selectbox(key="ram_studio.w.checkpoint")
    best = str(job.best_checkpoint.resolve())
    summary = jobs.get(job.id).status["summary"]
    assert f"{best} · mAP {summary['mAP']:.1f}" in picker.options  # AppTest lists the labels
    at.button(key=f"train.evaluate.{job.id}").click().run()
    no_exception(at)
    assert at.title[0].value == "Evaluate"
    assert at.selectbox(key="evaluate.pick").value.endswith("evaluation")
    assert at.sidebar.selectbox(key="ram_studio.w.checkpoint").value == best
    assert any(m.label == "mAP" for m in at.metric)
    # and Inspect: the same checkpoint on one of the validation photos
    at.switch_page(TRAIN).run()
    no_exception(at)
    at.button(key=f"train.inspect.{job.id}").click().run()
    no_exception(at)
    assert at.title[0].value == "Inspect"
    kinds = [json.loads(c.proto.spec)["layout"].get("meta", {}).get("kind") for c in at.get("plotly_chart")]
    assert "attention" in kinds


def test_stop_and_resume_from_the_page(jobs, photos):
    root, _ = photos
    at = open_train(jobs)
    at.text_input(key="train.root").set_value(str(root)).run()
    at.number_input(key="train.epochs").set_value(15)
    at.number_input(key="train.input_size").set_value(48)
    at.number_input(key="train.steps").set_value(2)
    at.number_input(key="train.batch_size").set_value(2)
    at.text_input(key="train.extra").set_value(TINY).run()
    at.button(key="train.start").click().run()
    job = jobs.jobs()[0]
    wait_until(at, lambda a: len(job.history()) >= 1 or job.state not in ACTIVE)
    assert job.state == "running"
    at.run()
    at.button(key=f"train.stop.{job.id}").click().run()
    no_exception(at)
    assert jobs.wait(job.id, 120) == "stopped"
    at.run()
    assert at.selectbox(key="train.selected").value == job.id
    done = len(job.history())
    assert done < 15
    at.button(key=f"train.resume.{job.id}").click().run()
    no_exception(at)
    assert jobs.wait(job.id, 180) == "finished"
    assert [r["epoch"] for r in job.history()] == list(range(1, 16))
