"""A cross-validation run of a RAM head whose companion branch trains at its own learning rate, assembled
from two runs of the same recipe at the two rates, without training again.

    python scripts/assemble_branches.py "runs/cv/default_--input-size_576_--lr_2e-3/seed0" \
        "runs/cv/default_--input-size_576_--lr_4e-3/seed0" \
        --out "runs/cv/default_--input-size_576_--lr_2e-3_--companion-lr_4e-3/seed0"

Why this is exact: the two branches are trained on their own losses with per-parameter AdamW and no
gradient clipping, and they draw their dropout masks in the same order whatever the rates, so in a run
with `--companion-lr` the recurrent branch is the one of the run at --lr and the companion the one of
the run at --companion-lr (tests/test_companion_lr.py checks this on a small problem).  Takes the
recurrent branch (and the steps, boxes, global step) from RECURRENT and the companion's logits from
COMPANION, mixes them as the model does (its companion weight, per class when the run has them), and writes OUT/{summary.json, oof.npz,
oof_other_flip.npz} with every number recomputed; the summary says it was assembled.
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
from ram_core.training.fusion_weights import fold_maps, mix  # noqa: E402


def assemble(recurrent: dict, companion: dict, weight: float | np.ndarray) -> dict:
    """oof arrays with the companion branch of `companion` and everything else of `recurrent`."""
    if not np.array_equal(recurrent["folds"], companion["folds"]):
        raise SystemExit("the two runs used different folds")
    out = dict(recurrent)
    branches = recurrent["branch_logits"].copy()  # (N, 2, C): [recurrent, companion]
    branches[:, 1] = companion["branch_logits"][:, 1]
    out["branch_logits"] = branches
    out["logits"] = mix(branches, weight)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recurrent", help="seed folder of the run at the recurrent branch's rate")
    p.add_argument("companion", help="seed folder of the same recipe and seed at the companion's rate")
    p.add_argument("--out", required=True)
    p.add_argument("--root", default="../shared/data/VOCdevkit")
    args = p.parse_args()
    rec_dir, comp_dir, out = Path(args.recurrent), Path(args.companion), Path(args.out)
    s_rec = json.loads((rec_dir / "summary.json").read_text())
    s_comp = json.loads((comp_dir / "summary.json").read_text())
    if s_rec["seed"] != s_comp["seed"] or s_rec["config"] != s_comp["config"]:
        raise SystemExit("the two runs differ in more than the learning rate (seed or model config)")
    ds = VOCDataset(args.root, "trainval")
    targets = np.asarray(ds.targets, np.float32)
    masks = np.asarray(ds.eval_masks, np.float32)
    evaluated = selected_classes(targets, masks)
    config = s_rec["config"]  # the model's own mix: per-class weights when the run has them
    weight = config.get("class_companion_weights") or config.get("companion_weight", 0.5)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(s_rec)
    for name in ("oof.npz", "oof_other_flip.npz"):
        if not (rec_dir / name).is_file():
            continue
        arrays = assemble(dict(np.load(rec_dir / name)), dict(np.load(comp_dir / name)), weight)
        folds = arrays["folds"]
        fm = fold_maps(arrays["logits"], targets, masks, folds, evaluated)
        if name == "oof.npz":
            arrays["scores"] = scores = 1.0 / (1.0 + np.exp(-arrays["logits"]))
            pooled = metrics.per_class_ap(scores, targets, masks)
            summary.update(mAP_mean_over_folds=float(np.mean(fm)), mAP_std_over_folds=float(np.std(fm)),
                           fold_mAP=fm, pooled_mAP=float(np.nanmean(pooled[evaluated]) * 100),
                           per_class_pooled_ap={c: (None if np.isnan(a) else round(float(a) * 100, 2))
                                                for c, a in zip(ds.class_names, pooled)})
        else:
            summary["other_flip_setting"] = {**s_rec.get("other_flip_setting", {}), "fold_mAP": fm,
                                             "mAP_mean_over_folds": float(np.mean(fm))}
        np.savez_compressed(out / name, **arrays)
    lr = s_comp["recipe"]["lr"]
    summary["recipe"] = {**s_rec["recipe"], "companion_lr": lr}
    summary["flags"] = s_rec["flags"] + ["--companion-lr", f"{lr:g}"]
    summary["variant"] = f"{s_rec['variant']} --companion-lr {lr:g}"
    summary["seconds"] = None
    summary["assembled_from"] = {"recurrent": str(rec_dir), "companion": str(comp_dir),
                                 "why_exact": "branches train independently: scripts/assemble_branches.py"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"{out}: CV mAP {summary['mAP_mean_over_folds']:.2f} ± {summary['mAP_std_over_folds']:.2f} "
          f"(with flip {summary.get('other_flip_setting', {}).get('mAP_mean_over_folds', float('nan')):.2f}; "
          f"person {summary['per_class_pooled_ap'].get('person')})")


if __name__ == "__main__":
    main()
