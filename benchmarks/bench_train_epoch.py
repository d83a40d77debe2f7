"""Training time per epoch from the feature cache, against extracting those features.

    python benchmarks/bench_train_epoch.py [--images 64] [--epochs 3] [--batch-size 32]

Generates a synthetic VOC-layout dataset of --images 448 x 448 photos, builds the feature cache for
it (both views, as training does by default: the time a first run pays once), then trains the shipped
model's head (benchmarks/common.py, with the synthetic classes) for --epochs epochs from the cache and
prints seconds per epoch (from log.jsonl: the loop, the losses, the optimiser, the checkpoint writes),
milliseconds per image, and the ratio of one epoch to one extraction pass over the same images.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import machine, shipped_config

SHAPES = ["circle", "square", "triangle", "cross"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=64, help="training images")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()

    from ram_core.data import build_dataset, make_synthetic_voc
    from ram_core.training.loop import TrainOptions, train

    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_synthetic_voc(tmp / "data", args.images * 2, image_size=448, classes=SHAPES, seed=0)
        dataset = build_dataset("synthetic", tmp / "data", "train")
        dataset = dataset.subset(range(min(args.images, len(dataset))), name="synthetic/train")
        cfg = shipped_config(class_names=SHAPES, imagenet_groups=None)  # no ImageNet counterparts for shapes
        messages: list[str] = []
        opts = TrainOptions(out_dir=str(tmp / "run"), epochs=args.epochs, batch_size=args.batch_size,
                            cache_dir=str(tmp / "cache"), device="cpu", log=messages.append)
        t0 = time.perf_counter()
        result = train(cfg, opts, dataset)
        total = time.perf_counter() - t0
        epochs = [r["seconds"] for r in result["history"]]
        log = [json.loads(line) for line in (tmp / "run" / "log.jsonl").read_text().splitlines()]
        assert len(log) == args.epochs
        # what each epoch writes: last (and, when better, best) checkpoint, then the resume state
        from ram_core.checkpoints import save_checkpoint

        t0 = time.perf_counter()
        save_checkpoint(tmp / "probe.safetensors", result["model"])
        one_save = time.perf_counter() - t0
        state = tmp / "run" / "resume.pt"
        sizes = (tmp / "probe.safetensors").stat().st_size, state.stat().st_size

    n = len(dataset)
    extraction = total - sum(epochs)  # both views, plus building the model: what the first run pays once
    per_pass = extraction / len(opts.views)
    epoch = statistics.median(epochs)
    print(f"{n} images, {cfg.backbone} at {cfg.input_size}, head: K = {cfg.num_steps}, {cfg.region_encoder}, "
          f"{cfg.transform_mode}, hidden {cfg.hidden_size}, batch {args.batch_size}")
    print(f"feature cache built in {extraction:.1f} s ({len(opts.views)} views: {1000 * per_pass / n:.0f} ms/image "
          "per view)")
    print("epochs from the cache: " + ", ".join(f"{s:.2f} s" for s in epochs)
          + f"  (median {epoch:.2f} s, {1000 * epoch / n:.1f} ms/image)")
    print(f"checkpoint write {one_save:.2f} s ({sizes[0] / 2**20:.0f} MB; each epoch writes one or two of them and "
          f"a {sizes[1] / 2**20:.0f} MB resume state)")
    print(f"ratio epoch from cache / one extraction pass = {epoch / per_pass:.3f} "
          f"(an epoch through the frozen backbone would cost about {per_pass / epoch:.0f}x more)")


if __name__ == "__main__":
    main()
