"""Evaluate: judge a model class by class, from a saved evaluation or a new run on a dataset."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from ram_core import app_support as app
from ram_core import served
from ram_core import eval_views as ev
from ram_core.errors import RAMError
from ram_core.eval_columns import COLUMNS_FILE
from ram_core.evaluation import EVALUATION_FILES, evaluate_to_folder, find_predictions
from ram_core.evaluation_extras import add_evaluation_extras
from ram_core.false_labels import false_label_images, false_label_matrix
from ram_core.imageio import open_image
from ram_core.occlusion import OcclusionError, load_occlusion
from ram_core.output_folder import check_output_folder, output_lock
from ram_core.thresholds import (best_f1_thresholds, default_copy_path, evaluated_checkpoint, f1_table,
                                 metrics_at_class_thresholds, thresholds_array, write_checkpoint_copy)
from ram_core.viz import analysis_figures
from ram_core.safe_text import code, md

PER_PAGE = 12
K_PICK, K_COMPARE, K_FOLDERS, K_THRESHOLD = "evaluate.pick", "evaluate.compare", "evaluate.folders", "evaluate.threshold"
STORE = "evaluate.store"  # the page's choices, kept apart from the widgets (see keep())
NONE = "(none)"
UNDEFINED = "background-color: #f3f4f6; color: #9ca3af"  # cells whose value is undefined (NaN)
DEFAULT_SPLIT = {"voc": "test", "coco": "val", "folder": None, "synthetic": "test"}

st.set_page_config(page_title="Evaluate · RAM Studio", page_icon=":material/analytics:", layout="wide")
model = app.model_picker()
store = st.session_state.setdefault(STORE, {})
# What a finished run asks the widgets to show: set before they are drawn (not possible after).
for _key, _value in (st.session_state.pop("evaluate.pending", None) or {}).items():
    st.session_state[_key] = store[_key] = _value


def keep(key: str, default=None, options=None) -> None:
    """Seed a widget from the page's store before it is drawn.  Streamlit forgets a widget's value
    when a run does not draw it (the user visited another page); the store remembers it."""
    value = st.session_state[key] if key in st.session_state else store.get(key, default)
    if options is not None and value not in options:
        value = default if default in options else options[0]
    st.session_state[key] = value


def remember(key: str):
    store[key] = st.session_state[key]
    return store[key]


# a COCO val evaluation read from its columns is ~200 MB in memory: three at once (a pick, a comparison, one more)
@st.cache_resource(max_entries=3, show_spinner="Reading the evaluation…")
def open_cached(path: str, stamp: tuple) -> ev.EvalData:
    """Shared by all sessions and never modified; `stamp` reloads a folder written again."""
    return ev.open_evaluation(path)


def stamp(path: Path) -> tuple:
    files = [path / "report.json", find_predictions(path), path / COLUMNS_FILE]
    return tuple((f.stat().st_mtime_ns, f.stat().st_size) if f and f.is_file() else None for f in files)


@st.cache_data(max_entries=512, show_spinner=False)
def thumbnail(eval_key: str, i: int, cls: str, path: str | None, _data: ev.EvalData):
    image = None
    if path:
        try:
            image = open_image(path)
        except RAMError:
            image = None
    return ev.browse_thumbnail(_data, i, cls, image, max_side=420, aspect=4 / 3)


def fmt(v, digits: int = 1, sign: bool = False) -> str:
    if v is None or pd.isna(v):
        return "—"
    v = round(float(v), digits) + 0.0  # + 0.0: no "-0.0"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


# ---- where saved evaluations are -------------------------------------------------------------
st.sidebar.header("Evaluations")
keep(K_FOLDERS, ", ".join(ev.short_path(p) for p in ev.default_eval_folders()))
st.sidebar.text_input(
    "Evaluation folders", key=K_FOLDERS,
    help="Comma-separated folders searched for saved evaluations (a folder with report.json and "
         "predictions.jsonl, as `python -m ram_core evaluate --out DIR` writes); relative paths start at "
         "the repository.")
folders, refused_folders = ev.checked_folders(remember(K_FOLDERS))
for message in refused_folders:
    st.sidebar.warning(md(message), icon=":material/block:")

st.title("Evaluate")
st.caption("Judge a model class by class: where recurrent attention helps, where it fails, and why. "
           "Open an evaluation saved by `python -m ram_core evaluate`, or run one on a dataset here.")
evaluations = ev.list_evaluations(folders)

# ---- run an evaluation from the page ---------------------------------------------------------
with st.expander("Run a new evaluation", expanded=not evaluations, icon=":material/play_circle:"):
    with st.form("evaluate.run", border=False):
        c1, c2, c3 = st.columns([1, 3, 1])
        kind = c1.selectbox("Dataset format", list(DEFAULT_SPLIT), key="evaluate.kind")
        root = c2.text_input("Dataset root", key="evaluate.root",
                             placeholder="e.g. /data/VOCdevkit (holding VOC2007/), a COCO folder, or an image folder")
        split = c3.text_input("Split", key="evaluate.split", placeholder="voc: test · coco: val",
                              help="VOC: test, val, trainval…; COCO: val, val2014…; a folder: its labels file.")
        c4, c5, c6, c7 = st.columns([1, 1, 1, 3])
        limit = c4.number_input("First N images (0 = all)", 0, None, 0, 50, key="evaluate.limit")
        batch = c5.number_input("Batch size", 1, 256, 16, key="evaluate.batch")
        workers = c6.number_input("Loader workers", 0, 16, 2, key="evaluate.workers")
        out_text = c7.text_input("Save to", key="evaluate.out",
                                 placeholder="default: runs/evaluations/<checkpoint>-<format>-<split>")
        run_occlusion = st.checkbox(
            "Also test whether the attention matters (occlusion)", key="evaluate.run_occlusion",
            help="For each true positive, blank the region of the step that gave its score on the feature map, "
                 "against a box of the same size at a random place, and the deletion curves (heads with steps; "
                 "about doubles the time). Shown in the Attention tab.")
        submitted = st.form_submit_button("Run evaluation", type="primary", icon=":material/play_arrow:")
    st.caption("Runs the model chosen in the sidebar. The result is saved (report.json and predictions.jsonl) "
               "and opened below; the same evaluation asked for again in this session is reopened, not re-run.")
    problem = None
    if submitted:
        if model.predictor is None:
            problem = model.error or "Choose a model in the sidebar first."
        elif not root.strip():
            problem = "Give the dataset root: the folder that holds the dataset."
        if problem:  # said here; the evaluation that is open stays shown below
            st.error(problem, icon=":material/error:")
    if submitted and not problem:
        split_value = split.strip() or DEFAULT_SPLIT[kind]
        name = ev.default_run_name(model.source.name, kind, split_value, int(limit) or None)
        try:
            # a synthetic dataset is generated into its folder when missing: that folder is written to
            data_root = (served.resolve_write(root, "The synthetic dataset's folder") if kind == "synthetic"
                         else served.resolve_read(root, "The dataset root"))
            served.check_dataset_paths(kind, data_root, [split_value])  # a labels file named by path
            out = served.resolve_write(out_text if out_text.strip() else f"evaluations/{name}", "Save to",
                                       local_base=ev.ROOT / "runs" if not out_text.strip() else ev.ROOT)
        except RAMError as exc:
            st.error(md(exc), icon=":material/block:")
            st.stop()
        runs = st.session_state.setdefault("evaluate.runs", {})
        key = (model.key, kind, str(data_root), split_value, int(limit), str(out))
        failed = False
        if runs.get(key) and (out / "report.json").is_file():
            st.toast("Already evaluated in this session: reopened the saved result.", icon=":material/history:")
        else:
            bar = st.progress(0.0, text="Starting the data loader…")

            def progress(done: int, total: int, seconds: float) -> None:
                rate = done / seconds if seconds > 0 else 0.0
                bar.progress(done / total, text=f"{done} / {total} images · {rate:.1f} images/s")

            try:
                with output_lock(check_output_folder(out, EVALUATION_FILES, "output folder")):
                    result, _ = evaluate_to_folder(model.predictor, kind, data_root, split_value,
                                                   out, batch_size=int(batch), workers=int(workers),
                                                   limit=int(limit) or None, progress=progress)
                    occlude = run_occlusion and bool(model.predictor.cfg.num_attention_steps)
                    if run_occlusion and not occlude:
                        st.warning("The occlusion test needs a head with attention steps; this model has none.")
                    if occlude:
                        bar.progress(0.0, text="Occlusion tests…")
                    try:
                        add_evaluation_extras(model.predictor, result, out, occlusion=occlude, batch_size=int(batch),
                                              workers=int(workers), progress=progress)
                    except OcclusionError as exc:  # the evaluation itself is fine: say why there is no test
                        st.warning(f"**No occlusion test.** {md(exc)}", icon=":material/warning:")
                        add_evaluation_extras(model.predictor, result, out, occlusion=False)
            except RAMError as exc:  # said here; the evaluation that is open stays shown below
                bar.empty()
                st.error(f"**The evaluation could not run.** {md(exc)}", icon=":material/error:")
                failed = True
            if not failed:
                runs[key] = str(out)
        if not failed:
            pending = {K_PICK: str(out), K_COMPARE: NONE}
            if not any(out.resolve() == p.resolve() for p in evaluations):
                pending[K_FOLDERS] = store[K_FOLDERS] + f", {ev.short_path(out)}"  # so that it is listed
            st.session_state["evaluate.pending"] = pending
            st.rerun()

# ---- open a saved evaluation ---------------------------------------------------------------------
if not evaluations:
    st.info("No saved evaluation in " + ", ".join(f"`{ev.short_path(p)}`" for p in folders) + ". "
            "Run one above, or from a terminal: "
            "`python -m ram_core evaluate --data voc --root PATH --split test --out runs/evaluations/NAME`, "
            "then add its folder in the sidebar.", icon=":material/info:")
    st.stop()

options = [str(p) for p in evaluations]
labels = {str(p): ev.evaluation_label(p) for p in evaluations}
pick_col, cmp_col = st.columns(2)
keep(K_PICK, options[ev.preferred(evaluations)], options)
picked = pick_col.selectbox("Evaluation", options, key=K_PICK, format_func=labels.get)
others = [NONE] + [o for o in options if o != picked]
if store.get(K_PICK) != picked:  # another evaluation: propose its baseline for the comparison
    base = ev.baseline_for(evaluations, Path(picked))
    st.session_state[K_COMPARE] = str(base) if base is not None else NONE
remember(K_PICK)
keep(K_COMPARE, NONE, others)
cmp_col.selectbox("Compare with", others, key=K_COMPARE, format_func=lambda o: labels.get(o, o),
                  help="A second evaluation (its baseline, another checkpoint) for the Compare tab.")
compare = remember(K_COMPARE)

try:
    data = open_cached(picked, stamp(Path(picked)))
    other = open_cached(compare, stamp(Path(compare))) if compare != NONE else None
except RAMError as exc:
    st.error(f"**This evaluation cannot be read.** {md(exc)}", icon=":material/error:")
    st.stop()

report = data.report
keep(K_THRESHOLD, float(data.threshold))
# per-class thresholds: chosen on this page (Per class tab), else those the evaluated checkpoint had
picked_thresholds = st.session_state.setdefault("evaluate.class_thresholds", {})
class_thresholds = picked_thresholds.get(picked) or report.get("class_thresholds") or None
slider_col, switch_col = st.columns([4, 1], vertical_alignment="bottom")
threshold = slider_col.slider("Label threshold", 0.0, 1.0, step=0.01, key=K_THRESHOLD,
                              help="A class is predicted when its fused score is at least this (CF1, OF1, the "
                                   "per-class precision and recall, Browse and False labels follow it).")
remember(K_THRESHOLD)
use_class_thresholds = bool(class_thresholds) and switch_col.toggle(
    "Per-class thresholds", True, key="evaluate.use_class_thresholds",
    help="Each class at its own threshold (" + ("picked on this page" if picked_thresholds.get(picked) else
                                                 "the evaluated checkpoint's") + "); off: the slider's for all.")
own = class_thresholds if use_class_thresholds else None
thresholds = thresholds_array(data.class_names, threshold, own)  # (C,) what each class is predicted at


def threshold_of(cls: str) -> float:
    return float(thresholds[data.class_names.index(cls)])

# ---- summary --------------------------------------------------------------------------------------
s = ev.summary(data, threshold)
o = ev.summary(other, threshold) if other is not None else None
at = f"{threshold:.2f}"
if own:  # CP..OF1 at the per-class thresholds (the other evaluation: at its own, if it has them)
    s.update(metrics_at_class_thresholds(data.scores, data.targets, data.masks, data.class_names, threshold,
                                         own)["at_class_thresholds"])
    if o is not None and other.report.get("class_thresholds"):
        o.update(metrics_at_class_thresholds(other.scores, other.targets, other.masks, other.class_names, threshold,
                                             other.report["class_thresholds"])["at_class_thresholds"])
    at = "own thr."


def delta(key: str):
    if o is None or s[key] is None or o[key] is None:
        return None
    return f"{s[key] - o[key]:+.1f} vs B"


m = app.metric_row(6)
m[0].metric("mAP", fmt(s["mAP"]), delta("mAP"), help="Mean over classes of the average precision (percent).")
m[1].metric(f"CF1 @ {at}", fmt(s["CF1"]), delta("CF1"), help=f"CP {fmt(s['CP'])} · CR {fmt(s['CR'])}: "
            "per-class precision and recall, averaged over classes.")
m[2].metric(f"OF1 @ {at}", fmt(s["OF1"]), delta("OF1"), help=f"OP {fmt(s['OP'])} · OR {fmt(s['OR'])}: "
            "precision and recall pooled over all labels.")
m[3].metric("CF1 top-3", fmt(s["top3_CF1"]), delta("top3_CF1"), help="Each image's three highest-scoring classes as its labels.")
m[4].metric("OF1 top-3", fmt(s["top3_OF1"]), delta("top3_OF1"))
m[5].metric("Images", f"{s['num_images']:,}")
model_info = report.get("model") or {}
ds = report.get("dataset") or {}
facts = [f"**{Path(picked).name}**",
         f"{'RAM, K = ' + str(model_info.get('num_steps')) if model_info.get('head') == 'ram' else 'baseline head'}",
         f"{model_info.get('backbone', '?')} at {model_info.get('input_size', '?')} px",
         f"data {ds.get('name', '?')}", f"checkpoint `{Path(str(report.get('checkpoint', '?'))).name}`"]
if report.get("images_per_second"):
    facts.append(f"{report['images_per_second']:.1f} images/s on {report.get('device', '?')}")
st.caption(" · ".join(facts))
if data.num_steps and s["global_mAP"] is not None and s["mAP"] is not None:
    st.caption(f"The global step alone (the whole feature map, before any attention) reaches mAP "
               f"{s['global_mAP']:.1f}; fusing the {data.num_steps} attention steps gives "
               f"{fmt(s['mAP'] - s['global_mAP'], sign=True)} points.")
branch_map = report.get("branch_mAP") or {}
if branch_map.get("recurrent") is not None and branch_map.get("companion") is not None and report.get("mAP") is not None:
    st.caption(f"Two branches: the recurrent attention alone reaches mAP {branch_map['recurrent']:.1f}, its "
               f"companion (CSRA on the whole map) {branch_map['companion']:.1f}; their mix, the model's "
               f"scores, {report['mAP']:.1f} (all classes of this evaluation).")
if report.get("skipped"):
    st.warning(f"{len(report['skipped'])} unreadable image(s) were left out, e.g. {md(report['skipped'][0])}")

tab_class, tab_cmp, tab_browse, tab_false, tab_att = st.tabs(["Per class", "Compare", "Browse", "False labels",
                                                              "Attention"])

# ---- per class ---------------------------------------------------------------------------------------
with tab_class:
    table = ev.per_class_table(data, threshold)
    if class_thresholds:  # F1 at the single threshold (the F1 column) and at each class's own
        both = f1_table(data.scores, data.targets, data.masks, data.class_names, threshold, class_thresholds)
        table["own threshold"] = both["threshold"].round(4).to_numpy()
        table["F1 @ own threshold"] = both["F1 @ class"].to_numpy()
    pct_cols = [c for c in ("AP", "AP global step", "precision", "recall", "F1", "F1 @ own threshold") if c in table]
    gain = [c for c in ("gain over global",) if c in table]
    span = max(1.0, float(table["gain over global"].abs().max(skipna=True) or 1.0)) if gain else 1.0
    st.markdown("#### Per-class results")
    sort_col, order_col = st.columns([3, 1], vertical_alignment="bottom")
    keep("evaluate.sort_by", "class", list(table.columns))
    sort_by = sort_col.selectbox("Sort by", list(table.columns), key="evaluate.sort_by",
                                 help="Undefined values (—) stay at the bottom either way.")
    remember("evaluate.sort_by")
    keep("evaluate.sort_descending", False)
    descending = order_col.toggle("Descending", key="evaluate.sort_descending")
    remember("evaluate.sort_descending")
    table = ev.sort_table(table, sort_by, ascending=not descending)
    styled = (table.style
              .background_gradient(cmap="RdYlGn", vmin=0, vmax=100, subset=pct_cols)
              .format({c: "{:.1f}" for c in pct_cols})
              .format({c: "{:.3f}" for c in ("own threshold",) if c in table})
              .format(lambda v: fmt(v, sign=True), subset=gain))
    if gain:
        styled = styled.background_gradient(cmap="PiYG", vmin=-span, vmax=span, subset=gain)
    styled = styled.map(lambda v: UNDEFINED if pd.isna(v) else "", subset=pct_cols + gain)
    st.dataframe(styled, hide_index=True, width="stretch", key="evaluate.class_table", placeholder="—",
                 height=min(38 + 35 * len(table), 560))
    st.caption(f"AP and, at the threshold {threshold:.2f}, precision, recall and F1, all in percent; positives: "
               "images labelled with the class (left-out labels such as VOC's difficult-only ones not counted). "
               + ("AP global step: the same model's scores from its first (whole-map) step alone; gain: what the "
                  "attention steps add. Top step: the step that most often gives the class its fused score on "
                  "its positive images. " if data.num_steps else "")
               + "Sort with the control above: undefined values (—) stay last.")
    st.download_button("Download as CSV", table.to_csv(index=False).encode(), f"{Path(picked).name}_per_class.csv",
                       "text/csv", on_click="ignore", icon=":material/download:")
    with st.expander("Per-class thresholds", icon=":material/tune:", expanded=bool(picked_thresholds.get(picked))):
        st.caption("Pick, for each class, the threshold with the best F1 on this evaluation (as `python -m ram_core "
                   "thresholds --eval DIR` does), then write them into a copy of the checkpoint: `predict`, the app "
                   "and `evaluate` use them. Chosen on an evaluation, they flatter its own F1: pick them on a "
                   "validation split and judge them on another.")
        t1, t2 = st.columns([1, 2], vertical_alignment="bottom")
        min_pos = t1.number_input("Classes with at least N positives", 1, 1000, 5, key="evaluate.thr_min_positives",
                                  help="Classes with fewer positives keep the single threshold.")
        if t2.button("Pick per-class thresholds (best F1)", key="evaluate.pick_thresholds", icon=":material/tune:"):
            picked_thresholds[picked] = best_f1_thresholds(data.scores, data.targets, data.masks, data.class_names,
                                                           int(min_pos)) or None
            if not picked_thresholds[picked]:
                st.warning(f"No class has {int(min_pos)} positives here: nothing to pick.")
            else:
                st.rerun()
        if class_thresholds:
            both = f1_table(data.scores, data.targets, data.masks, data.class_names, threshold, class_thresholds)
            both = both[both["class"].isin(list(class_thresholds))]
            st.dataframe(both.style.format({"threshold": "{:.4f}", "F1 @ single": "{:.1f}", "F1 @ class": "{:.1f}",
                                            "precision @ class": "{:.1f}", "recall @ class": "{:.1f}"}, na_rep="—"),
                         hide_index=True, width="stretch", key="evaluate.thr_table")
            st.caption(f"Mean F1 over these classes: {fmt(both['F1 @ single'].mean())} at {threshold:.2f}, "
                       f"{fmt(both['F1 @ class'].mean())} at their own thresholds.")
            w1, w2 = st.columns(2)
            w1.download_button("Download the thresholds (JSON)", json.dumps(class_thresholds, indent=2),
                               f"{Path(picked).name}_thresholds.json", "application/json", on_click="ignore",
                               icon=":material/download:")
            ckpt = evaluated_checkpoint(report, picked)
            ckpt = ckpt if ckpt is not None and served.may_read(ckpt) else None
            if ckpt is None:
                w2.caption(f"The evaluated checkpoint (`{report.get('checkpoint')}`) is not here: write the copy "
                           "with `python -m ram_core thresholds --eval DIR --checkpoint PATH`.")
            elif w2.button(f"Write a copy of {ckpt.name} with them", key="evaluate.write_thresholds",
                           icon=":material/save:"):
                try:
                    target = default_copy_path(ckpt)
                    if served.write_root() is not None or served.is_served():  # beside the original: not when served
                        target = served.resolve_write(f"checkpoints/{target.name}", "The copy")
                    written = write_checkpoint_copy(ckpt, target, class_thresholds, chosen_on=picked)
                    st.success(f"Wrote `{ev.short_path(written)}`: pick it in the sidebar to use it.",
                               icon=":material/check:")
                except RAMError as exc:
                    st.error(f"**The copy could not be written.** {md(exc)}", icon=":material/error:")
    bars_col, pr_col = st.columns([1, 1], gap="large")
    with bars_col:
        st.plotly_chart(ev.ap_bar_figure(table), key="evaluate.ap_bars", config={"displaylogo": False})
    with pr_col:
        hardest = table.dropna(subset=["AP"]).sort_values("AP")["class"].tolist()[:3]
        chosen = st.multiselect("Precision-recall curves of", data.class_names, default=hardest,
                                key=f"evaluate.pr_classes.{picked}",  # its own per evaluation
                                help="By default the three classes with the lowest AP.")
        st.plotly_chart(ev.pr_figure(data, chosen, threshold), key="evaluate.pr", config={"displaylogo": False})
        st.caption("Each curve ranks the images by the class's score; the dot marks the label threshold.")

# ---- compare -------------------------------------------------------------------------------------------
with tab_cmp:
    if other is None:
        st.info("Pick a second evaluation under **Compare with** (for instance the baseline head on the same "
                "data, or another checkpoint) to see which classes improve and which regress.",
                icon=":material/compare_arrows:")
    else:
        cmp = ev.comparison_table(data, other)
        counts = ev.comparison_counts(cmp)
        st.markdown(f"#### A: `{Path(picked).name}` against B: `{Path(compare).name}`")
        if not ev.same_images(data, other):
            st.warning("The two evaluations are not on the same images; differences mix model and data.")
        c = app.metric_row(4)
        c[0].metric("mAP A − B", fmt(None if s["mAP"] is None or o["mAP"] is None else s["mAP"] - o["mAP"], sign=True))
        c[1].metric("Improved", counts["improved"], help="ΔAP above +0.5 points")
        c[2].metric("Regressed", counts["regressed"], help="ΔAP below −0.5 points")
        c[3].metric("About the same", counts["same"])
        fig_col, tab_col = st.columns([1, 1], gap="large")
        with fig_col:
            st.plotly_chart(ev.ap_diff_figure(cmp, "A", "B"), key="evaluate.ap_diff", config={"displaylogo": False})
        with tab_col:
            span = max(1.0, float(cmp["ΔAP"].abs().max(skipna=True) or 1.0))
            st.dataframe(cmp.style.background_gradient(cmap="PiYG", vmin=-span, vmax=span, subset=["ΔAP"])
                         .format({"AP A": "{:.1f}", "AP B": "{:.1f}"}, na_rep="—")
                         .format(lambda v: fmt(v, sign=True), subset=["ΔAP"])
                         .map(lambda v: UNDEFINED if pd.isna(v) else "", subset=["AP A", "AP B", "ΔAP"]),
                         hide_index=True, placeholder="—", width="stretch", key="evaluate.cmp_table",
                         height=min(38 + 35 * len(cmp), 560))
            for verdict in ("improved", "regressed"):
                names = cmp.loc[cmp["verdict"] == verdict, "class"].tolist()
                st.markdown(f"**{verdict.capitalize()}:** " + (md(", ".join(names)) if names else "none"))
            st.download_button("Download as CSV", cmp.to_csv(index=False).encode(), "comparison.csv", "text/csv",
                               on_click="ignore", icon=":material/download:")

# ---- browse ------------------------------------------------------------------------------------------
with tab_browse:
    b1, b3 = st.columns([1, 1])
    most = data.class_names[int((data.targets & data.masks).sum(0).argmax())]  # the class with most positives
    keep("evaluate.browse_class", most, data.class_names)
    b1.selectbox("Class", data.class_names, key="evaluate.browse_class")
    cls = remember("evaluate.browse_class")
    counts = ev.browse_counts(data, cls, threshold_of(cls))
    keep("evaluate.browse_kind", "TP", list(ev.BROWSE_KINDS))
    st.segmented_control("Show", list(ev.BROWSE_KINDS), key="evaluate.browse_kind",
                         format_func=lambda k: f"{ev.KIND_NAMES[k]} ({counts[k]})")
    kind = remember("evaluate.browse_kind") or "TP"
    missing = [i for i in range(min(len(data), 3)) if ev.resolve_image(data, i) is None]
    root_override = b3.text_input("Dataset root on this machine", key="evaluate.root_override",
                                  placeholder=str(ds.get("root") or ""),
                                  help="Where the evaluated photos are here, if not at the paths saved "
                                       "in the evaluation (e.g. made on another machine).")
    if root_override.strip():
        try:
            root_override = str(served.resolve_read(root_override, "The dataset root"))
        except RAMError as exc:
            st.error(md(exc), icon=":material/block:")
            root_override = ""
    indices = ev.browse(data, cls, threshold_of(cls), kind)
    if missing and not root_override:
        st.info(f"The photos are not at their saved paths (e.g. `{code(data.images[missing[0]])}`): boxes are drawn "
                "on placeholders. Give the dataset root on this machine to see the photos.",
                icon=":material/image_not_supported:")
    elif missing and ev.resolve_image(data, missing[0], root_override) is None:
        st.warning(f"`{code(data.images[missing[0]])}` is not under `{code(root_override)}` either "
                   "(looked for it by its "
                   "path below the saved root, and by its file name).", icon=":material/image_not_supported:")
    if not indices:
        st.info(f"No {ev.KIND_NAMES[kind]} for **{md(cls)}** at the threshold {threshold_of(cls):.2f}.")
    else:
        pages = (len(indices) + PER_PAGE - 1) // PER_PAGE
        page = st.pagination(pages, key=f"evaluate.page.{cls}.{kind}") if pages > 1 else 1
        order = "lowest score first (the worst misses)" if kind == "FN" else "highest score first"
        st.caption(f"{ev.count_of(len(indices), kind)} for **{md(cls)}**, {order}. Boxes: each attention step "
                   f"in its colour, the step that gave {cls} its score drawn thick; white: annotated {cls}.")
        shown = indices[(page - 1) * PER_PAGE: page * PER_PAGE]
        for row in range(0, len(shown), 4):  # one row of columns at a time keeps the rows aligned
            for col, i in zip(st.columns(4), shown[row:row + 4]):
                path = ev.resolve_image(data, i, root_override or None)
                with col:
                    st.image(thumbnail(f"{picked}:{stamp(Path(picked))}", i, cls, str(path) if path else None, data),
                             width="stretch")
                    truth = ", ".join(data.records[i].get("ground_truth") or []) or "none"
                    st.markdown(f"**{md(data.ids[i])}** · {md(cls)} {data.scores[i, data.class_names.index(cls)]:.3f}")
                    st.caption(f"labels: {md(truth)}")
                    if st.button("Inspect", key=f"evaluate.inspect.{i}", icon=":material/center_focus_strong:",
                                 disabled=path is None, help="Open this photo in the Inspect page (runs the model "
                                 "chosen in the sidebar on it)."):
                        st.session_state[ev.INSPECT_KEY] = str(path)
                        st.switch_page("pages/1_Inspect.py")

# ---- which present labels come with false ones -------------------------------------------------------
with tab_false:
    keep("evaluate.false_kind", "FP", ["FP", "FN"])
    st.segmented_control("Errors", ["FP", "FN"], key="evaluate.false_kind",
                         format_func=lambda k: "False positives" if k == "FP" else "False negatives (misses)")
    error_kind = remember("evaluate.false_kind") or "FP"
    matrix = false_label_matrix(data.scores, data.targets, data.masks, data.class_names, thresholds, error_kind)
    if not matrix.errors.sum():
        st.info(f"No {'false positives' if error_kind == 'FP' else 'misses'} at these thresholds.")
    else:
        f1c, f2c = st.columns([2, 1])
        min_count = f2c.number_input("Hide cells seen in fewer than N photos", 1, 1000, 2, key="evaluate.false_min")
        event = f1c.plotly_chart(analysis_figures.false_label_figure(matrix, int(min_count)), on_select="rerun",
                                 selection_mode="points", key=f"evaluate.false_figure.{error_kind}",
                                 config={"displaylogo": False})
        f1c.caption(("Each square: among the photos where the row's class is a false positive, how often the "
                     "column's class is truly present, divided by how often it is present in all photos (the "
                     "number: that ratio, the lift; red: more often than usual). " if error_kind == "FP" else
                     "Each square: among the photos where the row's class is missed, how often the column's class "
                     "is also present, divided by how often it is present with the row's class at all (red: the "
                     "row's class is missed more often beside it). ")
                    + "Click a square to see those photos below.")
        rows = [c for c, n in zip(data.class_names, matrix.errors) if n > 0]
        strongest = matrix.strongest(8, int(min_count))
        with f2c:
            st.markdown("**Strongest pairs**")
            st.dataframe([{"error": e, "present": p, "lift": round(v, 2), "photos": n} for e, p, v, n in strongest],
                         hide_index=True, width="stretch", key="evaluate.false_strongest")
        points = event.selection.points if event else []
        clicked = (points[0].get("customdata") or [None, None])[:2] if points else None
        if clicked and clicked != st.session_state.get("evaluate.false_clicked"):
            st.session_state["evaluate.false_clicked"] = clicked
            st.session_state["evaluate.false_row"], st.session_state["evaluate.false_col"] = clicked
        default_row, default_col = (strongest[0][0], strongest[0][1]) if strongest else (rows[0], data.class_names[0])
        keep("evaluate.false_row", default_row, rows)
        keep("evaluate.false_col", default_col, data.class_names)
        s1, s2 = st.columns(2)
        s1.selectbox("False positive of" if error_kind == "FP" else "Missed class", rows, key="evaluate.false_row")
        s2.selectbox("with present", data.class_names, key="evaluate.false_col")
        row_cls, col_cls = remember("evaluate.false_row"), remember("evaluate.false_col")
        shown = false_label_images(data.scores, data.targets, data.masks, data.class_names, thresholds, error_kind,
                                   row_cls, col_cls)
        r, p = data.class_names.index(row_cls), data.class_names.index(col_cls)
        lift = matrix.lift[r, p]
        n_errors = int(matrix.errors[r])
        st.markdown(f"**{len(shown)}** of **{n_errors}** photo{'' if n_errors == 1 else 's'} where **{md(row_cls)}** is "
                    f"{'a false positive' if error_kind == 'FP' else 'missed'} have **{md(col_cls)}** present"
                    + ("" if pd.isna(lift) else f" (lift {lift:.2f})") + ".")
        for start in range(0, min(len(shown), PER_PAGE), 4):
            for col, i in zip(st.columns(4), shown[start:start + 4]):
                path = ev.resolve_image(data, i)
                with col:
                    st.image(thumbnail(f"{picked}:{stamp(Path(picked))}", i, row_cls, str(path) if path else None,
                                       data), width="stretch")
                    truth = ", ".join(data.records[i].get("ground_truth") or []) or "none"
                    st.caption(f"**{md(data.ids[i])}** · {md(row_cls)} {data.scores[i, r]:.3f} · labels: {md(truth)}")
        if len(shown) > PER_PAGE:
            st.caption(f"The first {PER_PAGE} of {len(shown)}, " + ("most confident first." if error_kind == "FP"
                                                                    else "worst misses first."))

# ---- attention over the dataset ------------------------------------------------------------------------
with tab_att:
    if not data.num_steps:
        st.info("This evaluation's model has the baseline head (global pooling): it has no attention steps.")
    else:
        st.plotly_chart(ev.attention_figure(data), key="evaluate.attention", config={"displaylogo": False})
        st.caption("Left: the centre of every step's box over the dataset (a sample of up to "
                   f"{ev.MAX_POINTS_PER_STEP} per step), with each step's anchor as a cross. Right: how large each "
                   "step's box is (side of the box as a fraction of the image).")
        hits = report.get("box_hit_rates")
        if hits and hits.get("hit_rate") is not None:
            h = app.metric_row(3)
            h[0].metric("Box centres on an object", f"{hits['hit_rate']:.1f}%",
                        help="Share of steps whose box centre lies inside an annotated object of the photo.")
            h[1].metric("Same boxes on another photo", f"{hits['hit_rate_other_photo']:.1f}%",
                        help="The same boxes scored against the next photo's objects: what a fixed layout "
                             "would get. Attention that follows the photo scores higher on its own.")
            h[2].metric("Difference", f"{hits['hit_rate'] - hits['hit_rate_other_photo']:+.1f} points")
        div = report.get("step_diversity") or {}
        if div.get("objects_visited") is not None:
            d = st.columns(3)
            d[0].metric("Objects visited per photo", f"{div['objects_visited']:.2f}",
                        help=f"On the {div['num_images']} photos with two or more annotated objects "
                             f"({div['objects']:.1f} on average): how many distinct objects the step centres land on.")
            d[1].metric("Same boxes on another photo", f"{div['objects_visited_other']:.2f}",
                        help="The same boxes laid on the next such photo: what a fixed layout would visit.")
            d[2].metric("All steps on one object", f"{div['all_on_one_object']:.0f}%",
                        help="Share of those photos whose steps that land on an object all land on the same one.")
            large = report.get("step_diversity_large") or {}
            if large.get("objects_visited") is not None:
                st.caption(f"Counting only objects of at least {100 * large['min_area']:.0f}% of the photo "
                           f"({large['num_images']} photos with two or more): {large['objects_visited']:.2f} "
                           f"objects visited (another photo's boxes {large['objects_visited_other']:.2f}), all "
                           f"steps on one object {large['all_on_one_object']:.0f}%.  A photo with one large object "
                           "and small ones beside it counts as \"all on one\" above even when nothing else was "
                           "worth a look.")
        positives_only = st.toggle("Only each class's positive images", True, key="evaluate.max_pos")
        st.plotly_chart(ev.max_step_figure(ev.max_step_frequency(data, positives_only)), key="evaluate.max_step",
                        config={"displaylogo": False})
        st.caption("For each class, how often each step supplies its fused score (the category-wise max)"
                   + (", over the images labelled with it." if positives_only else ", over all images."))
        with st.expander("Per-step box statistics"):
            st.dataframe(ev.step_box_summary(data).style.format(precision=3), hide_index=True, width="stretch")
        st.markdown("#### Does the attention matter?")
        occlusion = load_occlusion(picked)
        if occlusion is None:
            st.caption("Not measured for this evaluation. Run it with `python -m ram_core evaluate ... --occlusion` "
                       "(or tick the occlusion test when running an evaluation above): for each true positive, the "
                       "drop of its score when the region of the step that gave it is blanked on the feature map, "
                       "against a box of the same size at a random place.")
        else:
            ov = occlusion["overall"]
            oc = st.columns(4)
            oc[0].metric("Drop, its step blanked", fmt(ov["mean_drop_step"], 3),
                         help="Mean drop of a true positive's score when the region of the step that gave its fused "
                              "score is blanked on the feature map.")
            oc[1].metric("Drop, random box", fmt(ov["mean_drop_random"], 3),
                         help="The same with a box of the same size at a random place instead.")
            more = ov["step_drops_more"]
            oc[2].metric("Its step drops more", "—" if more is None else f"{100 * more:.0f}%",
                         help="Share of the true positives whose score drops more without their step's region than "
                              "without the random box.")
            oc[3].metric("True positives", f"{ov['true_positives']:,}",
                         help=f"{ov['max_from_global']} of them got their score from the global step (no step region "
                              "to blank): counted in the curves only.")
            dc1, dc2 = st.columns(2, gap="large")
            with dc1:
                with_tp = [c for c, v in occlusion["per_class"].items() if v["true_positives"]]
                curve_of = st.selectbox("Deletion curve of", ["all classes"] + with_tp, key="evaluate.deletion_class")
                st.plotly_chart(analysis_figures.deletion_figure(occlusion, None if curve_of == "all classes"
                                                                 else curve_of),
                                key="evaluate.deletion", config={"displaylogo": False})
            with dc2:
                st.plotly_chart(analysis_figures.occlusion_classes_figure(occlusion), key="evaluate.occlusion_classes",
                                config={"displaylogo": False})
            st.caption(occlusion["method"] + " Deletion curve: the mean score after blanking the steps one by one in "
                       "each true positive's order of importance (the drop each causes alone), against random boxes "
                       "of the same sizes; the lower the red curve, the more the regions the steps chose matter.")
