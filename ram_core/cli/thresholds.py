"""`thresholds --eval DIR [--checkpoint PATH] [--out PATH]`: per-class thresholds that maximise F1.

Reads a saved evaluation (report.json + predictions.jsonl), picks for each class the threshold with
the highest F1 on it, prints F1 at the single threshold and at the class's own, and writes a copy of
the checkpoint whose metadata holds them; `predict`, the app and `evaluate` then use them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..safe_text import plain
from .. import finite_json
from ..errors import CheckpointError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("thresholds", help="per-class thresholds that maximise F1 on a saved evaluation, "
                       "written into a copy of the checkpoint", description=__doc__.split("\n\n")[0])
    p.add_argument("--eval", required=True, dest="eval_dir", help="a folder written by `evaluate` (choose the "
                   "thresholds on a validation split: on the split they were chosen on, F1 looks better than it is)")
    p.add_argument("--checkpoint", help="the checkpoint to copy (default: the one the evaluation names)")
    p.add_argument("--out", help="where the copy goes (default: beside the checkpoint, NAME_thresholds.safetensors)")
    p.add_argument("--min-positives", type=int, default=5,
                   help="classes with fewer positives in the evaluation keep the single threshold")
    p.add_argument("--json", action="store_true", help="print the thresholds and F1s as JSON")
    p.add_argument("--dry-run", action="store_true", help="print the thresholds, write nothing")
    p.set_defaults(run=run)


def _checkpoint_path(given: str | None, report: dict, eval_dir: Path) -> Path:
    from ..thresholds import evaluated_checkpoint

    if given:
        return Path(given)
    found = evaluated_checkpoint(report, eval_dir)
    if found is None:
        raise CheckpointError(f"the evaluation names the checkpoint {report.get('checkpoint')!r}, which is not here; "
                              "give --checkpoint PATH")
    return found


def run(args: argparse.Namespace) -> int:
    from ..eval_views import open_evaluation
    from ..thresholds import best_f1_thresholds, default_copy_path, f1_table, write_checkpoint_copy

    eval_dir = Path(args.eval_dir)
    data = open_evaluation(eval_dir)
    chosen = best_f1_thresholds(data.scores, data.targets, data.masks, data.class_names, args.min_positives)
    table = f1_table(data.scores, data.targets, data.masks, data.class_names, data.threshold, chosen)
    out = None
    if not args.dry_run:
        ckpt = _checkpoint_path(args.checkpoint, data.report, eval_dir)
        out = write_checkpoint_copy(ckpt, args.out or default_copy_path(ckpt), chosen, chosen_on=str(eval_dir))
    if args.json:
        rows = json.loads(table.to_json(orient="records"))
        print(finite_json.dumps({"evaluation": str(eval_dir), "single_threshold": data.threshold,
                                 "class_thresholds": chosen,
                          "classes": rows, "checkpoint": str(out) if out else None}))
        return 0
    print(f"{'class':16s} {'positives':>9s} {'threshold':>9s} {'F1 @ ' + format(data.threshold, '.2f'):>10s} "
          f"{'F1 @ class':>10s}")
    for row in table.itertuples(index=False):
        f = lambda v: "—" if v != v else f"{v:.1f}"  # noqa: E731  (nan: no positives or no predictions)
        own = f"{row.threshold:.4f}" if row[0] in chosen else "(single)"
        print(f"{plain(row[0]):16s} {row.positives:9d} {own:>9s} {f(row[3]):>10s} {f(row[4]):>10s}")
    mean = lambda col: table[col].mean(skipna=True)  # noqa: E731
    print(f"mean F1 over classes: {mean('F1 @ single'):.1f} at {data.threshold:.2f}, {mean('F1 @ class'):.1f} at the "
          f"per-class thresholds (chosen on this evaluation: judge them on another split)")
    if out:
        print(f"wrote {out} (the checkpoint with these thresholds in its metadata)")
    return 0
