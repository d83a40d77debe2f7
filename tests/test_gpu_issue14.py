"""On a machine with a CUDA GPU (skipped elsewhere): evaluate on the GPU gives the CPU's scores (up to
bf16 autocast) and its columns; torchrun with --device cpu picks gloo there, not NCCL (two ranks on one
GPU would fail); exporting a model on the GPU leaves it there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import save_checkpoint
from ram_core.cli import main
from ram_core.config import RAMConfig
from ram_core.data import make_synthetic_voc
from ram_core.eval_columns import read_columns
from ram_core.model import build_model
from test_evaluate_distributed import _free_port

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["circle", "square", "triangle"]
CFG = dict(class_names=CLASSES, input_size=96, num_steps=3, region_size=3, embed_dim=16, hidden_size=16)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu")
    make_synthetic_voc(tmp / "scenes", 24, image_size=96, classes=CLASSES, seed=3)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp / "m.safetensors", build_model(RAMConfig(**CFG), RANDOM_INIT).eval(),
                           backbone_weights="checkpoint")
    args = ["evaluate", "--data", "synthetic", "--root", str(tmp / "scenes"), "--split", "trainval", "--checkpoint",
            str(ckpt), "--batch-size", "4", "--workers", "0", "--no-progress"]
    return tmp, args


def test_cuda_evaluation_gives_the_cpu_scores_and_columns(setup):
    tmp, args = setup
    for dev in ("cuda", "cpu"):
        assert main([*args, "--device", dev, "--out", str(tmp / dev)]) == 0
    gpu, cpu = read_columns(tmp / "cuda" / "predictions.npz"), read_columns(tmp / "cpu" / "predictions.npz")
    assert gpu["ids"].tolist() == cpu["ids"].tolist()
    np.testing.assert_array_equal(gpu["targets"], cpu["targets"])
    assert np.abs(gpu["scores"] - cpu["scores"]).max() < 0.05  # bf16 autocast on the GPU


def test_torchrun_with_cpu_processes_on_a_gpu_machine(setup):
    tmp, args = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(_free_port()), "-m", "ram_core", *args, "--device", "cpu",
                           "--out", str(tmp / "two")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if not (tmp / "cpu" / "predictions.npz").exists():
        assert main([*args, "--device", "cpu", "--out", str(tmp / "cpu")]) == 0
    two, one = read_columns(tmp / "two" / "predictions.npz"), read_columns(tmp / "cpu" / "predictions.npz")
    assert two["ids"].tolist() == one["ids"].tolist()
    assert np.abs(two["scores"] - one["scores"]).max() <= 2e-5  # thread counts differ: float sums may too


def test_onnx_export_leaves_a_gpu_model_on_the_gpu(tmp_path):
    pytest.importorskip("onnx")
    from ram_core.onnx_export import export_onnx

    model = build_model(RAMConfig(**CFG), RANDOM_INIT).eval().cuda()
    export_onnx(model, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").is_file() and next(model.parameters()).device.type == "cuda"
