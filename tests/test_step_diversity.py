"""Do the default model's steps find different objects?  On the bundled photos (hand-drawn object
boxes in assets/samples/objects.json) and on generated scenes with two separate objects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ram_core.attention_stats import objects_visited
from ram_core.imageio import open_image
from ram_core.inference import Predictor

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
OBJECTS = json.loads((SAMPLES / "objects.json").read_text())


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_checkpoint(None, "cpu")


def _visited(trace, objects) -> set[int]:
    boxes = np.array([s.box_norm for s in trace.steps])  # (K, 4) fractions of the image
    found, _ = objects_visited(boxes, [(o["name"], *o["box"], False) for o in objects], (trace.width, trace.height))
    return found


@pytest.mark.parametrize("name", ["astronaut.jpg", "motorcycle.jpg"])
def test_steps_visit_two_objects_of_a_sample_photo(predictor, name):
    trace = predictor.predict_one(name, open_image(SAMPLES / name))
    found = _visited(trace, OBJECTS[name])
    assert len(found) >= 2, [OBJECTS[name][j]["name"] for j in found]


# Where the two objects go, as fractions of the canvas (x0, y0, x1, y1): away from the centre and
# the quadrant centres, the anchors of the five steps, so a fixed layout of boxes visits neither
# and the steps have to move to find them.
SPOTS = [(0.29, 0.50, 0.48, 0.96), (0.53, 0.04, 0.72, 0.46)]
ANCHOR_POINTS = [(0.5, 0.5), (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]


def _two_object_scene(first: str, first_box, second: str, second_box, size=(896, 448)):
    """A grey canvas with a crop of one sample photo at SPOTS[0] and another at SPOTS[1]."""
    canvas = Image.new("RGB", size, (118, 118, 118))
    w, h = size
    placed = []
    for (name, crop), (fx0, fy0, fx1, fy1) in zip(((first, first_box), (second, second_box)), SPOTS):
        photo = open_image(SAMPLES / name).crop(crop).resize((round((fx1 - fx0) * w), round((fy1 - fy0) * h)))
        x0, y0 = round(fx0 * w), round(fy0 * h)
        canvas.paste(photo, (x0, y0))
        placed.append({"name": name, "box": [x0, y0, x0 + photo.width, y0 + photo.height]})
    return canvas, placed


def test_the_scene_objects_are_away_from_every_anchor():
    for x, y in ANCHOR_POINTS:
        for fx0, fy0, fx1, fy1 in SPOTS:
            assert not (fx0 <= x <= fx1 and fy0 <= y <= fy1)


@pytest.mark.parametrize("first,second", [("cat.jpg", "motorcycle.jpg"), ("motorcycle.jpg", "cat.jpg")])
def test_steps_visit_both_objects_of_a_generated_scene(predictor, first, second):
    crops = {"cat.jpg": (90, 0, 451, 300), "motorcycle.jpg": (90, 95, 690, 450)}
    scene, placed = _two_object_scene(first, crops[first], second, crops[second])
    trace = predictor.predict_one("scene", scene)
    assert _visited(trace, placed) == {0, 1}, [s.box_norm for s in trace.steps]
