"""Throughput of `evaluate` against the bare backbone's forward pass at the same batch size.

    python benchmarks/bench_evaluate.py [--images 96] [--batch-size 16] [--workers 2] [--device auto]

Generates a synthetic VOC-layout dataset at the model's input size (448 x 448 JPEGs, so resizing
costs what it costs on real photos of that size), builds the default EfficientNet-Lite0 backbone
with its package weights and a RAM head, then times
  - evaluate_dataset end to end (decoding in DataLoader workers, preprocessing, backbone, head,
    the metrics), and
  - the backbone alone on a ready-made tensor batch (no decoding, no head), and
  - the whole model (backbone + head) on the same batch,
and prints images/s for each and the ratios.  evaluate / backbone is what everything around the
backbone costs (the head included); evaluate / model is the pipeline's own cost (decoding,
preprocessing, bookkeeping, metrics): close to 1 means the decoding hides behind the network.
The bare rates are measured before and after the evaluation and averaged, as other processes on the
machine move them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ram_core.backbones import PACKAGE_WEIGHTS  # noqa: E402
from ram_core.checkpoints import CheckpointInfo  # noqa: E402
from ram_core.config import RAMConfig  # noqa: E402
from ram_core.data import build_dataset, make_synthetic_voc  # noqa: E402
from ram_core.evaluation import evaluate_dataset  # noqa: E402
from ram_core.inference import Predictor, autocast_for, device_label, resolve_device  # noqa: E402
from ram_core.model import build_model  # noqa: E402

CLASSES = ["circle", "square", "triangle", "cross"]


def forward_rate(module: torch.nn.Module, predictor: Predictor, n: int, batch_size: int) -> float:
    """Images/s of module on a ready-made batch (no decoding, no preprocessing)."""
    s = predictor.cfg.input_size
    x = torch.randn(batch_size, 3, s, s).to(predictor.device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast_for(predictor.device):
        module(x)  # warm-up
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        done = 0
        while done < n:
            module(x)
            done += batch_size
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--head", choices=["ram", "baseline"], default="ram")
    args = p.parse_args()

    torch.manual_seed(0)
    cfg = RAMConfig(class_names=CLASSES, head=args.head)  # defaults: tf_efficientnet_lite0, 448, K = 5
    model = build_model(cfg, PACKAGE_WEIGHTS)
    device = resolve_device(args.device)
    predictor = Predictor(model, CheckpointInfo(cfg, PACKAGE_WEIGHTS, source="benchmark"), device)
    print(f"{cfg.backbone} + {cfg.head} head, input {cfg.input_size}, batch {args.batch_size}, "
          f"{args.workers} workers, {device_label(device)}")

    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic_voc(tmp, args.images * 4 // 3 + 2, image_size=cfg.input_size, classes=CLASSES)
        dataset = build_dataset("synthetic", tmp, "trainval")
        dataset = dataset.subset(range(min(args.images, len(dataset))))
        n = len(dataset)
        bare = [forward_rate(predictor.model.backbone, predictor, n, args.batch_size)]
        whole = [forward_rate(predictor.model, predictor, n, args.batch_size)]
        t0 = time.perf_counter()
        evaluate_dataset(predictor, dataset, batch_size=args.batch_size, workers=args.workers)
        eval_rate = n / (time.perf_counter() - t0)
        whole.append(forward_rate(predictor.model, predictor, n, args.batch_size))
        bare.append(forward_rate(predictor.model.backbone, predictor, n, args.batch_size))

    bare_rate, model_rate = sum(bare) / 2, sum(whole) / 2
    print(f"evaluate:        {eval_rate:7.2f} images/s  ({n} images, end to end, DataLoader start included)")
    print(f"bare backbone:   {bare_rate:7.2f} images/s  (before/after: {bare[0]:.2f} / {bare[1]:.2f})")
    print(f"model forward:   {model_rate:7.2f} images/s  (backbone + {cfg.head} head)")
    print(f"ratio evaluate / backbone: {eval_rate / bare_rate:6.3f}")
    print(f"ratio evaluate / model:    {eval_rate / model_rate:6.3f}")


if __name__ == "__main__":
    main()
