"""Turn a cross-validation run's out-of-fold outputs into an evaluation folder the app can browse.

    python scripts/bundle_cv_evaluation.py runs/cv/default/seed0 assets/evaluations/default_cv \
        --checkpoint assets/ram_default.safetensors

Every photo of the 995 VOC trainval photos in ../shared/data gets the scores of the fold model that
did not see it (scripts/cross_validate.py wrote them to oof.npz), so the Evaluate page browses every
photo with an honest score.  The report says so (report["protocol"]) and names the checkpoint that
was trained on all photos with the same recipe (the one the app's picker shows), which did *not*
make these scores.
"""

from __future__ import annotations

import argparse
import os
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ram_core.config import RAMConfig  # noqa: E402
from ram_core.data.voc import VOCDataset  # noqa: E402
from ram_core.evaluation import score_outputs, write_evaluation  # noqa: E402
from ram_core.model import OUTPUT_FIELDS, RAMOutput  # noqa: E402


def flip_map(summary: dict) -> float | None:
    """A CV run's mAP with test-time flip averaging on: its main number if it ran that way, else the
    other setting's (cross_validate.py scores each fold both ways), None if never measured."""
    if summary.get("tta"):
        return summary["mAP_mean_over_folds"]
    other = summary.get("other_flip_setting") or {}
    return other.get("mAP_mean_over_folds") if other.get("test_time_flip") else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a runs/cv/<variant>/seed<s> folder (summary.json + oof.npz)")
    p.add_argument("out", help="the evaluation folder to write")
    p.add_argument("--root", default="../shared/data/VOCdevkit")
    p.add_argument("--checkpoint", help="the model trained on all photos with this recipe (named in the report)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--store-in", metavar="CHECKPOINT",
                   help="also write the CV numbers (every seed found beside RUN) into this checkpoint's evaluation "
                        "summary, and a --fit-fusion run's per-class fusion weights into its config")
    args = p.parse_args()

    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    oof = np.load(run / "oof.npz")
    cfg = RAMConfig.from_dict(summary["config"])
    ds = VOCDataset(args.root, "trainval")
    outputs = RAMOutput(*(torch.from_numpy(oof[k]).float() if k in oof.files else None for k in OUTPUT_FIELDS))
    if len(outputs.logits) != len(ds):
        raise SystemExit(f"{run}: {len(outputs.logits)} out-of-fold rows for {len(ds)} photos")
    folds = oof["folds"]
    protocol = {
        "kind": "cross-validation, out of fold",
        "folds": int(folds.max() + 1),
        "fold_of_photo": "folds.npy beside this report",
        "seed": summary.get("seed"),
        "variant": summary.get("variant"),
        "flags": summary.get("flags"),
        "cv_mAP": summary.get("mAP_mean_over_folds"),
        "cv_mAP_std": summary.get("mAP_std_over_folds"),
        "classes_in_cv_mAP": summary.get("selected"),
        "note": "every photo is scored by the fold model that never saw it; the checkpoint named here was "
                "trained on all photos with the same recipe and made none of these scores",
    }
    sizes = [s if s is not None else (0, 0) for s in ds.image_sizes]
    result = score_outputs(outputs, cfg, ds, list(range(len(ds))), sizes, threshold=args.threshold,
                           dataset_info={"kind": "voc", "root": os.path.abspath(args.root), "split": "trainval"},
                           extra={"protocol": protocol})
    result.report["checkpoint"] = args.checkpoint
    paths = write_evaluation(result, args.out, compress=True)
    np.save(Path(args.out) / "folds.npy", folds.astype(np.int8))
    r = result.report
    if args.store_in:
        from ram_core.checkpoints import update_config, update_evaluation

        weights = summary["config"].get("class_companion_weights")
        if weights is not None:  # a --fit-fusion run (scripts/fit_fusion.py): the weights chosen on all photos
            update_config(args.store_in, class_companion_weights=weights)
            print(f"stored the per-class fusion weights in {args.store_in}")

        runs = [json.loads(f.read_text()) for f in sorted(run.parent.glob("seed*/summary.json"))]
        seeds = [s["mAP_mean_over_folds"] for s in runs]
        flipped = [m for m in map(flip_map, runs) if m is not None]
        with_flip = {}  # what the app shows for a model that runs with flip averaging (every seed has it)
        if len(flipped) == len(runs):
            with_flip = {"mAP_test_time_flip": round(float(np.mean(flipped)), 2),
                         "mAP_test_time_flip_std_over_seeds": round(float(np.std(flipped)), 2)}
        update_evaluation(args.store_in, {
            "mAP": round(float(np.mean(seeds)), 2),  # the protocol's CV mAP (flip averaging off), mean over seeds
            "mAP_std_over_seeds": round(float(np.std(seeds)), 2),
            **with_flip,
            "seeds": len(seeds),
            "mAP_std_over_folds": round(summary["mAP_std_over_folds"], 2),
            "pooled_mAP_all_classes": r["mAP"],
            "person_AP": (r["per_class_ap"] or {}).get("person"),
            "protocol": "5-fold cross-validation on the 995 VOC2007 trainval photos in ../shared/data: mean over "
                        "folds of the out-of-fold mAP over the classes with >= 5 positives; the shipped "
                        "checkpoint itself was trained on all 995 photos with the same recipe",
            "evaluation": Path(args.out).name,
        })
        print(f"stored CV mAP {np.mean(seeds):.2f} ± {np.std(seeds):.2f} ({len(seeds)} seeds; with flip averaging "
              f"{with_flip.get('mAP_test_time_flip', 'not measured on every seed')}) in {args.store_in}")
    print(f"{args.out}: mAP {r['mAP']:.2f} over {r['num_classes_evaluated']} classes (pooled out-of-fold), "
          f"CV mAP {protocol['cv_mAP']}; wrote {paths['report']} and {paths['predictions']}")


if __name__ == "__main__":
    main()
