"""Batched evaluation of a model on a dataset: report.json and a predictions file.

evaluate_dataset runs the model over a MultiLabelDataset (DataLoader workers decode and preprocess,
the main process runs the model under inference mode) and keeps the raw outputs compactly, as tensors.
write_evaluation writes

    DIR/report.json        metrics (ram_core.metrics.evaluate_scores, in percent), the per-step mAP,
                           attention box hit rates, the model's config summary, dataset, speed;
    DIR/predictions.jsonl  one JSON object per image: AttentionTrace.to_json() (scores, global scores,
                           max_step, per-step boxes, transforms and scores) plus id, ground truth,
                           labels left out of evaluation and the annotated objects,

which is everything the app needs to browse an evaluation without running the model again.
load_evaluation reads them back.

The metrics are computed on the scores exactly as stored (rounded to 5 decimals, as in a trace), so
anything recomputed from predictions.jsonl matches report.json.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import metrics
from .attention_stats import LARGE_OBJECT_AREA, box_hit_rates, step_diversity
from .config import RAMConfig
from .errors import DatasetError, RAMError
from .locations import display_path, path_in_root
from .finite_json import dumps, finite
from .inference import ImageTransform, Predictor
from .model import RAMOutput, concat_outputs, probabilities, transform_to_box
from .output_folder import atomic_write_text, check_output_folder, output_lock
from .trace import BRANCH_NAMES, AttentionTrace, traces_from_output

FORMAT = "ram-studio-eval/1"
REPORT_FILE = "report.json"
PREDICTIONS_FILE = "predictions.jsonl"
PARTIAL_FILE = "predictions.partial.jsonl"  # written batch by batch; kept when a run stops early
# what an earlier evaluation leaves in its folder (replaced by the next one); anything else refuses --out
EVALUATION_FILES = (REPORT_FILE, PREDICTIONS_FILE, PREDICTIONS_FILE + ".gz", PARTIAL_FILE, "occlusion.json",
                    "predictions.npz")
SCORE_DECIMALS = 5  # as traces_from_output rounds them

Progress = Callable[[int, int, float], None]  # (images done, images in total, seconds so far)


class EvaluationError(RAMError):
    """A saved evaluation that cannot be read: missing, damaged or from another tool."""


class _EvalItems(Dataset):
    """Item i -> (preprocessed image, i, width, height, error message or "").

    Workers decode and preprocess; an unreadable photo comes back as an error message rather than an
    exception, so the main process can name it cleanly (or skip it) instead of showing a worker's
    traceback.  The size is the decoded, upright image's: the frame the trace's pixel boxes are in.
    """

    def __init__(self, dataset, transform: ImageTransform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            img = self.dataset.image(i)
        except RAMError as exc:
            s = self.transform.cfg.input_size
            return torch.zeros(3, s, s), i, 0, 0, str(exc)
        return self.transform(img), i, img.size[0], img.size[1], ""


def model_summary(cfg: RAMConfig) -> dict[str, Any]:
    """The parts of a model's config a reader of an evaluation needs to tell models apart."""
    return {
        "head": cfg.head,
        "preset": cfg.preset,
        "num_steps": cfg.num_attention_steps,
        "backbone": cfg.backbone,
        "input_size": cfg.input_size,
        "region_encoder": cfg.region_encoder,
        "transform_mode": cfg.transform_mode,
        "fuse_global": cfg.fuse_global,
        "fusion": cfg.fusion,
        "imagenet_prior": cfg.uses_prior,
        "imagenet_init": cfg.uses_imagenet_init,
        "z_size": cfg.z_size,
        "memory": cfg.memory,
        "score_activation": cfg.score_activation,
        "test_time_flip": cfg.test_time_flip,
        "feature_norm": cfg.feature_norm,
        "num_classes": cfg.num_classes,
        "anchors": cfg.anchors if cfg.num_attention_steps else [],  # (t_x, t_y) per step, [-1, 1] frame
        "init_scale": cfg.init_scale,
    }


def _rounded_probs(logits: torch.Tensor, cfg: RAMConfig) -> np.ndarray:
    return np.round(probabilities(logits, cfg).numpy().astype(np.float64), SCORE_DECIMALS)


def _percent(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * float(value), 4)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


@dataclass
class EvaluationResult:
    """One evaluation, compact: raw outputs as tensors, traces made on demand.

    N images (those evaluated, in dataset order), M model classes, C evaluated classes (the model's
    classes the dataset also has, in the model's order), K steps.
    """

    report: dict[str, Any]
    class_names: list[str]  # C evaluated classes
    model_class_names: list[str]  # M
    ids: list[str]
    image_paths: list[str]
    sizes: list[tuple[int, int]]  # decoded (width, height)
    scores: np.ndarray  # (N, C) fused scores, rounded as stored
    targets: np.ndarray  # (N, C) 0/1
    eval_masks: np.ndarray  # (N, C) 0 = left out of evaluation
    outputs: RAMOutput  # logits (N, M), global_logits (N, M), step_logits (N, K, M), transforms (N, K, 4)
    fuse_global: bool
    threshold: float
    ground_truth: list[list[str]] = field(default_factory=list)  # dataset labels (any class)
    ignored: list[list[str]] = field(default_factory=list)  # labels left out of evaluation
    objects: list[list[list]] = field(default_factory=list)  # [class, x0, y0, x1, y1, difficult] per box
    activation: str = "sigmoid"  # how logits became scores (RAMConfig.score_activation)
    data_root: str | None = None  # the dataset root: predictions name the photos relative to it

    def __len__(self) -> int:
        return len(self.ids)

    def traces(self, chunk: int = 256) -> Iterator[AttentionTrace]:
        """One AttentionTrace per image, made chunk by chunk (a whole COCO split at once is large)."""
        o = self.outputs
        for s in range(0, len(self), chunk):
            part = o.rows(slice(s, s + chunk))
            yield from traces_from_output(part, self.image_paths[s:s + chunk], self.sizes[s:s + chunk],
                                          self.model_class_names, self.fuse_global, self.threshold,
                                          activation=self.activation)

    def records(self) -> Iterator[dict[str, Any]]:
        """The lines of predictions.jsonl."""
        for i, trace in enumerate(self.traces()):
            record = {"id": self.ids[i], **trace.to_json(), "ground_truth": self.ground_truth[i]}
            record["image"] = path_in_root(record["image"], self.data_root)
            record.pop("seconds", None)  # a batch's share of the time says nothing per image here
            if self.ignored and self.ignored[i]:
                record["ignored"] = self.ignored[i]
            if self.objects and self.objects[i]:
                record["objects"] = self.objects[i]
            yield record


def step_columns(result: EvaluationResult) -> dict[str, np.ndarray]:
    """The per-step numbers of every image as arrays, for the evaluated classes, rounded as a trace
    rounds them (trace.traces_from_output; predictions.jsonl): global_scores (N, C), step_scores
    (N, K, C), transforms and box_norm (N, K, 4), max_step (N, C) with 0 = the global step."""
    o = result.outputs
    cols = [result.model_class_names.index(c) for c in result.class_names]
    act = (lambda x: x.float().softmax(-1)) if result.activation == "softmax" else (lambda x: torch.sigmoid(x.float()))
    rounded = lambda t: np.round(t.numpy().astype(np.float64), SCORE_DECIMALS)  # noqa: E731
    k = o.step_logits.shape[1]
    if k:
        # which step's logit is the fused one (the logits, not the probabilities: see traces_from_output)
        logits = o.step_logits.float()
        pool = torch.cat([o.global_logits.float()[:, None], logits], 1) if result.fuse_global else logits
        max_step = (pool.argmax(1) + (0 if result.fuse_global else 1)).numpy()[:, cols]
    else:
        max_step = np.zeros((len(result), len(cols)), np.int64)
    return {
        "global_scores": rounded(act(o.global_logits))[:, cols],
        "step_scores": rounded(act(o.step_logits))[:, :, cols],
        "transforms": rounded(o.transforms.float()),
        "box_norm": rounded(transform_to_box(o.transforms.float())),
        "max_step": max_step,
    }


def _align_classes(model_classes: list[str], dataset_classes: list[str]) -> tuple[list[str], list[int], list[int]]:
    """(evaluated classes, their model columns, their dataset columns); DatasetError when none is shared."""
    index = {c: k for k, c in enumerate(dataset_classes)}
    shared = [c for c in model_classes if c in index]
    if not shared:
        raise DatasetError(
            f"the model's classes ({', '.join(model_classes[:6])}{', ...' if len(model_classes) > 6 else ''}) "
            f"and the dataset's ({', '.join(dataset_classes[:6])}{', ...' if len(dataset_classes) > 6 else ''}) "
            "have no class in common"
        )
    return shared, [model_classes.index(c) for c in shared], [index[c] for c in shared]


def _finite_rows(out: RAMOutput) -> list[bool]:
    """Per image: are its logits (fused, global, steps) and transforms all finite?"""
    b = out.logits.shape[0]
    checks = [out.logits.reshape(b, -1), out.global_logits.reshape(b, -1), out.step_logits.reshape(b, -1),
              out.transforms.reshape(b, -1)]
    return torch.cat([torch.isfinite(c.float()) for c in checks], 1).all(1).tolist()


def _kept_note(partial: str | os.PathLike | None, count: int) -> str:
    return f"; the {count} prediction(s) made before it are in {partial}" if partial is not None and count else ""


def _append_partial(f, out: RAMOutput, index: list[int], sizes: list[tuple[int, int]], dataset, cfg: RAMConfig,
                    threshold: float) -> None:
    names = [os.path.abspath(dataset.image_paths[i]) for i in index]
    traces = traces_from_output(out, names, sizes, list(cfg.class_names), cfg.fuse_global, threshold,
                                activation=cfg.score_activation)
    classes = list(dataset.class_names)
    for i, trace in zip(index, traces):
        record = {"id": str(dataset.ids[i]), **trace.to_json(),
                  "ground_truth": [classes[c] for c in np.flatnonzero(np.asarray(dataset.targets[i]) > 0.5)]}
        record.pop("seconds", None)
        f.write(dumps(record) + "\n")
    f.flush()


@dataclass
class RawOutputs:
    """What running the model over (part of) a dataset gives, before any metric: the outputs of the
    readable images, their indices in the dataset and decoded sizes, the unreadable ones' messages."""

    outputs: RAMOutput
    kept: list[int]  # dataset indices, in order
    sizes: list[tuple[int, int]]
    skipped: list[str]
    seconds: float


def run_model(predictor: Predictor, dataset, batch_size: int = 16, workers: int = 2,
              progress: Progress | None = None, skip_bad: bool = False,
              indices: list[int] | None = None, total: int | None = None, threshold: float = 0.5,
              partial: str | os.PathLike | None = None) -> RawOutputs:
    """The model over the dataset's images (or those at `indices`, e.g. one rank's shard), in batches
    of batch_size.  An unreadable photo raises DatasetError naming it, or, with skip_bad, is listed.
    A model output that is NaN or infinite for an image (scores or box) stops the run naming the
    image, or with skip_bad leaves it out and lists it.  With `partial`, each batch's predictions are
    appended to that file as they are made, so a run stopped by a bad image keeps what it did (the
    caller removes the file once the full predictions are written)."""
    cfg = predictor.cfg
    items: Dataset = _EvalItems(dataset, ImageTransform(cfg))
    if indices is not None:
        items = torch.utils.data.Subset(items, indices)
    n = len(items) if total is None else total
    device = predictor.device
    loader = DataLoader(items, batch_size=max(1, batch_size), shuffle=False, num_workers=max(0, workers),
                        pin_memory=device.type == "cuda")
    kept: list[int] = []
    sizes: list[tuple[int, int]] = []
    skipped: list[str] = []
    parts: list[RAMOutput] = []
    done = 0
    t0 = time.perf_counter()
    partial_file = open(partial, "w", encoding="utf-8") if partial is not None else None
    try:
        with torch.inference_mode():
            for images, index, widths, heights, errors in loader:
                ok = [j for j, e in enumerate(errors) if not e]
                for j, e in enumerate(errors):
                    if e:
                        if not skip_bad:
                            raise DatasetError(f"{e} (pass --skip-bad to leave unreadable images out)"
                                               + _kept_note(partial, len(kept)))
                        skipped.append(e)
                if ok:
                    if len(ok) < len(errors):
                        images = images[ok]
                    out = predictor.run_tensors(images)
                    ok_rows = _finite_rows(out)
                    for j, good in zip(ok, ok_rows):
                        if not good:
                            message = (f"{dataset.image_paths[int(index[j])]}: the model's scores or boxes for "
                                       "this image are NaN or infinite")
                            if not skip_bad:
                                raise DatasetError(message + " (pass --skip-bad to leave such images out)"
                                                   + _kept_note(partial, len(kept)))
                            skipped.append(message)
                    if not all(ok_rows):
                        rows = [r for r, good in enumerate(ok_rows) if good]
                        out = out.rows(rows)
                        ok = [j for j, good in zip(ok, ok_rows) if good]
                    if ok:
                        parts.append(out)
                        new = [int(index[j]) for j in ok]
                        new_sizes = [(int(widths[j]), int(heights[j])) for j in ok]
                        if partial_file is not None:
                            _append_partial(partial_file, out, new, new_sizes, dataset, cfg, threshold)
                        kept += new
                        sizes += new_sizes
                done += len(errors)
                if progress is not None:
                    progress(done, n, time.perf_counter() - t0)
    finally:
        if partial_file is not None:
            partial_file.close()
    if parts:
        outputs = concat_outputs(parts)
    else:  # a shard with no readable image: empty tensors of the right widths
        m, k = len(cfg.class_names), cfg.num_attention_steps
        outputs = RAMOutput(torch.zeros(0, m), torch.zeros(0, m), torch.zeros(0, k, m), torch.zeros(0, k, 4))
    return RawOutputs(outputs, kept, sizes, skipped, time.perf_counter() - t0)


def merge_raw(parts: list[RawOutputs]) -> RawOutputs:
    """The shards' RawOutputs (in rank order, each in dataset order) as one; seconds: the slowest."""
    outputs = concat_outputs([p.outputs for p in parts])
    return RawOutputs(outputs, [i for p in parts for i in p.kept], [s for p in parts for s in p.sizes],
                      [e for p in parts for e in p.skipped], max(p.seconds for p in parts))


def evaluate_dataset(
    predictor: Predictor,
    dataset,
    batch_size: int = 16,
    workers: int = 2,
    progress: Progress | None = None,
    threshold: float = 0.5,
    skip_bad: bool = False,
    dataset_info: dict[str, Any] | None = None,
    partial: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Run the predictor over every image of a MultiLabelDataset and score the results.

    Metrics use the dataset's eval_masks.  An unreadable photo (or a NaN / infinite model output)
    raises DatasetError naming it, or, with skip_bad, is left out and listed in report["skipped"].
    progress(done, total, seconds) is called after every batch; `partial`: see run_model.
    """
    if len(dataset) == 0:
        raise DatasetError(f"{getattr(dataset, 'name', 'dataset')}: no images to evaluate")
    _align_classes(list(predictor.cfg.class_names), list(dataset.class_names))  # before running anything
    raw = run_model(predictor, dataset, batch_size, workers, progress, skip_bad, threshold=threshold, partial=partial)
    return result_from_outputs(predictor, dataset, raw, threshold=threshold, dataset_info=dataset_info)


def result_from_outputs(predictor: Predictor, dataset, raw: RawOutputs, threshold: float = 0.5,
                        dataset_info: dict[str, Any] | None = None) -> EvaluationResult:
    """score_outputs on what run_model (or the merged shards of several processes) gave."""
    if not raw.kept:
        raise DatasetError(f"{getattr(dataset, 'name', 'dataset')}: none of its {len(dataset)} images could be read")
    return score_outputs(raw.outputs, predictor.cfg, dataset, raw.kept, raw.sizes, threshold=threshold,
                         info=predictor.info, dataset_info=dataset_info, device=str(predictor.device),
                         seconds=raw.seconds, skipped=raw.skipped)


def score_outputs(
    outputs: RAMOutput,
    cfg: RAMConfig,
    dataset,
    kept: list[int],
    sizes: list[tuple[int, int]],
    *,
    threshold: float = 0.5,
    info=None,
    dataset_info: dict[str, Any] | None = None,
    device: str = "cpu",
    seconds: float = 0.0,
    skipped: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> EvaluationResult:
    """An EvaluationResult from a model's raw outputs on dataset items `kept` (in that order).

    evaluate_dataset calls it after running the model (through result_from_outputs; so does rank 0
    of a torchrun evaluation on the merged shards); scripts/bundle_cv_evaluation.py calls it on
    out-of-fold outputs (every photo scored by a model that never saw it).  sizes: decoded (width,
    height) per kept item, the frame of the trace's pixel boxes.  info: the checkpoint's LoadInfo
    (source, provenance), or None.  extra: more report fields (e.g. how the outputs were made).
    """
    n = len(dataset)
    classes, model_cols, data_cols = _align_classes(list(cfg.class_names), list(dataset.class_names))
    idx = np.asarray(kept)
    targets = np.asarray(dataset.targets, np.float32)[idx][:, data_cols]
    eval_masks = np.asarray(dataset.eval_masks, np.float32)[idx][:, data_cols]
    scores = _rounded_probs(outputs.logits, cfg)[:, model_cols]
    report = metrics.evaluate_scores(scores, targets, classes, mask=eval_masks, threshold=threshold)

    # How much the recurrence adds: the mAP of the global step alone and of each step alone.
    global_scores = _rounded_probs(outputs.global_logits, cfg)[:, model_cols]
    report["global_mAP"] = _percent(metrics.mean_ap(metrics.per_class_ap(global_scores, targets, eval_masks)))
    step_scores = _rounded_probs(outputs.step_logits, cfg)[:, :, model_cols] if outputs.step_logits.shape[1] else None
    report["step_mAP"] = [] if step_scores is None else [
        _percent(metrics.mean_ap(metrics.per_class_ap(step_scores[:, k], targets, eval_masks)))
        for k in range(step_scores.shape[1])
    ]

    if outputs.branch_logits is not None:  # a companion branch: each branch's own mAP
        report["branch_mAP"] = {
            name: _percent(metrics.mean_ap(metrics.per_class_ap(
                _rounded_probs(outputs.branch_logits[:, b], cfg)[:, model_cols], targets, eval_masks)))
            for b, name in enumerate(BRANCH_NAMES)}

    dataset_classes = list(dataset.class_names)
    boxes = [list(getattr(dataset, "boxes", [[]] * n)[i]) for i in kept]
    if outputs.transforms.shape[1] and any(boxes):
        # Hit rates against the annotation's frame (boxes are in its pixels), else the decoded size.
        ann_sizes = [dataset.image_sizes[i] or sizes[j] for j, i in enumerate(kept)]
        step_boxes = transform_to_box(outputs.transforms).numpy()
        report["box_hit_rates"] = _nan_to_none(box_hit_rates(step_boxes, boxes, ann_sizes))
        # Do the steps find different objects? (photos with two or more annotated objects)
        report["step_diversity"] = _nan_to_none(step_diversity(step_boxes, boxes, ann_sizes))
        # ... and on photos with two or more objects large enough to look at (attention_stats)
        report["step_diversity_large"] = {**_nan_to_none(step_diversity(step_boxes, boxes, ann_sizes,
                                                                         min_area=LARGE_OBJECT_AREA)),
                                          "min_area": LARGE_OBJECT_AREA}

    all_targets = np.asarray(dataset.targets)[idx] > 0.5
    all_masks = np.asarray(dataset.eval_masks)[idx] > 0
    report.update(
        format=FORMAT,
        class_names=classes,
        checkpoint=display_path(info.source) if info is not None else None,
        model=model_summary(cfg),
        provenance=({k: info.provenance.get(k) for k in ("data", "date", "git_commit") if k in info.provenance}
                    if info is not None else {}),
        dataset={"name": getattr(dataset, "name", "dataset"), "num_images": n, **(dataset_info or {})},
        classes_not_in_model=[c for c in dataset_classes if c not in classes],
        skipped=list(skipped or []),
        device=device,
        seconds=round(seconds, 3),
        images_per_second=round(len(kept) / seconds, 2) if seconds > 0 else None,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    )
    report = finite(report)
    return EvaluationResult(
        report=report,
        class_names=classes,
        model_class_names=list(cfg.class_names),
        ids=[str(dataset.ids[i]) for i in kept],
        image_paths=[os.path.abspath(dataset.image_paths[i]) for i in kept],
        sizes=sizes,
        scores=scores,
        targets=targets,
        eval_masks=eval_masks,
        outputs=outputs,
        fuse_global=cfg.fuse_global,
        activation=cfg.score_activation,
        threshold=threshold,
        data_root=(dataset_info or {}).get("root"),
        ground_truth=[[dataset_classes[c] for c in np.flatnonzero(all_targets[j])] for j in range(len(kept))],
        ignored=[[dataset_classes[c] for c in np.flatnonzero(~all_masks[j])] for j in range(len(kept))],
        objects=[[[dataset_classes[b[0]], *(round(float(v), 1) for v in b[1:5]), bool(b[5])] for b in bx]
                 for bx in boxes],
    )


def evaluate_to_folder(
    predictor: Predictor,
    kind: str,
    root: str | os.PathLike,
    split: str | None,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 16,
    workers: int = 2,
    threshold: float = 0.5,
    skip_bad: bool = False,
    limit: int | None = None,
    compress: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[EvaluationResult, dict[str, Path]]:
    """evaluation_dataset + evaluate_dataset + write_evaluation: what the CLI and the app's page both do.

    The output folder is checked first (output_folder.check_output_folder: not a file, writable, holding
    nothing but an earlier evaluation) and held for the run (output_lock); predictions are appended to
    predictions.partial.jsonl as they are made and replaced by predictions.jsonl at the end."""
    out = check_output_folder(out_dir, EVALUATION_FILES, "evaluation's output folder")
    with output_lock(out):
        dataset = evaluation_dataset(kind, root, split, skip_bad=skip_bad, limit=limit, log=log)
        partial = out / PARTIAL_FILE
        result = evaluate_dataset(predictor, dataset, batch_size=batch_size, workers=workers, progress=progress,
                                  threshold=threshold, skip_bad=skip_bad, partial=partial,
                                  dataset_info=dataset_info(kind, root, split, limit))
        result.report["skipped"] = list(dataset.skipped) + list(result.report.get("skipped") or [])
        paths = write_evaluation(result, out, compress=compress)
        partial.unlink(missing_ok=True)
    return result, paths


def evaluation_dataset(kind: str, root: str | os.PathLike, split: str | None, *, skip_bad: bool = False,
                       limit: int | None = None, log: Callable[[str], None] | None = None):
    """The dataset `evaluate` scores: build_dataset, its first `limit` images when given."""
    from .data import build_dataset

    dataset = build_dataset(kind, root, split, skip_bad=skip_bad)
    if dataset.skipped and log:
        log(f"{dataset.name}: skipped {len(dataset.skipped)} malformed item(s), e.g. {dataset.skipped[0]}")
    if limit:
        dataset = dataset.subset(range(min(limit, len(dataset))), name=f"{dataset.name}[:{limit}]")
    if log:
        log(f"data: {dataset.name}, {len(dataset)} images")
    return dataset


def dataset_info(kind: str, root: str | os.PathLike, split: str | None, limit: int | None) -> dict[str, Any]:
    return {"kind": kind, "root": os.path.abspath(root), "split": split, "limit": limit}


def evaluation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a checkpoint keeps about its evaluation (checkpoints.update_evaluation)."""
    top = report.get("top3") or {}
    return {
        "mAP": report.get("mAP"),
        "CF1": report.get("CF1"),
        "OF1": report.get("OF1"),
        "top3_CF1": top.get("CF1"),
        "top3_OF1": top.get("OF1"),
        "threshold": report.get("threshold"),
        "num_images": report.get("num_images"),
        "dataset": report.get("dataset"),
        "date": report.get("date"),
    }


def write_evaluation(result: EvaluationResult, out_dir: str | os.PathLike, compress: bool = False,
                     columns: bool = True) -> dict[str, Path]:
    """Write report.json, predictions.jsonl (.gz with compress) and, with columns, predictions.npz
    (the same numbers as arrays, which the app opens: eval_columns.py) into out_dir; return their paths.

    The predictions are written first, so a report.json on disk always has its predictions beside it.
    """
    from .eval_columns import COLUMNS_FILE, columns_from_result, write_columns

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred_name = PREDICTIONS_FILE + (".gz" if compress else "")
    report = dict(result.report, predictions=pred_name)
    pred_path = out / pred_name
    atomic_write_text(pred_path, (dumps(r) + "\n" for r in result.records()), compress)
    for stale in (out / PREDICTIONS_FILE, out / (PREDICTIONS_FILE + ".gz")):
        if stale != pred_path and stale.exists():
            stale.unlink()
    paths = {"predictions": pred_path}
    if columns:
        paths["columns"] = write_columns(out / COLUMNS_FILE, columns_from_result(result))
        report["columns"] = COLUMNS_FILE
    elif (out / COLUMNS_FILE).exists():
        (out / COLUMNS_FILE).unlink()
    report_path = out / REPORT_FILE
    atomic_write_text(report_path, [dumps(report, indent=2) + "\n"])
    return {"report": report_path, **paths}


def find_predictions(eval_dir: str | os.PathLike) -> Path | None:
    d = Path(eval_dir)
    for name in (PREDICTIONS_FILE, PREDICTIONS_FILE + ".gz"):
        if (d / name).is_file():
            return d / name
    return None


def _no_constants(name: str):
    """json.loads(parse_constant=...): NaN and Infinity are not JSON, and a score that is one is wrong."""
    raise ValueError(f"holds {name}, which is not a number RAM Studio writes (a damaged or foreign file)")


def load_report(eval_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(eval_dir) / REPORT_FILE
    if not path.is_file():
        raise EvaluationError(f"{eval_dir}: no {REPORT_FILE} (write one with `python -m ram_core evaluate`)")
    try:
        report = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: not a readable JSON report ({exc})") from None
    except RecursionError:
        raise EvaluationError(f"{path}: the JSON nests too deeply to be a report") from None
    except ValueError as exc:
        raise EvaluationError(f"{path}: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("per_class_ap"), dict):
        raise EvaluationError(f"{path}: not an evaluation report (no per_class_ap table); its report and "
                              "predictions do not describe an evaluation")
    if not isinstance(report.get("class_names", []), list):
        raise EvaluationError(f"{path}: its class_names is not a list; its report and predictions do not "
                              "describe an evaluation")
    report.setdefault("class_names", list(report["per_class_ap"]))
    return report


def load_evaluation(eval_dir: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(report, predictions: one dict per image) from a folder write_evaluation wrote."""
    report = load_report(eval_dir)
    path = find_predictions(eval_dir)
    if path is None:
        raise EvaluationError(f"{eval_dir}: {REPORT_FILE} has no {PREDICTIONS_FILE} beside it")
    opener = gzip.open if path.suffix == ".gz" else open
    predictions = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line, parse_constant=_no_constants)
                except json.JSONDecodeError as exc:
                    raise EvaluationError(f"{path}, line {lineno}: not JSON ({exc})") from None
                except RecursionError:
                    raise EvaluationError(f"{path}, line {lineno}: the JSON nests too deeply") from None
                except ValueError as exc:
                    raise EvaluationError(f"{path}, line {lineno}: {exc}") from None
                if not isinstance(record, dict) or "scores" not in record:
                    raise EvaluationError(f"{path}, line {lineno}: not a prediction record (no scores)")
                predictions.append(record)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"{path}: cannot be read ({exc})") from None
    return report, predictions
