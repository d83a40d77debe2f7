"""The app in served mode (Streamlit's AppTest): every path a visitor types outside RAM_STUDIO_ROOTS is
refused on the page with the same message whether or not it exists, nothing outside the write folder is
written, visitors get no tracebacks, and local mode says that it is local.  Hostile checkpoints and class
names reach the page as messages and plain text.  RELIABILITY.md counts these cases."""

from __future__ import annotations

import json

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ram_core import app_support as app
from ram_core import served
from ram_core.safe_text import unmd
from test_bad_input_cli import SHAPES, tiny_checkpoint
from test_checkpoint_bounds import HOSTILE

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120
REFUSED = "not inside the folders this server lets you read"
REFUSED_WRITE = "not inside the folder this server writes to"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "shapes.safetensors", classes=SHAPES)


@pytest.fixture
def served_tree(tmp_path, monkeypatch, checkpoint):
    t = {name: tmp_path / name for name in ("data", "out", "secret")}
    for p in t.values():
        p.mkdir()
    (t["secret"] / "key.txt").write_text("SECRET=hunter2\n")
    (t["secret"] / "stolen.safetensors").write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv(served.ENV_ROOTS, f"read={t['data']};write={t['out']}")
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    for env in ("RAM_STUDIO_EVAL_DIR", "RAM_STUDIO_JOBS_DIR", "RAM_STUDIO_CACHE_DIR"):
        monkeypatch.delenv(env, raising=False)
    yield t
    st.set_option("client.showErrorDetails", "full")  # the option is process-wide: leave it as found


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if page:
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return " ".join(unmd(e.value) for e in elements)


def test_local_mode_says_so_in_the_sidebar(monkeypatch, checkpoint):
    monkeypatch.delenv(served.ENV_ROOTS, raising=False)
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    at = start()
    assert "Local mode" in texts(at.sidebar.caption)


def test_served_mode_hides_tracebacks_and_says_so(served_tree):
    at = start()
    assert "Served mode" in texts(at.sidebar.caption) and "Local mode" not in texts(at.sidebar.caption)
    assert st.get_option("client.showErrorDetails") == "none"


def test_a_malformed_roots_setting_stops_the_app_with_a_message(served_tree, monkeypatch):
    monkeypatch.setenv(served.ENV_ROOTS, "read=relative/path")
    at = start()
    assert "misconfigured" in texts(at.error) and "not an absolute path" in texts(at.error)


def test_the_apps_own_models_and_evaluations_stay_listed_when_served(served_tree):
    at = start()
    options = at.sidebar.selectbox(key=app._W_CHOICE).options
    assert any("ram_baseline.safetensors" in o for o in options), options  # assets/ is the app's own
    assert not at.sidebar.warning or "No model loaded." not in texts(at.sidebar.warning)
    at.switch_page("pages/2_Evaluate.py").run()
    assert not at.exception and not at.sidebar.warning
    assert any("default_cv" in o for o in at.selectbox(key="evaluate.pick").options)


@pytest.mark.parametrize("typed", ["/", "{secret}", "{data}/../secret"])
def test_checkpoint_folders_outside_the_roots_list_nothing(typed, served_tree):
    at = start()
    at.sidebar.text_input(key=app._W_FOLDERS).set_value(typed.format(**served_tree)).run()
    assert not at.exception
    assert REFUSED in texts(at.sidebar.warning)
    options = at.sidebar.selectbox(key=app._W_CHOICE).options
    assert not any("stolen" in o for o in options)


def run_evaluation(at: AppTest, root: str, out: str, kind: str = "voc") -> AppTest:
    at.selectbox(key="evaluate.kind").set_value(kind)
    at.text_input(key="evaluate.root").set_value(root)
    at.text_input(key="evaluate.split").set_value("test")
    at.text_input(key="evaluate.out").set_value(out)
    next(b for b in at.button if b.label == "Run evaluation").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("root,out,message", [
    ("{secret}", "", REFUSED),  # a dataset root outside the read roots
    ("/etc", "", REFUSED),
    ("{data}/../secret", "", REFUSED),
    ("{data}", "{secret}/evil", REFUSED_WRITE),  # Save to outside the write root
    ("{data}", "{data}/evil", REFUSED_WRITE),  # a read root is not writable
    ("{data}", "../secret/evil", REFUSED_WRITE),
])
def test_evaluate_page_refuses_paths_outside_the_roots(root, out, message, served_tree):
    at = start("pages/2_Evaluate.py")
    before = sorted(p.name for p in served_tree["secret"].iterdir())
    at = run_evaluation(at, root.format(**served_tree), out.format(**served_tree))
    assert message in texts(at.error)
    assert "hunter2" not in texts(at.error)
    assert sorted(p.name for p in served_tree["secret"].iterdir()) == before
    assert not (served_tree["data"] / "evil").exists()


@pytest.mark.parametrize("split", ["{secret}/rows.csv", "../secret/rows.csv", "sub/../../secret/rows.csv"])
def test_evaluate_page_refuses_a_labels_file_outside_the_roots(split, served_tree):
    (served_tree["secret"] / "rows.csv").write_text("image,labels\nSECRET=hunter2.jpg,x\n")
    at = start("pages/2_Evaluate.py")
    at.selectbox(key="evaluate.kind").set_value("folder")
    at.text_input(key="evaluate.root").set_value(str(served_tree["data"]))
    at.text_input(key="evaluate.split").set_value(split.format(**served_tree))
    next(b for b in at.button if b.label == "Run evaluation").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert REFUSED in texts(at.error) and "hunter2" not in texts(at.error)


def test_a_synthetic_dataset_is_never_generated_into_a_read_root(served_tree):
    at = start("pages/2_Evaluate.py")
    at = run_evaluation(at, str(served_tree["data"] / "scenes"), "", kind="synthetic")
    assert REFUSED_WRITE in texts(at.error)
    assert not (served_tree["data"] / "scenes").exists()


def test_evaluate_refusals_do_not_tell_whether_a_path_exists(served_tree):
    assert (served_tree["secret"] / "key.txt").is_file() and not (served_tree["secret"] / "kez.txt").exists()
    at = run_evaluation(start("pages/2_Evaluate.py"), str(served_tree["secret"] / "key.txt"), "")
    exists = texts(at.error).replace("key.txt", "X").replace("key.t...", "X")  # long paths are shortened
    at = run_evaluation(start("pages/2_Evaluate.py"), str(served_tree["secret"] / "kez.txt"), "")
    assert texts(at.error).replace("kez.txt", "X").replace("kez.t...", "X") == exists


def test_evaluation_folders_outside_the_roots_are_refused(served_tree):
    (served_tree["secret"] / "report.json").write_text("{}")
    at = start("pages/2_Evaluate.py")
    at.sidebar.text_input(key="evaluate.folders").set_value(f"/, {served_tree['secret']}").run()
    assert not at.exception
    assert texts(at.sidebar.warning).count(REFUSED) == 2


def open_train(page_tree) -> AppTest:
    return start("pages/3_Train.py")


@pytest.mark.parametrize("field,value,message", [
    ("train.root", "{secret}", REFUSED),
    ("train.root", "/etc", REFUSED),
    ("train.extra", "--backbone-weights {secret}/key.txt", REFUSED),
    ("train.split.folder", "{secret}/key.txt", REFUSED),
    ("train.extra", "--root {secret}", REFUSED),  # a second --root among the options wins in argparse
    ("train.extra", "--split ../secret/rows.csv", REFUSED),
    ("train.extra", "--data synthetic", REFUSED_WRITE),  # would generate scenes into a read root
])
def test_train_page_refuses_paths_outside_the_roots(field, value, message, served_tree):
    (served_tree["data"] / "labels.csv").write_text("image,labels\n")
    at = open_train(served_tree)
    if field != "train.root":
        at.text_input(key="train.root").set_value(str(served_tree["data"])).run()
    at.text_input(key=field).set_value(value.format(**served_tree)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert message in texts(at.error) and "hunter2" not in texts(at.error)
    assert at.button(key="train.start").disabled


def test_train_page_without_a_write_folder_does_not_train(served_tree, monkeypatch):
    monkeypatch.setenv(served.ENV_ROOTS, f"read={served_tree['data']}")
    at = open_train(served_tree)
    assert "does not let visitors train" in texts(at.info)
    assert not at.button


@pytest.mark.parametrize("name", ["steps_1e9", "weights_etc_passwd", "weights_nan", "classes_20000", "nesting_100000"])
def test_a_hostile_uploaded_checkpoint_is_a_message_on_the_page(name, served_tree):
    at = start()
    at.sidebar.selectbox(key=app._W_CHOICE).set_value(app.UPLOAD_CHOICE).run()
    uploader = next(u for u in at.sidebar.file_uploader if "checkpoint" in u.label)
    uploader.set_value((f"{name}.safetensors", HOSTILE[name][0](), "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert HOSTILE[name][1] in texts(at.error)
    assert any(w.value == "No model loaded." for w in at.sidebar.warning)


def test_class_names_with_markup_are_shown_as_text(tmp_path, monkeypatch):
    evil = ("<img src=x onerror=alert(1)>", "[click](http://evil.example)", ":red[alert]")
    ckpt = tiny_checkpoint(tmp_path / "evil.safetensors", classes=evil)
    monkeypatch.delenv(served.ENV_ROOTS, raising=False)
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(ckpt))
    at = start()
    shown = " ".join(m.value for m in at.markdown)
    assert "\\<img src=x onerror=alert(1)\\>" in shown and "<img src" not in shown.replace("\\<img src", "")
    assert "\\[click\\](http://evil.example)" in shown and ":red\\[alert\\]" in shown
    at.switch_page("pages/1_Inspect.py").run()
    at.pills(key="inspect.samples").set_value(["cat.jpg"]).run()
    assert not at.exception, [e.value for e in at.exception]
    raw_html = [m.value for m in at.markdown if "<span" in m.value]  # the step captions (unsafe_allow_html)
    assert len(raw_html) == 3  # one per step
    assert all("<img" not in v for v in raw_html)  # inside raw HTML a class name is HTML-escaped
    assert any("&lt;img src=x onerror=alert(1)&gt;" in v or "[click]" in v or ":red[alert]" in v for v in raw_html)


# --------------------------------------------------------------------------------------------------
# Saved evaluations that are not what they claim: a message on the Evaluate page, never a traceback


@pytest.fixture(scope="module")
def real_evaluation(tmp_path_factory, checkpoint) -> Path:
    from ram_core.cli import main
    from ram_core.data import make_synthetic_voc

    base = tmp_path_factory.mktemp("eval")
    make_synthetic_voc(base / "voc", 6, image_size=48, classes=SHAPES, seed=3)
    assert main(["evaluate", "--data", "synthetic", "--root", str(base / "voc"), "--split", "trainval",
                 "--checkpoint", str(checkpoint), "--out", str(base / "good"), "--device", "cpu", "--workers", "0",
                 "--no-progress"]) == 0
    return base / "good"


def _edit_first_prediction(edit):
    def apply(folder: Path) -> None:
        import json

        lines = (folder / "predictions.jsonl").read_text().splitlines()
        record = json.loads(lines[0])
        edit(record)
        lines[0] = json.dumps(record)
        (folder / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    return apply


def _edit_report(edit):
    def apply(folder: Path) -> None:
        import json

        report = json.loads((folder / "report.json").read_text())
        edit(report)
        (folder / "report.json").write_text(json.dumps(report))
    return apply


HOSTILE_EVALUATIONS = {
    "report_nan": (lambda f: (f / "report.json").write_text(
        (f / "report.json").read_text().replace('"mAP": ', '"mAP": NaN, "was": ', 1)), "NaN"),
    "report_deep": (lambda f: (f / "report.json").write_text("[" * 100_000 + "]" * 100_000), "nests too deeply"),
    "report_per_class_number": (_edit_report(lambda r: (r.update(per_class_ap=5), r.pop("class_names"))),
                                "do not describe an evaluation"),
    "report_class_names_number": (_edit_report(lambda r: r.update(class_names=7)), "do not describe an evaluation"),
    "prediction_nan_score": (lambda f: (f / "predictions.jsonl").write_text(
        (f / "predictions.jsonl").read_text().replace('"scores": {', '"scores": {"x": Infinity, ', 1)), "Infinity"),
    "prediction_scores_list": (_edit_first_prediction(lambda r: r.update(scores=[1, 2])),
                               "do not describe an evaluation"),
    "prediction_short_box": (_edit_first_prediction(lambda r: r["steps"][0].update(box_norm=[0.1])),
                             "do not describe an evaluation"),
    "prediction_no_transform": (_edit_first_prediction(lambda r: r["steps"][0].pop("transform")),
                                "do not describe an evaluation"),
    "prediction_deep": (lambda f: (f / "predictions.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"),
                        "nests too deeply"),
}


@pytest.mark.parametrize("case", list(HOSTILE_EVALUATIONS))
def test_a_hostile_saved_evaluation_is_a_message_on_the_page(case, real_evaluation, tmp_path, monkeypatch, checkpoint):
    import shutil

    from ram_core.eval_views import ENV_EVAL_DIR

    damage, message = HOSTILE_EVALUATIONS[case]
    folder = tmp_path / "evaluations" / case
    shutil.copytree(real_evaluation, folder)
    # the JSONL-only layout of older evaluations (damaged columns: tests/test_eval_columns.py)
    (folder / "predictions.npz").unlink(missing_ok=True)
    report = json.loads((folder / "report.json").read_text())
    report.pop("columns", None)
    (folder / "report.json").write_text(json.dumps(report))
    damage(folder)
    monkeypatch.delenv(served.ENV_ROOTS, raising=False)
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    monkeypatch.setenv(ENV_EVAL_DIR, str(tmp_path / "evaluations"))
    at = start("pages/2_Evaluate.py")
    assert "cannot be read" in texts(at.error) and message in texts(at.error), texts(at.error)


def test_the_undamaged_evaluation_opens(real_evaluation, tmp_path, monkeypatch, checkpoint):
    import shutil

    from ram_core.eval_views import ENV_EVAL_DIR

    shutil.copytree(real_evaluation, tmp_path / "evaluations" / "good")
    monkeypatch.delenv(served.ENV_ROOTS, raising=False)
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    monkeypatch.setenv(ENV_EVAL_DIR, str(tmp_path / "evaluations"))
    at = start("pages/2_Evaluate.py")
    assert not at.error and any(m.label == "mAP" for m in at.metric)
