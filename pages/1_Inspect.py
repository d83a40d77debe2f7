"""Inspect: where each recurrent step looked, what it saw, and how the scores evolved."""

import dataclasses
import json
from pathlib import Path

import streamlit as st

from ram_core import app_support as app
from ram_core.viz import figures, render
from ram_core.viz.colors import step_color

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
                             help="JPEG, PNG, WebP, BMP, GIF or TIFF; EXIF rotation is applied.")
samples = app.list_samples()
picked = right.pills("Or try a sample photo", [s.name for s in samples], selection_mode="multi",
                     format_func=lambda n: next(s.title for s in samples if s.name == n), key="inspect.samples")

inputs = [app.read_image_input(f.name, f.getvalue()) for f in uploads or []]
inputs += [app.read_image_input(s.name, s.read(), "sample") for s in samples if s.name in (picked or [])]
# an image sent here from the Evaluate page's browser ("open in Inspect")
if (sent := st.session_state.get("inspect_path")) and Path(sent).is_file():
    inputs.append(app.read_image_input(Path(sent).name, Path(sent).read_bytes(), "sample"))
for bad in (i for i in inputs if i.error):
    st.error(f"**Could not read an upload.** {bad.error}", icon=":material/broken_image:")
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
threshold = thr_col.slider("Label threshold", 0.0, 1.0, 0.5, 0.01, key="inspect.threshold",
                           help="A class is a label when its fused score is at least this.")
result = results[min(index, len(results) - 1)]
trace = result.trace
labels = trace.labels(threshold)

if len(results) > 1:
    with st.expander(f"All {len(results)} images", expanded=False):
        st.dataframe(
            [{"image": r.name, "labels": ", ".join(r.trace.labels(threshold)) or "—",
              "top score": round(r.trace.top(1)[0][1], 3) if r.trace.scores else None,
              "ms": round(1000 * (r.trace.seconds or 0))} for r in results],
            hide_index=True, width="stretch",
        )

st.subheader(result.name)
m = st.columns(5)
m[0].metric("Labels", len(labels), help=f"Classes with a fused score ≥ {threshold:.2f}")
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
                            f"<br><span style='font-size:0.85em'>{c} {p:.2f}</span>", unsafe_allow_html=True)
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
    st.plotly_chart(figures.trajectory_figure(trace, chosen, threshold), key="trajectory",
                    config={"displaylogo": False})
    st.caption("Each line is one class's score at the global step, after each attention step, and after "
               "fusion (the category-wise max over steps). A star marks the step that gave the class its "
               "fused score; the dashed line is the label threshold.")
with label_col:
    st.markdown("#### Labels")
    if labels:
        st.markdown(" ".join(f":green-badge[{c} {trace.scores[c]:.2f}]" for c in labels))
    else:
        st.markdown(f"No class reaches {threshold:.2f}. Highest: **{top_class}** {top_p:.2f}.")
    st.plotly_chart(figures.scores_figure(trace, threshold, n=min(10, len(trace.scores))), key="scores",
                    config={"displaylogo": False, "displayModeBar": False})
    st.caption(f"The highest fused scores; green bars are labels (≥ {threshold:.2f}, the red line). "
               f"Inference took {1000 * (trace.seconds or 0):.0f} ms on {predictor.device}.")

# ---- downloads ---------------------------------------------------------------------------------
st.markdown("#### Downloads")
stem = Path(result.name).stem or "image"
shown = dataclasses.replace(trace, threshold=threshold)  # the JSON's labels follow the slider
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
