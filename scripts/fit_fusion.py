"""Per-class fusion weights for a cross-validated RAM head with a companion branch, measured by nested CV.

    python scripts/fit_fusion.py runs/cv/default [--min-positives 50] [--root ../shared/data/VOCdevkit]

For every seed<s> of the run, reads the out-of-fold branch logits (oof.npz, and oof_other_flip.npz
when there) and writes RUN_--fit-fusion/seed<s>/{summary.json, oof.npz}: the same fold models, each
fold's photos mixed with weights chosen on the other folds' photos only (so its CV mAP is an honest
estimate of the procedure), and in the summary the weights chosen on all photos (what a model
trained on all photos ships with: config.class_companion_weights).  ram_core/training/fusion_weights.py
says how weights are chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ram_core import metrics  # noqa: E402
from ram_core.data.voc import VOCDataset  # noqa: E402
from ram_core.training.cross_validation import selected_classes  # noqa: E402
from ram_core.training.fusion_weights import (MIN_POSITIVES, choose_class_weights,  # noqa: E402
                                              choose_min_positives, fold_maps, mix_by_fold,
                                              nested_fold_choices, nested_fold_weights)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="CV run folders (holding seed<s>/oof.npz)")
    p.add_argument("--root", default="../shared/data/VOCdevkit")
    p.add_argument("--min-positives", type=int, default=MIN_POSITIVES)
    p.add_argument("--choose-bar", action="store_true",
                   help="choose the bar (min positives) too, among MIN_POSITIVES_CHOICES, by a CV inside each fold's "
                        "other folds; writes RUN_--fit-fusion-choose-bar")
    args = p.parse_args()
    ds = VOCDataset(args.root, "trainval")
    targets = np.asarray(ds.targets, np.float32)
    masks = np.asarray(ds.eval_masks, np.float32)
    evaluated = selected_classes(targets, masks)
    for run in map(Path, args.runs):
        for seed_dir in sorted(run.glob("seed*")):
            oof = dict(np.load(seed_dir / "oof.npz"))
            if "branch_logits" not in oof:
                raise SystemExit(f"{seed_dir}: no branch logits (a RAM head with a companion branch is needed)")
            summary = json.loads((seed_dir / "summary.json").read_text())
            folds = oof["folds"]
            base = summary["config"].get("companion_weight", 0.5)
            if args.choose_bar:
                choices = nested_fold_choices(oof["branch_logits"], targets, masks, folds, evaluated, base)
                per_fold = {f: w for f, (_, w) in choices.items()}
                bar, _ = choose_min_positives(oof["branch_logits"], targets, masks, folds, evaluated, base)
                bars = {str(f): b for f, (b, _) in choices.items()}
            else:
                per_fold = nested_fold_weights(oof["branch_logits"], targets, masks, folds, base, args.min_positives)
                bar, bars = args.min_positives, None
            final = choose_class_weights(oof["branch_logits"], targets, masks, base, bar)
            oof["logits"] = mix_by_fold(oof["branch_logits"], folds, per_fold)
            oof["scores"] = 1.0 / (1.0 + np.exp(-oof["logits"]))
            fm = fold_maps(oof["logits"], targets, masks, folds, evaluated)
            pooled = metrics.per_class_ap(oof["scores"], targets, masks)
            suffix = "_--fit-fusion-choose-bar" if args.choose_bar else "_--fit-fusion"
            out = seed_dir.parent.parent / f"{run.name}{suffix}" / seed_dir.name
            out.mkdir(parents=True, exist_ok=True)
            summary.update(
                variant=f"{summary.get('variant', run.name)} {suffix[1:].replace('_', ' ')}",
                mAP_mean_over_folds=float(np.mean(fm)), mAP_std_over_folds=float(np.std(fm)), fold_mAP=fm,
                pooled_mAP=float(np.nanmean(pooled[evaluated]) * 100),
                per_class_pooled_ap={c: (None if np.isnan(a) else round(float(a) * 100, 2))
                                     for c, a in zip(ds.class_names, pooled)},
                fusion_weights={"chosen_on_all_photos": dict(zip(ds.class_names, final.tolist())),
                                "per_fold": {str(f): w.tolist() for f, w in per_fold.items()},
                                "min_positives": bar, "min_positives_per_fold": bars,
                                "fixed_mix_mAP": summary["mAP_mean_over_folds"]},
            )
            summary["config"] = {**summary["config"], "class_companion_weights": final.tolist()}
            summary.pop("other_flip_setting", None)
            other_path = seed_dir / "oof_other_flip.npz"
            if other_path.exists():
                other = dict(np.load(other_path))
                other["logits"] = mix_by_fold(other["branch_logits"], folds, per_fold)
                np.savez_compressed(out / "oof_other_flip.npz", **other)
                om = fold_maps(other["logits"], targets, masks, folds, evaluated)
                flip = not summary.get("tta", False)
                summary["other_flip_setting"] = {"test_time_flip": flip, "fold_mAP": om,
                                                 "mAP_mean_over_folds": float(np.mean(om))}
            np.savez_compressed(out / "oof.npz", **oof)
            (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
            person = summary["per_class_pooled_ap"].get("person")
            flip_text = (f" | with flip {summary['other_flip_setting']['mAP_mean_over_folds']:.2f}"
                         if "other_flip_setting" in summary else "")
            print(f"{out}: CV mAP {np.mean(fm):.2f} ± {np.std(fm):.2f} (fixed mix {summary['fusion_weights']['fixed_mix_mAP']:.2f})"
                  f"{flip_text}, person {person}; weights "
                  + ", ".join(f"{c} {w:.1f}" for c, w in zip(ds.class_names, final)))


if __name__ == "__main__":
    main()
