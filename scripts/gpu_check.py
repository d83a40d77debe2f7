"""The CUDA paths, checked and timed in one run on a machine with a GPU (none of this runs in CI).

    python scripts/gpu_check.py --voc VOCDEVKIT --split SPLIT --out OUT [--budget 420]

Writes OUT/gpu_check.json (each check: ok, seconds, its numbers), OUT/gpu_check.log (what the
commands printed) and OUT/pytest.txt.  Checks, in order (later ones are skipped once --budget
seconds have passed, and say so):
  environment      torch, CUDA, the GPU
  pytest           the CUDA-only tests (tests/test_gpu_*.py) and the torchrun set-up tests
  predict          each shipped model on the sample photos, on the GPU and the CPU: the largest score
                   difference (bf16 autocast on the GPU) and the warm latency per photo on each
  predict_cli      `python -m ram_core predict --device cuda` end to end (a new process)
  evaluate         `evaluate` of the default model on VOC photos, GPU and CPU: mAP, images/s, score diff
  torchrun_eval    the same under `torchrun --nproc_per_node 1`
  train_cached     `train --preset default --device cuda` (features cached on the GPU, head under autocast)
  train_fine_tune  `train --fine-tune --device cuda` (backbone and head under autocast): s/epoch, peak memory
  occlusion        `evaluate --occlusion` on the GPU and the CPU: the attention test's numbers on each
  bench_evaluate   benchmarks/bench_evaluate.py --device cuda (images/s against the bare backbone)
  pytest_all       the whole test suite with the GPU visible (files that need the app's packages, absent
                   on a bare GPU machine, fail to collect and are counted apart): OUT/pytest_all.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DEV = "cuda"  # --dry-run: "cpu", to try the script itself on a machine without a GPU
SAMPLES = sorted((ROOT / "assets" / "samples").glob("*.jpg"))
MODELS = {name: ROOT / "assets" / f"ram_{name}.safetensors" for name in ("default", "baseline", "paper")}


class Checks:
    def __init__(self, out: Path, budget: float) -> None:
        self.out, self.budget, self.t0 = out, budget, time.perf_counter()
        self.results: dict[str, dict] = {}
        self.log = open(out / "gpu_check.log", "a")

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def run(self, name: str, fn) -> None:
        if time.perf_counter() - self.t0 > self.budget:
            self.results[name] = {"ok": None, "skipped": f"budget of {self.budget:.0f} s spent"}
        else:
            self.say(f"=== {name}")
            t = time.perf_counter()
            try:
                self.results[name] = {"ok": True, **(fn() or {})}
            except Exception as exc:  # record and go on: one broken path must not hide the others
                self.results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
                self.say(traceback.format_exc())
            self.results[name]["seconds"] = round(time.perf_counter() - t, 2)
            self.say(json.dumps({name: self.results[name]}, default=str))
        (self.out / "gpu_check.json").write_text(json.dumps(self.results, indent=2, default=str))

    def sh(self, args: list[str], timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        self.say("$ " + " ".join(map(str, args)))
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                                   **(env or {})})
        self.say(proc.stdout[-6000:] + proc.stderr[-6000:])
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-600:]}")
        return proc


def environment() -> dict:
    if DEV == "cpu":
        return {"torch": torch.__version__, "dry_run": True}
    props = torch.cuda.get_device_properties(0)
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": props.name, "gpus": torch.cuda.device_count(),
            "memory_gib": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def predict(checks: Checks) -> dict:
    from ram_core.imageio import open_image
    from ram_core.inference import Predictor

    out = {}
    images = [(p.name, open_image(p)) for p in SAMPLES]
    for name, path in MODELS.items():
        row = {}
        scores = {}
        for dev in (DEV, "cpu"):
            pred = Predictor.from_checkpoint(path, dev)
            traces = [pred.predict_one(n, im) for n, im in images]
            scores[dev] = np.array([[t.scores[c] for c in t.class_names] for t in traces])
            row[f"labels_{dev}"] = {t.image: t.labels()[:3] for t in traces}
            runs = []
            for i in range(3 + (20 if dev == "cuda" else 5)):
                if dev == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                pred.predict_one(*images[i % len(images)])
                if dev == "cuda":
                    torch.cuda.synchronize()
                if i >= 3:
                    runs.append(time.perf_counter() - t)
            row[f"warm_ms_per_photo_{dev}"] = round(1000 * statistics.median(runs), 1)
        row["max_score_diff"] = float(np.abs(scores[DEV] - scores["cpu"]).max())
        row["same_labels"] = row[f"labels_{DEV}"] == row["labels_cpu"]
        row["cpu_over_gpu_latency"] = round(row["warm_ms_per_photo_cpu"] / row[f"warm_ms_per_photo_{DEV}"], 1)
        out[name] = row
    return out


def predict_cli(checks: Checks) -> dict:
    t = time.perf_counter()
    proc = checks.sh([sys.executable, "-m", "ram_core", "predict", *SAMPLES, "--json", "--device", DEV])
    text = proc.stdout
    return {"wall_s": round(time.perf_counter() - t, 2), "json_chars": len(text)}


def _report(path: Path) -> dict:
    return json.loads((path / "report.json").read_text())


def evaluate(checks: Checks, voc: str, split: str, tmp: Path) -> dict:
    from ram_core.eval_columns import read_columns

    row = {}
    for dev in (DEV, "cpu"):
        checks.sh([sys.executable, "-m", "ram_core", "evaluate", "--data", "voc", "--root", voc, "--split", split,
                   "--out", tmp / f"eval_{dev}", "--device", dev, "--batch-size", "16", "--workers", "4", "--no-progress"])
        rep = _report(tmp / f"eval_{dev}")
        row[dev] = {k: rep.get(k) for k in ("mAP", "CF1", "OF1", "images_per_second", "seconds", "device", "images")}
    a, b = read_columns(tmp / f"eval_{DEV}" / "predictions.npz"), read_columns(tmp / "eval_cpu" / "predictions.npz")
    row["max_score_diff"] = float(np.abs(a["scores"] - b["scores"]).max())
    row["same_ids"] = a["ids"].tolist() == b["ids"].tolist()
    return row


def occlusion(checks: Checks, voc: str, split: str, tmp: Path) -> dict:
    row = {}
    for dev in (DEV, "cpu"):
        t = time.perf_counter()
        checks.sh([sys.executable, "-m", "ram_core", "evaluate", "--data", "voc", "--root", voc, "--split", split,
                   "--out", tmp / f"occ_{dev}", "--device", dev, "--batch-size", "16", "--workers", "4", "--no-progress",
                   "--occlusion"])
        occ = json.loads((tmp / f"occ_{dev}" / "occlusion.json").read_text())
        row[dev] = {"wall_s": round(time.perf_counter() - t, 2),
                    "seconds": occ.get("seconds"), "images": occ.get("num_images_tested"),
                    **{k: v for k, v in occ.get("overall", {}).items() if isinstance(v, (int, float))}}
    return row


def pytest_all(checks: Checks, out: Path, timeout: float) -> dict:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "8",
                           "--continue-on-collection-errors", "tests"], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    (out / "pytest_all.txt").write_text(proc.stdout[-200000:] + proc.stderr[-20000:])
    lines = proc.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith("FAILED")]
    errors = [line for line in lines if line.startswith("ERROR")]
    return {"summary": lines[-1] if lines else "?", "failed": failed[:40], "collection_errors": len(errors)}


def torchrun_eval(checks: Checks, voc: str, split: str, tmp: Path) -> dict:
    checks.sh([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
               "--master_port", "29533", "-m", "ram_core", "evaluate", "--data", "voc", "--root", voc, "--split", split,
               "--out", tmp / "eval_torchrun", "--device", DEV, "--batch-size", "16", "--workers", "2", "--no-progress"])
    rep = _report(tmp / "eval_torchrun")
    return {"mAP": rep.get("mAP"), "same_as_single": abs(rep.get("mAP", -1) - _report(tmp / f"eval_{DEV}")["mAP"]) < 1e-6}


def _train(checks: Checks, voc: str, split: str, out: Path, extra: list[str]) -> dict:
    from ram_core.cli import main as cli

    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    args = ["train", "--data", "voc", "--root", voc, "--split", split, "--out", str(out), "--preset", "default",
            "--device", DEV, "--workers", "4", "--cache-dir", str(out / "cache"), *extra]
    checks.say("$ ram_core " + " ".join(args))
    rc = cli(args)
    if rc != 0:
        raise RuntimeError(f"train exit {rc}")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {"wall_s": round(time.perf_counter() - t, 2), "epochs": len(log),
            "epoch_seconds": [r.get("seconds") for r in log], "loss_first": log[0]["loss_total"],
            "loss_last": log[-1]["loss_total"], "finite": all(np.isfinite(r["loss_total"]) for r in log),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if DEV == "cuda" else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--voc", required=True, help="a VOCdevkit folder")
    p.add_argument("--split", default="val")
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=float, default=420, help="seconds; later checks are skipped after this")
    p.add_argument("--only", nargs="*", help="run these checks only")
    p.add_argument("--dry-run", action="store_true", help="run the checks on the CPU (tries this script, not CUDA)")
    args = p.parse_args()
    global DEV
    DEV = "cpu" if args.dry_run else "cuda"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_check"
    tmp.mkdir(parents=True, exist_ok=True)
    checks = Checks(out, args.budget)
    if DEV == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA GPU: these checks need one")

    def pytest_run() -> dict:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu_issue14.py",
                               "tests/test_gpu_training.py", "tests/test_distributed_setup.py"],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        (out / "pytest.txt").write_text(proc.stdout + proc.stderr)
        last = (proc.stdout.strip().splitlines() or ["?"])[-1]
        if proc.returncode != 0:
            raise RuntimeError(last)
        return {"summary": last}

    steps = {
        "environment": environment,
        "pytest": pytest_run,
        "predict": lambda: predict(checks),
        "predict_cli": lambda: predict_cli(checks),
        "evaluate": lambda: evaluate(checks, args.voc, args.split, tmp),
        "torchrun_eval": lambda: torchrun_eval(checks, args.voc, args.split, tmp),
        "train_cached": lambda: _train(checks, args.voc, args.split, tmp / "train_cached", ["--epochs", "5"]),
        "train_fine_tune": lambda: _train(checks, args.voc, args.split, tmp / "train_ft",
                                          ["--epochs", "2", "--fine-tune", "--batch-size", "16"]),
        "occlusion": lambda: occlusion(checks, args.voc, args.split, tmp),
        "bench_evaluate": lambda: {"stdout": checks.sh([sys.executable, "benchmarks/bench_evaluate.py", "--device", DEV,
                                                         "--images", "768", "--batch-size", "64", "--workers", "8"]).stdout[-3000:]},
        "pytest_all": lambda: pytest_all(checks, out, max(60.0, args.budget + 150 - (time.perf_counter() - checks.t0))),
    }
    for name, fn in steps.items():
        if args.only and name not in args.only:
            continue
        checks.run(name, fn)
    bad = [k for k, v in checks.results.items() if v.get("ok") is False]
    checks.say(f"done in {time.perf_counter() - checks.t0:.0f} s; failed: {bad or 'none'}")


if __name__ == "__main__":
    main()
