"""Hostile datasets, command-line arguments and output folders: each case is one crafted input that must
end in a clear error (exit code 2, one `error:` line naming the problem, no traceback) or in the correct
output, and must change no file outside the output folder.  RELIABILITY.md counts these cases."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ram_core.cli import main
from ram_core.data import make_synthetic_voc
from test_bad_input_cli import SHAPES, photo_bytes, tiny_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SECRET = "SECRET=hunter2"


# --------------------------------------------------------------------------------------------------
# Helpers


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, tuple[int, int, bytes]]:
    """Every file under folder (but `skip`) with its size, mtime and first bytes: compare before/after."""
    state = {}
    for p in sorted(folder.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            state[str(p)] = (st.st_size, st.st_mtime_ns, p.read_bytes()[:64])
    return state


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_error(code: int, err: str, *parts: str) -> str:
    assert code == 2, err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    for part in parts:
        assert part in line, (part, line)
    assert SECRET not in err and "hunter2" not in err
    return line


@pytest.fixture(scope="module")
def shapes_ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "shapes.safetensors", classes=SHAPES)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A 'home' with a secret next to the data, to check nothing outside the output folder changes."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "secret.txt").write_text(SECRET + "\nsecond line\n")
    (tmp_path / "home" / "notes.csv").write_text(SECRET + ",x\nrow,2\n")
    return tmp_path


def folder_dataset(root: Path, rows: list[str], n_photos: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_photos):
        (root / f"p{i}.jpg").write_bytes(photo_bytes(i))
    (root / "labels.csv").write_text("image,labels\n" + "".join(r + "\n" for r in rows))
    return root


GOOD_ROWS = ["p0.jpg,circle", "p1.jpg,square;triangle", "p2.jpg,cross", "p3.jpg,circle;cross"]


def evaluate(capsys, ckpt: Path, kind: str, root: Path, out: Path, *extra) -> tuple[int, str, str]:
    return run(capsys, "evaluate", "--data", kind, "--root", root, "--checkpoint", ckpt, "--out", out,
               "--device", "cpu", "--workers", "0", "--no-progress", *extra)


# --------------------------------------------------------------------------------------------------
# Folder datasets: rows that leave the dataset, labels files that are not labels files


FOLDER_CASES = {
    # name: (rows replacing row 2, the labels file to name or None, message part)
    "row_dotdot": (["../home/secret.txt,circle"], None, "leaves the dataset folder"),
    "row_absolute": (["{home}/secret.txt,circle"], None, "leaves the dataset folder"),
    "row_deep_dotdot": (["sub/../../../../../../etc/passwd,circle"], None, "leaves the dataset folder"),
    "row_dot_dotdot": (["./sub/../../home/secret.txt,circle"], None, "leaves the dataset folder"),
    "labels_not_csv": (None, "{home}/secret.txt", "a labels file is a .csv, .tsv, .json file"),
    "labels_foreign_csv": (None, "{home}/notes.csv", "the first row must be a header"),
    "row_wrong_columns": (["p1.jpg,circle,extra,{secret}"], None, "got 4 column(s)"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_a_hostile_folder_dataset_is_refused_without_quoting_other_files(case, sandbox, shapes_ckpt, capsys):
    rows, labels, message = FOLDER_CASES[case]
    home = sandbox / "home"
    good = list(GOOD_ROWS)
    if rows is not None:
        good[2] = rows[0].format(home=home, secret=SECRET)
    data = folder_dataset(sandbox / "data", good)
    (data / "link.jpg").symlink_to(home / "secret.txt")
    before = snapshot(sandbox, skip=sandbox / "out")
    extra = ["--split", labels.format(home=home)] if labels else []
    code, _, err = evaluate(capsys, shapes_ckpt, "folder", data, sandbox / "out", *extra)
    one_error(code, err, message)
    assert snapshot(sandbox, skip=sandbox / "out") == before
    assert not (sandbox / "out" / "report.json").exists()


@pytest.mark.parametrize("case", ["row_dotdot", "row_absolute", "row_deep_dotdot"])
def test_with_skip_bad_a_row_that_leaves_the_dataset_is_skipped_and_reported(case, sandbox, shapes_ckpt, capsys):
    rows = list(GOOD_ROWS)
    rows[2] = FOLDER_CASES[case][0][0].format(home=sandbox / "home", secret=SECRET)
    data = folder_dataset(sandbox / "data", rows)
    (data / "link.jpg").symlink_to(sandbox / "home" / "secret.txt")
    code, _, err = evaluate(capsys, shapes_ckpt, "folder", data, sandbox / "out", "--skip-bad")
    assert code == 0, err
    report = json.loads((sandbox / "out" / "report.json").read_text())
    assert report["num_images"] == 3
    assert any("leaves the dataset folder" in s for s in report["skipped"])


def test_a_photo_linked_into_the_folder_is_read_as_a_photo_not_quoted(sandbox, shapes_ckpt, capsys):
    """A link inside the folder is its owner's choice (photos linked from a shared store): it is opened
    as a photo, and a link to a text file is an unreadable image named by its row, its text never shown."""
    rows = list(GOOD_ROWS)
    rows[2] = "link.jpg,circle"
    data = folder_dataset(sandbox / "data", rows)
    (data / "link.jpg").symlink_to(sandbox / "home" / "secret.txt")
    code, _, err = evaluate(capsys, shapes_ckpt, "folder", data, sandbox / "out")
    one_error(code, err, "link.jpg", "not an image")


def test_a_labels_json_nested_a_million_deep_is_a_clear_error(sandbox, shapes_ckpt, capsys):
    data = folder_dataset(sandbox / "data", GOOD_ROWS)
    (data / "labels.csv").unlink()
    (data / "labels.json").write_text("[" * 1_000_000 + "]" * 1_000_000)
    code, _, err = evaluate(capsys, shapes_ckpt, "folder", data, sandbox / "out")
    one_error(code, err, "nests too deeply")


def test_a_labels_json_record_of_the_wrong_type_is_named_not_dumped(sandbox, shapes_ckpt, capsys):
    data = folder_dataset(sandbox / "data", GOOD_ROWS)
    (data / "labels.csv").unlink()
    (data / "labels.json").write_text(json.dumps([{"image": "p0.jpg", "labels": ["circle"]}, [SECRET] * 50]))
    code, _, err = evaluate(capsys, shapes_ckpt, "folder", data, sandbox / "out")
    one_error(code, err, "item 1", "got a list")


def test_labels_with_terminal_escapes_are_shown_escaped(sandbox, capsys):
    rows = ["p0.jpg,\x1b[2Jcircle", "p1.jpg,square"]
    data = folder_dataset(sandbox / "data", rows, n_photos=2)
    ckpt = tiny_checkpoint(sandbox / "ck.safetensors", classes=("circle", "square"))
    code, _, err = evaluate(capsys, ckpt, "folder", data, sandbox / "out")
    assert code == 0, err
    assert "\x1b" not in err and "\\x1b[2Jcircle" in err  # the unknown class is listed, escaped


# --------------------------------------------------------------------------------------------------
# VOC and COCO


def voc(root: Path) -> list[str]:
    make_synthetic_voc(root, 6, image_size=48, classes=SHAPES, seed=3)
    return (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()


def test_a_voc_split_that_leaves_the_dataset_is_refused(sandbox, shapes_ckpt, capsys):
    voc(sandbox / "voc")
    (sandbox / "home" / "x.txt").write_text(SECRET + "\n")
    before = snapshot(sandbox, skip=sandbox / "out")
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", sandbox / "voc", sandbox / "out",
                            "--split", "../../../home/x")
    one_error(code, err, "is not a split name")
    assert snapshot(sandbox, skip=sandbox / "out") == before


def test_a_voc_id_with_folders_stops_the_run_or_is_skipped(sandbox, shapes_ckpt, capsys):
    ids = voc(sandbox / "voc")
    split = sandbox / "voc" / "ImageSets" / "Main" / "trainval.txt"
    split.write_text("\n".join(ids[:2] + ["../../home/secret"] + ids[2:]) + "\n")
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", sandbox / "voc", sandbox / "out", "--split", "trainval")
    one_error(code, err, "image id number 3 is not a plain file name")
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", sandbox / "voc", sandbox / "out", "--split", "trainval",
                            "--skip-bad")
    assert code == 0 and json.loads((sandbox / "out" / "report.json").read_text())["num_images"] == len(ids)


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_a_voc_box_that_is_not_finite_stops_the_run_naming_the_file(value, sandbox, shapes_ckpt, capsys):
    ids = voc(sandbox / "voc")
    xml = sandbox / "voc" / "Annotations" / f"{ids[1]}.xml"
    text = xml.read_text()
    start = text.index("<xmin>") + len("<xmin>")
    xml.write_text(text[:start] + value + text[text.index("</xmin>"):])
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", sandbox / "voc", sandbox / "out", "--split", "trainval")
    one_error(code, err, f"{ids[1]}.xml", "not a finite number")


def coco(root: Path, edit) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images, annotations = [], []
    for i in range(4):
        (root / "val2017" / f"{i}.jpg").write_bytes(photo_bytes(i))
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 120, "height": 90})
        annotations.append({"id": 100 + i, "image_id": i, "category_id": 1 + i % 4, "bbox": [5, 5, 40, 30]})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(SHAPES)]}
    edit(data)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


COCO_CASES = {
    "duplicate_image_id": (lambda d: d["images"][2].update(id=0), "image id 0 is listed more than once"),
    "duplicate_category_id": (lambda d: d["categories"][1].update(id=1), "category id 1 is listed more than once"),
    "duplicate_category_name": (lambda d: d["categories"][1].update(name="circle"), "used by two category ids"),
    "nan_bbox": (lambda d: d["annotations"][1].update(bbox=[float("nan"), 1, 2, 3]), "NaN or infinite bbox"),
    "inf_bbox": (lambda d: d["annotations"][1].update(bbox=[1, 1, float("inf"), 3]), "NaN or infinite bbox"),
    "zero_size_image": (lambda d: d["images"][1].update(width=0), "has a size of 0 x 90 pixels"),
    "negative_size_image": (lambda d: d["images"][1].update(height=-5), "has a size of 120 x -5 pixels"),
    "file_name_dotdot": (lambda d: d["images"][1].update(file_name="../../home/secret.txt"),
                         "leaves the images folder"),
    "file_name_absolute": (lambda d: d["images"][1].update(file_name="/etc/passwd"), "leaves the images folder"),
    "unhashable_id": (lambda d: d["images"][1].update(id=[1, 2]), "malformed image entry"),
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_a_hostile_coco_file_stops_evaluate_naming_the_item(case, sandbox, shapes_ckpt, capsys):
    edit, message = COCO_CASES[case]
    root = coco(sandbox / "coco", edit)
    before = snapshot(sandbox, skip=sandbox / "out")
    code, _, err = evaluate(capsys, shapes_ckpt, "coco", root, sandbox / "out", "--split", "val")
    one_error(code, err, "instances_val2017.json", message)
    assert snapshot(sandbox, skip=sandbox / "out") == before


@pytest.mark.parametrize("case", ["duplicate_image_id", "nan_bbox", "zero_size_image", "file_name_dotdot"])
def test_with_skip_bad_a_hostile_coco_item_is_left_out_and_reported(case, sandbox, shapes_ckpt, capsys):
    root = coco(sandbox / "coco", COCO_CASES[case][0])
    code, _, err = evaluate(capsys, shapes_ckpt, "coco", root, sandbox / "out", "--split", "val", "--skip-bad")
    assert code == 0, err
    report = json.loads((sandbox / "out" / "report.json").read_text())
    assert any(COCO_CASES[case][1] in s for s in report["skipped"]), report["skipped"]


def test_a_coco_split_that_leaves_the_dataset_is_refused(sandbox, shapes_ckpt, capsys):
    root = coco(sandbox / "coco", lambda d: None)
    elsewhere = coco(sandbox / "home" / "other", lambda d: None)  # a COCO tree outside the root
    assert elsewhere.is_dir()
    code, _, err = evaluate(capsys, shapes_ckpt, "coco", root, sandbox / "out", "--split", "../../home/other/val")
    one_error(code, err, "is not a COCO split name")


def test_a_coco_file_nested_a_million_deep_is_a_clear_error(sandbox, shapes_ckpt, capsys):
    root = coco(sandbox / "coco", lambda d: None)
    (root / "annotations" / "instances_val2017.json").write_text("[" * 1_000_000 + "]" * 1_000_000)
    code, _, err = evaluate(capsys, shapes_ckpt, "coco", root, sandbox / "out", "--split", "val")
    one_error(code, err, "nests too deeply")


# --------------------------------------------------------------------------------------------------
# --out: checked first, never a stranger's folder, one run at a time


@pytest.fixture
def small_voc(sandbox) -> Path:
    voc(sandbox / "voc")
    return sandbox / "voc"


def test_out_that_is_a_file_is_refused_before_the_model_loads(sandbox, small_voc, capsys):
    target = sandbox / "home" / "secret.txt"
    code, _, err = evaluate(capsys, sandbox / "missing.safetensors", "synthetic", small_voc, target)
    one_error(code, err, "is a file, not a folder")  # not "checkpoint not found": --out is checked first
    assert target.read_text().startswith(SECRET)


def test_out_holding_other_files_is_refused_and_left_alone(sandbox, small_voc, shapes_ckpt, capsys):
    before = snapshot(sandbox)
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", small_voc, sandbox / "home", "--split", "trainval")
    one_error(code, err, "already holds other files")
    assert snapshot(sandbox) == before


def test_out_that_cannot_be_written_is_refused_first(sandbox, small_voc, shapes_ckpt, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/ram_studio_out")  # not writable even for root
    else:
        locked = sandbox / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", small_voc, target, "--split", "trainval")
    one_error(code, err, "cannot be written")


def test_a_second_run_into_a_folder_in_use_is_refused(sandbox, small_voc, shapes_ckpt, capsys):
    out = sandbox / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / ".ram-studio.lock").write_text(f"{socket.gethostname()}:{holder.pid}")
        code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", small_voc, out, "--split", "trainval")
        one_error(code, err, "another run is writing into this folder")
        assert not (out / "report.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # its process has ended: the stale lock is taken over and the run completes
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", small_voc, out, "--split", "trainval")
    assert code == 0, err
    assert (out / "report.json").is_file() and not (out / ".ram-studio.lock").exists()


def test_two_sessions_of_one_app_cannot_write_one_folder_at_once(tmp_path):
    import threading

    from ram_core.output_folder import OutputFolderError, output_lock

    entered, release, errors = threading.Event(), threading.Event(), []

    def first():
        with output_lock(tmp_path):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    entered.wait(10)
    try:
        with output_lock(tmp_path):
            pass
    except OutputFolderError as exc:
        errors.append(str(exc))
    release.set()
    t.join()
    assert errors and "another run in this app" in errors[0]


BAD_EVALUATE_OPTIONS = {
    "batch_zero": (["--batch-size", "0"], "--batch-size must be at least 1"),
    "workers_negative": (["--workers", "-1"], "--workers must be 0 or more"),
    "threshold_two": (["--threshold", "2"], "--threshold must be between 0 and 1"),
    "threshold_nan": (["--threshold", "nan"], "--threshold must be between 0 and 1"),
    "limit_zero": (["--limit", "0"], "--limit must be at least 1"),
}


@pytest.mark.parametrize("case", list(BAD_EVALUATE_OPTIONS))
def test_a_bad_evaluate_option_is_refused_before_anything_is_written(case, sandbox, small_voc, shapes_ckpt, capsys):
    args, message = BAD_EVALUATE_OPTIONS[case]
    code, _, err = evaluate(capsys, shapes_ckpt, "synthetic", small_voc, sandbox / "out", "--split", "trainval", *args)
    one_error(code, err, message)
    assert not (sandbox / "out").exists()


def test_a_model_output_that_is_nan_stops_the_run_and_keeps_the_predictions_made(sandbox, small_voc, shapes_ckpt,
                                                                                  monkeypatch):
    import torch

    from ram_core.errors import DatasetError
    from ram_core.evaluation import PARTIAL_FILE, evaluate_to_folder
    from ram_core.inference import Predictor

    predictor = Predictor.from_checkpoint(shapes_ckpt, "cpu")
    real = predictor.run_tensors
    calls = []

    def poisoned(images):
        out = real(images)
        calls.append(1)
        if len(calls) == 2:  # the second batch's first image
            out.transforms[0, 0, 0] = float("nan")
        return out

    monkeypatch.setattr(predictor, "run_tensors", poisoned)
    out = sandbox / "out"
    with pytest.raises(DatasetError, match="NaN or infinite") as err:
        evaluate_to_folder(predictor, "synthetic", small_voc, "trainval", out, batch_size=2, workers=0)
    assert "predictions.partial.jsonl" in str(err.value)
    kept = [json.loads(line) for line in (out / PARTIAL_FILE).read_text().splitlines()]
    assert len(kept) == 2 and not (out / "report.json").exists()
    # --skip-bad: left out and listed, and the report is valid JSON without NaN
    calls.clear()
    result, paths = evaluate_to_folder(predictor, "synthetic", small_voc, "trainval", out, batch_size=2, workers=0,
                                       skip_bad=True)
    report = json.loads(paths["report"].read_text(), parse_constant=lambda c: pytest.fail(f"{c} in report.json"))
    total = len((small_voc / "ImageSets" / "Main" / "trainval.txt").read_text().split())
    assert report["num_images"] == total - 1 and any("NaN or infinite" in s for s in report["skipped"])
    assert not (out / PARTIAL_FILE).exists()
    assert torch.isfinite(result.outputs.transforms).all()


# --------------------------------------------------------------------------------------------------
# train: refused before the data is read, NaN losses stop cleanly


BAD_TRAIN_OPTIONS = {
    "epochs_zero": (["--epochs", "0"], "--epochs must be between 1"),
    "epochs_negative": (["--epochs", "-5"], "--epochs must be between 1"),
    "batch_zero": (["--batch-size", "0"], "--batch-size must be between 1"),
    "lr_nan": (["--lr", "nan"], "--lr must be a finite number above 0"),
    "lr_negative": (["--lr", "-0.1"], "--lr must be a finite number above 0"),
    "lr_inf": (["--lr", "inf"], "--lr must be a finite number above 0"),
    "weight_decay_negative": (["--weight-decay", "-1"], "--weight-decay must be"),
    "steps_zero": (["--steps", "0"], "num_steps"),
    "steps_huge": (["--steps", "1000000000"], "num_steps must be between 1 and 64"),
    "input_tiny": (["--input-size", "8"], "input_size"),
    "input_huge": (["--input-size", "100000"], "input_size must be between 32 and 2048"),
    "region_zero": (["--region-size", "0"], "region_size must be between 1 and 32"),
    "hidden_huge": (["--hidden-size", "10000000"], "hidden_size must be between"),
    "dropout_two": (["--dropout", "2"], "dropout must be"),
    "val_fraction_one": (["--val-fraction", "1.5"], "--val-fraction must be between 0 and 1"),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN_OPTIONS))
def test_a_bad_train_option_is_refused_before_the_data_is_read(case, sandbox, capsys):
    args, message = BAD_TRAIN_OPTIONS[case]
    code, _, err = run(capsys, "train", "--data", "voc", "--root", sandbox / "no_such_root", "--out",
                       sandbox / "out", *args)
    one_error(code, err, message)  # the root does not exist: the option was checked first
    assert not (sandbox / "out").exists()


def test_a_nan_loss_stops_training_naming_the_epoch_and_keeps_the_last_good_checkpoint(sandbox, monkeypatch, capsys):
    import torch

    from ram_core.training import loop

    voc(sandbox / "voc")
    per_epoch = math.ceil(len((sandbox / "voc" / "ImageSets" / "Main" / "trainval.txt").read_text().split()) / 2)
    real = loop.ram_loss
    seen = {"batches": 0}

    def diverging(*a, **kw):
        terms = real(*a, **kw)
        seen["batches"] += 1
        if seen["batches"] > per_epoch:  # the first batch of epoch 2 diverges
            terms.total = terms.total * torch.tensor(float("nan"))
        return terms

    monkeypatch.setattr(loop, "ram_loss", diverging)
    out = sandbox / "run"
    code, stdout, err = run(capsys, "train", "--data", "synthetic", "--root", sandbox / "voc", "--split", "trainval",
                            "--out", out, "--epochs", "3", "--batch-size", "2", "--steps", "2", "--input-size", "64",
                            "--hidden-size", "16", "--embed-dim", "16", "--workers", "0", "--cache-dir",
                            sandbox / "cache", "--backbone-weights", "random", "--no-flip")
    line = one_error(code, err, "epoch 2, batch 1", "not a finite number", "last good checkpoint")
    assert str(out / "last.safetensors") in line and "best checkpoint" not in stdout
    from ram_core.checkpoints import load_checkpoint

    model, info = load_checkpoint(out / "last.safetensors")  # the epoch-1 checkpoint loads, finite
    assert info.provenance["epoch"] == 1
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and all(not (isinstance(v, float) and math.isnan(v)) for v in log[0].values())


# --------------------------------------------------------------------------------------------------
# JSON that never holds NaN, text that cannot drive a terminal or the page


def test_finite_json_writes_null_for_nan_and_infinity():
    from ram_core.finite_json import dumps

    value = {"a": float("nan"), "b": [1.0, float("inf"), -float("inf")], "c": np.float32("nan"), "d": (2, 3)}
    text = dumps(value)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": [1.0, None, None],
                                                                          "c": None, "d": [2, 3]}


HOSTILE_TEXT = {
    "ansi_clear": ("\x1b[2J\x1b[Hcat", "\\x1b[2J\\x1b[Hcat"),
    "carriage_return": ("cat\rdog", "cat\\rdog"),
    "fake_line": ("cat\nerror: all good", "cat\\nerror: all good"),
    "bidi_override": ("cat\u202egod", "cat\\u202egod"),
    "bell_and_nul": ("\x07\x00x", "\\x07\\x00x"),
    "c1_csi": ("\x9b31mred", "\\x9b31mred"),
}


@pytest.mark.parametrize("case", list(HOSTILE_TEXT))
def test_text_for_a_terminal_has_no_control_characters(case):
    from ram_core.safe_text import plain

    raw, shown = HOSTILE_TEXT[case]
    assert plain(raw) == shown
    assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in plain(raw))


HOSTILE_MARKDOWN = ["[click me](http://evil.example)", "![x](http://evil.example/p.png)", ":red[ALERT]",
                    "<img src=x onerror=alert(1)>", "$\\frac{1}{0}$", "**bold** _it_ `code`", "# heading | table |"]


@pytest.mark.parametrize("text", HOSTILE_MARKDOWN)
def test_text_for_the_page_shows_as_typed(text):
    from ram_core.safe_text import md, unmd

    escaped = md(text)
    assert unmd(escaped) == text
    for ch in "[]<>`*$|#":
        assert ch not in escaped.replace("\\" + ch, "")  # every one of them escaped


def test_predict_in_a_real_process_prints_an_escaped_error(sandbox, shapes_ckpt):
    evil = sandbox / "home" / "\x1b[2Jevil.jpg"
    evil.write_bytes(b"not an image")
    proc = subprocess.run([sys.executable, "-m", "ram_core", "predict", str(evil), "--checkpoint", str(shapes_ckpt),
                           "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "\x1b" not in proc.stderr
    assert "\\x1b[2Jevil.jpg: not an image" in proc.stderr
