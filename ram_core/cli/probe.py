"""`probe IMAGE --box x0 y0 x1 y1 [--box ...]`: the model's scores for regions you choose.

Each box (pixels of the image, after EXIF rotation) is sampled through the same spatial transformer
with the M of that rectangle and read by the head as one step after the global step
(ram_core/probe.py).  Printed beside the steps' own top classes, as the Inspect page shows them.
"""

from __future__ import annotations

import argparse
import sys

from ..safe_text import plain
from .. import finite_json
from ..imageio import open_image
from ..inference import Predictor, device_label
from ..probe import PROBE_EXPLANATION, check_probe_head, probe_regions


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="the model's scores for a region you choose (heads with attention steps)",
                       description=__doc__.split("\n\n")[0] + " " + PROBE_EXPLANATION)
    p.add_argument("image", help="an image file")
    p.add_argument("--box", nargs=4, type=float, action="append", required=True, metavar=("X0", "Y0", "X1", "Y1"),
                   help="a region in the image's pixels; repeat for several probes")
    p.add_argument("--checkpoint", help="a .safetensors checkpoint (default: the embedded default model)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--json", action="store_true", help="one JSON object: the probes and the steps")
    p.add_argument("--top", type=int, default=3, help="classes shown per probe and per step")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    predictor = Predictor.from_checkpoint(args.checkpoint, args.device)
    check_probe_head(predictor.cfg)
    image = open_image(args.image)
    probes = probe_regions(predictor, image, args.box)
    trace = predictor.predict_one(args.image, image)
    top = max(1, args.top)
    if args.json:
        print(finite_json.dumps({
            "image": args.image, "width": image.width, "height": image.height, "method": PROBE_EXPLANATION,
            "probes": [p.to_json(top) for p in probes],
            "steps": [{"step": s.step, "box": s.box, "top": [[c, p] for c, p in s.top(top)]} for s in trace.steps],
        }))
        return 0
    print(f"model: {predictor.info.source} on {device_label(predictor.device)}", file=sys.stderr)
    print(plain(f"{args.image}  ({image.width}x{image.height})"))
    for n, p in enumerate(probes, 1):
        box = ", ".join(f"{v:.0f}" for v in p.box)
        print(plain(f"  probe {n}: box [{box}]  " + ", ".join(f"{c} {v:.2f}" for c, v in p.top(top))))
    for s in trace.steps:
        box = ", ".join(f"{v:.0f}" for v in s.box)
        print(plain(f"  step {s.step}:  box [{box}]  " + ", ".join(f"{c} {v:.2f}" for c, v in s.top(top))))
    print(f"  ({PROBE_EXPLANATION})")
    return 0
