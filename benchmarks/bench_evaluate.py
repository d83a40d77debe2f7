"""Throughput of `evaluate` against the bare backbone's forward pass at the same batch size.

    python benchmarks/bench_evaluate.py [--images 96] [--batch-size 16] [--workers 2] [--device auto]

Generates a synthetic VOC-layout dataset at the model's input size (448 x 448 JPEGs, so resizing
costs what it costs on real photos of that size), builds the default EfficientNet-Lite0 backbone
with its package weights and a RAM head, then times
  - evaluate_dataset end to end (decoding in DataLoader workers, preprocessing, backbone, head,
    the metrics), and
  - the backbone alone on a ready-made tensor batch (no decoding, no head) at its best: both memory
    layouts (channels_last, as evaluate runs it, and contiguous) and several batch sizes, and
  - the whole model (backbone + head) on a batch of evaluate's size and layout,
  - evaluate's DataLoader alone (decoding and preprocessing, no model),
and prints images/s for each and the ratios.  evaluate / backbone is what everything around the
backbone costs (the head included); evaluate / model is the pipeline's own cost (decoding,
preprocessing, bookkeeping, metrics): close to 1 means the decoding hides behind the network.

The bare and whole-model forwards are timed in turn (a, b, c, a, b, c, ...; benchmarks/common.py's
`interleaved`), best run of each, in the same run as the evaluation: the earlier version timed the
bare backbone first, alone and once, while the machine's load moved, and so reported it slower than
backbone + head.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interleaved, machine  # noqa: E402

from ram_core.backbones import PACKAGE_WEIGHTS  # noqa: E402
from ram_core.checkpoints import CheckpointInfo  # noqa: E402
from ram_core.config import RAMConfig  # noqa: E402
from ram_core.data import build_dataset, make_synthetic_voc  # noqa: E402
from ram_core.evaluation import evaluate_dataset  # noqa: E402
from ram_core.inference import Predictor, autocast_for, device_label, resolve_device  # noqa: E402
from ram_core.model import build_model  # noqa: E402

CLASSES = ["circle", "square", "triangle", "cross"]


LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def forward_fns(predictor: Predictor, batch_sizes: list[int], eval_batch: int) -> dict[str, tuple]:
    """{name: (callable running one batch, batch size)}: the backbone at each layout and batch size,
    and the whole model at evaluate's batch and layout (channels_last, Predictor.run_tensors)."""
    s = predictor.cfg.input_size
    dev = predictor.device
    fns = {}
    for layout, fmt in LAYOUTS.items():
        backbone = copy.deepcopy(predictor.model.backbone).to(memory_format=fmt).eval()
        for b in batch_sizes:
            x = torch.randn(b, 3, s, s, device=dev).contiguous(memory_format=fmt)
            fns[f"backbone {layout} batch {b}"] = (lambda m=backbone, x=x: m(x), b)
    x = torch.randn(eval_batch, 3, s, s, device=dev).contiguous(memory_format=torch.channels_last)
    fns[f"model channels_last batch {eval_batch}"] = (lambda: predictor.model(x), eval_batch)
    return fns


def timed_rates(fns: dict[str, tuple], device: torch.device, repeats: int) -> dict[str, float]:
    """{name: images/s of the best run}, the forwards run in turn."""
    def sync(fn):
        def run():
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
        return run

    with torch.inference_mode(), autocast_for(device):
        best = interleaved({k: sync(fn) for k, (fn, _) in fns.items()}, repeats=repeats, warmup=1)
    return {k: fns[k][1] / best[k][0] for k in fns}


def loader_only_rate(dataset, cfg: RAMConfig, batch_size: int, workers: int) -> float:
    """images/s of evaluate's DataLoader alone (same items, batch, workers), its start included."""
    from torch.utils.data import DataLoader

    from ram_core.evaluation import _EvalItems
    from ram_core.inference import ImageTransform

    t0 = time.perf_counter()
    for _ in DataLoader(_EvalItems(dataset, ImageTransform(cfg)), batch_size=batch_size, num_workers=workers):
        pass
    return len(dataset) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--head", choices=["ram", "baseline"], default="ram")
    p.add_argument("--backbone-batches", default="1,8,16,32", help="batch sizes tried for the bare backbone")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each forward (best counts)")
    args = p.parse_args()

    torch.manual_seed(0)
    cfg = RAMConfig(class_names=CLASSES, head=args.head)  # defaults: tf_efficientnet_lite0, 448, K = 5
    model = build_model(cfg, PACKAGE_WEIGHTS)
    device = resolve_device(args.device)
    predictor = Predictor(model, CheckpointInfo(cfg, PACKAGE_WEIGHTS, source="benchmark"), device)
    print(machine())
    print(f"{cfg.backbone} + {cfg.head} head, input {cfg.input_size}, batch {args.batch_size}, "
          f"{args.workers} workers, {device_label(device)}")

    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic_voc(tmp, args.images * 4 // 3 + 2, image_size=cfg.input_size, classes=CLASSES)
        dataset = build_dataset("synthetic", tmp, "trainval")
        dataset = dataset.subset(range(min(args.images, len(dataset))))
        n = len(dataset)
        # twice: the first run pays the DataLoader's start and, on a GPU, CUDA's lazy start (kernel
        # loading, cuDNN's first choices); the second is what a long evaluation runs at
        eval_rates = []
        for _ in range(2):
            t0 = time.perf_counter()
            evaluate_dataset(predictor, dataset, batch_size=args.batch_size, workers=args.workers)
            eval_rates.append(n / (time.perf_counter() - t0))
        eval_rate = eval_rates[1]
        loader_rate = loader_only_rate(dataset, cfg, args.batch_size, args.workers)

    batches = sorted({int(b) for b in args.backbone_batches.split(",") if b.strip()} | {args.batch_size})
    rates = timed_rates(forward_fns(predictor, batches, args.batch_size), device, args.repeats)
    model_key = f"model channels_last batch {args.batch_size}"
    model_rate = rates.pop(model_key)
    best_key = max(rates, key=rates.get)
    bare_rate = rates[best_key]
    print(f"evaluate:        {eval_rates[0]:7.2f} images/s first run, {eval_rate:7.2f} second run  ({n} images, end "
          f"to end, DataLoader start included)")
    print(f"loader alone:    {loader_rate:7.2f} images/s  (decoding and preprocessing in {args.workers} workers, no model)")
    for k, r in rates.items():
        print(f"  {k:34s} {r:7.2f} images/s")
    print(f"bare backbone:   {bare_rate:7.2f} images/s  (best: {best_key})")
    print(f"model forward:   {model_rate:7.2f} images/s  (backbone + {cfg.head} head, channels_last, batch "
          f"{args.batch_size}, as evaluate runs it)")
    print(f"ratio model / best backbone:  {model_rate / bare_rate:6.3f}  (below 1: the head's cost)")
    print(f"ratio evaluate / backbone:    {eval_rate / bare_rate:6.3f}")
    print(f"ratio evaluate / model:       {eval_rate / model_rate:6.3f}")
    print(f"ratio evaluate / loader:      {eval_rate / loader_rate:6.3f}  (near 1: the photos' decoding is the limit)")


if __name__ == "__main__":
    main()
