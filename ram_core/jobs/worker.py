"""The training process of one job: `python -m ram_core.jobs.worker JOB_DIR` (started by JobQueue).

It runs the job's `train` command line through the same functions as `python -m ram_core train`,
with the progress hook writing progress.json and honouring the STOP file; then it evaluates the best
checkpoint on the validation images (report.json + predictions.jsonl in evaluation/, for the Evaluate
page) and stores that evaluation's summary in the checkpoint (for the model picker).  However it
ends, it records the outcome in status.json and starts the next queued job.
"""

from __future__ import annotations

import math
import sys
import traceback
from pathlib import Path
from typing import Any

from ..errors import RAMError
from .progress import ProgressWriter, StopRequested
from .spec import parse_train_args
from .store import EVAL_DIR, FAILED, FINISHED, STOPPED, Job, JobQueue


def _log(message: str) -> None:
    print(message, flush=True)


def evaluate_best(job_dir: Path, args, val_set, data: dict[str, Any], writer: ProgressWriter) -> dict[str, Any]:
    """Evaluate best.safetensors on the validation set into job_dir/evaluation; returns the report."""
    from ..checkpoints import read_metadata, update_evaluation
    from ..evaluation import evaluate_dataset, evaluation_summary, write_evaluation
    from ..inference import Predictor

    best = job_dir / "best.safetensors"
    predictor = Predictor.from_checkpoint(best, args.device)
    writer.event({"phase": "evaluating", "done": 0, "total": len(val_set)})
    result = evaluate_dataset(
        predictor, val_set, batch_size=args.batch_size, workers=0, skip_bad=args.skip_bad,
        progress=lambda done, total, _s: writer.event({"phase": "evaluating", "done": done, "total": total}),
        dataset_info={k: data.get(k) for k in ("kind", "root", "split", "val_split", "val_fraction", "split_seed")},
    )
    write_evaluation(result, job_dir / EVAL_DIR)
    # the loop's per-epoch validation numbers stay; the full evaluation's mAP, CF1, ... join them
    earlier = read_metadata(best).evaluation or {}
    update_evaluation(best, {**earlier, **evaluation_summary(result.report)})
    return result.report


def run_job(job_dir: str | Path) -> str:
    """Run one attempt of the job in job_dir; returns the state it ended in."""
    from ..cli.train import config_from_args, datasets_from_args, options_from_args
    from ..training.loop import train

    job_dir = Path(job_dir)
    job = Job(job_dir)
    queue = JobQueue(job_dir.parent)
    writer = ProgressWriter(job_dir)
    state, error, summary = FAILED, None, {}
    try:
        resume = bool(job.status.get("resume"))
        argv = job.argv + (["--resume"] if resume else [])
        _log("python -m ram_core train " + " ".join(argv))
        args = parse_train_args(argv)
        writer.phase("data")
        train_set, val_set, data = datasets_from_args(args)
        for ds in (train_set, val_set):
            if ds is not None and ds.skipped:
                _log(f"{ds.name}: skipped {len(ds.skipped)} malformed item(s), e.g. {ds.skipped[0]}")
        _log(f"data: {train_set.name}, {len(train_set)} images; validation: "
             f"{f'{val_set.name}, {len(val_set)} images' if val_set is not None else 'none'}")
        cfg = config_from_args(args, list(train_set.class_names))
        opts = options_from_args(args, train_set, data)
        opts.log, opts.progress = _log, writer.event
        views = len(opts.views)
        writer.plan(feature_images=(views * len(train_set) + (len(val_set) if val_set is not None else 0))
                    if opts.use_cache else 0,
                    epochs=opts.epochs, batches=math.ceil(len(train_set) / opts.batch_size),
                    train_images=len(train_set), val_images=len(val_set) if val_set is not None else 0)
        result = train(cfg, opts, train_set, val_set)
        summary = {"best": None if not math.isfinite(result["best"]) else result["best"],
                   "epochs_done": len(result["history"])}
        if val_set is not None and (job_dir / "best.safetensors").is_file():
            report = evaluate_best(job_dir, args, val_set, data, writer)
            summary["mAP"] = report.get("mAP")
            _log(f"evaluation of best.safetensors on {len(val_set)} validation images: mAP {report.get('mAP')}")
        state = FINISHED
    except StopRequested:
        state = STOPPED
        _log("stopped on request; Resume continues from the last finished epoch")
    except RAMError as exc:
        error = str(exc)
        _log(f"error: {exc}")
    except BaseException as exc:  # noqa: BLE001 - recorded for the page; the traceback goes to worker.log
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stdout)
    finally:
        try:
            queue.finish(job, state, error, summary=summary or job.status.get("summary"))
        finally:
            queue.dispatch()  # the next queued job, if any
    return state


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ram_core.jobs.worker JOB_DIR", file=sys.stderr)
        return 2
    return 0 if run_job(argv[0]) in (FINISHED, STOPPED) else 1


if __name__ == "__main__":
    sys.exit(main())
