"""Cross-validate head recipes on the VOC photos in ../shared/data (the protocol of the model card).

    python scripts/cross_validate.py --variants baseline_prior baseline_init csra default paper \
        [--seeds 0 1 2] [--out runs/cv]

5 folds over all trainval photos (ram_core.training.cross_validation.stratified_folds, seed 0), frozen
EfficientNet-Lite0 features at the variant's input size from the feature cache (extracted once per
size, with their mirror images; a process keeps each size's maps once).
Every variant is a set of `train` options (the same flags as `python -m ram_core train`) plus the
training recipe; each is scored by the mean over folds of the fold's mAP over the classes with at
least 5 positives in the whole set.  Writes OUT/<variant>/seed<s>/{summary.json, oof.npz} and prints
one line per run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP workers sleep (BENCHMARKS.md)

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ram_core.attention_stats import LARGE_OBJECT_AREA, box_hit_rates, step_diversity  # noqa: E402
from ram_core.backbones import build_backbone  # noqa: E402
from ram_core.cli import build_parser  # noqa: E402
from ram_core.cli.train import config_from_args  # noqa: E402
from ram_core.data.voc import VOCDataset  # noqa: E402
from ram_core.model import OUTPUT_FIELDS, init_prior_from_backbone, transform_to_box  # noqa: E402
from ram_core.training.cross_validation import Recipe, cross_validate, stratified_folds  # noqa: E402
from ram_core.training.feature_cache import FeatureCache  # noqa: E402

RECIPE_FLAGS = {"--epochs": ("epochs", int), "--lr": ("lr", float), "--weight-decay": ("weight_decay", float),
                "--batch-size": ("batch_size", int), "--companion-lr": ("companion_lr", float)}

# name -> train flags (model) + recipe flags.  "default_v1" is the recipe shipped before cross-validation.
VARIANTS: dict[str, list[str]] = {
    "baseline_prior": ["--head", "baseline", "--imagenet-prior", "--imagenet-mode", "prior", "--epochs", "30"],
    "baseline_init": ["--head", "baseline", "--imagenet-prior", "--imagenet-mode", "init", "--epochs", "30"],
    "csra": ["--head", "csra", "--imagenet-prior", "--imagenet-mode", "init", "--epochs", "30"],
    "default_v1": ["--imagenet-prior", "--transform-mode", "evidence", "--fuse-global", "--region-skip",
                   "--hidden-size", "256", "--embed-dim", "256", "--region-channels", "64", "--epochs", "30"],
    # the paper runs in runs/cv (ablations too) trained at 1e-3; the preset now trains at 3e-4
    # (presets.RECIPE_LR), which is the variant "paper --lr 3e-4"
    "paper": ["--preset", "paper", "--lr", "1e-3", "--epochs", "30"],
    "default": ["--preset", "default", "--epochs", "30"],
    "baseline_prior_init": ["--head", "baseline", "--imagenet-prior", "--imagenet-mode", "prior+init", "--epochs", "30"],
    "csra_prior_init": ["--head", "csra", "--imagenet-prior", "--imagenet-mode", "prior+init", "--epochs", "30"],
}


def split_flags(flags: list[str]) -> tuple[list[str], Recipe]:
    model, recipe = [], Recipe()
    i = 0
    while i < len(flags):
        if flags[i] in RECIPE_FLAGS:
            name, kind = RECIPE_FLAGS[flags[i]]
            setattr(recipe, name, kind(flags[i + 1]))
            i += 2
        elif flags[i] == "--no-flip":
            recipe.flip_views = False
            i += 1
        elif flags[i] == "--tta":
            i += 1
        elif flags[i] == "--drop-group":  # experiment: no ImageNet group (prior, init) for this class
            i += 2
        else:
            model.append(flags[i])
            i += 1
    return model, recipe


def load_views(root: str, cache_dir: str, cfg) -> tuple[VOCDataset, list[np.ndarray]]:
    ds = VOCDataset(root, "trainval")
    cache = FeatureCache(cache_dir)
    backbone = None
    views = []
    for view in ("orig", "hflip"):
        from ram_core.training.feature_cache import cache_key

        feats, bad = cache.load(cache_key(cfg, ds.name, list(ds.ids), view, "default"))
        if feats is None or bad:
            backbone = backbone or build_backbone(cfg.backbone, None)
            feats = cache.get_or_build(backbone, ds, cfg, view, torch.device("cpu"), "default")
        views.append(feats)
    return ds, views


_VIEWS: dict[tuple, list[np.ndarray]] = {}
_POOLED: dict[tuple, list[np.ndarray]] = {}


def feature_spec(cfg) -> tuple:
    """What the cached maps depend on: variants that differ here read different maps."""
    return cfg.backbone, cfg.input_size, tuple(cfg.mean), tuple(cfg.std)


def views_for(root: str, cache_dir: str, cfg) -> list[np.ndarray]:
    """The photo's and the mirror image's maps for cfg's backbone and input size, loaded once."""
    key = feature_spec(cfg)
    if key not in _VIEWS:
        _VIEWS[key] = load_views(root, cache_dir, cfg)[1]
    return _VIEWS[key]


def pooled_views(views: list[np.ndarray], key: tuple) -> list[np.ndarray]:
    if key not in _POOLED:
        _POOLED[key] = [v.astype(np.float32).mean((2, 3), keepdims=True) for v in views]
    return _POOLED[key]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/VOCdevkit")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--out", default="runs/cv")
    p.add_argument("--cache-dir", default="cache/features")
    p.add_argument("--only-folds", type=int, nargs="+", help="quick look at these folds only (not a CV result)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="flags added to every variant")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("RAM_THREADS", "2")))
    parser = build_parser()
    out_root = Path(args.out)
    data = None
    for name in args.variants:
        words = name.split()
        # "NAME --more flags": a named variant with changes; anything else is the flags themselves
        flags = (VARIANTS[words[0]] + words[1:] if words[0] in VARIANTS else words) + args.extra
        model_flags, recipe = split_flags(flags)
        tta = "--tta" in flags
        targs = parser.parse_args(["train", "--data", "voc", "--root", args.root, "--out", "x", *model_flags])
        if data is None:
            from ram_core.data.classes import VOC_CLASSES

            base_cfg = config_from_args(targs, list(VOC_CLASSES))
            ds = VOCDataset(args.root, "trainval")
            targets = np.asarray(ds.targets, np.float32)
            masks = np.asarray(ds.masks, np.float32)
            eval_masks = np.asarray(ds.eval_masks, np.float32)
            folds = stratified_folds(targets, eval_masks, args.folds, args.fold_seed)
            classifier = build_backbone(base_cfg.backbone, None).imagenet_classifier
            data = True
        cfg = config_from_args(targs, list(ds.class_names))
        dropped = [flags[i + 1] for i, f in enumerate(flags) if f == "--drop-group"]
        if dropped and cfg.imagenet_groups:
            cfg = cfg.replace(imagenet_groups=[[] if c in dropped else g
                                               for c, g in zip(cfg.class_names, cfg.imagenet_groups)])

        def init(head, cfg=cfg):
            if cfg.imagenet_groups:
                class _B:  # the backbone's ImageNet classifier, without building the backbone again
                    imagenet_classifier = classifier
                init_prior_from_backbone(head, _B())

        # a global-pooling head sees only the mean of the map: pooled (N, C, 1, 1) views give the same
        # numbers, far faster
        views = views_for(args.root, args.cache_dir, cfg)  # each variant reads the maps of its own input size
        use = pooled_views(views, feature_spec(cfg)) if cfg.head == "baseline" else views
        for seed in args.seeds:
            t0 = time.perf_counter()
            res = cross_validate(cfg, recipe, use, targets, eval_masks, folds, seed=seed, train_masks=masks,
                                 test_time_flip=tta, init=init, log=lambda m: print(m, flush=True),
                                 only_folds=args.only_folds)
            if args.only_folds:
                print(f"{name:40s} seed {seed}: folds {args.only_folds} mAP {res.fold_mAP}", flush=True)
                continue
            summary = res.summary()
            summary.update(variant=name, flags=flags, tta=tta, config=cfg.to_dict(),
                           per_class_pooled_ap={c: (None if np.isnan(a) else round(float(a) * 100, 2))
                                                for c, a in zip(ds.class_names, res.pooled_ap)},
                           selected=[c for c, s in zip(ds.class_names, res.selected) if s])
            if res.oof.transforms.shape[1]:
                boxes = transform_to_box(res.oof.transforms).numpy()
                summary["box_hits"] = box_hit_rates(boxes, ds.boxes, ds.image_sizes)
                summary["diversity"] = step_diversity(boxes, ds.boxes, ds.image_sizes)
                summary["diversity_large"] = step_diversity(boxes, ds.boxes, ds.image_sizes, min_area=LARGE_OBJECT_AREA)
            d = out_root / name.replace(" ", "_") / f"seed{seed}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
            arrays = {f: getattr(res.oof, f).numpy() for f in OUTPUT_FIELDS if getattr(res.oof, f) is not None}
            np.savez_compressed(d / "oof.npz", **arrays, scores=res.oof_scores, folds=folds)
            if res.oof_other is not None:  # the same fold models with test-time flip toggled
                np.savez_compressed(d / "oof_other_flip.npz", folds=folds, **{
                    f: getattr(res.oof_other, f).numpy() for f in OUTPUT_FIELDS if getattr(res.oof_other, f) is not None})
            person = summary["per_class_pooled_ap"].get("person")
            hits = summary.get("box_hits", {})
            div = summary.get("diversity", {})
            print(f"{name:40s} seed {seed}: CV mAP {res.mAP:.2f} ± {np.std(res.fold_mAP):.2f} "
                  f"(pooled {res.pooled_mAP:.2f}, person {person})"
                  + (f" hits {hits.get('hit_rate', 0):.1f}/{hits.get('hit_rate_other_photo', 0):.1f}" if hits else "")
                + (f" objects {div.get('objects_visited', 0):.2f}/{div.get('objects_visited_other', 0):.2f}"
                   f" one-object {div.get('all_on_one_object', 0):.0f}%" if div else "")
                  + (f" | {'without' if tta else 'with'} flip: {summary['other_flip_setting']['mAP_mean_over_folds']:.2f}"
                     if "other_flip_setting" in summary else "")
                  + f"  [{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
