"""What the Evaluate page shows, as plain functions of a saved evaluation (no Streamlit here).

A saved evaluation is the folder `python -m ram_core evaluate` writes (report.json + predictions.jsonl,
and predictions.npz: the same numbers as columns, eval_columns.py).  open_evaluation() reads the
columns when they are there (fast, and each image's record is made only when it is shown) and the
JSONL otherwise (older folders); either way the result is arrays (EvalData), which everything else
reads:

    summary, per_class_table         the metrics at a chosen threshold (pandas)
    comparison_table                 two evaluations class by class: AP difference, improved/regressed
    browse                           one class's true positives / false positives / false negatives
    step_boxes, max_step_frequency   attention over the whole dataset
    *_figure                         plotly figures of the above
    browse_thumbnail                 an image (or a placeholder) with its attention boxes, from the
                                     predictions alone: the model is never run again
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from collections.abc import Sequence as SequenceABC

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from . import metrics
from .config import default_anchors
from .evaluation import REPORT_FILE, load_evaluation, load_report
from .locations import EVALUATIONS_DIR, display_path, work_dir
from .viz.colors import GLOBAL_COLOR, hex_to_rgb, rgba, step_color, text_color_on
from .viz.render import box_pixels, font

ROOT = work_dir()  # runs/ and relative folders start here (the checkout, or the current folder)
ENV_EVAL_DIR = "RAM_STUDIO_EVAL_DIR"  # comma-separated folders searched for saved evaluations
INSPECT_KEY = "inspect_path"  # session-state key: the image the Inspect page should open
BROWSE_KINDS = ("TP", "FP", "FN", "all")
KIND_NAMES = {"TP": "true positives", "FP": "false positives", "FN": "false negatives", "all": "all images"}
KIND_ONE = {"TP": "true positive", "FP": "false positive", "FN": "false negative", "all": "image"}
MAX_POINTS_PER_STEP = 1500  # attention scatter: a sample is as readable as 5000 points and far lighter


# --------------------------------------------------------------------------------------------------
# Finding saved evaluations


def default_eval_folders() -> list[Path]:
    """$RAM_STUDIO_EVAL_DIR (comma-separated) if set, else assets/evaluations plus runs/ when present;
    served mode: assets/evaluations and the served folders."""
    from . import served

    env = os.environ.get(ENV_EVAL_DIR, "").strip()
    if env:
        return parse_folders(env)
    roots = served.current_roots()
    if roots is not None:
        return [EVALUATIONS_DIR, *roots.read] + ([roots.write] if roots.write else [])
    folders = [EVALUATIONS_DIR]
    if (ROOT / "runs").is_dir():
        folders.append(ROOT / "runs")
    return folders


def parse_folders(text: str) -> list[Path]:
    """'assets/evaluations, runs' -> paths; relative ones start at the repository root.  Served mode:
    folders outside the roots are left out (checked_folders says which)."""
    return checked_folders(text)[0]


def checked_folders(text: str) -> tuple[list[Path], list[str]]:
    """(the folders typed, resolved; the refusal message of each one outside the served roots)."""
    from . import served

    return served.checked_folders(text, ROOT)


def list_evaluations(folders: Sequence[Path], max_depth: int = 3) -> list[Path]:
    """Folders holding a report.json, at most max_depth levels under each folder (the folder itself
    included), in the order of `folders`, then by path; no duplicates.  The search is bounded
    (served.search_files: count and time, never from a filesystem root)."""
    from . import served

    found: list[Path] = []
    seen: set[Path] = set()
    for folder in folders:
        hits = served.search_files([folder], names=(REPORT_FILE,), max_depth=max_depth)
        for d in sorted(p.parent for p in hits):
            if d not in seen:
                seen.add(d)
                found.append(d)
    return found


def short_path(path: Path) -> str:
    return display_path(path, ROOT)


def evaluation_label(path: Path, report: dict[str, Any] | None = None) -> str:
    """'assets/evaluations/default_val · RAM K=5 · mAP 84.1 · 2510 images'."""
    try:
        report = report or load_report(path)
    except Exception:  # noqa: BLE001 - a label must not fail; the page shows the error when opened
        return f"{short_path(path)} (unreadable)"
    model = report.get("model") or {}
    head = f"RAM K={model.get('num_steps')}" if model.get("head") == "ram" else (model.get("head") or "?")
    m = report.get("mAP")
    return (f"{short_path(path)} · {head} · mAP {'n/a' if m is None else f'{m:.1f}'} · "
            f"{report.get('num_images', '?')} images")


# --------------------------------------------------------------------------------------------------
# One evaluation as arrays


@dataclass
class EvalData:
    """A saved evaluation as arrays.  N images, C evaluated classes, K steps (0 for the baseline head)."""

    name: str
    report: dict[str, Any]
    records: Sequence[dict[str, Any]]  # one per image, the predictions.jsonl schema (made on demand from columns)
    class_names: list[str]
    ids: list[str]
    images: list[str]
    sizes: np.ndarray  # (N, 2) width, height of the decoded image
    scores: np.ndarray  # (N, C) fused
    global_scores: np.ndarray  # (N, C)
    step_scores: np.ndarray  # (N, K, C)
    box_norm: np.ndarray  # (N, K, 4) x0, y0, x1, y1 as fractions, unclipped
    transforms: np.ndarray  # (N, K, 4) s_x, s_y, t_x, t_y
    max_step: np.ndarray  # (N, C) step that gave the fused score (0 = global)
    targets: np.ndarray  # (N, C) bool
    masks: np.ndarray  # (N, C) bool, True = counted in the metrics

    @property
    def num_steps(self) -> int:
        return self.step_scores.shape[1]

    @property
    def threshold(self) -> float:
        return float(self.report.get("threshold", 0.5))

    @property
    def anchors(self) -> list[list[float]]:
        model = self.report.get("model") or {}
        anchors = model.get("anchors")
        return [list(a) for a in anchors] if anchors else default_anchors(self.num_steps) if self.num_steps else []

    def __len__(self) -> int:
        return len(self.ids)


def _numbers(value: Any, n: int | None = None) -> bool:
    return (isinstance(value, list) and (n is None or len(value) == n)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


def _score_table(value: Any) -> bool:
    return isinstance(value, dict) and _numbers(list(value.values()))


def check_record(r: Any, i: int) -> None:
    """One predictions.jsonl record as evaluation.write_evaluation writes it (ValueError naming what is not):
    the page draws every field, so a record that only looks right must not reach it."""
    where = f"prediction {i + 1}"
    if not isinstance(r, dict) or not _score_table(r.get("scores")):
        raise ValueError(f"{where}: scores must map classes to numbers")
    if r.get("global_scores") is not None and not _score_table(r["global_scores"]):
        raise ValueError(f"{where}: global_scores must map classes to numbers")
    steps = r.get("steps") or []
    if not isinstance(steps, list):
        raise ValueError(f"{where}: steps must be a list")
    for k, step in enumerate(steps, 1):
        t = step.get("transform") if isinstance(step, dict) else None
        if (not isinstance(step, dict) or not _score_table(step.get("scores")) or not _numbers(step.get("box_norm"), 4)
                or not isinstance(t, dict) or not _numbers([t.get(x) for x in ("s_x", "s_y", "t_x", "t_y")], 4)
                or ("box" in step and not _numbers(step["box"], 4))):
            raise ValueError(f"{where}, step {k}: needs scores, a box_norm of 4 numbers and a transform")
    for key in ("ground_truth", "ignored"):
        if not isinstance(r.get(key) or [], list):
            raise ValueError(f"{where}: {key} must be a list of class names")


def eval_data(report: dict[str, Any], records: list[dict[str, Any]], name: str = "") -> EvalData:
    """Arrays from load_evaluation's (report, predictions).  Classes: the report's evaluated classes."""
    for i, r in enumerate(records):
        check_record(r, i)
    classes = list(report.get("class_names") or report["per_class_ap"])
    n, c = len(records), len(classes)
    k = max((len(r.get("steps") or []) for r in records), default=0)
    scores, global_scores = np.zeros((n, c)), np.zeros((n, c))
    step_scores, box_norm = np.zeros((n, k, c)), np.zeros((n, k, 4))
    transforms, max_step = np.zeros((n, k, 4)), np.zeros((n, c), np.int64)
    targets, masks = np.zeros((n, c), bool), np.ones((n, c), bool)
    index = {name_: j for j, name_ in enumerate(classes)}
    for i, r in enumerate(records):
        s, g, m = r["scores"], r.get("global_scores") or r["scores"], r.get("max_step") or {}
        scores[i] = [s.get(cl, 0.0) for cl in classes]
        global_scores[i] = [g.get(cl, 0.0) for cl in classes]
        max_step[i] = [m.get(cl, 0) for cl in classes]
        for j, step in enumerate(r.get("steps") or []):
            step_scores[i, j] = [step["scores"].get(cl, 0.0) for cl in classes]
            box_norm[i, j] = step["box_norm"]
            t = step["transform"]
            transforms[i, j] = (t["s_x"], t["s_y"], t["t_x"], t["t_y"])
        for cl in r.get("ground_truth") or []:
            if cl in index:
                targets[i, index[cl]] = True
        for cl in r.get("ignored") or []:
            if cl in index:
                masks[i, index[cl]] = False
    return EvalData(
        name=name, report=report, records=records, class_names=classes,
        ids=[str(r.get("id", i)) for i, r in enumerate(records)], images=[str(r.get("image", "")) for r in records],
        sizes=np.array([(int(r.get("width", 0)), int(r.get("height", 0))) for r in records]).reshape(n, 2),
        scores=scores, global_scores=global_scores, step_scores=step_scores, box_norm=box_norm,
        transforms=transforms, max_step=max_step, targets=targets, masks=masks,
    )


class ColumnRecords(SequenceABC):
    """data.records[i] for an evaluation read from columns: image i's record, made when asked for
    (the page shows a few dozen at a time), in predictions.jsonl's schema for the evaluated classes."""

    def __init__(self, data: "EvalData", cols: dict[str, np.ndarray]) -> None:
        self.data, self.cols = data, cols

    def __len__(self) -> int:
        return len(self.data.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        d, c = self.data, self.cols
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        names = d.class_names
        w, h = (int(v) for v in d.sizes[i])
        steps = []
        for j in range(d.num_steps):
            bn = [float(v) for v in d.box_norm[i, j]]
            t = [float(v) for v in d.transforms[i, j]]
            steps.append({"step": j + 1, "box_norm": bn,
                          "box": [round(min(max(bn[k], 0.0), 1.0) * (w if k % 2 == 0 else h), 1) for k in range(4)],
                          "transform": dict(zip(("s_x", "s_y", "t_x", "t_y"), t)),
                          "scores": dict(zip(names, (float(v) for v in d.step_scores[i, j])))})
        from .eval_columns import ragged_row

        objects = [[str(c["object_names"][k]), *(round(float(v), 1) for v in box), bool(diff)] for k, box, diff in zip(
            ragged_row(c["object_class"], c["object_offsets"], i), ragged_row(c["object_box"], c["object_offsets"], i),
            ragged_row(c["object_difficult"], c["object_offsets"], i))]
        record = {
            "id": d.ids[i], "image": d.images[i], "width": w, "height": h,
            "scores": dict(zip(names, (float(v) for v in d.scores[i]))),
            "global_scores": dict(zip(names, (float(v) for v in d.global_scores[i]))),
            "max_step": dict(zip(names, (int(v) for v in d.max_step[i]))),
            "steps": steps,
            "ground_truth": [str(c["truth_names"][k]) for k in ragged_row(c["truth_index"], c["truth_offsets"], i)],
        }
        ignored = [n for n, m in zip(names, d.masks[i]) if not m]
        if ignored:
            record["ignored"] = ignored
        if objects:
            record["objects"] = objects
        return record


def eval_data_from_columns(report: dict[str, Any], cols: dict[str, np.ndarray], name: str = "") -> EvalData:
    """EvalData from eval_columns.read_columns: no per-image dicts are made (records are on demand)."""
    classes = [str(c) for c in cols["class_names"]]
    data = EvalData(
        name=name, report=report, records=[], class_names=classes,
        ids=cols["ids"].tolist(), images=cols["images"].tolist(), sizes=cols["sizes"].astype(np.int64),
        scores=cols["scores"], global_scores=cols["global_scores"], step_scores=cols["step_scores"],
        box_norm=cols["box_norm"], transforms=cols["transforms"], max_step=cols["max_step"],
        targets=cols["targets"].astype(bool), masks=cols["masks"].astype(bool),
    )
    data.records = ColumnRecords(data, cols)
    return data


def add_columns(path: str | os.PathLike) -> Path:
    """Write predictions.npz for a saved evaluation that has only its JSONL (made before the columns
    existed) and name it in its report.json; returns the columns' path."""
    import json

    from .eval_columns import COLUMNS_FILE, columns_from_eval_data, write_columns
    from .evaluation import REPORT_FILE

    data = open_evaluation(path, prefer_columns=False)
    out = write_columns(Path(path) / COLUMNS_FILE, columns_from_eval_data(data))
    report = json.loads((Path(path) / REPORT_FILE).read_text(encoding="utf-8"))
    report["columns"] = COLUMNS_FILE
    tmp = Path(path) / f".{REPORT_FILE}.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, Path(path) / REPORT_FILE)
    return out


def open_evaluation(path: str | os.PathLike, prefer_columns: bool = True) -> EvalData:
    """A saved evaluation: from its columns (predictions.npz) when the report names them and they are
    there, else from predictions.jsonl (older folders, or prefer_columns=False)."""
    from .eval_columns import COLUMNS_FILE, read_columns
    from .evaluation import EvaluationError

    report = load_report(path)
    columns = report.get("columns")
    # only the evaluation's own columns file: a report does not get to name another file to open
    if prefer_columns and columns == COLUMNS_FILE and (Path(path) / columns).is_file():
        try:
            cols = read_columns(Path(path) / columns)
            if len(cols["ids"]) == report.get("num_images", len(cols["ids"])):
                return eval_data_from_columns(report, cols, short_path(Path(path)))
        except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as exc:
            raise EvaluationError(f"{Path(path) / columns}: cannot be read ({str(exc)[:160]})") from None
    report, records = load_evaluation(path)
    try:
        return eval_data(report, records, short_path(Path(path)))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise EvaluationError(f"{path}: its report and predictions do not describe an evaluation "
                              f"({type(exc).__name__}: {str(exc)[:120]})") from None


# --------------------------------------------------------------------------------------------------
# Tables


def _pct(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else 100.0 * float(x)


def summary(data: EvalData, threshold: float) -> dict[str, Any]:
    """mAP, CF1 and OF1 at the threshold and for the top 3 labels, the global step's mAP, N (percent)."""
    rep = metrics.evaluate_scores(data.scores, data.targets, data.class_names, mask=data.masks, threshold=threshold)
    global_ap = metrics.per_class_ap(data.global_scores, data.targets, data.masks)
    return {
        "mAP": rep["mAP"], "CF1": rep["CF1"], "OF1": rep["OF1"], "CP": rep["CP"], "CR": rep["CR"],
        "OP": rep["OP"], "OR": rep["OR"], "top3_CF1": rep["top3"]["CF1"], "top3_OF1": rep["top3"]["OF1"],
        "global_mAP": _pct(metrics.mean_ap(global_ap)), "num_images": len(data), "threshold": threshold,
    }


def per_class_table(data: EvalData, threshold: float) -> pd.DataFrame:
    """One row per class: AP, the global step's AP and the gain, positives, predicted, precision,
    recall, F1 at the threshold (all in percent; NaN where undefined) and the step that most often
    gives the class its score on its positives."""
    ap = metrics.per_class_ap(data.scores, data.targets, data.masks)
    prf = metrics.per_class_prf(data.scores, data.targets, threshold, data.masks)
    table = pd.DataFrame({
        "class": data.class_names,
        "AP": 100 * ap,
        "positives": prf["num_positives"],
        "predicted": prf["num_predicted"],
        "precision": 100 * prf["precision"],
        "recall": 100 * prf["recall"],
        "F1": 100 * prf["f1"],
    })
    if data.num_steps:
        global_ap = 100 * metrics.per_class_ap(data.global_scores, data.targets, data.masks)
        table.insert(2, "AP global step", global_ap)
        table.insert(3, "gain over global", (table["AP"] - global_ap).round(6) + 0.0)  # + 0.0: no "-0.0"
        freq = max_step_frequency(data, positives_only=True)
        table["top step"] = [_top_step(freq.loc[c]) for c in data.class_names]
    return table


def sort_table(table: pd.DataFrame, column: str, ascending: bool = True) -> pd.DataFrame:
    """Rows sorted by one column, undefined (NaN) values last in either direction (a grid's own header
    sort puts them first when ascending); ties keep the class order."""
    if column not in table:
        return table
    return table.sort_values(column, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)


def _top_step(row: pd.Series) -> str:
    if row.isna().all():
        return "—"
    return str(row.idxmax())


def comparison_table(a: EvalData, b: EvalData, tolerance: float = 0.5) -> pd.DataFrame:
    """Classes both evaluations score: AP of each, ΔAP = AP(a) - AP(b), and a verdict: 'improved'
    (ΔAP > tolerance points), 'regressed' (< -tolerance), 'same', or 'n/a' (AP undefined), sorted by ΔAP."""
    ap_a = dict(zip(a.class_names, 100 * metrics.per_class_ap(a.scores, a.targets, a.masks)))
    ap_b = dict(zip(b.class_names, 100 * metrics.per_class_ap(b.scores, b.targets, b.masks)))
    pos = dict(zip(a.class_names, ((a.targets & a.masks).sum(0))))
    shared = [c for c in a.class_names if c in ap_b]
    delta = np.array([ap_a[c] - ap_b[c] for c in shared], dtype=np.float64)
    verdict = np.where(np.isnan(delta), "n/a", np.where(delta > tolerance, "improved",
                                                         np.where(delta < -tolerance, "regressed", "same")))
    table = pd.DataFrame({"class": shared, "positives": [int(pos[c]) for c in shared],
                          "AP A": [ap_a[c] for c in shared], "AP B": [ap_b[c] for c in shared],
                          "ΔAP": delta, "verdict": verdict})
    return table.sort_values("ΔAP", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def comparison_counts(table: pd.DataFrame) -> dict[str, int]:
    return {v: int((table["verdict"] == v).sum()) for v in ("improved", "regressed", "same", "n/a")}


def same_images(a: EvalData, b: EvalData) -> bool:
    return a.ids == b.ids


# --------------------------------------------------------------------------------------------------
# Browse


def browse(data: EvalData, cls: str, threshold: float, kind: str = "TP", ascending: bool | None = None) -> list[int]:
    """Indices of the images of one kind for class `cls`, sorted by its score.

    TP: positive and scored >= threshold; FP: negative and >= threshold; FN: positive and below;
    all: every image counted for the class.  Images where the class is left out of evaluation are
    never listed.  Order: highest score first, except FN (lowest first: the worst misses).
    """
    if kind not in BROWSE_KINDS:
        raise ValueError(f"kind must be one of {BROWSE_KINDS}, got {kind!r}")
    c = data.class_names.index(cls)
    s, t, m = data.scores[:, c], data.targets[:, c], data.masks[:, c]
    hit = s >= threshold
    keep = {"TP": t & hit, "FP": ~t & hit, "FN": t & ~hit, "all": np.ones_like(t)}[kind] & m
    idx = np.flatnonzero(keep)
    if ascending is None:
        ascending = kind == "FN"
    order = np.argsort(s[idx] if ascending else -s[idx], kind="stable")
    return [int(i) for i in idx[order]]


def count_of(n: int, kind: str) -> str:
    """'1 false positive', '3 false positives', '1 image', '12 images' (kind: a BROWSE_KINDS key)."""
    if n == 1:
        return f"1 {KIND_ONE[kind]}"
    return f"{n} {'images' if kind == 'all' else KIND_NAMES[kind]}"


def browse_counts(data: EvalData, cls: str, threshold: float) -> dict[str, int]:
    return {k: len(browse(data, cls, threshold, k)) for k in BROWSE_KINDS}


def resolve_image(data: EvalData, i: int, root_override: str | None = None) -> Path | None:
    """The photo of image i: its stored path (relative to the report's dataset root, or absolute in
    older evaluations), else the same path under root_override (for an evaluation made on another
    machine), else None.  Served: a path outside the roots is not read (an evaluation's paths are not
    trusted)."""
    from . import served

    stored = Path(data.images[i])
    old_root = (data.report.get("dataset") or {}).get("root")
    here = stored if stored.is_absolute() or not old_root else Path(old_root) / stored
    if here.is_file() and served.may_read(here):
        return here
    if root_override:
        new_root = Path(root_override).expanduser()
        candidates = []
        if not stored.is_absolute():
            candidates.append(new_root / stored)
        elif old_root:
            try:
                candidates.append(new_root / stored.relative_to(old_root))
            except ValueError:
                pass
        candidates += [new_root / stored.name, new_root / "JPEGImages" / stored.name]
        for p in candidates:
            if p.is_file() and served.may_read(p):
                return p
    return None


def _placeholder(size: tuple[int, int], max_side: int, note: str) -> Image.Image:
    w, h = (int(v) for v in size) if min(size) > 0 else (4, 3)
    scale = max_side / max(w, h)
    img = Image.new("RGB", (max(1, round(w * scale)), max(1, round(h * scale))), (236, 238, 242))
    draw = ImageDraw.Draw(img)
    fnt = font(max(11, img.width // 26), bold=False)
    l, t, r, b = draw.textbbox((0, 0), note, font=fnt)
    draw.text(((img.width - (r - l)) / 2, (img.height - (b - t)) / 2), note, fill=(110, 116, 128), font=fnt)
    return img


def browse_thumbnail(data: EvalData, i: int, cls: str | None = None, image: Image.Image | None = None,
                     max_side: int = 360, aspect: float | None = None) -> Image.Image:
    """Image i (or a grey placeholder when its photo is not available) with every step's box in the
    step's colour, the step that gave `cls` its score drawn thick and tagged with the score, and the
    annotated boxes of `cls` in white.  With `aspect` (width / height), the picture is centred on a
    canvas of that shape, max_side wide, so that a grid of thumbnails lines up."""
    out = _thumbnail(data, i, cls, image, max_side)
    if aspect is None:
        return out
    canvas = Image.new("RGB", (max_side, max(1, round(max_side / aspect))), (246, 247, 249))
    if out.width > canvas.width or out.height > canvas.height:
        scale = min(canvas.width / out.width, canvas.height / out.height)
        out = out.resize((max(1, round(out.width * scale)), max(1, round(out.height * scale))), Image.BILINEAR)
    canvas.paste(out, ((canvas.width - out.width) // 2, (canvas.height - out.height) // 2))
    return canvas


def _thumbnail(data: EvalData, i: int, cls: str | None, image: Image.Image | None, max_side: int) -> Image.Image:
    record = data.records[i]
    size = (int(record.get("width", 0)), int(record.get("height", 0)))
    if image is None:
        out = _placeholder(size, max_side, "photo not available")
    else:
        out = image.convert("RGB")
        if max(out.size) != max_side:  # small photos are enlarged too, so boxes and tags stay crisp
            scale = max_side / max(out.size)
            out = out.resize((max(1, round(out.width * scale)), max(1, round(out.height * scale))),
                             Image.BILINEAR if scale < 1 else Image.LANCZOS)
    w, h = out.size
    draw = ImageDraw.Draw(out, "RGBA")
    lw = max(2, round(max(w, h) / 150))
    if cls is not None and size[0] > 0:
        for obj in record.get("objects") or []:
            if obj[0] == cls:
                x0, y0, x1, y1 = (v * w / size[0] if k % 2 == 0 else v * h / size[1] for k, v in enumerate(obj[1:5]))
                draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0, 200), width=lw + 2)
                draw.rectangle([x0, y0, x1, y1], outline=(255, 255, 255, 255), width=lw)
    best = int((record.get("max_step") or {}).get(cls, -1)) if cls is not None else -1
    steps = sorted(record.get("steps") or [], key=lambda s: s["step"] == best)  # the best one on top
    fnt = font(max(11, round(max(w, h) / 19)))
    for s in steps:
        rgb = hex_to_rgb(step_color(s["step"]))
        x0, y0, x1, y1 = box_pixels(s["box_norm"], (w, h))
        if s["step"] == best:
            draw.rectangle([x0, y0, x1, y1], fill=rgb + (45,), outline=rgb + (255,), width=lw * 2)
        else:
            draw.rectangle([x0, y0, x1, y1], outline=rgb + (170,), width=max(1, lw // 2 + 1))
    if cls is not None:
        score = record["scores"].get(cls)
        tag = f"{cls} {score:.2f}" + (f" · step {best}" if best > 0 else " · global" if best == 0 else "")
        color = step_color(best) if best >= 0 else GLOBAL_COLOR
        l, t, r, b = draw.textbbox((0, 0), tag, font=fnt)
        pad = max(2, fnt.size // 4)
        draw.rectangle([0, 0, r - l + 2 * pad, b - t + 2 * pad], fill=hex_to_rgb(color))
        draw.text((pad - l, pad - t), tag, fill=text_color_on(color), font=fnt)
    return out


# --------------------------------------------------------------------------------------------------
# Attention over the dataset


def step_boxes(data: EvalData) -> pd.DataFrame:
    """One row per (image, step): box centre cx, cy and size w, h as fractions of the image."""
    if not data.num_steps:
        return pd.DataFrame(columns=["image", "step", "cx", "cy", "w", "h"])
    b = data.box_norm
    n, k = b.shape[:2]
    return pd.DataFrame({
        "image": np.repeat(np.arange(n), k),
        "step": np.tile(np.arange(1, k + 1), n),
        "cx": ((b[..., 0] + b[..., 2]) / 2).reshape(-1),
        "cy": ((b[..., 1] + b[..., 3]) / 2).reshape(-1),
        "w": (b[..., 2] - b[..., 0]).reshape(-1),
        "h": (b[..., 3] - b[..., 1]).reshape(-1),
    })


def step_box_summary(data: EvalData) -> pd.DataFrame:
    """Per step: mean centre and size, their spread, and the distance of the mean centre to the anchor."""
    df = step_boxes(data)
    if df.empty:
        return pd.DataFrame()
    g = df.groupby("step")
    out = pd.DataFrame({"mean cx": g["cx"].mean(), "mean cy": g["cy"].mean(), "sd centre": np.sqrt(g["cx"].var(ddof=0) + g["cy"].var(ddof=0)),
                        "mean w": g["w"].mean(), "mean h": g["h"].mean()})
    anchors = np.array(data.anchors, dtype=np.float64)
    if len(anchors) == len(out):
        ax, ay = (anchors[:, 0] + 1) / 2, (anchors[:, 1] + 1) / 2
        out["anchor cx"], out["anchor cy"] = ax, ay
        out["off anchor"] = np.hypot(out["mean cx"] - ax, out["mean cy"] - ay)
    return out.reset_index()


def step_names(k: int) -> list[str]:
    return ["global"] + [f"step {j}" for j in range(1, k + 1)]


def max_step_frequency(data: EvalData, positives_only: bool = True) -> pd.DataFrame:
    """(C classes x global + K steps): the share of images where each step gave the class its fused
    score; over the class's positive images (positives_only), else over all counted images.  NaN for
    a class without such images.  No global column when the report says the fusion leaves it out."""
    k = data.num_steps
    cols = step_names(k)
    fuse_global = (data.report.get("model") or {}).get("fuse_global")
    rows = []
    for c in range(len(data.class_names)):
        sel = data.masks[:, c] & (data.targets[:, c] if positives_only else True)
        picks = data.max_step[sel, c]
        counts = np.bincount(np.clip(picks, 0, k), minlength=k + 1).astype(np.float64)
        rows.append(counts / counts.sum() if counts.sum() else np.full(k + 1, np.nan))
    table = pd.DataFrame(rows, index=data.class_names, columns=cols)
    if k and fuse_global is False:  # the max is over steps 1..K only: the global step never supplies it
        table = table.drop(columns="global")
    return table


# --------------------------------------------------------------------------------------------------
# Figures


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white", **kw)
    return fig


def ap_bar_figure(table: pd.DataFrame) -> go.Figure:
    """Per-class AP, best at the top, coloured by AP; the global step's AP as a grey tick when known."""
    t = table.sort_values("AP", ascending=True, na_position="first")
    fig = go.Figure(go.Bar(
        x=t["AP"], y=t["class"], orientation="h", name="AP (all steps fused)", marker_color="#4363d8",
        text=[("—" if pd.isna(v) else f"{v:.1f}") for v in t["AP"]], textposition="inside",
        insidetextanchor="start", textfont=dict(color="white"),
        hovertemplate="%{y}: AP %{x:.1f}<extra></extra>",
    ))
    if "AP global step" in t:
        fig.add_trace(go.Scatter(
            x=t["AP global step"], y=t["class"], mode="markers", name="global step only",
            marker=dict(symbol="line-ns", size=16, line=dict(width=3, color="#f58231")),
            hovertemplate="%{y}: global step AP %{x:.1f}<extra></extra>",
        ))
    _layout(fig, max(260, 22 * len(t) + 90), title="AP per class", showlegend="AP global step" in t,
            legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    fig.update_xaxes(range=[0, 101], title="AP (%)")
    fig.update_layout(meta={"kind": "ap_bars"})
    return fig


CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")


def pr_figure(data: EvalData, classes: Sequence[str], threshold: float | None = None) -> go.Figure:
    """Precision-recall curves of the chosen classes, overlaid; a dot where the threshold falls."""
    fig = go.Figure()
    for n, cls in enumerate(classes):
        c = data.class_names.index(cls)
        m = data.masks[:, c]
        precision, recall, thresholds = metrics.precision_recall_curve(data.scores[m, c], data.targets[m, c])
        if not len(recall) or np.isnan(recall).all():
            continue
        ap = metrics.average_precision(data.scores[m, c], data.targets[m, c])
        color = CLASS_COLORS[n % len(CLASS_COLORS)]
        fig.add_trace(go.Scatter(
            x=np.r_[0.0, recall], y=np.r_[precision[0], precision], mode="lines", line=dict(color=color, width=2, shape="vh"),
            name=f"{cls} (AP {100 * ap:.1f})", customdata=np.r_[np.nan, thresholds],
            hovertemplate=f"{cls}<br>recall %{{x:.2f}}<br>precision %{{y:.2f}}<br>threshold %{{customdata:.3f}}<extra></extra>",
        ))
        if threshold is not None:
            at = np.flatnonzero(thresholds >= threshold)
            if len(at):
                j = at[-1]
                fig.add_trace(go.Scatter(x=[recall[j]], y=[precision[j]], mode="markers", showlegend=False,
                                         marker=dict(color=color, size=10, line=dict(color="white", width=1.5)),
                                         hovertemplate=f"{cls} at {threshold:.2f}: R %{{x:.2f}}, P %{{y:.2f}}<extra></extra>"))
    _layout(fig, 420, title="Precision-recall", legend=dict(orientation="v", x=1.01, y=1), meta={"kind": "pr"})
    fig.update_xaxes(range=[0, 1.02], title="recall")
    fig.update_yaxes(range=[0, 1.05], title="precision")
    return fig


def ap_diff_figure(table: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> go.Figure:
    """ΔAP per class (A - B): green where A is better, red where worse."""
    t = table.dropna(subset=["ΔAP"]).sort_values("ΔAP", ascending=True)
    colors = ["#2ca02c" if v > 0 else "#d62728" if v < 0 else "#9e9e9e" for v in t["ΔAP"]]
    fig = go.Figure(go.Bar(
        x=t["ΔAP"], y=t["class"], orientation="h", marker_color=colors,
        text=[f"{v:+.1f}" for v in t["ΔAP"]], textposition="outside", cliponaxis=False,
        customdata=np.stack([t["AP A"], t["AP B"]], 1) if len(t) else None,
        hovertemplate="%{y}: %{x:+.1f}<br>A %{customdata[0]:.1f} · B %{customdata[1]:.1f}<extra></extra>",
    ))
    span = float(np.nanmax(np.abs(t["ΔAP"]))) if len(t) else 1.0
    _layout(fig, max(260, 22 * len(t) + 90), title=f"AP difference: {name_a} − {name_b}", meta={"kind": "ap_diff"})
    fig.update_xaxes(range=[-1.25 * span - 1, 1.25 * span + 1], title="ΔAP (points)", zeroline=True,
                     zerolinecolor="#444")
    return fig


def attention_figure(data: EvalData, seed: int = 0) -> go.Figure:
    """Where each step's box centre falls in the image (a sample of points per step), with the anchors
    (crosses), and the distribution of each step's box size."""
    from plotly.subplots import make_subplots

    df = step_boxes(data)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                        subplot_titles=("Box centres (image frame)", "Box size per step"))
    rng = np.random.default_rng(seed)
    anchors = data.anchors
    for k in range(1, data.num_steps + 1):
        color = step_color(k)
        part = df[df["step"] == k]
        if len(part) > MAX_POINTS_PER_STEP:
            part = part.iloc[np.sort(rng.choice(len(part), MAX_POINTS_PER_STEP, replace=False))]
        fig.add_trace(go.Scattergl(
            x=part["cx"], y=part["cy"], mode="markers", name=f"step {k}", legendgroup=f"s{k}",
            marker=dict(color=rgba(color, 0.5), size=7), hovertemplate=f"step {k}: (%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
        ), 1, 1)
        if k <= len(anchors):
            ax, ay = (anchors[k - 1][0] + 1) / 2, (anchors[k - 1][1] + 1) / 2
            fig.add_trace(go.Scatter(
                x=[ax], y=[ay], mode="markers", legendgroup=f"s{k}", showlegend=False,
                marker=dict(symbol="x", size=14, color=color, line=dict(color="black", width=1.5)),
                hovertemplate=f"anchor of step {k}: (%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
            ), 1, 1)
        side = np.sqrt(np.clip(part["w"] * part["h"], 0, None)) if len(part) else []
        fig.add_trace(go.Box(y=side, name=f"step {k}", legendgroup=f"s{k}", showlegend=False, marker_color=color,
                             boxpoints=False, hovertemplate=f"step {k}: %{{y:.2f}}<extra></extra>"), 1, 2)
    fig.add_shape(type="rect", x0=0, y0=0, x1=1, y1=1, line=dict(color="#444", dash="dot"), row=1, col=1)
    fig.update_xaxes(range=[-0.05, 1.05], title="x (fraction of width)", row=1, col=1, constrain="domain")
    fig.update_yaxes(range=[1.05, -0.05], title="y (fraction of height)", row=1, col=1, scaleanchor="x",
                     scaleratio=1)
    fig.update_yaxes(title="box side (√(w·h), fraction of image)", rangemode="tozero", row=1, col=2)
    _layout(fig, 460, legend=dict(orientation="h", y=-0.15), meta={"kind": "attention"})
    return fig


def max_step_figure(freq: pd.DataFrame) -> go.Figure:
    """Heat map: for each class (row), the share of images where each step supplied the max."""
    z = freq.to_numpy(dtype=np.float64)
    text = [["" if np.isnan(v) else f"{100 * v:.0f}%" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=100 * z, x=list(freq.columns), y=list(freq.index), colorscale="Blues", zmin=0, zmax=100,
        text=text, texttemplate="%{text}", hovertemplate="%{y}, %{x}: %{z:.0f}%<extra></extra>",
        colorbar=dict(title="%", thickness=12),
    ))
    _layout(fig, max(260, 22 * len(freq) + 100), title="Which step gives each class its score",
            meta={"kind": "max_step"})
    fig.update_yaxes(autorange="reversed")
    return fig


# --------------------------------------------------------------------------------------------------
# Page helpers


def default_run_name(checkpoint_name: str, kind: str, split: str | None, limit: int | None = None) -> str:
    """'ram_default-voc-test' (+ '-first100' with a limit): the folder a run from the page writes."""
    stem = Path(checkpoint_name).stem or "model"
    name = f"{stem}-{kind}-{split or 'all'}" + (f"-first{limit}" if limit else "")
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def preferred(evaluations: Sequence[Path], names: Sequence[str] = ("default_cv", "default_val")) -> int:
    """Index of the first evaluation whose folder is named one of `names`, else 0."""
    for name in names:
        for i, p in enumerate(evaluations):
            if Path(p).name == name:
                return i
    return 0


def baseline_for(evaluations: Sequence[Path], primary: Path) -> Path | None:
    """The natural comparison for `primary`: a sibling folder with 'baseline' in its name (for a RAM
    evaluation named like default_val, baseline_val), or None."""
    primary = Path(primary)
    if "baseline" in primary.name:
        return None
    suffix = primary.name.split("_", 1)[1] if "_" in primary.name else ""
    candidates = [Path(p) for p in evaluations if "baseline" in Path(p).name and Path(p) != primary]
    for p in candidates:
        if suffix and p.name.endswith(suffix):
            return p
    return candidates[0] if candidates else None
