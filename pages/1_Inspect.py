"""Inspect: where each recurrent step looked, what it saw, and how the scores evolved."""

import dataclasses
import html
import json
from pathlib import Path

import streamlit as st

from ram_core import app_support as app
from ram_core import kept_photos
from ram_core.errors import RAMError
from ram_core.model_comparison import disagreements, label_agreement
from ram_core.occlusion import BLANK_EXPLANATION, occlude_steps
from ram_core.probe import PROBE_EXPLANATION, probe_regions
from ram_core.viz import analysis_figures, figures, render
from ram_core.viz.colors import step_color
from ram_core.safe_text import md

st.set_page_config(page_title="Inspect · RAM Studio", page_icon=":material/center_focus_strong:", layout="wide")
model = app.model_picker()

st.title("Inspect")
st.caption("Upload photos or pick a sample: see the region each recurrent step attended to, "
           "the labels it found there, and how every class's score evolved from step to step.")
predictor = app.require_model(model)
k_steps = predictor.cfg.num_steps if predictor.cfg.head == "ram" else 0

# ---- inputs ------------------------------------------------------------------------------------
left, right = st.columns([3, 2], gap="large")
uploads = left.file_uploader("Upload images", type=app.IMAGE_TYPES, accept_multiple_files=True,
                             help="JPEG, PNG, WebP, BMP, GIF or TIFF; EXIF rotation is applied.",
                             key="inspect.uploader", on_change=lambda: kept_photos.uploads_removed(
                                 st.session_state, st.session_state.get("inspect.uploader")))
samples = app.list_samples()
if "inspect.samples" not in st.session_state:  # Streamlit forgot the pills on another page: restore them
    st.session_state["inspect.samples"] = st.session_state.get("inspect.samples_kept", [])
picked = right.pills("Or try a sample photo", [s.name for s in samples], selection_mode="multi",
                     format_func=lambda n: next(s.title for s in samples if s.name == n), key="inspect.samples",
                     wrap=True)  # in a column, pills stay on one row and are cut off when the page is narrow

st.session_state["inspect.samples_kept"] = list(picked or [])
# uploads and a photo sent from the Evaluate page's browser ("Inspect") are kept for the session: they
# survive a visit to another page, and each can be removed here
kept_photos.take_uploads(st.session_state, uploads or [])
kept_photos.take_sent(st.session_state)
photos = kept_photos.kept(st.session_state)
if photos:
    still = left.multiselect("Your photos", list(photos), default=list(photos), format_func=lambda d: photos[d].name,
                             help="Kept while you visit other pages; remove one with its ×.")
    if len(still) < len(photos):
        kept_photos.forget(st.session_state, [d for d in photos if d not in still])
        st.rerun()
inputs = [app.read_image_input(p.name, p.data) for p in photos.values()]
inputs += [app.read_image_input(s.name, s.read(), "sample") for s in samples if s.name in (picked or [])]
for bad in (i for i in inputs if i.error):
    st.error(f"**Could not read an upload.** {md(bad.error)}", icon=":material/broken_image:")
good = [i for i in inputs if i.image is not None]
if not good:
    if not inputs:
        st.info("Upload one or several images, or pick a sample photo above.", icon=":material/add_photo_alternate:")
    st.stop()

with st.spinner(f"Running the model on {len(good)} image(s)…"):
    results = app.inspect_images(predictor, model.key, good, app.session_results())

# ---- which image, and the threshold -----------------------------------------------------------
pick_col, thr_col = st.columns([3, 2], gap="large")
if len(results) > 1:
    index = pick_col.selectbox("Image", range(len(results)), format_func=lambda i: results[i].name,
                               key="inspect.image")
else:
    index = 0
class_thresholds = predictor.info.class_thresholds
threshold = thr_col.slider("Label threshold", 0.0, 1.0, 0.5, 0.01, key="inspect.threshold",
                           help="A class is a label when its fused score is at least this"
                                + (" (classes without a threshold of their own, while per-class thresholds are on)."
                                   if class_thresholds else "."))
use_class_thresholds = bool(class_thresholds) and thr_col.toggle(
    "Per-class thresholds", True, key="inspect.class_thresholds",
    help=f"This checkpoint has its own threshold for {len(class_thresholds or {})} classes (each chosen for the "
         "best F1 on an evaluation, `python -m ram_core thresholds`). Off: the slider's threshold for every class.")
own_thresholds = class_thresholds if use_class_thresholds else None
index = min(index, len(results) - 1)
result = results[index]
original = good[index].image  # the decoded photo (result.image is a display copy)
trace = dataclasses.replace(result.trace, threshold=threshold, class_thresholds=own_thresholds)
labels = trace.labels()

if len(results) > 1:
    with st.expander(f"All {len(results)} images", expanded=False):
        st.dataframe(
            [{"image": r.name, "labels": ", ".join(dataclasses.replace(r.trace, threshold=threshold,
                                                                     class_thresholds=own_thresholds).labels()) or "—",
              "top score": round(r.trace.top(1)[0][1], 3) if r.trace.scores else None,
              "ms": round(1000 * (r.trace.seconds or 0))} for r in results],
            hide_index=True, width="stretch",
        )

st.subheader(result.name)
m = app.metric_row(5)
m[0].metric("Labels", len(labels), help=f"Classes with a fused score ≥ {threshold:.2f}"
            + (" or ≥ their own threshold" if own_thresholds else ""))
top_class, top_p = trace.top(1)[0] if trace.scores else ("—", 0.0)
m[1].metric("Top class", top_class, f"score {top_p:.2f}", delta_color="off", delta_arrow="off")
m[2].metric("Inference", f"{1000 * (trace.seconds or 0):.0f} ms", help=f"Forward pass on {predictor.device}, "
            "preprocessing included (this image's share of its batch); cached afterwards.")
m[3].metric("Attention steps", k_steps, help="K, not counting the initial global step")
m[4].metric("Image", f"{trace.width} × {trace.height}")

# ---- where each step looked -------------------------------------------------------------------
fig_col, crop_col = st.columns([3, 2], gap="large")
with fig_col:
    st.markdown("#### Where each step looked")
    if k_steps:
        st.plotly_chart(result.get("attention_figure", lambda: figures.attention_figure(result.image, trace)),
                        key=f"attention.{result.digest}", config={"displaylogo": False, "scrollZoom": False})
        st.caption("Each box is the region a recurrent step sampled from the feature map, drawn on the "
                   "photo in that step's colour with its number and top label. Hover a box for the step's "
                   "top scores; drag the slider or press ▶ Play to walk through the steps (Global is the "
                   "initial step on the whole map).")
    else:
        st.image(result.image, width="stretch")
        st.info("This checkpoint has the baseline head (global pooling): there are no attention steps to draw.")
with crop_col:
    st.markdown("#### What each step saw")
    if k_steps:
        crops = result.get("crops", lambda: render.region_crops(result.image, trace, size=220))
        grid = st.columns(2 if len(crops) <= 4 else 3)
        for n, (s, crop) in enumerate(zip(trace.steps, crops)):
            with grid[n % len(grid)]:
                st.image(crop, width="stretch")
                c, p = s.top(1)[0]
                st.markdown(f"<span style='color:{step_color(s.step)};font-weight:700'>Step {s.step}</span>"
                            f"<br><span style='font-size:0.85em'>{html.escape(c)} {p:.2f}</span>",
                            unsafe_allow_html=True)
        st.caption("The part of the photo each step's box covers (black where a box reaches outside the "
                   "image: the sampler reads zeros there).")

# ---- scores ------------------------------------------------------------------------------------
traj_col, label_col = st.columns([3, 2], gap="large")
with traj_col:
    st.markdown("#### Score trajectories")
    by_score = [c for c, _ in trace.top(len(trace.scores))]
    # No key: the widget resets to the new image's top five when the image changes.
    chosen = st.multiselect("Classes", by_score, default=figures.default_classes(trace, 5),
                            help="The five highest fused scores are shown first; add any other class.")
    st.plotly_chart(figures.trajectory_figure(trace, chosen, None if own_thresholds else threshold), key="trajectory",
                    config={"displaylogo": False})
    st.caption("Each line is one class's score at the global step, after each attention step, and after "
               f"{figures.fusion_text(predictor.cfg)}. A star marks the step that gave the class its "
               "best step score; the dashed line is the label threshold.")
with label_col:
    st.markdown("#### Labels")
    if labels:
        st.markdown(" ".join(f":green-badge[{md(c)} {trace.scores[c]:.2f}]" for c in labels))
    else:
        st.markdown(f"No class reaches {threshold:.2f}. Highest: **{md(top_class)}** {top_p:.2f}.")
    st.plotly_chart(figures.scores_figure(trace, threshold, n=min(10, len(trace.scores)),
                                          class_thresholds=own_thresholds), key="scores",
                    config={"displaylogo": False, "displayModeBar": False})
    st.caption(f"The highest fused scores; green bars are labels (≥ {threshold:.2f}, the red line"
               + ("; or ≥ the class's own threshold, the black tick" if own_thresholds else "") + "). "
               f"Inference took {1000 * (trace.seconds or 0):.0f} ms on {predictor.device}.")

# ---- look deeper -------------------------------------------------------------------------------
st.markdown("#### Look deeper")
tab_probe, tab_occlusion, tab_compare = st.tabs(["Probe a region", "Does the attention matter?",
                                                 "Compare with another model"])
no_steps = (f"This checkpoint has the {predictor.cfg.head} head, which has no attention steps: it scores the "
            "whole feature map at once.")
with tab_probe:
    if not k_steps:
        st.info(no_steps + " Heads without steps (baseline, csra) cannot be probed this way: there is no step that "
                "could read a region.", icon=":material/info:")
    else:
        probes = app.session_probes(model.key, result.digest)

        def add_probe(box) -> bool:
            try:
                probes.extend(probe_regions(predictor, original, [box]))
                return True
            except RAMError as exc:
                st.error(f"**This box cannot be probed.** {md(exc)}", icon=":material/error:")
                return False

        fig_col, side_col = st.columns([3, 2], gap="large")
        with fig_col:
            # a new key per probe count: after a probe is added the chart starts without a selection
            event = st.plotly_chart(
                analysis_figures.probe_figure(result.image, trace, probes), key=f"probe.{result.digest}.{len(probes)}",
                on_select="rerun", selection_mode="box",
                config={"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "zoom2d", "autoScale2d"]})
            drawn = analysis_figures.selected_box(event)
            seen = f"inspect.probe_seen.{result.digest}.{len(probes)}"  # a selection is probed once
            if drawn is not None and st.session_state.get(seen) != drawn:
                st.session_state[seen] = drawn
                if add_probe(drawn):
                    st.rerun()
            st.caption("Drag a rectangle on the photo to probe it (dotted: the steps' own boxes). "
                       + PROBE_EXPLANATION)
        with side_col:
            with st.form(f"inspect.probe_form.{result.digest}", border=True):
                st.markdown("**Or type a box** (pixels of the photo)")
                c = st.columns(4)
                w, h = trace.width, trace.height
                x0 = c[0].number_input("x0", 0, w, w // 4, key=f"inspect.probe_x0.{result.digest}")
                y0 = c[1].number_input("y0", 0, h, h // 4, key=f"inspect.probe_y0.{result.digest}")
                x1 = c[2].number_input("x1", 0, w, 3 * w // 4, key=f"inspect.probe_x1.{result.digest}")
                y1 = c[3].number_input("y1", 0, h, 3 * h // 4, key=f"inspect.probe_y1.{result.digest}")
                if (st.form_submit_button("Probe this box", icon=":material/crop_free:", help=PROBE_EXPLANATION)
                        and add_probe((x0, y0, x1, y1))):
                    st.rerun()
            rows = [{"region": f"Probe {n}", "box (px)": ", ".join(f"{v:.0f}" for v in p.box),
                     "top classes": ", ".join(f"{c} {v:.2f}" for c, v in p.top(3))} for n, p in enumerate(probes, 1)]
            rows += [{"region": f"Step {s.step}", "box (px)": ", ".join(f"{v:.0f}" for v in s.box),
                      "top classes": ", ".join(f"{c} {v:.2f}" for c, v in s.top(3))} for s in trace.steps]
            st.dataframe(rows, hide_index=True, width="stretch", key="inspect.probe_table",
                         column_config={"region": st.column_config.TextColumn(width="small"),
                                        "box (px)": st.column_config.TextColumn(width="small")})
            st.caption("The probes' top classes next to the steps' own (scores of one step each, not fused).")
            if probes and st.button("Clear the probes", key="inspect.probe_clear", icon=":material/delete:"):
                probes.clear()
                st.rerun()

with tab_occlusion:
    if not k_steps:
        st.info(no_steps + " There is no step region to remove.", icon=":material/info:")
    else:
        occlusion = result.derived.get("occlusion")
        if occlusion is None and st.button("Blank each step's region and run again", key="inspect.occlusion",
                                           icon=":material/layers_clear:", help=BLANK_EXPLANATION):
            with st.spinner("Running the head once per step…"):
                result.get("occlusion", lambda: occlude_steps(predictor, original, result.trace))
            st.rerun()  # drawn without the button from now on
        if occlusion is None:
            st.caption("For each step, blank the step's region of the **feature map** (not the photo) and run the "
                       "head again: the drop of each class's fused score says how much that step mattered.")
        else:
            effect = occlusion.step_effect()
            cols = st.columns(len(effect))
            for k, (col, e) in enumerate(zip(cols, effect), 1):
                col.metric(f"Step {k}", f"{e:.2f}", help="The largest change of any class's fused score when this "
                           "step's region is blanked (0: the step did not matter).")
            shown_classes = list(dict.fromkeys(labels + [c for c, _ in trace.top(5)]))[:10]
            st.plotly_chart(analysis_figures.step_occlusion_figure(occlusion.table(shown_classes)),
                            key=f"occlusion.{result.digest}", config={"displaylogo": False})
            st.caption(BLANK_EXPLANATION + " Red: the class's score falls without the region; a step whose removal "
                       "changes nothing did not matter. Classes: the labels and the five highest scores.")

with tab_compare:
    others = app.other_models(model)
    if not others:
        st.info("No other checkpoint in the sidebar's folders: add a folder that holds one (e.g. the baseline or "
                "the paper's model) to put it beside this one.", icon=":material/compare_arrows:")
    else:
        by_path = {o.path: o for o in others}
        pick = st.selectbox("Second model", list(by_path), index=None, format_func=lambda p: by_path[p].name,
                            key="inspect.second_model", placeholder="Pick a model to put beside this one…",
                            help="Any checkpoint found in the sidebar's folders, e.g. the baseline or the paper's "
                                 "model. It runs on the same photo; its result is kept like this one's.")
        if pick is not None:
            source_b = by_path[pick]
            try:
                with st.spinner(f"Loading {source_b.name}…"):
                    predictor_b = app.load_predictor(source_b, model.device)
                result_b = app.inspect_images(predictor_b, app.model_key(source_b, predictor_b), [good[index]],
                                              app.session_results())[0]
            except RAMError as exc:
                st.error(f"**The second model cannot be used.** {md(exc)}", icon=":material/error:")
            else:
                own_b = predictor_b.info.class_thresholds if use_class_thresholds else None
                trace_b = dataclasses.replace(result_b.trace, threshold=threshold, class_thresholds=own_b)
                table = disagreements(trace, trace_b)
                if table.empty:
                    st.warning("The two models have no class in common.")
                col_a, col_b = st.columns(2, gap="large")
                for col, name, res, tr, pred, tag in ((col_a, model.source.name, result, trace, predictor, "a"),
                                                      (col_b, source_b.name, result_b, trace_b, predictor_b, "b")):
                    with col:
                        st.markdown(f"**{tag.upper()}: {md(name)}**")
                        if pred.cfg.num_attention_steps:
                            st.plotly_chart(figures.attention_figure(res.image, tr), key=f"compare.{tag}.{res.digest}",
                                            config={"displaylogo": False})
                        else:
                            st.image(res.image, width="stretch")
                            st.caption(f"{pred.cfg.head} head: no attention steps to draw.")
                        shown_labels = tr.labels()
                        st.markdown(" ".join(f":green-badge[{md(c)} {tr.scores[c]:.2f}]" for c in shown_labels)
                                    or "No label.")
                agree = label_agreement(table)
                st.markdown(" · ".join(f"**{name}:** {md(', '.join(agree[v])) or 'none'}" for name, v in
                                       (("Labels of both", "both"), ("only A", "only A"), ("only B", "only B"))))
                st.dataframe(table.head(10).style.format({"score A": "{:.3f}", "score B": "{:.3f}", "A − B": "{:+.3f}"})
                             .background_gradient(cmap="PiYG", vmin=-1, vmax=1, subset=["A − B"]),
                             hide_index=True, width="stretch", key="inspect.compare_table")
                st.caption("The classes both models know, where their fused scores differ most first; each model's "
                           "labels follow its own thresholds.")

# ---- downloads ---------------------------------------------------------------------------------
st.markdown("#### Downloads")
stem = Path(result.name).stem or "image"
shown = trace  # the JSON's labels follow the slider and the per-class switch
d = st.columns(3)
d[0].download_button("Annotated PNG", lambda: render.annotated_png(result.image, trace), f"{stem}_ram.png",
                     "image/png", on_click="ignore", icon=":material/image:", width="stretch")
d[1].download_button("Steps as animated GIF", lambda: render.steps_gif(result.image, trace), f"{stem}_ram_steps.gif",
                     "image/gif", on_click="ignore", icon=":material/animation:", width="stretch",
                     disabled=not k_steps)
d[2].download_button("JSON trace", json.dumps(shown.to_json(), indent=2), f"{stem}_ram.json",
                     "application/json", on_click="ignore", icon=":material/data_object:", width="stretch")
st.caption("The JSON is the `python -m ram_core predict --json` schema: labels, fused and global scores, "
           "and per step its box (original pixels and fractions), transform and scores.")

with st.expander("Step details"):
    st.dataframe(
        [{"step": s.step, "s_x": s.transform["s_x"], "s_y": s.transform["s_y"], "t_x": s.transform["t_x"],
          "t_y": s.transform["t_y"], "box (px)": ", ".join(f"{v:.0f}" for v in s.box),
          "top": ", ".join(f"{c} {p:.2f}" for c, p in s.top(3))} for s in trace.steps],
        hide_index=True, width="stretch",
    )
