"""What an evaluation adds beside report.json and predictions.jsonl, for the CLI and the Evaluate page
alike: CP..OF1 at the checkpoint's per-class thresholds (in report.json), and the occlusion tests
(occlusion.json).  Kept apart from evaluation.py, which writes the evaluation itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .evaluation import REPORT_FILE
from .inference import Predictor
from .occlusion import OCCLUSION_FILE, Progress, dataset_occlusion, write_occlusion
from .thresholds import add_to_report, metrics_at_class_thresholds


def add_evaluation_extras(predictor: Predictor, result, out_dir: str | os.PathLike, *,
                          use_class_thresholds: bool = True, occlusion: bool = False, seed: int = 0,
                          batch_size: int = 8, workers: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """After evaluation.write_evaluation(result, out_dir): add the per-class-threshold metrics to the
    report when the checkpoint has per-class thresholds (and use_class_thresholds), and, with occlusion,
    write occlusion.json (its true positives at those thresholds); without it, remove an occlusion.json
    an earlier run left in the folder (it described another evaluation).
    Returns {"at_class_thresholds": {...} or None, "occlusion": stats or None}."""
    out = Path(out_dir)
    class_thresholds = predictor.info.class_thresholds if use_class_thresholds else None
    done: dict[str, Any] = {"at_class_thresholds": None, "occlusion": None}
    if class_thresholds:
        extra = metrics_at_class_thresholds(result.scores, result.targets, result.eval_masks, result.class_names,
                                            result.threshold, class_thresholds)
        add_to_report(out / REPORT_FILE, extra)
        result.report.update(extra)
        done["at_class_thresholds"] = extra["at_class_thresholds"]
    if occlusion:
        stats = dataset_occlusion(predictor, result, seed=seed, batch_size=batch_size, workers=workers,
                                  class_thresholds=class_thresholds, progress=progress)
        write_occlusion(stats, out)
        done["occlusion"] = stats
    else:
        (out / OCCLUSION_FILE).unlink(missing_ok=True)
    return done
