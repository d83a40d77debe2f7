"""`evaluate --data voc --root PATH --split test [--checkpoint PATH] --out DIR`: report.json + predictions.

Under `torchrun --nproc_per_node N` each process evaluates a shard and rank 0 writes the one report
(ram_core/evaluation_distributed.py); the other ranks print nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .train import add_data_args

from ..safe_text import plain

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
    from ..evaluation_distributed import init_distributed
    from ..inference import Predictor, device_label, resolve_device
    from ..output_folder import check_output_folder, output_lock

    split = args.split if args.split is not None else DEFAULT_SPLIT[args.data]
    use_cuda = resolve_device(args.device).type == "cuda"
    ctx = init_distributed(use_cuda)  # under torchrun: this process's rank and the number of processes
    device = f"cuda:{ctx.local_rank}" if ctx is not None and use_cuda else args.device
    predictor = Predictor.from_checkpoint(args.checkpoint, device)
    if ctx is None or ctx.rank == 0:
        print(f"model: {predictor.info.source} on {device_label(predictor.device)}"
              + (f", {ctx.world} processes" if ctx else ""), file=sys.stderr)
    if args.occlusion:  # before the evaluation, not after it
        from ..occlusion import require_steps

        require_steps(predictor.cfg)
    out = check_output_folder(args.out, EVALUATION_FILES, "--out folder")
    if ctx is not None and ctx.rank != 0:  # rank 0 holds the folder's lock for the whole run
        return _evaluate(args, predictor, split, ctx)
    with output_lock(out):  # the report, predictions and extras of one run, never mixed with another's
        return _evaluate(args, predictor, split, ctx)


def _evaluate(args: argparse.Namespace, predictor, split: str | None, ctx) -> int:
    from ..checkpoints import update_evaluation
    from ..evaluation import evaluate_to_folder, evaluation_summary
    from ..evaluation_distributed import evaluate_to_folder_distributed

    common = dict(batch_size=args.batch_size, workers=args.workers, threshold=args.threshold, skip_bad=args.skip_bad,
                  limit=args.limit, compress=args.compress, progress=_progress_bar(args.no_progress),
                  log=lambda m: print(plain(m), file=sys.stderr))
    if ctx is None:
        result, paths = evaluate_to_folder(predictor, args.data, args.root, split, args.out, **common)
    else:
        try:
            result, paths = evaluate_to_folder_distributed(predictor, args.data, args.root, split, args.out, ctx,
                                                           **common)
        finally:  # no collective call follows: every rank leaves the group here
            import torch.distributed as dist

            dist.destroy_process_group()
        if result is None:  # another rank than 0: its shard is in rank 0's report
            return 0
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
    hits, div = r.get("box_hit_rates") or {}, r.get("step_diversity") or {}
    if hits.get("hit_rate") is not None:
        print(f"step box centres on an object: {fmt(hits['hit_rate'])}% "
              f"(the same boxes on another photo: {fmt(hits['hit_rate_other_photo'])}%)")
    if div.get("objects_visited") is not None:
        print(f"objects visited by the steps on {div['num_images']} photos with 2+ objects: "
              f"{fmt(div['objects_visited'])} (another photo's: {fmt(div['objects_visited_other'])}); "
              f"all steps on one object: {fmt(div['all_on_one_object'])}%")
    large = r.get("step_diversity_large") or {}
    if large.get("objects_visited") is not None:
        print(f"  on the {large['num_images']} photos with 2+ objects of >= {100 * large['min_area']:.0f}% of the photo: "
              f"{fmt(large['objects_visited'])} (another photo's: {fmt(large['objects_visited_other'])}); "
              f"all steps on one object: {fmt(large['all_on_one_object'])}%")
    print(f"wrote {paths['report']}, {paths['predictions']}"
          + (f" and {paths['columns']}" if "columns" in paths else ""))
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

