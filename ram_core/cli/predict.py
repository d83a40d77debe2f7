"""`predict IMAGE [IMAGE ...]`: labels, scores and per-step boxes for each image."""

from __future__ import annotations

import argparse
import sys

from ..safe_text import plain, plain_lines
from .. import finite_json
from ..errors import ImageReadError
from ..imageio import open_image
from ..inference import Predictor, device_label
from ..trace import AttentionTrace


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="recognise the labels of images and show where each step looked")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--checkpoint", help="a .safetensors checkpoint (default: the embedded default model)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="score at or above which a label is predicted (classes without a threshold of their own)")
    p.add_argument("--single-threshold", action="store_true",
                   help="use --threshold for every class, even when the checkpoint has per-class thresholds")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--top", type=int, default=3, help="labels shown per step")
    p.set_defaults(run=run)


def format_trace(trace: AttentionTrace, top: int = 3) -> str:
    labels = ", ".join(f"{c} {trace.scores[c]:.2f}" for c in trace.labels()) or "(none above threshold)"
    lines = [f"{trace.image}  ({trace.width}x{trace.height}"
             + (f", {trace.seconds * 1000:.0f} ms" if trace.seconds is not None else "") + ")",
             f"  labels: {labels}"]
    for s in trace.steps:
        box = ", ".join(f"{v:.0f}" for v in s.box)
        tops = ", ".join(f"{c} {p:.2f}" for c, p in s.top(top))
        lines.append(f"  step {s.step}: box [{box}]  {tops}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    predictor = Predictor.from_checkpoint(args.checkpoint, args.device)
    predictor.batch_size = max(1, args.batch_size)
    class_thresholds = None if args.single_threshold else predictor.info.class_thresholds
    if not args.json:
        print(f"model: {plain(predictor.info.source)} on {device_label(predictor.device)}", file=sys.stderr)
        if class_thresholds:
            print(f"labels: the checkpoint's per-class thresholds ({len(class_thresholds)} classes; "
                  "--single-threshold to use --threshold for all)", file=sys.stderr)
    failed = 0
    pending: list = []

    def flush() -> None:
        for trace in predictor.predict(pending, args.threshold, class_thresholds):
            text = finite_json.dumps(trace.to_json()) if args.json else plain_lines(format_trace(trace, args.top))
            print(text, flush=True)
        pending.clear()

    for path in args.images:
        try:
            pending.append((path, open_image(path)))
        except ImageReadError as exc:
            failed += 1
            print(f"error: {plain(exc)}", file=sys.stderr)
        if len(pending) >= predictor.batch_size:
            flush()
    flush()
    if failed:
        print(f"{failed} of {len(args.images)} image(s) could not be read", file=sys.stderr)
    return 1 if failed else 0
