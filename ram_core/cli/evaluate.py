"""`evaluate --data voc --root PATH --split test [--checkpoint PATH] --out DIR`: report.json + predictions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..safe_text import plain
from .train import add_data_args

DEFAULT_SPLIT = {"voc": "test", "coco": "val", "folder": None, "synthetic": "test"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model on a dataset: report.json (mAP, CF1, OF1, ...) and per-image predictions")
    add_data_args(p)
    p.add_argument("--split", default=None,
                   help="voc: test (default)/val/...; coco: val (default)/val2014/...; folder: the labels file")
    p.add_argument("--checkpoint", help="a .safetensors checkpoint (default: the embedded default model)")
    p.add_argument("--out", required=True, help="output folder for report.json and predictions.jsonl")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes decoding images")
    p.add_argument("--threshold", type=float, default=0.5, help="score at which a label counts as predicted")
    p.add_argument("--single-threshold", action="store_true",
                   help="ignore the checkpoint's per-class thresholds (by default, when it has them, the report "
                        "adds CP..OF1 at them beside those at --threshold)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images (a quick look)")
    p.add_argument("--compress", action="store_true", help="write predictions.jsonl.gz")
    p.add_argument("--update-checkpoint", action="store_true",
                   help="store the evaluation summary in the checkpoint, if it has none yet")
    p.add_argument("--occlusion", action="store_true",
                   help="also test whether the attention matters (heads with steps): for each true positive, blank "
                        "the region of the step that gave its score on the feature map, against a box of the same "
                        "size at a random place, and the deletion curves; writes occlusion.json")
    p.add_argument("--seed", type=int, default=0, help="where --occlusion's random boxes fall")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _progress_bar(disable: bool, desc: str = "evaluate"):
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, seconds: float) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="img", desc=desc, disable=disable, file=sys.stderr,
                       dynamic_ncols=True, smoothing=0.1)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def run(args: argparse.Namespace) -> int:
    from ..evaluation import EVALUATION_FILES
    from ..output_folder import check_output_folder

    check_arguments(args)
    # --out first: a folder that cannot be used is found before the model loads, not after the work
    check_output_folder(args.out, EVALUATION_FILES, "--out folder", create=False)
    return _run(args)


def check_arguments(args: argparse.Namespace) -> None:
    """Numbers that cannot work, refused with the option's name before anything starts."""
    import math

    from ..errors import RAMError

    problems = []
    if args.batch_size < 1:
        problems.append(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 0:
        problems.append(f"--workers must be 0 or more, got {args.workers}")
    if not (math.isfinite(args.threshold) and 0.0 <= args.threshold <= 1.0):
        problems.append(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.limit is not None and args.limit < 1:
        problems.append(f"--limit must be at least 1, got {args.limit}")
    if problems:
        raise RAMError("; ".join(problems))


def _run(args: argparse.Namespace) -> int:
    from ..evaluation import EVALUATION_FILES
    from ..inference import Predictor, device_label
    from ..output_folder import check_output_folder, output_lock

    split = args.split if args.split is not None else DEFAULT_SPLIT[args.data]
    predictor = Predictor.from_checkpoint(args.checkpoint, args.device)
    print(f"model: {predictor.info.source} on {device_label(predictor.device)}", file=sys.stderr)
    if args.occlusion:  # before the evaluation, not after it
        from ..occlusion import require_steps

        require_steps(predictor.cfg)
    out = check_output_folder(args.out, EVALUATION_FILES, "--out folder")
    with output_lock(out):  # the report, predictions and extras of one run, never mixed with another's
        return _evaluate(args, predictor, split, out)


def _evaluate(args: argparse.Namespace, predictor, split: str | None, out) -> int:
    from ..checkpoints import update_evaluation
    from ..evaluation import evaluate_to_folder, evaluation_summary

    result, paths = evaluate_to_folder(
        predictor, args.data, args.root, split, args.out, batch_size=args.batch_size, workers=args.workers,
        threshold=args.threshold, skip_bad=args.skip_bad, limit=args.limit, compress=args.compress,
        progress=_progress_bar(args.no_progress), log=lambda m: print(plain(m), file=sys.stderr),
    )
    r = result.report
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"mAP {fmt(r['mAP'])}  CF1 {fmt(r['CF1'])}  OF1 {fmt(r['OF1'])}  "
          f"(top-3: CF1 {fmt(r['top3']['CF1'])}  OF1 {fmt(r['top3']['OF1'])})  "
          f"on {r['num_images']} images, {fmt(r['images_per_second'])} images/s")
    if r["skipped"]:
        print(plain(f"left out {len(r['skipped'])} bad item(s), e.g. {r['skipped'][0]}"), file=sys.stderr)
    if r["classes_not_in_model"]:
        print(plain(f"not evaluated (the model does not know them): {', '.join(r['classes_not_in_model'])}"),
              file=sys.stderr)
    print(f"wrote {paths['report']} and {paths['predictions']}")
    from ..evaluation_extras import add_evaluation_extras
    from ..occlusion import OCCLUSION_FILE, summary_line

    extras = add_evaluation_extras(predictor, result, args.out, use_class_thresholds=not args.single_threshold,
                                   occlusion=args.occlusion, seed=args.seed, batch_size=args.batch_size,
                                   workers=args.workers, progress=_progress_bar(args.no_progress, "occlusion"))
    if extras["at_class_thresholds"]:
        a = extras["at_class_thresholds"]
        print(f"at the checkpoint's per-class thresholds: CF1 {fmt(a['CF1'])}  OF1 {fmt(a['OF1'])}  "
              f"(CP {fmt(a['CP'])}  CR {fmt(a['CR'])}; --single-threshold to leave them out)")
    if extras["occlusion"]:
        print(summary_line(extras["occlusion"]))
        print(f"wrote {Path(args.out) / OCCLUSION_FILE}")

    if args.update_checkpoint:
        if predictor.info.evaluation:
            print(f"{predictor.info.source} already has an evaluation summary; left unchanged")
        else:
            update_evaluation(predictor.info.source, evaluation_summary(r))
            print(f"stored the evaluation summary in {predictor.info.source}")
    return 0

