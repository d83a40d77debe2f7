"""Print the model card's tables from the cross-validation runs (scripts/cross_validate.py).

    python scripts/model_card_tables.py [--cv runs/cv] [--variants default csra_prior_init ...]
        [--ablations "paper_--steps_1" ...] [--root ../shared/data/VOCdevkit]

One row per variant: CV mAP (mean over folds of the out-of-fold mAP over the classes with >= 5
positives) as mean ± std over seeds, the std over folds, the same with test-time flip, person AP and
the pooled mAP; then per-class AP (pooled out-of-fold, seed 0) with positives, and the attention's
box hit rates and diversity for the RAM variants; then one compact row per ablation run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # ram_core, from a checkout

from ram_core.attention_stats import LARGE_OBJECT_AREA  # noqa: E402


def fmt(v, nd=1):
    return "–" if v is None else f"{v:.{nd}f}"


def load(cv: Path, variant: str) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted((cv / variant).glob("seed*/summary.json"))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cv", default="runs/cv")
    p.add_argument("--variants", nargs="+", default=["default", "csra_prior_init", "baseline_prior_init",
                                                      "baseline_prior", "paper"])
    p.add_argument("--ablations", nargs="*", default=[], help="run folders (under --cv) for the ablation table")
    p.add_argument("--root", default="../shared/data/VOCdevkit", help="VOC root, for the positives per class")
    args = p.parse_args()
    cv = Path(args.cv)
    runs = {v: load(cv, v) for v in args.variants}
    runs = {v: r for v, r in runs.items() if r}
    print("| variant | seeds | CV mAP (mean ± std over seeds) | std over folds | with flip averaging | person AP | "
          "pooled mAP |\n|---|---|---|---|---|---|---|")
    for v, rs in runs.items():
        m = [r["mAP_mean_over_folds"] for r in rs]
        flip = [r["other_flip_setting"]["mAP_mean_over_folds"] for r in rs if "other_flip_setting" in r]
        tta = rs[0].get("tta")
        flip_txt = f"{np.mean(flip):.2f}" + (" (without)" if tta else "") if flip else "–"
        if flip and len(flip) < len(rs):
            flip_txt += f" ({len(flip)} of the seeds)"
        person = [r["per_class_pooled_ap"].get("person") for r in rs]
        print(f"| {v} | {len(rs)} | {np.mean(m):.2f} ± {np.std(m):.2f} | {np.mean([r['mAP_std_over_folds'] for r in rs]):.2f} | "
              f"{flip_txt} | {fmt(np.mean([x for x in person if x is not None]))} | "
              f"{np.mean([r['pooled_mAP'] for r in rs]):.2f} |")
    first = next(iter(runs.values()))[0]
    classes = list(first["per_class_pooled_ap"])
    positives = count_positives(args.root, classes)
    print("\n| class | positives | " + " | ".join(runs) + " |\n|---|---|" + "---|" * len(runs))
    for c in classes:
        print(f"| {c} | {positives.get(c, '?')} | "
              + " | ".join(fmt(rs[0]["per_class_pooled_ap"].get(c)) for rs in runs.values()) + " |")
    voc = voc_dataset(args.root)
    for v, rs in runs.items():
        hits, div = rs[0].get("box_hits"), rs[0].get("diversity")
        if hits:
            print(f"\n{v}: box centres on an object {hits['hit_rate']:.1f}% (another photo's objects "
                  f"{hits['hit_rate_other_photo']:.1f}%); per step {[round(x, 1) for x in hits['per_step']]}")
        if div and "objects_visited" in div:
            print(f"{v}: on {div['num_images']} photos with 2+ objects ({div['objects']:.1f} on average): "
                  f"{div['objects_visited']:.2f} objects visited (another photo's: {div['objects_visited_other']:.2f}), "
                  f"all steps on one object {div['all_on_one_object']:.0f}%, two or more {div['visited_two_or_more']:.0f}%")
            large = [d for d in (large_diversity(cv / v / f"seed{r['seed']}", r, voc) for r in rs) if d]
            if large:
                d = large[0]
                print(f"{v}: counting only objects of >= {100 * LARGE_OBJECT_AREA:.0f}% of the photo, on {d['num_images']} "
                      f"photos with 2+: {d['objects_visited']:.2f} objects visited (another photo's: "
                      f"{d['objects_visited_other']:.2f}), all on one {d['all_on_one_object']:.0f}%; mean over "
                      f"{len(large)} seeds {np.mean([x['objects_visited'] for x in large]):.2f}, all on one "
                      f"{np.mean([x['all_on_one_object'] for x in large]):.0f}%")

    if args.ablations:
        print("\n| run | seeds | CV mAP | with flip averaging | person AP | objects visited (other photo) | all on one |"
              "\n|---|---|---|---|---|---|---|")
        for v in args.ablations:
            rs = load(cv, v)
            if not rs:
                print(f"| {v} | 0 | not run | | | | |")
                continue
            m = [r["mAP_mean_over_folds"] for r in rs]
            flip = [r["other_flip_setting"]["mAP_mean_over_folds"] for r in rs if "other_flip_setting" in r]
            person = [r["per_class_pooled_ap"].get("person") for r in rs]
            div = rs[0].get("diversity") or {}
            spread = (f"{div['objects_visited']:.2f} ({div['objects_visited_other']:.2f})"
                      if "objects_visited" in div else "–")
            one = f"{div['all_on_one_object']:.0f}%" if "all_on_one_object" in div else "–"
            print(f"| {v} | {len(rs)} | {np.mean(m):.2f}" + (f" ± {np.std(m):.2f}" if len(rs) > 1 else "")
                  + f" | {fmt(np.mean(flip), 2) if flip else '–'} | {fmt(np.mean([x for x in person if x is not None]))}"
                  f" | {spread} | {one} |")


def voc_dataset(root: str):
    """The trainval photos' annotations, or None without the data (the tables still print)."""
    try:
        from ram_core.data.voc import VOCDataset

        return VOCDataset(root, "trainval")
    except Exception:
        return None


def large_diversity(run: Path, summary: dict, ds) -> dict | None:
    """The step diversity over objects of >= LARGE_OBJECT_AREA of the photo: from the summary when
    cross_validate.py stored it, else from the run's out-of-fold transforms."""
    d = summary.get("diversity_large")
    if d is None and ds is not None and (run / "oof.npz").is_file():
        import torch

        from ram_core.attention_stats import step_diversity
        from ram_core.evaluation import transform_to_box

        transforms = np.load(run / "oof.npz")["transforms"]
        if transforms.shape[1]:
            boxes = transform_to_box(torch.from_numpy(transforms).float()).numpy()
            d = step_diversity(boxes, ds.boxes, ds.image_sizes, min_area=LARGE_OBJECT_AREA)
    return d if d and "objects_visited" in d else None


def count_positives(root: str, classes: list[str]) -> dict[str, int]:
    """Counted (not difficult-only) positives per class over the trainval photos; {} without the data."""
    ds = voc_dataset(root)
    if ds is None:
        return {}
    t, m = np.asarray(ds.targets) > 0.5, np.asarray(ds.eval_masks) > 0
    return {c: int((t[:, i] & m[:, i]).sum()) for i, c in enumerate(ds.class_names) if c in classes}


if __name__ == "__main__":
    main()
