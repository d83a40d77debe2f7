"""DistributedDataParallel: two CPU processes (gloo) train a few steps and stay in sync."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from ram_core.data.synthetic import make_synthetic_voc


def test_two_gloo_processes_stay_in_sync(tmp_path):
    root, _ = make_synthetic_voc(tmp_path / "scenes", 24, image_size=64, seed=3)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port for the rendezvous (torchrun does not accept 0)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
         str(Path(__file__).with_name("ddp_worker.py")), str(root), str(out)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(out / "head_rank0.pt", weights_only=True)
    b = torch.load(out / "head_rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and they did train: rank 0 wrote its log for both epochs
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
