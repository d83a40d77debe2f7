"""`predict` latency for one photo on the CPU: cold (a new process: start, imports, model load, one
image) and warm (a loaded Predictor: decode, preprocess, forward, trace).

    python benchmarks/bench_predict.py [--checkpoint PATH] [--image PATH] [--cold-runs 2] [--warm-runs 10]

Without --checkpoint, one is made with the shipped model's architecture (benchmarks/common.py) and the
package's EfficientNet-Lite0 weights (the head is random: the timings do not depend on its values).
The cold time is `python -m ram_core predict IMAGE --checkpoint CKPT --json --device cpu` end to end,
split into its stages by a second process that times them itself.  Prints the cold/warm ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, interleaved, machine

STAGES = """
import json, sys, time
t0 = time.perf_counter()
import torch
t_torch = time.perf_counter()
from ram_core.imageio import open_image
from ram_core.inference import Predictor
t_import = time.perf_counter()
predictor = Predictor.from_checkpoint(sys.argv[1], "cpu")
t_load = time.perf_counter()
trace = predictor.predict_one(sys.argv[2], open_image(sys.argv[2]))
t_first = time.perf_counter()
trace = predictor.predict_one(sys.argv[2], open_image(sys.argv[2]))
t_second = time.perf_counter()
print(json.dumps({"import torch": t_torch - t0, "import ram_core": t_import - t_torch, "load model": t_load - t_import,
                  "first image": t_first - t_load, "second image": t_second - t_first}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--image", type=Path, default=ROOT / "assets" / "samples" / "astronaut.jpg")
    p.add_argument("--cold-runs", type=int, default=2)
    p.add_argument("--warm-runs", type=int, default=10)
    args = p.parse_args()

    from ram_core.inference import DEFAULT_CHECKPOINT
    from ram_core.imageio import open_image
    from ram_core.inference import Predictor, preprocess

    print(machine())
    ckpt = args.checkpoint or DEFAULT_CHECKPOINT  # the shipped default model unless told otherwise
    print(f"checkpoint {ckpt} ({ckpt.stat().st_size / 2**20:.1f} MB), image {args.image.name}")

    cold = []
    for _ in range(args.cold_runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ram_core", "predict", str(args.image), "--checkpoint", str(ckpt),
                               "--json", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
        cold.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
    json.loads(proc.stdout.splitlines()[0])  # a trace came out
    proc = subprocess.run([sys.executable, "-c", STAGES, str(ckpt), str(args.image)], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), **__import__("os").environ})
    stages = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}

    predictor = Predictor.from_checkpoint(ckpt, "cpu")
    x = preprocess(open_image(args.image), predictor.cfg)[None]
    t = interleaved({"warm": lambda: predictor.predict_one(args.image.name, open_image(args.image)),
                     "forward": lambda: predictor.run_tensors(x),
                     "decode": lambda: open_image(args.image)}, args.warm_runs)
    warm, forward, decode = t["warm"][0], t["forward"][0], t["decode"][0]

    print("\ncold `predict` (new process, one image): " + ", ".join(f"{c:.2f} s" for c in cold)
          + f"  (best {min(cold):.2f} s)")
    if stages:
        print("  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
    print(f"warm predict_one (decode + preprocess + forward + trace): {1000 * warm:.0f} ms "
          f"(best of {args.warm_runs}; median {1000 * t['warm'][1]:.0f} ms)")
    print(f"  forward alone {1000 * forward:.0f} ms, decode alone {1000 * decode:.1f} ms")
    print(f"ratio cold / warm = {min(cold) / warm:.1f}")


if __name__ == "__main__":
    main()
