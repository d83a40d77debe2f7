"""`columns DIR [DIR ...]`: predictions.npz for saved evaluations that have only predictions.jsonl."""

from __future__ import annotations

import argparse
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("columns", help="write predictions.npz (which the app opens fast) for saved evaluations "
                                       "made before `evaluate` wrote it")
    p.add_argument("eval_dirs", nargs="+", metavar="DIR", help="a folder with report.json and predictions.jsonl")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..eval_views import add_columns

    for d in args.eval_dirs:
        t0 = time.perf_counter()
        path = add_columns(d)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
    return 0
