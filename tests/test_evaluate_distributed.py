"""`torchrun --nproc_per_node 2 -m ram_core evaluate ...` on two CPU processes (gloo) writes the report
and predictions one process writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import save_checkpoint
from ram_core.config import RAMConfig
from ram_core.data import make_synthetic_voc
from ram_core.evaluation_distributed import shard_indices
from ram_core.model import build_model

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["circle", "square", "triangle"]
TIMING = ("seconds", "images_per_second", "date", "distributed")


@pytest.mark.parametrize("n,batch,world", [(22, 4, 2), (5, 4, 2), (100, 16, 3), (7, 1, 4)])
def test_shards_are_whole_batches_covering_the_dataset_in_order(n, batch, world):
    shards = [shard_indices(n, batch, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    for s in shards:
        assert not s or s[0] % batch == 0  # each shard starts where a batch of the single run starts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_write_the_single_process_evaluation(tmp_path):
    scenes = tmp_path / "scenes"
    make_synthetic_voc(scenes, 30, image_size=64, classes=CLASSES, seed=7)
    torch.manual_seed(0)
    cfg = RAMConfig(class_names=CLASSES, input_size=64, num_steps=3, region_size=2, embed_dim=16, hidden_size=16)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model(cfg, RANDOM_INIT).eval(),
                           backbone_weights="checkpoint")
    args = ["evaluate", "--data", "synthetic", "--root", str(scenes), "--split", "trainval", "--checkpoint",
            str(ckpt), "--device", "cpu", "--batch-size", "4", "--workers", "0", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    single = subprocess.run([sys.executable, "-m", "ram_core", *args, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                          "127.0.0.1", "--master_port", str(_free_port()), "-m", "ram_core", *args,
                          "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes" in two.stderr and two.stdout.count("wrote ") == 1  # rank 0 alone reports

    one_report = json.loads((tmp_path / "one" / "report.json").read_text())
    two_report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert two_report["distributed"] == 2 and one_report["num_images"] == two_report["num_images"] > 8
    assert {k: v for k, v in one_report.items() if k not in TIMING} == \
        {k: v for k, v in two_report.items() if k not in TIMING}
    assert (tmp_path / "one" / "predictions.jsonl").read_text() == (tmp_path / "two" / "predictions.jsonl").read_text()
    with np.load(tmp_path / "one" / "predictions.npz") as a, np.load(tmp_path / "two" / "predictions.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not list((tmp_path / "two").glob(".part-*"))  # the shards' parts are cleaned up


def test_an_unreadable_photo_in_another_ranks_shard_is_named_not_waited_for(tmp_path):
    scenes = tmp_path / "scenes"
    make_synthetic_voc(scenes, 12, image_size=64, classes=CLASSES, seed=8)
    from ram_core.data import build_dataset

    dataset = build_dataset("synthetic", scenes, "trainval")
    broken = Path(dataset.image_paths[-1])  # in the last batch: rank 1's shard
    broken.write_bytes(b"not a photo")
    torch.manual_seed(0)
    cfg = RAMConfig(class_names=CLASSES, input_size=64, num_steps=2, region_size=2, embed_dim=8, hidden_size=8)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", build_model(cfg, RANDOM_INIT).eval(),
                           backbone_weights="checkpoint")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(_free_port()), "-m", "ram_core", "evaluate", "--data",
                           "synthetic", "--root", str(scenes), "--split", "trainval", "--checkpoint", str(ckpt),
                           "--device", "cpu", "--batch-size", "4", "--workers", "0", "--no-progress",
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode != 0
    assert broken.name in proc.stderr and "--skip-bad" in proc.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_rank_with_no_batch_contributes_an_empty_part(tmp_path, random_model):
    """3 photos in one batch of 4 on 2 ranks: rank 0 gets nothing, its empty part merges cleanly."""
    from ram_core.checkpoints import CheckpointInfo
    from ram_core.evaluation import merge_raw, result_from_outputs, run_model
    from ram_core.evaluation_distributed import load_part, save_part
    from ram_core.inference import Predictor

    make_synthetic_voc(tmp_path / "s", 4, image_size=64, classes=["circle", "square", "triangle"], seed=2)
    from ram_core.data import build_dataset

    dataset = build_dataset("synthetic", tmp_path / "s", "trainval").subset(range(3))
    predictor = Predictor(random_model, CheckpointInfo(random_model.cfg, "checkpoint", source="t"), torch.device("cpu"))
    assert shard_indices(3, 4, 0, 2) == [] and shard_indices(3, 4, 1, 2) == [0, 1, 2]
    parts = []
    for rank in range(2):
        raw = run_model(predictor, dataset, 4, 0, indices=shard_indices(3, 4, rank, 2))
        save_part(tmp_path / f"p{rank}.pt", raw)
        parts.append(load_part(tmp_path / f"p{rank}.pt"))
    assert parts[0].outputs.step_logits.shape == (0, random_model.cfg.num_steps, 3)
    merged = merge_raw(parts)
    whole = run_model(predictor, dataset, 4, 0)
    assert merged.kept == whole.kept == [0, 1, 2]
    assert torch.equal(merged.outputs.logits, whole.outputs.logits)
    result = result_from_outputs(predictor, dataset, merged)
    assert result.report["num_images"] == 3
