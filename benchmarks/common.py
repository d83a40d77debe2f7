"""What the benchmarks share: the shipped model's configuration, timing, and the machine's description."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def shipped_config(**changes):
    """The default model's configuration, read from assets/ram_default.safetensors (VOC classes, input
    576, K = 7, 7 x 7 regions, "flatten" encoder, "evidence" localizer, ImageNet prior, region skip,
    CSRA companion, hidden 256), on EfficientNet-Lite0."""
    from ram_core.checkpoints import read_metadata
    from ram_core.inference import DEFAULT_CHECKPOINT

    return read_metadata(DEFAULT_CHECKPOINT).config.replace(**changes)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """(best seconds, all runs) of fn() after `warmup` untimed calls.  The best run, not the median: on
    a shared machine other processes only ever add time, so the fastest run is the least disturbed."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), runs


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                clock: str = "wall") -> dict[str, tuple[float, float]]:
    """{name: (best, median) seconds}, the functions run in turn (a, b, a, b, ...) so that a change in the
    machine's load affects all of them alike, which keeps their ratios honest.

    clock="cpu" measures this process's CPU time instead of wall time: with one torch thread, the work
    itself, whatever else the machine is doing (time spent waiting for a core is not counted)."""
    now = CLOCKS[clock]
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    runs: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = now()
            fn()
            runs[k].append(now() - t0)
    return {k: (min(v), statistics.median(v)) for k, v in runs.items()}


def machine() -> str:
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}, load average {load:.1f} at start")
