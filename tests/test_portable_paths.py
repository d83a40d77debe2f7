"""Evaluations and checkpoints name a dataset's files relative to its root, not by this machine's paths."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import make_provenance, read_metadata
from ram_core.cli import main
from ram_core.config import RAMConfig
from ram_core.data import make_synthetic_voc
from ram_core.eval_views import open_evaluation, resolve_image
from ram_core.locations import path_in_root, portable_command, work_dir
from ram_core.model import build_model

CLASSES = ["circle", "square", "triangle"]


def test_path_in_root_is_relative_with_forward_slashes(tmp_path):
    assert path_in_root(tmp_path / "JPEGImages" / "a.jpg", tmp_path) == "JPEGImages/a.jpg"
    assert path_in_root("/elsewhere/b.jpg", tmp_path) == "/elsewhere/b.jpg"
    assert path_in_root("/x/c.jpg", None) == "/x/c.jpg"


def test_portable_command_drops_this_machines_absolute_paths(tmp_path):
    root = tmp_path / "VOCdevkit"
    argv = ["ram_core", "train", "--root", str(root), "--split", str(root / "labels.csv"),
            "--out", str(work_dir() / "runs" / "x"), "--lr", "0.1", "--cache-dir", "/opt/cache"]
    assert portable_command(argv, root) == ["ram_core", "train", "--root", "VOCdevkit", "--split",
                                            "VOCdevkit/labels.csv", "--out", "runs/x", "--lr", "0.1",
                                            "--cache-dir", "/opt/cache"]
    prov = make_provenance("voc:VOCdevkit", command=argv, root=str(root))
    assert str(tmp_path) not in prov["command"]


def test_evaluation_names_photos_relative_to_the_dataset_root_and_the_app_finds_them(tmp_path):
    scenes = tmp_path / "scenes"
    make_synthetic_voc(scenes, 6, image_size=64, classes=CLASSES, seed=1)
    torch.manual_seed(0)
    cfg = RAMConfig(class_names=CLASSES, input_size=64, num_steps=2, region_size=2, embed_dim=8, hidden_size=8)
    from ram_core.checkpoints import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model(cfg, RANDOM_INIT).eval(), backbone_weights="checkpoint")
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", "synthetic", "--root", str(scenes), "--split", "trainval", "--checkpoint",
                 str(ckpt), "--out", str(out), "--device", "cpu", "--workers", "0", "--no-progress"]) == 0
    records = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert records and all(not Path(r["image"]).is_absolute() and str(tmp_path) not in r["image"] for r in records)
    assert str(tmp_path) not in (out / "predictions.jsonl").read_text()
    data = open_evaluation(out)
    assert resolve_image(data, 0) == scenes / records[0]["image"]  # found through the report's root
    # moved to another machine: the root given in the app finds them again
    moved = tmp_path / "moved"
    scenes.rename(moved)
    assert resolve_image(data, 0) is None
    assert resolve_image(data, 0, str(moved)) == moved / records[0]["image"]


def test_trained_checkpoint_provenance_names_the_root_by_its_folder_name(tmp_path):
    scenes = tmp_path / "my_scenes"
    make_synthetic_voc(scenes, 8, image_size=64, classes=CLASSES, seed=2)
    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic", "--root", str(scenes), "--split", "trainval", "--out", str(out),
                 "--epochs", "1", "--input-size", "64", "--steps", "2", "--region-size", "3", "--hidden-size", "16",
                 "--embed-dim", "16", "--batch-size", "4", "--workers", "0", "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    prov = read_metadata(out / "last.safetensors").provenance
    assert prov["data"].startswith("synthetic:my_scenes ")
    assert str(tmp_path) not in json.dumps(prov)


def test_locations_in_a_checkout_and_with_a_home_folder(monkeypatch, tmp_path):
    from ram_core import locations

    root = Path(__file__).resolve().parent.parent
    assert locations.ASSETS_DIR == root / "assets" and locations.APP_SCRIPT == root / "app.py"
    monkeypatch.delenv(locations.ENV_HOME, raising=False)
    assert locations.work_dir() == root
    monkeypatch.setenv(locations.ENV_HOME, str(tmp_path))
    assert locations.work_dir() == tmp_path
    # 'assets' typed in the app names the bundled files when the work folder has none
    assert locations.resolve_user_path("assets/evaluations") == locations.ASSETS_DIR / "evaluations"
    (tmp_path / "assets").mkdir()
    assert locations.resolve_user_path("assets") == tmp_path / "assets"
    assert locations.resolve_user_path("runs") == tmp_path / "runs"
    assert locations.display_path(locations.ASSETS_DIR / "samples" / "cat.jpg") == "assets/samples/cat.jpg"
    assert locations.display_path(tmp_path / "runs" / "x") == "runs/x"
