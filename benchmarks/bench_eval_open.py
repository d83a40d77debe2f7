"""Opening a COCO-sized saved evaluation in the app: time and resident memory.

    python benchmarks/bench_eval_open.py [--images 40504] [--classes 80] [--steps 5] [--jsonl-images 4050]

Generates an evaluation of COCO val's size (40,504 images, 80 classes, K = 5, ~7 annotated boxes per
image; random scores, real report) with the same code `evaluate` writes with (write_evaluation:
report.json and predictions.npz; predictions.jsonl for the comparison), then, each in a fresh Python process that
imports what the Evaluate page imports first:

  - open_evaluation on the columns (predictions.npz), then what the page computes at once (summary,
    per-class table) and one page of the image browser (12 records and thumbnails);
  - open_evaluation on the JSONL alone (an older folder), on the first --jsonl-images images only (the
    full 560 MB file takes minutes to write here), with its time and memory scaled to the full size.

Prints seconds and peak resident memory (/proc/self/status VmHWM) above the process's baseline after
imports, and the whole process's peak.  The issue's target: the columns open in <= 3 s and <= 1 GB resident.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

OPEN = r"""
import json, sys, time
import numpy as np, pandas, plotly.graph_objects
from ram_core import eval_views as ev
def rss_mb():
    # the peak resident memory of this process (VmHWM: ru_maxrss would keep the parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base = rss_mb()
t0 = time.perf_counter()
data = ev.open_evaluation(sys.argv[1], prefer_columns=sys.argv[2] == "columns")
t_open = time.perf_counter() - t0
rss_open = rss_mb()
t1 = time.perf_counter()
ev.summary(data, 0.5)
ev.per_class_table(data, 0.5)
t_tables = time.perf_counter() - t1
t2 = time.perf_counter()
cls = data.class_names[0]
shown = ev.browse(data, cls, 0.5, "all")[:12]
for i in shown:
    ev.browse_thumbnail(data, int(i), cls, None, max_side=420, aspect=4 / 3)
t_page = time.perf_counter() - t2
print(json.dumps({"images": len(data), "open_s": t_open, "tables_s": t_tables, "browse_page_s": t_page,
                  "baseline_mb": base, "open_mb": rss_open - base, "peak_mb": rss_mb()}))
"""


def generate(out: Path, n: int, c: int, k: int, seed: int = 0, jsonl: bool = True) -> None:
    """A saved evaluation of n images (random but plausible numbers) written by write_evaluation, or,
    without jsonl, its report.json and predictions.npz only (the same code; the JSONL is not needed
    to open columns, and writing 560 MB of it takes minutes here)."""
    import torch

    from ram_core import metrics
    from ram_core.data.classes import COCO_CLASSES
    from ram_core.evaluation import SCORE_DECIMALS, EvaluationResult, write_evaluation
    from ram_core.model import RAMOutput

    rng = np.random.default_rng(seed)
    names = list(COCO_CLASSES[:c]) if c <= len(COCO_CLASSES) else [f"class{j}" for j in range(c)]
    targets = rng.random((n, c)) < 0.036  # COCO: ~2.9 labels per image
    logits = torch.from_numpy(rng.normal(-4, 2, (n, c)).astype(np.float32) + 5 * targets.astype(np.float32))
    step = logits[:, None] + torch.from_numpy(rng.normal(0, 1, (n, k, c)).astype(np.float32))
    transforms = torch.from_numpy(np.concatenate([rng.uniform(0.2, 0.6, (n, k, 2)), rng.uniform(-0.6, 0.6, (n, k, 2))],
                                                 -1).astype(np.float32))
    out_ = RAMOutput(logits=torch.maximum(logits, step.amax(1)), global_logits=logits, step_logits=step,
                     transforms=transforms)
    scores = np.round(torch.sigmoid(out_.logits).numpy().astype(np.float64), SCORE_DECIMALS)
    masks = np.ones((n, c), np.float32)
    report = metrics.evaluate_scores(scores, targets.astype(np.float32), names, mask=masks, threshold=0.5)
    report.update(format="ram-studio-eval/1", class_names=names, model={"head": "ram", "num_steps": k},
                  dataset={"name": "generated", "root": "/data/coco", "num_images": n})
    sizes = [(640, 480)] * n
    truth = [[names[j] for j in np.flatnonzero(row)] for row in targets]
    objects = [[[names[j], 10.0, 20.0, 200.5, 300.0, False] for j in np.flatnonzero(row)] * 2 for row in targets]
    result = EvaluationResult(
        report=json.loads(json.dumps(report, default=float).replace("NaN", "null")), class_names=names,
        model_class_names=names, ids=[f"{i:012d}" for i in range(n)],
        image_paths=[f"/data/coco/val2014/COCO_val2014_{i:012d}.jpg" for i in range(n)], sizes=sizes,
        scores=scores, targets=targets.astype(np.float32), eval_masks=masks, outputs=out_, fuse_global=True,
        threshold=0.5, ground_truth=truth, ignored=[[] for _ in range(n)], objects=objects, data_root="/data/coco")
    if jsonl:
        write_evaluation(result, out)
        return
    from ram_core.eval_columns import COLUMNS_FILE, columns_from_result, write_columns

    out.mkdir(parents=True, exist_ok=True)
    write_columns(out / COLUMNS_FILE, columns_from_result(result))
    (out / "report.json").write_text(json.dumps(dict(result.report, columns=COLUMNS_FILE)))


def run_open(folder: Path, kind: str) -> dict:
    out = subprocess.run([sys.executable, "-c", OPEN, str(folder), kind], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=40504)
    p.add_argument("--classes", type=int, default=80)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--jsonl-images", type=int, default=4050, help="images of the JSONL-only comparison (0: none)")
    p.add_argument("--keep", help="write the generated evaluation here and keep it")
    args = p.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(args.keep) if args.keep else Path(tmp) / "coco_sized"
        t0 = time.perf_counter()
        generate(big, args.images, args.classes, args.steps, jsonl=False)
        sizes = {f.name: f.stat().st_size / 1e6 for f in big.iterdir()}
        print(f"generated {args.images} images x {args.classes} classes, K = {args.steps} in "
              f"{time.perf_counter() - t0:.1f} s: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(sizes.items())))
        r = run_open(big, "columns")
        print(f"columns: open {r['open_s']:.2f} s, +{r['open_mb']:.0f} MB resident (process peak {r['peak_mb']:.0f} MB, "
              f"{r['baseline_mb']:.0f} MB after imports); summary + per-class table {r['tables_s']:.2f} s; "
              f"one browser page (12 records + thumbnails) {r['browse_page_s']:.2f} s")
        if args.jsonl_images:
            small = Path(tmp) / "jsonl_only"
            generate(small, args.jsonl_images, args.classes, args.steps)
            report = json.loads((small / "report.json").read_text())
            report.pop("columns", None)
            (small / "report.json").write_text(json.dumps(report))
            (small / "predictions.npz").unlink()
            j = run_open(small, "jsonl")
            scale = args.images / args.jsonl_images
            print(f"JSONL only, {args.jsonl_images} images ({(small / 'predictions.jsonl').stat().st_size / 1e6:.0f} MB): "
                  f"open {j['open_s']:.2f} s, +{j['open_mb']:.0f} MB; scaled to {args.images} images: "
                  f"~{j['open_s'] * scale:.0f} s, ~{j['open_mb'] * scale / 1024:.1f} GB")
            print(f"columns vs JSONL (scaled): {j['open_s'] * scale / r['open_s']:.0f}x faster, "
                  f"{j['open_mb'] * scale / max(r['open_mb'], 1):.0f}x less memory")


if __name__ == "__main__":
    main()
