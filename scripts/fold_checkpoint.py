"""One cross-validation fold as a checkpoint, and its held-out photos as a VOC split.

    python scripts/fold_checkpoint.py --variant default --fold 0 --out runs/fold0_default
    python -m ram_core evaluate --checkpoint runs/fold0_default/model.safetensors --data voc \
        --root runs/fold0_default/VOCdevkit --split cvfold0 --out runs/fold0_default/eval --occlusion

The shipped models are trained on all 995 photos, so no photo here is new to them.  Analyses that
need a model (occlusion, thresholds, probes) are honest only on photos the model never saw: this
trains the head of one fold of scripts/cross_validate.py (the same folds, recipe and seed) on the
other four folds' cached features, saves it as a checkpoint, and writes a VOC root under --out
whose Annotations and JPEGImages link to the real ones (nothing is copied) and whose
ImageSets/Main/cvfold<F>.txt lists the fold's held-out photos.

--fusion-from runs/cv/<variant>_--fit-fusion/seed<S> gives the checkpoint that fold's per-class fusion
weights from scripts/fit_fusion.py's nested CV (chosen without the fold's photos), as the shipped
default carries the weights chosen on all photos.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_validate import VARIANTS, load_views, split_flags  # noqa: E402

from ram_core.backbones import build_backbone  # noqa: E402
from ram_core.checkpoints import make_provenance, save_checkpoint, update_config  # noqa: E402
from ram_core.cli import build_parser  # noqa: E402
from ram_core.cli.train import config_from_args  # noqa: E402
from ram_core.data.classes import VOC_CLASSES  # noqa: E402
from ram_core.model import RAMModel, init_prior_from_backbone  # noqa: E402
from ram_core.training.cross_validation import fit_head, stratified_folds  # noqa: E402


def set_fold_fusion_weights(checkpoint: Path, fit_fusion_run: Path, fold: int) -> list[float]:
    """Store fold `fold`'s per-class fusion weights from a fit_fusion.py run in `checkpoint`'s config."""
    summary = json.loads((fit_fusion_run / "summary.json").read_text())
    per_fold = (summary.get("fusion_weights") or {}).get("per_fold") or {}
    if str(fold) not in per_fold:
        raise SystemExit(f"{fit_fusion_run / 'summary.json'}: no nested-CV fusion weights for fold {fold} "
                         "(is it a scripts/fit_fusion.py run?)")
    weights = [float(w) for w in per_fold[str(fold)]]
    update_config(checkpoint, class_companion_weights=weights)
    return weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="default", help="a cross_validate.py variant, optionally with more flags")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="../shared/data/VOCdevkit")
    p.add_argument("--cache-dir", default="cache/features")
    p.add_argument("--out", required=True)
    p.add_argument("--fusion-from", metavar="FIT_FUSION_RUN",
                   help="a fit_fusion.py run folder (its summary.json): this fold's nested-CV fusion weights")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("RAM_THREADS", "2")))

    words = args.variant.split()
    flags = VARIANTS[words[0]] + words[1:] if words[0] in VARIANTS else words
    model_flags, recipe = split_flags(flags)
    targs = build_parser().parse_args(["train", "--data", "voc", "--root", args.root, "--out", "x", *model_flags])
    cfg = config_from_args(targs, list(VOC_CLASSES))
    ds, views = load_views(args.root, args.cache_dir, cfg)
    targets = np.asarray(ds.targets, np.float32)
    masks = np.asarray(ds.masks, np.float32)
    folds = stratified_folds(targets, np.asarray(ds.eval_masks, np.float32), args.folds, args.fold_seed)
    train = np.flatnonzero(folds != args.fold)
    backbone = build_backbone(cfg.backbone, None)

    def init(head):
        init_prior_from_backbone(head, backbone)

    head = fit_head(cfg, recipe, [v[train] for v in views],
                    targets[train], masks[train], seed=args.seed, init=init)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = RAMModel(cfg, backbone, head).eval()
    command = ["scripts/fold_checkpoint.py", "--variant", args.variant, "--fold", str(args.fold),
               "--seed", str(args.seed)]
    save_checkpoint(out / "model.safetensors", model,
                    provenance=make_provenance(f"voc2007 trainval without CV fold {args.fold} "
                                               f"({len(train)} photos)", command))
    if args.fusion_from:
        set_fold_fusion_weights(out / "model.safetensors", Path(args.fusion_from), args.fold)

    voc = out / "VOCdevkit" / "VOC2007"
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    source = Path(args.root).resolve() / "VOC2007"
    for name in ("Annotations", "JPEGImages"):
        link = voc / name
        if not link.exists():
            link.symlink_to(source / name, target_is_directory=True)
    held = [ds.ids[i] for i in np.flatnonzero(folds == args.fold)]
    (voc / "ImageSets" / "Main" / f"cvfold{args.fold}.txt").write_text("\n".join(held) + "\n")
    print(f"{out / 'model.safetensors'}: trained on {len(train)} photos; split cvfold{args.fold} "
          f"({len(held)} held-out photos) in {out / 'VOCdevkit'}")


if __name__ == "__main__":
    main()
