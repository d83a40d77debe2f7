"""ram_core.viz: plotly figures, PNG/GIF/crops and step colours, from hand-made traces (no model)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ram_core.trace import AttentionTrace, StepTrace
from ram_core.viz import colors, figures, render

CLASSES = ["person", "dog", "car", "cat"]


def make_trace(width=200, height=100, boxes=None) -> AttentionTrace:
    """Three steps: left half, a box reaching past the right edge (mirrored), a small centre box."""
    boxes = boxes or [
        ([0.0, 0.0, 0.5, 1.0], {"s_x": 0.5, "s_y": 1.0, "t_x": -0.5, "t_y": 0.0}),
        ([0.75, 0.25, 1.25, 0.75], {"s_x": -0.5, "s_y": 0.5, "t_x": 1.0, "t_y": 0.0}),
        ([0.4, 0.4, 0.6, 0.6], {"s_x": 0.2, "s_y": 0.2, "t_x": 0.0, "t_y": 0.0}),
    ]
    step_scores = [
        {"person": 0.9, "dog": 0.2, "car": 0.1, "cat": 0.05},
        {"person": 0.3, "dog": 0.7, "car": 0.2, "cat": 0.1},
        {"person": 0.4, "dog": 0.1, "car": 0.6, "cat": 0.2},
    ]
    steps = []
    for k, ((bn, tf), sc) in enumerate(zip(boxes, step_scores), 1):
        px = [min(max(v, 0), 1) * s for v, s in zip(bn, (width, height, width, height))]
        steps.append(StepTrace(k, tf, bn, px, sc))
    fused = {c: max(s.scores[c] for s in steps) for c in CLASSES}
    max_step = {c: 1 + int(np.argmax([s.scores[c] for s in steps])) for c in CLASSES}
    return AttentionTrace("photo.jpg", width, height, list(CLASSES), fused,
                          {"person": 0.5, "dog": 0.4, "car": 0.3, "cat": 0.35}, steps, max_step, seconds=0.012)


@pytest.fixture
def image():
    """200x100: left half red, right half blue, so crops can be checked by colour."""
    arr = np.zeros((100, 200, 3), np.uint8)
    arr[:, :100] = (255, 0, 0)
    arr[:, 100:] = (0, 0, 255)
    return Image.fromarray(arr)


def test_each_step_gets_a_distinct_colour_and_the_global_step_grey():
    palette = [colors.step_color(k) for k in range(1, 11)]
    assert len(set(palette)) == 10
    assert colors.step_color(0) == colors.GLOBAL_COLOR not in palette
    assert colors.step_color(11) == colors.step_color(1)  # cycles past ten
    assert colors.rgba("#ff0000", 0.5) == "rgba(255, 0, 0, 0.5)"
    assert colors.text_color_on("#ffffff") == "#000000" and colors.text_color_on("#000000") == "#ffffff"


def test_attention_figure_draws_one_box_per_step_with_hover_and_tags(image):
    trace = make_trace()
    fig = figures.attention_figure(image, trace)
    boxes = [t for t in fig.data if t.name.startswith("Step ") and t.name != "Step 0 (global)"]
    assert len(boxes) == 3
    first = boxes[0]
    assert list(first.x) == [0.0, 100.0, 100.0, 0.0, 0.0]  # original pixels, closed rectangle
    assert list(first.y) == [0.0, 0.0, 100.0, 100.0, 0.0]
    assert first.line.color == colors.step_color(1)
    assert "Step 1" in first.text and "person: 0.90" in first.text  # the fill's hover label
    assert first.hoveron == "fills"
    tags = [a.text for a in fig.layout.annotations if a.visible is not False]
    assert tags == ["<b>1</b> person 0.90", "<b>2</b> dog 0.70", "<b>3</b> car 0.60"]
    # The photo is embedded once, in original-pixel axes (y downwards).
    (layout_image,) = fig.layout.images
    assert layout_image.sizex == 200 and layout_image.sizey == 100
    assert layout_image.source.startswith("data:image/jpeg;base64,")
    assert tuple(fig.layout.yaxis.range) == (100, 0)
    assert fig.layout.meta["kind"] == "attention" and fig.layout.meta["steps"] == 3


def test_attention_figure_frames_step_through_the_boxes(image):
    fig = figures.attention_figure(image, make_trace())
    names = [f.name for f in fig.frames]
    assert names == ["global", "1", "2", "3", "all"]
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["Global", "Step 1", "Step 2", "Step 3", "All"]
    assert slider.active == 4  # starts on "All", the figure's own state
    assert fig.layout.updatemenus[0].buttons[0].label.endswith("Play")

    def shown(frame):
        return [t["name"] for t in frame.data if t["x"][0] is not None]

    frames = {f.name: f for f in fig.frames}
    assert shown(frames["global"]) == ["Step 0 (global)"]
    assert shown(frames["2"]) == ["Step 1", "Step 2"]
    assert shown(frames["all"]) == ["Step 1", "Step 2", "Step 3"]
    # Every frame keeps one annotation slot per step (plotly merges annotations by index).
    assert all(len(f.layout.annotations) == 4 for f in fig.frames)
    assert [a.visible for a in frames["2"].layout.annotations] == [False, True, True, False]
    current = frames["2"].data[2]
    assert current["line"]["width"] > frames["2"].data[1]["line"]["width"]  # step 2 emphasised


def test_trajectory_figure_has_a_line_per_class_and_marks_the_max_step():
    trace = make_trace()
    fig = figures.trajectory_figure(trace, ["dog", "car"], threshold=0.5)
    lines = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in lines] == ["dog", "car"]
    dog = lines[0]
    assert list(dog.x) == ["Global", "Step 1", "Step 2", "Step 3"]
    assert list(dog.y) == [0.4, 0.2, 0.7, 0.1]
    dog_max = next(t for t in fig.data if t.legendgroup == "dog" and t.showlegend is False)
    assert list(dog_max.x) == ["Step 2", "Fused"] and list(dog_max.y) == [0.7, 0.7]
    assert dog_max.marker.symbol[0] == "star"
    assert list(fig.layout.xaxis.categoryarray) == ["Global", "Step 1", "Step 2", "Step 3", "Fused"]
    assert any(s.y0 == 0.5 for s in fig.layout.shapes)  # the threshold line
    assert figures.default_classes(trace, 2) == ["person", "dog"]


def test_scores_figure_colours_labels_above_the_threshold():
    fig = figures.scores_figure(make_trace(), threshold=0.65, n=3)
    bar = fig.data[0]
    assert list(bar.y) == ["car", "dog", "person"]  # highest at the top
    assert [c == "#2ca02c" for c in bar.marker.color] == [False, True, True]


def test_annotated_png_and_gif(image):
    trace = make_trace()
    png = Image.open(io.BytesIO(render.annotated_png(image, trace)))
    assert png.format == "PNG" and png.size == (200, 100)
    # Step 1's box outline runs down the left edge, in its colour; pixels outside every box are untouched.
    arr = np.asarray(png.convert("RGB"))
    assert tuple(arr[50, 1]) == colors.hex_to_rgb(colors.step_color(1))
    assert tuple(arr[90, 130]) == (0, 0, 255)
    gif = Image.open(io.BytesIO(render.steps_gif(image, trace)))
    assert gif.format == "GIF" and gif.n_frames == 3 + 2  # global, steps 1..3, all
    assert gif.info.get("loop") == 0


def test_region_crops_follow_the_sampler(image):
    crops = render.region_crops(image, make_trace(), size=64)
    assert len(crops) == 3
    assert all(max(c.size) == 64 for c in crops)
    left = np.asarray(crops[0])[10:-10, 10:-10]
    assert (left[..., 0] > 200).all() and (left[..., 2] < 50).all()  # the red half
    # Step 2 reaches past the right edge: that part is black (zeros), and s_x < 0 mirrors it to the left.
    mirrored = np.asarray(crops[1])
    h = mirrored.shape[0] // 2
    assert mirrored[h, 8].max() < 30 and mirrored[h, -8][2] > 200


def test_display_copy_only_downscales():
    big = Image.new("RGB", (4000, 1000))
    assert render.display_copy(big, 1600).size == (1600, 400)
    small = Image.new("RGB", (300, 200))
    assert render.display_copy(small, 1600) is small


def test_tags_of_boxes_sharing_a_corner_do_not_overlap(image):
    same = ([0.2, 0.3, 0.8, 0.9], {"s_x": 0.6, "s_y": 0.6, "t_x": 0.0, "t_y": 0.2})
    trace = make_trace(boxes=[same, same, same])
    fig = figures.attention_figure(image, trace)
    shifts = [a.yshift for a in fig.layout.annotations[1:]]  # slot 0 is the global step's tag
    assert len(set(shifts)) == 3  # stacked, one row each
    gif = Image.open(io.BytesIO(render.steps_gif(image, trace)))
    assert gif.n_frames == 5
