"""torchrun's process group: the backend follows the device the run uses (gloo for CPU processes on a
GPU machine), and more processes per node than GPUs stop with a message that names both numbers."""

from __future__ import annotations

import pytest
import torch

from ram_core import distributed_setup
from ram_core.errors import RAMError


def test_not_under_torchrun_joins_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed_setup.init_process_group(use_cuda=True) is None


def test_more_processes_than_gpus_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    distributed_setup.check_gpu_for_rank(0)
    with pytest.raises(RAMError, match=r"process 1 on this node, but torch sees 1 GPU.*--nproc_per_node 1"):
        distributed_setup.check_gpu_for_rank(1)


def test_the_gpu_check_comes_before_any_process_group(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    joined = []
    monkeypatch.setattr(distributed_setup.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed_setup.dist, "init_process_group", lambda backend: joined.append(backend))
    with pytest.raises(RAMError, match="torch sees 1 GPU"):
        distributed_setup.init_process_group(use_cuda=True)
    assert joined == []


@pytest.mark.parametrize("use_cuda,backend", [(False, "gloo"), (True, "nccl")])
def test_backend_follows_the_device_not_the_machine(monkeypatch, use_cuda, backend):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine, whatever the run uses
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    joined = []
    monkeypatch.setattr(distributed_setup.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed_setup.dist, "init_process_group", lambda b: joined.append(b))
    monkeypatch.setattr(distributed_setup.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(distributed_setup.dist, "get_world_size", lambda: 2)
    assert distributed_setup.init_process_group(use_cuda) == (0, 2)
    assert joined == [backend]
