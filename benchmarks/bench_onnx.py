"""The exported ONNX model in onnxruntime against PyTorch, on the CPU, at batch 1 and 16.

    python benchmarks/bench_onnx.py [--checkpoint PATH] [--batches 1,16] [--repeats 3] [--threads N]

Exports the checkpoint (default: the shipped model) with `ram_core.onnx_export.export_onnx`, checks
that both give the same probabilities on the batch, then times one forward of each (backbone + head,
probabilities out; preprocessing not included; torch as the Predictor runs it, channels_last) in turn (benchmarks/common.py's `interleaved`, best
run), with the same number of threads.  Prints ms per batch and per image and the ratio
onnxruntime / torch (below 1: onnxruntime is faster).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ram_core  # noqa: E402,F401 - before torch: its OMP_WAIT_POLICY=PASSIVE (BENCHMARKS.md)
import torch  # noqa: E402

from common import interleaved, machine  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--batches", default="1,16")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: torch's)")
    args = p.parse_args()

    from ram_core.inference import Predictor
    from ram_core.model import probabilities
    from ram_core.onnx_export import export_onnx, onnx_session

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(machine())
    predictor = Predictor.from_checkpoint(args.checkpoint, "cpu")
    cfg = predictor.cfg
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(predictor.model, Path(tmp) / "model.onnx")
        session = onnx_session(path, threads=threads)
        print(f"{Path(str(predictor.info.source)).name}: {cfg.backbone} + {cfg.head} head (K = {cfg.num_steps}), input "
              f"{cfg.input_size}, {threads} threads, ONNX {path.stat().st_size / 1e6:.1f} MB")
        for b in (int(x) for x in args.batches.split(",")):
            x = torch.randn(b, 3, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(b))
            x_cl = x.contiguous(memory_format=torch.channels_last)
            feed = {"images": x.numpy()}

            def run_torch():  # as Predictor.run_tensors runs it: channels_last, grid_sample sampler
                with torch.inference_mode():
                    out = predictor.model(x_cl)
                    return probabilities(out.logits, cfg), out.transforms

            def run_onnx():
                return session.run(None, feed)

            diff = float(np.abs(run_onnx()[0] - run_torch()[0].numpy()).max())
            best = interleaved({"torch": run_torch, "onnxruntime": run_onnx}, repeats=args.repeats, warmup=1)
            t, o = best["torch"][0], best["onnxruntime"][0]
            print(f"batch {b:3d}: torch {1000 * t:8.1f} ms ({1000 * t / b:6.1f} ms/image)   onnxruntime "
                  f"{1000 * o:8.1f} ms ({1000 * o / b:6.1f} ms/image)   onnxruntime / torch {o / t:5.2f}   "
                  f"max |Δp| {diff:.1e}")


if __name__ == "__main__":
    main()
