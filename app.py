"""RAM Studio's home page: `streamlit run app.py`.

The other pages are pages/NN_Name.py.  Every page calls app_support.model_picker() first: it draws
the sidebar they share (navigation and the model section); the rest of what pages do lives in
ram_core/app_support.py and ram_core/viz/.
"""

import streamlit as st

from ram_core import app_support as app
from ram_core.inference import device_label
from ram_core.safe_text import md

INTRO = """
A CNN backbone turns the photo into a feature map. A recurrent attention module then looks at it
step by step:

1. **Global step**: an LSTM reads the whole map and scores every class.
2. **Attention steps 1..K**: a spatial transformer `M = [[s_x, 0, t_x], [0, s_y, t_y]]` samples a
   region of the map (no region proposals); the LSTM reads it with the memory of the earlier steps,
   scores the classes it sees there, and predicts where to look next.
3. **Fusion**: a class's score is its maximum over the steps, so one good region per label is enough.
"""


st.set_page_config(page_title="RAM Studio", page_icon=":material/center_focus_strong:", layout="wide")
model = app.model_picker()
st.title("RAM Studio")
st.markdown("Multi-label image recognition by **recurrently discovering attentional regions** "
            "(Wang, Chen, Li, Xu, Lin; ICCV 2017), and a look inside it.")
intro, model_col = st.columns([3, 2], gap="large")
with intro:
    st.markdown(INTRO)
    st.markdown("#### Where next")
    st.page_link("pages/1_Inspect.py", label="Inspect", icon=":material/center_focus_strong:")
    st.caption("Upload photos (or pick a sample): each step's box, the region it sampled, how the scores "
               "evolved, the final labels; download the annotated PNG, a GIF of the steps and the JSON trace.")
    if (app.PAGES_DIR / "2_Evaluate.py").is_file():
        st.page_link("pages/2_Evaluate.py", label="Evaluate", icon=":material/analytics:")
        st.caption("Score a checkpoint on a labelled dataset: per-class AP, mAP and the paper's metrics.")
    if (app.PAGES_DIR / "3_Train.py").is_file():
        st.page_link("pages/3_Train.py", label="Train", icon=":material/model_training:")
        st.caption("Train or fine-tune on your own photos (a VOC or COCO folder, an image folder with a labels "
                   "file, or a zip), with live curves; the new checkpoint opens in Inspect and Evaluate.")
    st.caption("From a terminal, `ram-studio predict photo.jpg --json` (or `python -m ram_core predict ...`) "
               "prints the same trace.")
with model_col:
    st.markdown("#### Current model")
    if model.predictor is None:
        if model.missing_default or model.source is None:
            st.info(model.error, icon=":material/info:")
        else:
            st.error(model.error, icon=":material/error:")
    else:
        p = model.predictor
        facts = app.describe_model(p)
        cols = app.metric_row(3)
        cols[0].metric("Steps (K)", p.cfg.num_steps if p.cfg.head == "ram" else 0)
        cols[1].metric("Classes", p.cfg.num_classes)
        cols[2].metric("mAP", facts.get("mAP", "—"),
                       help="From the checkpoint's evaluation summary, else the validation mAP training stored "
                            "with its best epoch" + (" (this one)" if "mAP from" in facts else ""))
        st.markdown(f"**{md(model.source.name)}** · {facts['Backbone']} · input {facts['Input']}  \n"
                    f"Running on **{device_label(p.device)}**")
        if "Trained on" in facts:
            st.caption(f"Trained on {md(facts['Trained on'])}" + (f", {md(facts['Date'])}" if "Date" in facts else ""))
        with st.expander(f"The {p.cfg.num_classes} classes"):
            st.markdown(md(", ".join(p.class_names)))
    st.caption("Change the model in the sidebar: the default model, a checkpoint found in a folder, or an "
               "uploaded `.safetensors` file. Every page uses the same choice.")

