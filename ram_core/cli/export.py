"""`export CHECKPOINT --onnx out.onnx`: the whole model (backbone + head) as one ONNX graph."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint (backbone + head) to ONNX, with a dynamic batch")
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint (default: the embedded default model)")
    p.add_argument("--onnx", required=True, metavar="PATH", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--check", action="store_true",
                   help="run onnxruntime and PyTorch on the same random batch and print their largest difference")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoints import load_checkpoint
    from ..inference import default_checkpoint
    from ..onnx_export import OPSET, OUTPUT_NAMES, ScoresModel, export_onnx, onnx_session

    source = args.checkpoint or default_checkpoint()
    model, _ = load_checkpoint(source, "cpu")
    path = export_onnx(model, args.onnx, opset=args.opset or OPSET)
    cfg = model.cfg
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): input images (batch, 3, {cfg.input_size}, "
          f"{cfg.input_size}) normalised with mean {list(cfg.mean)} and std {list(cfg.std)}; "
          f"outputs {', '.join(OUTPUT_NAMES)}")
    if args.check:
        images = torch.randn(3, 3, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = ScoresModel(model)(images)
        got = onnx_session(path).run(None, {"images": images.numpy()})
        diff = max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected))
        print(f"onnxruntime vs PyTorch on a random batch of 3: largest difference {diff:.2e}", file=sys.stderr)
    return 0
