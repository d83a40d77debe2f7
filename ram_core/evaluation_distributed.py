"""`torchrun --nproc_per_node N -m ram_core evaluate ...`: the dataset in shards, one per process.

Each rank runs the model over its shard (whole batches of the single-process run, in order: rank r
takes batches nb*r//N .. nb*(r+1)//N - 1 of the nb batches) and writes its raw outputs to
OUT/.part-R-of-N.pt; after a barrier, rank 0 reads the parts, puts them in dataset order and scores
them exactly as one process would (evaluation.result_from_outputs), then writes the one report.json,
predictions.jsonl and predictions.npz.  The report is the single-process one but for timing fields
(seconds, images_per_second: the slowest rank's; date) and `distributed` (the number of processes).
OUT must be a folder every rank sees (one machine, or a shared file system).  A rank that cannot
read a photo writes the error instead of its part, so rank 0 stops with that message rather than
waiting for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from .distributed_setup import init_process_group, local_rank
from .errors import DatasetError, RAMError
from .evaluation import (EvaluationResult, Progress, RawOutputs, _align_classes, dataset_info, evaluation_dataset,
                         merge_raw, result_from_outputs, run_model, write_evaluation)
from .inference import Predictor
from .model import OUTPUT_FIELDS, RAMOutput

FIELDS = OUTPUT_FIELDS


@dataclass(frozen=True)
class Distributed:
    rank: int
    world: int
    local_rank: int


def init_distributed(use_cuda: bool) -> Distributed | None:
    """The process group torchrun asks for (WORLD_SIZE > 1), or None: NCCL when the evaluation runs on
    GPUs (one per process), gloo on CPUs, also on a machine that has a GPU (`--device cpu`)."""
    joined = init_process_group(use_cuda)
    if joined is None:
        return None
    return Distributed(joined[0], joined[1], local_rank())


def shard_indices(n: int, batch_size: int, rank: int, world: int) -> list[int]:
    """The dataset indices of rank's shard: whole batches of the single-process run, in order."""
    batches = (n + batch_size - 1) // batch_size
    first, last = batches * rank // world, batches * (rank + 1) // world
    return list(range(first * batch_size, min(n, last * batch_size)))


def part_path(out_dir: str | os.PathLike, rank: int, world: int) -> Path:
    return Path(out_dir) / f".part-{rank}-of-{world}.pt"


def save_part(path: Path, raw: RawOutputs | None, error: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if raw is None:
        torch.save({"error": error}, tmp)
    else:
        torch.save({**{f: getattr(raw.outputs, f) for f in FIELDS}, "kept": raw.kept,
                    "sizes": [list(s) for s in raw.sizes], "skipped": raw.skipped, "seconds": raw.seconds}, tmp)
    os.replace(tmp, path)


def load_part(path: Path) -> RawOutputs:
    part: dict[str, Any] = torch.load(path, weights_only=True)
    if part.get("error"):
        raise DatasetError(part["error"])
    return RawOutputs(RAMOutput(*(part.get(f) for f in FIELDS)), list(part["kept"]),
                      [tuple(s) for s in part["sizes"]], list(part["skipped"]), float(part["seconds"]))


def evaluate_to_folder_distributed(
    predictor: Predictor,
    kind: str,
    root: str | os.PathLike,
    split: str | None,
    out_dir: str | os.PathLike,
    ctx: Distributed,
    *,
    batch_size: int = 16,
    workers: int = 2,
    threshold: float = 0.5,
    skip_bad: bool = False,
    limit: int | None = None,
    compress: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[EvaluationResult | None, dict[str, Path]]:
    """evaluation.evaluate_to_folder over ctx.world processes: (result, paths) on rank 0, (None, {})
    on the others."""
    dataset = evaluation_dataset(kind, root, split, skip_bad=skip_bad, limit=limit,
                                 log=log if ctx.rank == 0 else None)
    if len(dataset) == 0:
        raise DatasetError(f"{getattr(dataset, 'name', 'dataset')}: no images to evaluate")
    _align_classes(list(predictor.cfg.class_names), list(dataset.class_names))  # the same on every rank
    mine = part_path(out_dir, ctx.rank, ctx.world)
    try:
        raw = run_model(predictor, dataset, batch_size, workers, progress if ctx.rank == 0 else None, skip_bad,
                        indices=shard_indices(len(dataset), batch_size, ctx.rank, ctx.world))
        save_part(mine, raw)
    except RAMError as exc:
        save_part(mine, None, str(exc))
    dist.barrier()
    if ctx.rank != 0:
        return None, {}
    parts = [part_path(out_dir, r, ctx.world) for r in range(ctx.world)]
    try:
        raw = merge_raw([load_part(p) for p in parts])
    finally:
        for p in parts:
            p.unlink(missing_ok=True)
    if log:
        log(f"merged {ctx.world} shards: {len(raw.kept)} images")
    result = result_from_outputs(predictor, dataset, raw, threshold=threshold,
                                 dataset_info=dataset_info(kind, root, split, limit))
    result.report["distributed"] = ctx.world
    return result, write_evaluation(result, out_dir, compress=compress)
