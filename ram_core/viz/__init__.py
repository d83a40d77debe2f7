"""Pictures of traces: plotly figures (figures.py), PNG/GIF/crops with Pillow (render.py), and the
colour of each step (colors.py).  Nothing here imports streamlit."""
