"""On a machine with a CUDA GPU (skipped elsewhere): training under bf16 autocast, from the feature
cache and end to end (fine-tuning the backbone), gives finite, falling losses and a checkpoint that
scores the same on the GPU and the CPU; torchrun with CPU processes on a GPU machine uses gloo; more
processes than GPUs stop with a message that names both numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_core.backbones import RANDOM_INIT
from ram_core.cli import main
from ram_core.config import RAMConfig
from ram_core.data import make_synthetic_voc
from ram_core.data.voc import VOCDataset
from ram_core.eval_columns import read_columns
from ram_core.training.loop import TrainOptions, train
from test_evaluate_distributed import _free_port
from test_gpu_issue14 import CFG, CLASSES, ROOT, pytestmark  # noqa: F401  (the same skip: no GPU, no test)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_train") / "scenes"
    make_synthetic_voc(root, 32, image_size=96, classes=CLASSES, seed=5)
    return root


def _train(scenes: Path, out: Path, fine_tune: bool):
    torch.manual_seed(0)
    ds = VOCDataset(str(scenes), "trainval", class_names=CLASSES)
    cfg = RAMConfig(**CFG, freeze_backbone=not fine_tune)
    opts = TrainOptions(out_dir=str(out), epochs=4, batch_size=8, device="cuda", use_cache=not fine_tune,
                        cache_dir=str(out / "cache"), backbone_weights=RANDOM_INIT, log=lambda *_: None)
    return train(cfg, opts, ds)


@pytest.mark.parametrize("fine_tune", [False, True], ids=["cached", "fine-tune"])
def test_cuda_training_falls_and_its_checkpoint_scores_alike_on_gpu_and_cpu(scenes, tmp_path, fine_tune):
    before = None
    if fine_tune:
        torch.manual_seed(0)
        from ram_core.backbones import build_backbone

        before = {k: v.clone() for k, v in build_backbone(RAMConfig(**CFG).backbone, RANDOM_INIT).state_dict().items()}
        torch.manual_seed(0)  # the same seed builds the same weights, so a difference below is training's
        again = build_backbone(RAMConfig(**CFG).backbone, RANDOM_INIT).state_dict()
        assert all(torch.equal(before[k], again[k]) for k in before)
    result = _train(scenes, tmp_path / "run", fine_tune)
    losses = [r["loss_total"] for r in result["history"]]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert next(result["model"].head.parameters()).device.type == "cuda"
    if fine_tune:  # the backbone was trained too, under autocast
        after = result["model"].backbone.state_dict()
        assert any(not torch.equal(before[k], after[k].cpu()) for k in before if before[k].is_floating_point())
    ckpt = tmp_path / "run" / "last.safetensors"
    args = ["evaluate", "--data", "synthetic", "--root", str(scenes), "--split", "trainval", "--checkpoint", str(ckpt),
            "--batch-size", "8", "--workers", "0", "--no-progress"]
    for dev in ("cuda", "cpu"):
        assert main([*args, "--device", dev, "--out", str(tmp_path / dev)]) == 0
    gpu, cpu = read_columns(tmp_path / "cuda" / "predictions.npz"), read_columns(tmp_path / "cpu" / "predictions.npz")
    assert np.abs(gpu["scores"] - cpu["scores"]).max() < 0.05  # bf16 autocast on the GPU


def _torchrun(nproc: int, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_torchrun_training_with_cpu_processes_on_a_gpu_machine_uses_gloo(scenes, tmp_path):
    # NCCL cannot reduce CPU tensors: before the backend followed the device, this failed on GPU machines
    proc = _torchrun(2, [str(ROOT / "tests" / "ddp_worker.py"), str(scenes), str(tmp_path / "ddp")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "ddp" / "head_rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "head_rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_more_processes_than_gpus_is_a_clear_error(scenes, tmp_path):
    n = torch.cuda.device_count() + 1
    proc = _torchrun(n, ["-m", "ram_core", "train", "--data", "synthetic", "--root", str(scenes), "--out",
                         str(tmp_path / "too_many"), "--epochs", "1", "--device", "cuda", "--input-size", "96"])
    assert proc.returncode != 0
    assert f"torch sees {n - 1} GPU(s)" in proc.stderr + proc.stdout, (proc.stderr + proc.stdout)[-3000:]
