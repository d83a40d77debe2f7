"""Faults: a training process SIGKILLed mid-epoch resumes from its last checkpoint; a kill during a
checkpoint write never leaves a damaged file where a good one was; damaged feature-cache entries are
found and rebuilt.

(tests/test_training.py already checks that a resumed run continues exactly and that one damaged
cache row is recomputed; here the kills are real signals to real processes.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_core.checkpoints import load_checkpoint, read_metadata
from ram_core.config import RAMConfig
from ram_core.data.synthetic import make_synthetic_voc
from ram_core.data.voc import VOCDataset
from ram_core.training.feature_cache import FeatureCache, cache_key
from ram_core.training.loop import TrainOptions, train

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["circle", "square", "triangle", "cross"]


def wait_for(condition, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def log_epochs(out: Path) -> list[int]:
    path = out / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------
# A real training process, killed mid-epoch


def test_training_killed_mid_epoch_resumes_from_its_last_checkpoint(tmp_path):
    data = tmp_path / "scenes"
    make_synthetic_voc(data, 120, image_size=48, classes=SHAPES, seed=3)
    out, epochs = tmp_path / "run", 6
    cmd = [sys.executable, "-m", "ram_core", "train", "--data", "synthetic", "--root", str(data), "--split", "train",
           "--out", str(out), "--input-size", "64", "--steps", "2", "--region-size", "3", "--hidden-size", "128",
           "--embed-dim", "128", "--epochs", str(epochs), "--batch-size", "1", "--no-flip",
           "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--workers", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            # epoch 2 is complete once its log line is written (the log is written last)
            wait_for(lambda: len(log_epochs(out)) >= 2 and (out / "resume.pt").is_file(),
                     timeout=150, proc=proc, what="epoch 2 to be saved")
            seconds = json.loads((out / "log.jsonl").read_text().splitlines()[1])["seconds"]
            time.sleep(max(0.05, seconds / 2))  # into the middle of the next epoch
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    done = log_epochs(out)
    assert done[:2] == [1, 2] and len(done) < epochs, done  # killed before the end
    model, info = load_checkpoint(out / "last.safetensors")  # the last checkpoint is whole
    assert info.provenance["epoch"] == len(done)

    proc = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"resumed from {out / 'resume.pt'} after epoch {len(done)}" in proc.stdout
    assert "feature cache hit" in proc.stdout  # the features survived the kill
    assert log_epochs(out) == list(range(1, epochs + 1))
    _, info = load_checkpoint(out / "last.safetensors")
    assert info.provenance["epoch"] == epochs
    assert read_metadata(out / "best.safetensors").config.class_names == SHAPES


# --------------------------------------------------------------------------------------------------
# Kills during checkpoint writes

SAVER = textwrap.dedent("""
    import os, sys, time
    import torch
    from ram_core.backbones import RANDOM_INIT
    from ram_core.checkpoints import save_checkpoint
    from ram_core.config import RAMConfig
    from ram_core.model import build_model

    target = sys.argv[1]
    cfg = RAMConfig(class_names=["a", "b", "c"], input_size=64, num_steps=2, region_size=3, embed_dim=16,
                    hidden_size=16)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model(cfg, RANDOM_INIT))  # ~14 MB with the backbone: a write takes a while
    save_checkpoint(target, models[0], backbone_weights="checkpoint", provenance={"n": 0, "seed": 0})
    real_fsync = os.fsync
    r = 0
    # one line per round from the test: "slow" (each write pauses between fsync and rename) or "fast"
    while mode := sys.stdin.readline().strip():
        pid = os.fork()
        if pid == 0:
            def announced_fsync(fd):
                print("fsync", flush=True)  # the temporary file is written, not yet renamed over the target
                if mode == "slow":
                    time.sleep(0.3)
                real_fsync(fd)

            os.fsync = announced_fsync
            n = 0
            while True:
                n += 1
                save_checkpoint(target, models[n % 2], backbone_weights="checkpoint",
                                provenance={"n": n, "seed": n % 2})
                print(f"saved {n}", flush=True)
        print(f"round {r} pid {pid}", flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
        r += 1
""")


def _expected_head(seed: int) -> dict[str, torch.Tensor]:
    from ram_core.backbones import RANDOM_INIT
    from ram_core.model import build_model

    cfg = RAMConfig(class_names=["a", "b", "c"], input_size=64, num_steps=2, region_size=3, embed_dim=16,
                    hidden_size=16)
    torch.manual_seed(seed)
    return build_model(cfg, RANDOM_INIT).head.state_dict()


def test_a_kill_during_a_checkpoint_write_never_leaves_a_damaged_file(tmp_path):
    """A process saves two models in turn to one file and is SIGKILLed: twice while a write sits between
    its fsync and its rename, twice at random moments.  The file always loads, and is exactly the
    model of the last save that finished."""
    target = tmp_path / "last.safetensors"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(target)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    heads = {0: _expected_head(0), 1: _expected_head(1)}
    rng = random.Random(0)
    try:
        for r, mode in enumerate(["slow", "slow", "fast", "fast"]):
            proc.stdin.write(mode + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            assert line.startswith(f"round {r} pid"), line
            pid = int(line.split()[-1])
            saved, fsyncs = 0, 0
            if mode == "slow":
                # let r + 1 saves finish, then kill while the next one waits between fsync and rename
                while not (saved == r + 1 and fsyncs == r + 2):
                    line = proc.stdout.readline()
                    saved += line.startswith("saved")
                    fsyncs += line.startswith("fsync")
            else:
                while not proc.stdout.readline().startswith("saved"):
                    pass
                saved = 1
                time.sleep(rng.uniform(0.0, 0.3))
            os.kill(pid, signal.SIGKILL)
            while not (line := proc.stdout.readline()).startswith("reaped"):
                saved += line.startswith("saved")
            model, info = load_checkpoint(target)  # always a whole, loadable checkpoint
            n, seed = info.provenance["n"], info.provenance["seed"]
            # the last save that finished: the one printed last, or one whose rename beat the kill
            assert n == saved if mode == "slow" else saved <= n <= saved + 1, (mode, n, saved)
            for k, v in model.head.state_dict().items():
                assert torch.equal(v, heads[seed][k]), k  # exactly one of the two models
        proc.stdin.close()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".last.safetensors.")]
    assert len(leftovers) >= 2  # the killed writes' temporary files: never the target itself


# --------------------------------------------------------------------------------------------------
# The feature cache


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root, classes = make_synthetic_voc(tmp_path_factory.mktemp("scenes"), 12, image_size=48, classes=SHAPES, seed=2)
    return VOCDataset(root, "trainval", class_names=classes)


@pytest.fixture(scope="module")
def backbone():
    from ram_core.backbones import build_backbone

    return build_backbone("tf_efficientnet_lite0")


@pytest.mark.parametrize("damage", ["truncated features", "broken meta", "wrong shape", "killed extraction"])
def test_a_damaged_cache_entry_is_rebuilt_whole(damage, small_set, backbone, tmp_path):
    cfg = RAMConfig(class_names=SHAPES, input_size=64)
    cache = FeatureCache(tmp_path / "cache")
    quiet = lambda *_: None  # noqa: E731
    first = cache.get_or_build(backbone, small_set, cfg, "orig", torch.device("cpu"), "default", log=quiet)
    key = cache_key(cfg, small_set.name, small_set.ids, "orig", "default")
    entry = cache.entry(key)
    feats, meta = entry / "features.npy", entry / "meta.json"
    if damage == "truncated features":
        feats.write_bytes(feats.read_bytes()[: feats.stat().st_size // 3])
    elif damage == "broken meta":
        meta.write_text(meta.read_text()[:25])
    elif damage == "wrong shape":
        np.save(feats, np.zeros((3, 2), np.float16))
    else:  # the entry never got renamed into place: only its temporary folder is left
        entry.rename(entry.with_name(entry.name + ".tmp"))
        feats.parent.with_name(entry.name + ".tmp").joinpath("features.npy").write_bytes(b"\x93NUMPY half")
    assert cache.load(key)[0] is None  # not trusted
    messages = []
    again = cache.get_or_build(backbone, small_set, cfg, "orig", torch.device("cpu"), "default", log=messages.append)
    assert messages[0].startswith("extracting")  # rebuilt, not read
    np.testing.assert_array_equal(again, first)
    loaded, bad = cache.load(key)
    assert bad == [] and np.array_equal(loaded, first)
    assert not entry.with_name(entry.name + ".tmp").exists()


# --------------------------------------------------------------------------------------------------
# Resuming: kills between writes, another class list, a damaged state, runs without validation


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root, classes = make_synthetic_voc(tmp_path_factory.mktemp("scenes"), 16, image_size=48, classes=SHAPES, seed=4)
    cfg = RAMConfig(class_names=classes, input_size=64, num_steps=2, region_size=3, embed_dim=16, hidden_size=16)
    cache = tmp_path_factory.mktemp("cache")
    return VOCDataset(root, "train", class_names=classes), cfg, cache


def _opts(out: Path, cache: Path, epochs: int, **kw) -> TrainOptions:
    return TrainOptions(out_dir=str(out), epochs=epochs, batch_size=4, cache_dir=str(cache), device="cpu",
                        log=lambda *_: None, **kw)


def test_a_kill_between_the_log_line_and_resume_state_does_not_duplicate_an_epoch(tiny_run, tmp_path, monkeypatch):
    from ram_core.training import loop

    ds, cfg, cache = tiny_run
    real = loop._save_torch_atomic
    saves = []

    def killed_on_second_save(obj, path):
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt  # as a SIGKILL would, after epoch 2's log line
        real(obj, path)

    monkeypatch.setattr(loop, "_save_torch_atomic", killed_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, _opts(tmp_path, cache, 3), ds)
    monkeypatch.setattr(loop, "_save_torch_atomic", real)
    train(cfg, _opts(tmp_path, cache, 3, resume=True), ds)
    assert log_epochs(tmp_path) == [1, 2, 3]


def test_resume_with_another_class_list_says_so(tiny_run, tmp_path):
    from ram_core.errors import RAMError

    ds, cfg, cache = tiny_run
    train(cfg, _opts(tmp_path, cache, 1), ds)
    more = VOCDataset(ds.voc_dir, "train", class_names=SHAPES + ["ring"])
    try:
        train(cfg.replace(class_names=SHAPES + ["ring"]), _opts(tmp_path, cache, 2, resume=True), more)
    except RAMError as exc:
        assert "class" in str(exc)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{type(exc).__name__}: {str(exc)[:120]}") from None


def test_a_damaged_resume_state_is_a_clear_error(tiny_run, tmp_path):
    from ram_core.errors import RAMError

    ds, cfg, cache = tiny_run
    train(cfg, _opts(tmp_path, cache, 1), ds)
    state = tmp_path / "resume.pt"
    state.write_bytes(state.read_bytes()[:1000])
    try:
        train(cfg, _opts(tmp_path, cache, 2, resume=True), ds)
    except RAMError as exc:
        assert "resume.pt" in str(exc)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{type(exc).__name__}: {str(exc)[:120]}") from None


def test_a_run_without_validation_still_writes_its_best_checkpoint(tiny_run, tmp_path):
    from ram_core.config import LossConfig

    ds, cfg, cache = tiny_run
    heavy = cfg.replace(loss=LossConfig(anchor_weight=50.0))  # a loss well above 1
    result = train(heavy, _opts(tmp_path, cache, 1), ds)
    assert result["history"][0]["loss_total"] > 1
    assert Path(result["best_checkpoint"]).is_file()
