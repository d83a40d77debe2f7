"""Which present labels come with false ones, on a hand-made evaluation with known counts; and the
two-model disagreement table."""

from __future__ import annotations

import numpy as np
import pytest

from ram_core.false_labels import error_mask, false_label_images, false_label_matrix
from ram_core.model_comparison import disagreements, label_agreement, shared_classes
from ram_core.trace import AttentionTrace

CLASSES = ["car", "person", "motorbike", "dog"]
CAR, PERSON, MOTO, DOG = range(4)


def scene_scores():
    """10 images: 0-3 motorbike + person, 4-6 dog, 7 person, 8-9 nothing.  Car is scored high on
    motorbike photos 0-2 (false positives); person is missed on 0 and 1 (false negatives)."""
    targets = np.zeros((10, 4), bool)
    targets[0:4, [PERSON, MOTO]] = True
    targets[4:7, DOG] = True
    targets[7, PERSON] = True
    scores = np.where(targets, 0.9, 0.1)
    scores[[0, 1, 2], CAR] = [0.7, 0.95, 0.8]
    scores[[0, 1], PERSON] = [0.3, 0.2]
    return scores, targets


def test_false_positive_lift_is_the_present_class_rate_over_its_usual_rate():
    scores, targets = scene_scores()
    m = false_label_matrix(scores, targets, None, CLASSES, 0.5, "FP")
    assert m.errors.tolist() == [3, 0, 0, 0]
    assert m.counts[CAR].tolist() == [0, 3, 3, 0]
    assert m.lift[CAR, MOTO] == pytest.approx(1 / 0.4)  # on every car FP, against 4 of 10 photos
    assert m.lift[CAR, PERSON] == pytest.approx(1 / 0.5)
    assert m.lift[CAR, DOG] == 0.0
    assert np.isnan(m.lift[CAR, CAR]) and np.isnan(m.lift[PERSON]).all()  # the diagonal; a row without errors
    assert m.strongest(2) == [("car", "motorbike", pytest.approx(2.5), 3), ("car", "person", pytest.approx(2.0), 3)]


def test_false_negative_lift_is_against_the_companions_of_the_missed_class():
    scores, targets = scene_scores()
    m = false_label_matrix(scores, targets, None, CLASSES, 0.5, "FN")
    assert m.errors.tolist() == [0, 2, 0, 0]
    # person is missed on 2 photos, both with a motorbike; motorbikes are on 4 of person's 5 photos
    assert m.lift[PERSON, MOTO] == pytest.approx(1 / 0.8)
    assert np.isnan(m.lift[PERSON, DOG])  # never with a person: no usual rate to compare with
    assert np.isnan(m.lift[PERSON, PERSON])


def test_per_class_thresholds_and_masks_change_what_counts_as_an_error():
    scores, targets = scene_scores()
    per_class = np.array([0.9, 0.25, 0.5, 0.5])  # car needs 0.9: only image 1 is a false positive
    assert np.flatnonzero(error_mask(scores, targets, None, per_class, "FP")[:, CAR]).tolist() == [1]
    assert np.flatnonzero(error_mask(scores, targets, None, per_class, "FN")[:, PERSON]).tolist() == [1]
    masks = np.ones_like(targets)
    masks[2, CAR] = False  # car left out of evaluation on image 2
    assert false_label_matrix(scores, targets, masks, CLASSES, 0.5, "FP").errors[CAR] == 2
    with pytest.raises(ValueError, match="kind must be one of"):
        error_mask(scores, targets, None, 0.5, "TP")


def test_the_images_behind_a_cell_are_listed_most_telling_first():
    scores, targets = scene_scores()
    assert false_label_images(scores, targets, None, CLASSES, 0.5, "FP", "car", "motorbike") == [1, 2, 0]
    assert false_label_images(scores, targets, None, CLASSES, 0.5, "FN", "person", "motorbike") == [1, 0]
    assert false_label_images(scores, targets, None, CLASSES, 0.5, "FP", "car", "dog") == []


def trace(scores: dict, threshold=0.5, class_thresholds=None) -> AttentionTrace:
    return AttentionTrace("p.jpg", 10, 10, list(scores), scores, scores, [], {}, threshold=threshold,
                          class_thresholds=class_thresholds)


def test_disagreements_rank_shared_classes_by_the_gap_and_use_each_models_thresholds():
    a = trace({"car": 0.9, "person": 0.6, "dog": 0.1, "sofa": 0.5})
    b = trace({"dog": 0.7, "car": 0.85, "person": 0.2}, class_thresholds={"car": 0.95})
    assert shared_classes(a, b) == ["car", "person", "dog"]
    table = disagreements(a, b)
    assert table["class"].tolist() == ["dog", "person", "car"]
    assert table["A − B"].tolist() == pytest.approx([-0.6, 0.4, 0.05])
    assert table["verdict"].tolist() == ["only B", "only A", "only A"]  # car: below B's own 0.95
    assert label_agreement(table) == {"both": [], "only A": ["person", "car"], "only B": ["dog"]}
    assert disagreements(a, b, threshold_b=0.5)["verdict"].tolist() == ["only B", "only A", "both"]
