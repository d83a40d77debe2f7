"""The worst out-of-fold mistakes of a cross-validation run, by photo id (for the model card).

    python scripts/failure_cases.py runs/cv/default/seed0 [--classes person chair ...] [--n 5]

For each class: the positives with the lowest scores (missed) and the negatives with the highest
(false alarms), each with its photo id, score, and the photo's true labels.  Out-of-fold: every
score comes from a model that never saw the photo.  Browse the same photos on the Evaluate page
(bundled evaluation `default_cv`, tab Browse, search the id).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # ram_core, from a checkout

from ram_core.data.voc import VOCDataset  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a cross_validate.py run folder (oof.npz)")
    p.add_argument("--root", default="../shared/data/VOCdevkit")
    p.add_argument("--classes", nargs="*", help="default: every class with at least --min-positives positives")
    p.add_argument("--min-positives", type=int, default=5)
    p.add_argument("--n", type=int, default=4, help="photos per list")
    args = p.parse_args()

    ds = VOCDataset(args.root, "trainval")
    scores = np.load(Path(args.run) / "oof.npz")["scores"]  # (N, C) probabilities, out of fold
    names = list(ds.class_names)
    t, m = np.asarray(ds.targets) > 0.5, np.asarray(ds.eval_masks) > 0
    if len(scores) != len(t):
        raise SystemExit(f"{args.run}: {len(scores)} rows for {len(t)} photos")
    classes = args.classes or [c for i, c in enumerate(names) if (t[:, i] & m[:, i]).sum() >= args.min_positives]

    def labels(i: int) -> str:
        return ", ".join(names[c] for c in np.flatnonzero(t[i])) or "-"

    print("| class | missed (lowest-scored positives) | false alarms (highest-scored negatives) |\n|---|---|---|")
    for c in classes:
        j = names.index(c)
        pos = np.flatnonzero(t[:, j] & m[:, j])
        neg = np.flatnonzero(~t[:, j] & m[:, j])
        missed = pos[np.argsort(scores[pos, j])][: args.n]
        alarms = neg[np.argsort(-scores[neg, j])][: args.n]
        fmt = lambda rows: "; ".join(f"{ds.ids[i]} {scores[i, j]:.2f} ({labels(i)})" for i in rows)  # noqa: E731
        print(f"| {c} | {fmt(missed)} | {fmt(alarms)} |")


if __name__ == "__main__":
    main()
