"""The process group that `torchrun` asks for, shared by `train` and `evaluate`.

The backend follows the device the run uses, not what the machine has: NCCL when every process
drives its own GPU, gloo when the processes compute on CPUs (`--device cpu`), also on a machine with
a GPU (NCCL cannot reduce CPU tensors, and two NCCL ranks on one GPU are refused).  A run that
starts more processes per node than torch sees GPUs stops with a message that says so, instead of
CUDA's "invalid device ordinal" from deep inside the first allocation.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .errors import RAMError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def check_gpu_for_rank(rank_on_node: int) -> None:
    """Raise RAMError when this node has no GPU number `rank_on_node` (one GPU per process)."""
    count = torch.cuda.device_count()
    if rank_on_node >= count:
        raise RAMError(
            f"torchrun started process {rank_on_node} on this node, but torch sees {count} GPU(s): one GPU per "
            f"process is needed. Use --nproc_per_node {max(count, 1)} or fewer, or --device cpu for CPU processes.")


def init_process_group(use_cuda: bool) -> tuple[int, int] | None:
    """Join torchrun's process group (WORLD_SIZE > 1) and return (rank, world size); None when not under
    torchrun with several processes.  With use_cuda, this process's GPU becomes the current device."""
    if world_size() <= 1:
        return None
    if not dist.is_initialized():
        if use_cuda:
            check_gpu_for_rank(local_rank())
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()
