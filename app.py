"""RAM Studio home page (placeholder until the app issue lands): `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="RAM Studio", layout="wide")
st.title("RAM Studio")
st.write(
    "Recurrent-attention multi-label image recognition (Wang et al., ICCV 2017). "
    "Use `python -m ram_core predict IMAGE` for now; the inspect page is on its way."
)
