"""Peak memory of the app with a model loaded, against the same model in a bare Python process.

    python benchmarks/bench_app_memory.py [--checkpoint PATH] [--sessions 1 8]

Without --checkpoint, one is made with the shipped model's architecture (benchmarks/common.py) and
the package's backbone weights.  For each --sessions value, scripts/load_test.py starts the app with
that checkpoint as its default model and drives that many chromium sessions (one upload each); the
server's resident memory is sampled every 0.1 s.  A bare process (torch, the Predictor, one image) is the
floor.  Prints the app's peak, the bare peak, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import ROOT, machine

BARE = """
import json, resource, sys
import torch
from ram_core.imageio import open_image
from ram_core.inference import Predictor
predictor = Predictor.from_checkpoint(sys.argv[1], "cpu")
predictor.predict_one(sys.argv[2], open_image(sys.argv[2]))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 8])
    p.add_argument("--image", type=Path, default=ROOT / "assets" / "samples" / "astronaut.jpg")
    args = p.parse_args()

    from ram_core.inference import DEFAULT_CHECKPOINT
    from scripts.load_test import run_load_test

    print(machine())
    ckpt = args.checkpoint or DEFAULT_CHECKPOINT  # the shipped default model unless told otherwise
    proc = subprocess.run([sys.executable, "-c", BARE, str(ckpt), str(args.image)], cwd=ROOT, capture_output=True,
                          text=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    bare = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    print(f"bare process (torch + Predictor + one image): peak {bare:.0f} MB")
    for n in args.sessions:
        # pandas imported up front: the app's lazy-import race (tests/test_load.py) would otherwise
        # fail some sessions, and a failed session holds less memory than a served one
        report = run_load_test(sessions=n, rounds=1, checkpoint=ckpt, model="file", timeout_s=240,
                               preimport=["pandas"])
        print(f"app, {n} session(s): {report.rss_start_mb:.0f} MB before any session, "
              f"{report.rss_model_loaded_mb:.0f} MB with the model loaded, peak {report.rss_peak_mb:.0f} MB "
              f"(failures {report.failures}, model loads {report.model_loads}, "
              f"median upload -> result {report.latency_p50_s} s)")
        print(f"  ratio app peak / bare peak = {report.rss_peak_mb / bare:.2f}; "
              f"per extra session {(report.rss_peak_mb - report.rss_model_loaded_mb) / n:.0f} MB")


if __name__ == "__main__":
    main()
