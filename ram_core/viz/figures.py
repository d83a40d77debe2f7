"""Interactive plotly figures of one AttentionTrace.

attention_figure: the photo with each step's box (hover: the step and its top scores), a slider and
a play button that walk through the steps (plotly frames, so moving them never reruns the model).
trajectory_figure: for chosen classes, the score at the global step, at steps 1..K and after fusion.
scores_figure: the fused scores against the threshold.

Figures use the original image's pixel coordinates (the trace's `box`), whatever size of image is
embedded for display.
"""

from __future__ import annotations

import base64
import io

# plotly looks pandas up in sys.modules without importing it; imported lazily by another session's
# thread, a half-initialised pandas crashes figures drawn meanwhile (the load test found it)
import pandas  # noqa: F401
import plotly.graph_objects as go
from PIL import Image

from ..trace import AttentionTrace
from .colors import rgba, step_color, text_color_on
from .render import display_copy

FIGURE_MAX_SIDE = 1024  # pixels of the photo embedded in the figure (the page shows ~700)
CLASS_PALETTE = (  # classes (trajectory lines) in colours that differ from the steps' box colours
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)

GLOBAL_FRAME = "global"
ALL_FRAME = "all"


def image_data_uri(img: Image.Image, max_side: int = FIGURE_MAX_SIDE, quality: int = 85) -> str:
    small = display_copy(img, max_side).convert("RGB")
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _top_text(scores: dict[str, float], n: int) -> str:
    return "<br>".join(f"{c}: {p:.2f}" for c, p in sorted(scores.items(), key=lambda kv: -kv[1])[:n])


def _rect(box: list[float]) -> tuple[list[float], list[float]]:
    x0, y0, x1, y1 = box
    return [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]


def _box_trace(name: str, box: list[float] | None, color: str, hover: str, emphasis: str) -> dict:
    """A closed rectangle; emphasis is 'normal', 'current' (the step being shown) or 'faded' (earlier)."""
    xs, ys = _rect(box) if box is not None else ([None], [None])
    width = {"normal": 3, "current": 5, "faded": 1.5}[emphasis]
    fill = {"normal": 0.06, "current": 0.18, "faded": 0.0}[emphasis]
    return dict(
        type="scatter", x=xs, y=ys, mode="lines", name=name, fill="toself", fillcolor=rgba(color, fill),
        line=dict(color=rgba(color, 0.55) if emphasis == "faded" else color, width=width,
                  dash="dot" if emphasis == "faded" else "solid"),
        # A fill's hover label shows the trace's (scalar) text: the step and its top scores.
        hoveron="fills", text=hover,
        hoverlabel=dict(bgcolor=color, font=dict(color=text_color_on(color)), namelength=0),
        showlegend=False,
    )


TAG_PX = 22  # a tag's height on screen (13 px text + padding)


def _tag(x: float, y: float, text: str, color: str, height: int, faded: bool = False, row: int = 0) -> dict:
    """A label on a box's top-left corner: above the box, or inside it when the box touches the top;
    `row` moves it down by whole tag heights, so that tags of boxes sharing a corner do not overlap."""
    inside = y < 0.06 * height
    return dict(
        x=x, y=y, xref="x", yref="y", text=text, showarrow=False, xanchor="left",
        yanchor="top" if inside else "bottom", yshift=-row * TAG_PX, bgcolor=color, borderpad=3,
        font=dict(color=text_color_on(color), size=13), opacity=0.55 if faded else 1.0,
    )


def _tag_rows(corners: list[tuple[float, float]], texts: list[str], height: int, px_per_unit: float) -> list[int]:
    """For each tag (in step order) the first row where it overlaps no earlier tag, in screen pixels."""
    placed: list[tuple[float, float, float, float]] = []
    rows = []
    for (x, y), text in zip(corners, texts):
        plain = text.replace("<b>", "").replace("</b>", "")
        left, width = x * px_per_unit, 7.5 * len(plain) + 8
        top0 = y * px_per_unit - (0 if y < 0.06 * height else TAG_PX)
        row = 0
        while row < 50:
            top = top0 + row * TAG_PX
            rect = (left, top, left + width, top + TAG_PX)
            if not any(r[0] < rect[2] and rect[0] < r[2] and r[1] < rect[3] and rect[1] < r[3] for r in placed):
                break
            row += 1
        placed.append(rect)
        rows.append(row)
    return rows


def attention_figure(img: Image.Image, trace: AttentionTrace, top: int = 3, height: int | None = None,
                     ms_per_step: int = 900, width_hint: int = 540) -> go.Figure:
    """The photo with the boxes of steps 1..K; a slider (Global, 1..K, All) and a play button.
    Without a height, the figure is as tall as the photo drawn `width_hint` pixels wide (within limits)."""
    w, h = trace.width, trace.height
    k = len(trace.steps)
    controls = 90 if k else 0  # room for the slider and the play button
    if height is None:
        height = int(min(760, max(260, width_hint * h / max(w, 1)))) + 24 + controls
    # Screen pixels per image pixel (the photo keeps its aspect ratio inside the plot area).
    px_per_unit = min((height - 24 - controls) / max(h, 1), width_hint / max(w, 1))
    whole = [0.0, 0.0, float(w), float(h)]
    global_hover = f"<b>Step 0 (global)</b><br>{_top_text(trace.global_scores, top)}"
    step_hover = [f"<b>Step {s.step}</b><br>{_top_text(s.scores, top)}" for s in trace.steps]

    def label(s) -> str:
        c, p = s.top(1)[0] if s.scores else ("", 0.0)
        return f"<b>{s.step}</b> {c} {p:.2f}"

    def global_label() -> str:
        c, p = max(trace.global_scores.items(), key=lambda kv: kv[1]) if trace.global_scores else ("", 0.0)
        return f"<b>0</b> global · {c} {p:.2f}"

    rows = _tag_rows([(s.box[0], s.box[1]) for s in trace.steps], [label(s) for s in trace.steps], h, px_per_unit)

    def state(shown: int | None, current: int | None, show_global: bool) -> tuple[list[dict], list[dict]]:
        """Traces and tags with steps 1..shown visible (None: all), `current` emphasised.  Always K + 1
        of each, in fixed slots (0 = global, k = step k): plotly's animation merges a frame's
        annotations into the figure's by index, so a hidden tag must stay in its slot, invisible."""
        traces = [_box_trace("Step 0 (global)", whole if show_global else None, step_color(0), global_hover, "current")]
        tags = [{**_tag(0, 0, global_label(), step_color(0), h), "visible": show_global}]
        for s, hover, row in zip(trace.steps, step_hover, rows):
            visible = shown is None or s.step <= shown
            emphasis = "normal" if current is None else ("current" if s.step == current else "faded")
            traces.append(_box_trace(f"Step {s.step}", s.box if visible else None, step_color(s.step), hover, emphasis))
            tags.append({**_tag(s.box[0], s.box[1], label(s), step_color(s.step), h, emphasis == "faded", row),
                         "visible": visible})
        return traces, tags

    data, tags = state(None, None, False)
    fig = go.Figure(data=data)
    fig.add_layout_image(dict(source=image_data_uri(img), xref="x", yref="y", x=0, y=0, sizex=w, sizey=h,
                              sizing="stretch", layer="below", xanchor="left", yanchor="top"))
    frames = []
    if k:
        names = [GLOBAL_FRAME] + [str(s.step) for s in trace.steps] + [ALL_FRAME]
        for name in names:
            if name == GLOBAL_FRAME:
                fd, ft = state(0, None, True)
            elif name == ALL_FRAME:
                fd, ft = state(None, None, False)
            else:
                fd, ft = state(int(name), int(name), False)
            frames.append(go.Frame(name=name, data=fd, traces=list(range(len(fd))), layout=dict(annotations=ft)))
        fig.frames = frames

        def goto(name: str, duration: int) -> list:
            return [[name], dict(mode="immediate", frame=dict(duration=duration, redraw=True),
                                 transition=dict(duration=0))]

        labels = {GLOBAL_FRAME: "Global", ALL_FRAME: "All"}
        fig.update_layout(
            sliders=[dict(
                active=len(names) - 1, x=0.2, len=0.8, y=0, yanchor="top", pad=dict(t=8, b=0),
                currentvalue=dict(prefix="Showing: ", font=dict(size=13)),
                steps=[dict(label=labels.get(n, f"Step {n}"), method="animate", args=goto(n, 0)) for n in names],
            )],
            updatemenus=[dict(
                type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top", pad=dict(t=28, r=8),
                showactive=False,
                buttons=[
                    dict(label="▶ Play", method="animate",
                         args=[None, dict(mode="immediate", fromcurrent=False, transition=dict(duration=0),
                                          frame=dict(duration=ms_per_step, redraw=True))]),
                    dict(label="❚❚", method="animate",
                         args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                            transition=dict(duration=0))]),
                ],
            )],
        )
    fig.update_layout(
        annotations=tags, height=height, margin=dict(l=0, r=0, t=24, b=controls),
        hovermode="closest", dragmode="pan", plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)",
        meta=dict(kind="attention", steps=k, image=trace.image),
    )
    fig.update_xaxes(range=[0, w], visible=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(range=[h, 0], visible=False, showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1,
                     constrain="domain")
    return fig


def default_classes(trace: AttentionTrace, n: int = 5) -> list[str]:
    """The n classes with the highest fused scores."""
    return [c for c, _ in trace.top(n)]


def trajectory_figure(trace: AttentionTrace, classes: list[str] | None = None, threshold: float | None = None,
                      height: int = 420) -> go.Figure:
    """One line per class: its score at the global step, steps 1..K, and after fusion.  A star marks
    the step that gave the class its fused (max) score; a dotted segment leads to the fused score.
    A model with a companion branch also shows the recurrent branch's own score and the companion's,
    the two scores the fused one mixes."""
    classes = classes if classes is not None else default_classes(trace)
    k = len(trace.steps)
    branches = trace.branch_scores or {}
    tail = (["Recurrent", "Companion"] if branches else []) + ["Fused"]
    xs = ["Global"] + [f"Step {s.step}" for s in trace.steps] + tail
    ticks = [f"<span style='color:{step_color(i)}'><b>{x}</b></span>" if 0 < i <= k else f"<b>{x}</b>"
             for i, x in enumerate(xs)]
    fig = go.Figure()
    for i, c in enumerate(classes):
        color = CLASS_PALETTE[i % len(CLASS_PALETTE)]
        path = [trace.global_scores[c]] + [s.scores[c] for s in trace.steps]
        fig.add_trace(go.Scatter(
            x=xs[:k + 1], y=path, mode="lines+markers", name=c, legendgroup=c, line=dict(color=color, width=2.5),
            marker=dict(size=7), hovertemplate=f"<b>{c}</b><br>%{{x}}: %{{y:.3f}}<extra></extra>",
        ))
        best = trace.max_step.get(c, 0)
        ends = [(xs[best], path[best], "star", 15, f"max at {xs[best]}")]
        if branches:
            ends += [("Recurrent", branches["recurrent"][c], "circle", 10, "recurrent branch"),
                     ("Companion", branches["companion"][c], "square", 10, "companion branch")]
        ends.append(("Fused", trace.scores[c], "diamond", 11, "fused"))
        fig.add_trace(go.Scatter(
            x=[e[0] for e in ends], y=[e[1] for e in ends], mode="lines+markers", legendgroup=c,
            showlegend=False, line=dict(color=color, width=1.5, dash="dot"),
            marker=dict(symbol=[e[2] for e in ends], size=[e[3] for e in ends], color=color,
                        line=dict(color="white", width=1)),
            hovertemplate=[f"<b>{c}</b><br>{e[4]}: %{{y:.3f}}<extra></extra>" for e in ends],
        ))
    if threshold is not None:
        fig.add_hline(y=threshold, line=dict(color="#888", dash="dash", width=1),
                      annotation_text=f"threshold {threshold:.2f}", annotation_position="top left")
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), hovermode="closest",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=""),
        meta=dict(kind="trajectory", classes=list(classes), steps=k),
    )
    fig.update_xaxes(categoryorder="array", categoryarray=xs, tickmode="array", tickvals=xs, ticktext=ticks)
    fig.update_yaxes(range=[-0.02, 1.04], title_text="score (probability)", zeroline=False)
    return fig


def fusion_text(cfg) -> str:
    """How a RAM config's fused scores come from its steps, in words (captions of the trajectories)."""
    if cfg.head != "ram":
        return f"its fused score (the {cfg.head} head has no attention steps: the same score)"
    if cfg.fusion == "average":
        text = "fusion (the mean, in logits, of the global step and the best step per class)"
    elif cfg.fuse_global:
        text = "fusion (the category-wise max over the global step and the attention steps)"
    else:
        text = "fusion (the category-wise max over the attention steps)"
    if cfg.companion != "none":
        w = cfg.companion_weight
        companion = f"companion branch's ({cfg.companion.upper()} on the whole map, trained on its own loss)"
        if cfg.class_companion_weights is None:
            text += f"; that is the recurrent branch's score, mixed {w:.0%} / {1 - w:.0%} (in logits) with the {companion}"
        else:  # per-class weights (training/fusion_weights.py): name the classes that differ from the rest
            own = {c: v for c, v in zip(cfg.class_names, cfg.class_companion_weights) if v != w}
            text += (f"; that is the recurrent branch's score, mixed (in logits) with the {companion}: "
                     f"the recurrent branch's share is {w:.0%}"
                     + (", except " + ", ".join(f"{c} {v:.0%}" for c, v in own.items()) if own else "")
                     + " (chosen per class on out-of-fold scores)")
    return text


def scores_figure(trace: AttentionTrace, threshold: float, n: int = 10, height: int | None = None,
                  class_thresholds: dict[str, float] | None = None) -> go.Figure:
    """Horizontal bars of the n highest fused scores, labels (at or above the threshold) in colour.
    With class_thresholds, a class that has its own is a label at or above it (a black tick on its bar)."""
    top = trace.top(n)[::-1]  # plotly draws the first bar at the bottom
    own = class_thresholds or {}
    above = [p >= own.get(c, threshold) for c, p in top]
    fig = go.Figure(go.Bar(
        x=[p for _, p in top], y=[c for c, _ in top], orientation="h",
        marker=dict(color=["#2ca02c" if a else "#c7c7c7" for a in above]),
        text=[f"{p:.2f}" for _, p in top], textposition="outside", cliponaxis=False,
        hovertemplate="<b>%{y}</b>: %{x:.3f}<extra></extra>",
    ))
    fig.add_vline(x=threshold, line=dict(color="#d62728", dash="dash", width=1.5))
    ticks = [(c, own[c]) for c, _ in top if c in own]
    if ticks:
        fig.add_trace(go.Scatter(x=[t for _, t in ticks], y=[c for c, _ in ticks], mode="markers", showlegend=False,
                                 marker=dict(symbol="line-ns", size=18, line=dict(color="black", width=3)),
                                 hovertemplate="<b>%{y}</b>: its own threshold %{x:.3f}<extra></extra>"))
    fig.update_layout(height=height or 60 + 26 * len(top), margin=dict(l=10, r=30, t=10, b=10),
                      meta=dict(kind="scores"))
    fig.update_xaxes(range=[0, 1.08], title_text="fused score")
    return fig
