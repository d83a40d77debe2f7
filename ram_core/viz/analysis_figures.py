"""Plotly figures of the "look deeper" analyses: region probes, occlusion, false-label co-occurrence.

probe_figure            the photo with the steps' boxes (faint) and the probes drawn so far; dragging a
                        rectangle on it (box select) is how the Inspect page takes a new probe
step_occlusion_figure   one photo: the drop of each class's score when each step's region is blanked
deletion_figure         a dataset: mean score as steps are blanked by importance, against random boxes
occlusion_classes_figure  a dataset: per class, the drop for the step that gave the max vs a random box
false_label_figure      the false-label co-occurrence matrix (clickable squares)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd  # noqa: F401  (imported before plotly: see figures.py)
import plotly.graph_objects as go
from PIL import Image

from ..false_labels import FalseLabelMatrix
from ..trace import AttentionTrace
from .colors import rgba, step_color
from .figures import image_data_uri

PROBE_COLOR = "#ffe119"  # yellow: apart from the steps' colours
SELECT_GRID = 24  # points per side of the invisible grid that makes box selection possible on a photo


def _photo_axes(fig: go.Figure, w: int, h: int) -> None:
    fig.update_xaxes(range=[0, w], visible=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(range=[h, 0], visible=False, showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1,
                     constrain="domain")


def probe_figure(img: Image.Image, trace: AttentionTrace, probes: Sequence[Any] = (), height: int = 520) -> go.Figure:
    """The photo (original pixel coordinates), each step's box as a thin dotted outline, and each probe
    (objects with .box and .top()) as a yellow box tagged "P1 cat 0.91".  dragmode is box select: the
    rectangle a user drags comes back to Streamlit as the selection's box, in image pixels.  An
    invisible grid of points covers the photo, since plotly only offers box select on a chart with
    points to select."""
    w, h = trace.width, trace.height
    xs, ys = np.meshgrid(np.linspace(0, w, SELECT_GRID), np.linspace(0, h, SELECT_GRID))
    fig = go.Figure(go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", marker=dict(size=1, opacity=0),
                               hoverinfo="skip", showlegend=False, name="photo"))
    for s in trace.steps:
        x0, y0, x1, y1 = s.box
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=rgba(step_color(s.step), 0.8),
                      width=1.5, dash="dot"))
        fig.add_annotation(x=x0, y=y0, text=str(s.step), showarrow=False, xanchor="left", yanchor="top",
                           font=dict(size=11, color="white"), bgcolor=rgba(step_color(s.step), 0.8), borderpad=1)
    for n, p in enumerate(probes, 1):
        x0, y0, x1, y1 = p.box
        c, v = p.top(1)[0]
        fig.add_trace(go.Scatter(
            x=[x0, x1, x1, x0, x0], y=[y0, y0, y1, y1, y0], mode="lines", fill="toself",
            fillcolor=rgba(PROBE_COLOR, 0.12), line=dict(color=PROBE_COLOR, width=3, dash="dash"),
            name=f"Probe {n}", hoveron="fills", showlegend=False,
            text=f"<b>Probe {n}</b><br>" + "<br>".join(f"{k}: {q:.2f}" for k, q in p.top(3)),
            hoverlabel=dict(bgcolor=PROBE_COLOR, font=dict(color="black")),
        ))
        fig.add_annotation(x=x0, y=y1, text=f"<b>P{n}</b> {c} {v:.2f}", showarrow=False, xanchor="left",
                           yanchor="top", font=dict(size=13, color="black"), bgcolor=PROBE_COLOR, borderpad=3)
    fig.add_layout_image(dict(source=image_data_uri(img), xref="x", yref="y", x=0, y=0, sizex=w, sizey=h,
                              sizing="stretch", layer="below", xanchor="left", yanchor="top"))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=0), dragmode="select", hovermode="closest",
                      plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)",
                      newselection=dict(line=dict(color=PROBE_COLOR, width=3, dash="dash")),
                      meta=dict(kind="probe", probes=len(probes), image=trace.image))
    _photo_axes(fig, w, h)
    return fig


def selected_box(event: Any) -> list[float] | None:
    """The rectangle of a Streamlit plotly selection event ({"selection": {"box": [{"x": [x0, x1],
    "y": [y0, y1]}], ...}}) as [x0, y0, x1, y1], or None when the event holds no box."""
    try:
        boxes = event["selection"]["box"]
    except (KeyError, TypeError):
        return None
    if not boxes:
        return None
    b = boxes[-1]
    xs, ys = b.get("x") or [], b.get("y") or []
    if len(xs) < 2 or len(ys) < 2:
        return None
    try:
        values = [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white", **kw)
    return fig


def step_occlusion_figure(table: pd.DataFrame) -> go.Figure:
    """Heat map of StepOcclusion.table(): rows = classes, columns = steps, the drop of the class's fused
    score when the step's region is blanked (red: the score falls; blue: it rises)."""
    steps = [c for c in table.columns if c.startswith("step ")]
    z = table[steps].to_numpy(dtype=np.float64)
    span = max(0.05, float(np.abs(z).max()) if z.size else 0.05)
    fig = go.Figure(go.Heatmap(
        z=z, x=[s.capitalize() for s in steps], y=[f"{c} ({v:.2f})" for c, v in zip(table["class"], table["score"])],
        colorscale="RdBu_r", zmid=0, zmin=-span, zmax=span, text=[[f"{v:+.2f}" for v in row] for row in z],
        texttemplate="%{text}", hovertemplate="%{y}<br>%{x} blanked: score %{z:+.3f} lower<extra></extra>",
        colorbar=dict(title="drop", thickness=12),
    ))
    _layout(fig, max(220, 30 * len(table) + 90), title="Drop of each score when a step's region is blanked",
            meta={"kind": "step_occlusion"})
    fig.update_yaxes(autorange="reversed")
    for k, s in enumerate(steps):
        fig.add_shape(type="rect", xref="x", yref="paper", x0=k - 0.5, x1=k + 0.5, y0=1.0, y1=1.02,
                      line=dict(width=0), fillcolor=step_color(int(s.split()[1])))
    return fig


def deletion_figure(stats: dict[str, Any], cls: str | None = None) -> go.Figure:
    """Mean score of the true positives (all, or one class's) after blanking 0..K steps: in order of
    importance, and random boxes of the same sizes in the same order."""
    part = stats["overall"] if cls is None else stats["per_class"][cls]
    k = len(part["deletion_curve"]) - 1
    xs = list(range(k + 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=part["deletion_curve"], mode="lines+markers", name="steps, most important first",
                             line=dict(color="#e6194b", width=3),
                             hovertemplate="%{x} steps blanked: mean score %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=xs, y=part["random_curve"], mode="lines+markers",
                             name="random boxes of the same sizes", line=dict(color="#7f7f7f", width=2, dash="dash"),
                             hovertemplate="%{x} random boxes blanked: mean score %{y:.3f}<extra></extra>"))
    title = "Deletion curve" + (f": {cls}" if cls else "") + f" ({part['true_positives']} true positive{'' if part['true_positives'] == 1 else 's'})"
    _layout(fig, 360, title=title, legend=dict(orientation="h", y=-0.25), meta={"kind": "deletion"})
    fig.update_xaxes(title="regions blanked", tickmode="array", tickvals=xs)
    fig.update_yaxes(title="mean score", range=[0, 1.02])
    return fig


def occlusion_classes_figure(stats: dict[str, Any]) -> go.Figure:
    """Per class with true positives: the mean drop when the step that gave the max is blanked, and when
    a box of the same size at a random place is."""
    rows = [(c, s) for c, s in stats["per_class"].items() if s["mean_drop_step"] is not None]
    rows.sort(key=lambda cs: cs[1]["mean_drop_step"])
    names = [f"{c} ({s['true_positives'] - s['max_from_global']})" for c, s in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=names, x=[s["mean_drop_step"] for _, s in rows], orientation="h", name="its step blanked",
                         marker_color="#e6194b", hovertemplate="%{y}: %{x:.3f}<extra>its step</extra>"))
    fig.add_trace(go.Bar(y=names, x=[s["mean_drop_random"] for _, s in rows], orientation="h",
                         name="random box of the same size", marker_color="#bdbdbd",
                         hovertemplate="%{y}: %{x:.3f}<extra>random box</extra>"))
    _layout(fig, max(260, 26 * len(rows) + 110), barmode="group",
            title="Mean drop of a true positive's score (how many in brackets)",
            legend=dict(orientation="h", y=-0.12), meta={"kind": "occlusion_classes"})
    fig.update_xaxes(title="mean drop of the score")
    return fig


def false_label_figure(matrix: FalseLabelMatrix, min_count: int = 1) -> go.Figure:
    """The matrix as squares (rows: the class of the error, columns: the present class), coloured by
    lift on a log scale (white = as usual, red = more often than usual); cells seen in fewer than
    min_count error images are left out.  Squares, not a heat map, so that a click selects a cell:
    each point's customdata is [row class, present class]."""
    names = matrix.class_names
    rows = [r for r in range(len(names)) if matrix.errors[r] > 0]
    xs, ys, colour, data, text = [], [], [], [], []
    for r in rows:
        for p in range(len(names)):
            if matrix.counts[r, p] < max(1, min_count) or not np.isfinite(matrix.lift[r, p]):
                continue
            lift = float(matrix.lift[r, p])
            xs.append(names[p])
            ys.append(names[r])
            colour.append(math.log2(max(lift, 1 / 16)))
            data.append([names[r], names[p], int(matrix.counts[r, p]), int(matrix.errors[r]), lift,
                         float(matrix.rate[r, p]), float(matrix.base[r, p])])
            text.append(f"{lift:.1f}")
    error = "false positives" if matrix.kind == "FP" else "misses"
    usual = "of all photos" if matrix.kind == "FP" else "of the photos where the {row} is present"
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers+text", text=text, textfont=dict(size=10), customdata=data,
        marker=dict(symbol="square", size=26, color=colour, colorscale="RdBu_r", cmid=0, cmin=-3, cmax=3,
                    line=dict(color="#666", width=0.5),
                    colorbar=dict(title="lift", thickness=12, tickvals=[-3, -2, -1, 0, 1, 2, 3],
                                  ticktext=["⅛", "¼", "½", "1", "2", "4", "8"])),
        hovertemplate=(f"<b>%{{customdata[0]}}</b> {error}: %{{customdata[3]}}<br>with <b>%{{customdata[1]}}</b> "
                       f"present: %{{customdata[2]}} (%{{customdata[5]:.0%}})<br>usually %{{customdata[6]:.0%}} "
                       + usual.replace("{row}", "%{customdata[0]}") + "<br>lift %{customdata[4]:.2f}<extra></extra>"),
    ))
    present = [names[p] for p in range(len(names))]
    _layout(fig, max(300, 30 * len(rows) + 160), meta={"kind": "false_labels", "error": matrix.kind},
            clickmode="event+select", dragmode=False,
            title=("False positives (rows) and the classes present in their photos (columns)" if matrix.kind == "FP"
                   else "Missed classes (rows) and the other classes present in their photos (columns)"))
    fig.update_xaxes(categoryorder="array", categoryarray=present, tickangle=-45, title="present class")
    fig.update_yaxes(categoryorder="array", categoryarray=[names[r] for r in rows][::-1],
                     title="false positive" if matrix.kind == "FP" else "missed class")
    return fig
