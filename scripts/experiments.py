"""Train head variants from the feature cache and compare them on the validation split.

Used to choose the default model's settings and to produce the model card's ablation table:

    python scripts/experiments.py --root ../shared/data/VOCdevkit --variants ram baseline k1 k3 \
        no_anchor no_scale no_positive --out runs/ablations

Each variant is a set of `train` options on top of BASE; every one sees identical cached features.
Prints and writes (OUT/results.json, OUT/results.md) validation mAP and how often the step boxes
land on objects of their own photo versus another photo's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ram_core.attention_stats import box_hit_rates  # noqa: E402
from ram_core.cli.train import add_parser as add_train_parser, config_from_args, resolve_lr  # noqa: E402
from ram_core.data.voc import VOCDataset  # noqa: E402
from ram_core.model import transform_to_box  # noqa: E402
from ram_core.training.feature_cache import FeatureCache, cache_key  # noqa: E402
from ram_core.training.loop import TrainOptions, head_scores, train, validation_metrics  # noqa: E402

# The default model's recipe (scripts/train_default.sh); each variant changes one thing.
BASE = ["--imagenet-prior", "--transform-mode", "evidence", "--fuse-global", "--region-skip", "--epochs", "30",
        "--lr", "1e-3", "--hidden-size", "256", "--embed-dim", "256", "--region-channels", "64"]
VARIANTS: dict[str, list[str]] = {
    "ram": [],
    "paper_localizer": ["--transform-mode", "direct"],
    "paper_fusion": ["--no-fuse-global"],
    "no_region_skip": ["--no-region-skip"],
    "baseline": ["--head", "baseline"],
    "k1": ["--steps", "1"],
    "k3": ["--steps", "3"],
    "no_anchor": ["--anchor-weight", "0"],
    "no_scale": ["--scale-weight", "0"],
    "no_positive": ["--positive-weight", "0"],
    "no_prior": ["--no-imagenet-prior"],
    "fuse_global": ["--fuse-global"],
    "pool": ["--region-encoder", "pool"],
    "anchored": ["--transform-mode", "anchored"],
    "evidence": ["--transform-mode", "evidence"],
    "paper_loss": ["--classification-loss", "mse"],
}


def parse_variant(extra: list[str], args: argparse.Namespace) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_train_parser(sub)
    base = BASE
    argv = ["train", "--data", "voc", "--root", args.root, "--out", "x", "--input-size", str(args.input_size),
            "--cache-dir", args.cache_dir, *base, *args.common, *extra]
    return parser.parse_args(argv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True)
    p.add_argument("--variants", nargs="+", default=["ram", "baseline"])
    p.add_argument("--out", default="runs/experiments")
    p.add_argument("--input-size", type=int, default=448)
    p.add_argument("--cache-dir", default="cache/features")
    p.add_argument("--min-positives", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--common", nargs=argparse.REMAINDER, default=[], help="options added to every variant")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("RAM_THREADS", "2")))
    train_set = VOCDataset(args.root, "train")
    val_set = VOCDataset(args.root, "val")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.variants:
        extra = VARIANTS.get(name)
        if extra is None:
            extra = name.split()  # free-form: the variant's name is its options
        runs = []
        for seed in args.seeds:
            targs = parse_variant(extra + ["--seed", str(seed)], args)
            cfg = config_from_args(targs, list(train_set.class_names))
            opts = TrainOptions(out_dir=str(out / name.replace(" ", "_") / f"seed{seed}"), epochs=targs.epochs,
                                batch_size=targs.batch_size, lr=resolve_lr(targs).lr, weight_decay=targs.weight_decay,
                                seed=seed, cache_dir=args.cache_dir, min_positives=args.min_positives,
                                views=("orig",) if targs.no_flip else ("orig", "hflip"),
                                data_description=f"voc:{args.root} split=train", log=lambda *_: None)
            t0 = time.perf_counter()
            res = train(cfg, opts, train_set, val_set)
            seconds = time.perf_counter() - t0
            # score the best checkpoint's head on the cached validation features
            from ram_core.checkpoints import load_checkpoint

            model, _ = load_checkpoint(res["best_checkpoint"])
            feats, _ = FeatureCache(args.cache_dir).load(cache_key(cfg, val_set.name, val_set.ids, "orig", "default"))
            scores, _, transforms = head_scores(model.head, feats, torch.device("cpu"))
            report = validation_metrics(scores, val_set.targets, val_set.eval_masks, cfg.class_names, args.min_positives)
            hits = box_hit_rates(transform_to_box(torch.from_numpy(transforms)).numpy(), val_set.boxes,
                                 val_set.image_sizes) if transforms.shape[1] else {}
            runs.append({"seed": seed, "mAP": report["mAP_selected"], "mAP_all": report["mAP"], "CF1": report["CF1"], "OF1": report["OF1"],
                         "per_class_ap": report["per_class_ap"], "hit_rate": hits.get("hit_rate"),
                         "hit_rate_other_photo": hits.get("hit_rate_other_photo"),
                         "per_step_hit": hits.get("per_step"), "seconds": round(seconds, 1),
                         "best_epoch": max(res["history"], key=lambda r: r.get("val_mAP_selected") or -1)["epoch"]})
            print(f"{name:28s} seed {seed}: mAP {report['mAP_selected']:.2f} (all classes {report['mAP']:.2f})  "
                  f"hits {hits.get('hit_rate', float('nan')):.1f}% vs other photo "
                  f"{hits.get('hit_rate_other_photo', float('nan')):.1f}%  ({seconds:.0f}s)", flush=True)
        results[name] = {"runs": runs, "options": extra,
                         "mAP_mean": float(np.mean([r["mAP"] for r in runs])),
                         "mAP_all_mean": float(np.mean([r["mAP_all"] for r in runs])),
                         "mAP_std": float(np.std([r["mAP"] for r in runs]))}
        (out / "results.json").write_text(json.dumps(results, indent=2))
    lines = [f"| variant | options | val mAP (classes with >= {args.min_positives} positives) | val mAP (all) "
             "| box centre on own photo's objects | on another photo's |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        hr = [x["hit_rate"] for x in r["runs"] if x["hit_rate"] is not None]
        ho = [x["hit_rate_other_photo"] for x in r["runs"] if x["hit_rate_other_photo"] is not None]
        row = f"| {name} | `{' '.join(r['options']) or '(default)'}` | {r['mAP_mean']:.2f}"
        row += f" ± {r['mAP_std']:.2f}" if len(r["runs"]) > 1 else ""
        row += f" | {r['mAP_all_mean']:.2f}"
        row += f" | {np.mean(hr):.1f}% | {np.mean(ho):.1f}% |" if hr else " | – | – |"
        lines.append(row)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
