import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ram_core.metrics import (
    average_precision,
    evaluate_scores,
    mean_ap,
    per_class_ap,
    per_class_prf,
    precision_recall_curve,
    prf_at_threshold,
    prf_top_k,
    top_k_predictions,
)


@pytest.mark.parametrize("seed", range(5))
def test_nonint_ap_matches_sklearn_on_continuous_scores(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    targets = rng.random(n) < rng.uniform(0.05, 0.6)
    targets[0] = True  # at least one positive
    scores = rng.random(n) + 0.5 * targets  # informative but imperfect, no ties
    assert average_precision(scores, targets) == pytest.approx(average_precision_score(targets, scores), abs=1e-12)


def test_per_class_ap_matches_sklearn_column_by_column():
    rng = np.random.default_rng(7)
    targets = rng.random((200, 6)) < 0.3
    scores = rng.normal(size=(200, 6)) + targets
    expected = [average_precision_score(targets[:, c], scores[:, c]) for c in range(6)]
    np.testing.assert_allclose(per_class_ap(scores, targets), expected, atol=1e-12)


def test_nonint_ap_hand_case():
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.1, 0.9, 0.5], [1, 0, 0]) == pytest.approx(1 / 3)
    assert average_precision([0.3, 0.2], [1, 1]) == pytest.approx(1.0)


def test_ties_keep_input_order():
    assert average_precision([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(1.0)


def test_voc07_eleven_point_hand_case():
    # precision/recall down the ranking: (1, .5) (.5, .5) (2/3, 1) (.5, 1)
    # t = 0 .. 0.5 -> max precision 1 (6 points); t = 0.6 .. 1 -> 2/3 (5 points)
    ap = average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0], mode="voc07")
    assert ap == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


def test_voc07_counts_a_recall_of_exactly_three_tenths():
    # 10 positives: the first 3 ranks are positives (recall 0.3, precision 1), then 7 negatives, then
    # the other 7 positives.  The t = 0.3 point must see precision 1.
    targets = [1] * 3 + [0] * 7 + [1] * 7
    scores = np.linspace(1, 0, len(targets))
    precision_at_full_recall = 10 / 17  # the best precision once recall passes 0.3
    expected = (4 * 1.0 + 7 * precision_at_full_recall) / 11
    assert average_precision(scores, targets, mode="voc07") == pytest.approx(expected)


def test_class_without_positives_is_nan_and_left_out_of_map():
    scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.4, 0.3]])
    targets = np.array([[1, 0], [0, 0], [0, 0]])
    ap = per_class_ap(scores, targets)
    assert ap[0] == pytest.approx(1.0) and math.isnan(ap[1])
    assert mean_ap(ap) == pytest.approx(1.0)
    assert math.isnan(mean_ap([math.nan, math.nan]))
    assert math.isnan(average_precision([0.3, 0.1], [0, 0]))


def test_mask_removes_entries_from_ap():
    # The top-scoring image is a negative; masking it out (e.g. a difficult-only VOC label) gives AP 1.
    scores = np.array([[0.9], [0.8], [0.1]])
    targets = np.array([[0], [1], [0]])
    assert per_class_ap(scores, targets)[0] == pytest.approx(0.5)
    assert per_class_ap(scores, targets, mask=np.array([[0], [1], [1]]))[0] == pytest.approx(1.0)
    # Masking the only positive leaves the class undefined.
    assert math.isnan(per_class_ap(scores, targets, mask=np.array([[1], [0], [1]]))[0])


SCORES = np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.8], [0.6, 0.3, 0.4]])
TARGETS = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0]])


def test_prf_at_threshold_hand_case():
    # per class: P = 1/2, 1/2, 1; R = 1, 1/2, 1; pooled: 3 correct of 5 predicted, 4 positives.
    m = prf_at_threshold(SCORES, TARGETS, 0.5)
    assert m["CP"] == pytest.approx(2 / 3)
    assert m["CR"] == pytest.approx(5 / 6)
    assert m["CF1"] == pytest.approx(20 / 27)
    assert m["OP"] == pytest.approx(3 / 5)
    assert m["OR"] == pytest.approx(3 / 4)
    assert m["OF1"] == pytest.approx(2 / 3)


def test_prf_class_with_no_predictions_has_precision_zero():
    m = prf_at_threshold(SCORES, TARGETS, 0.95)  # nothing predicted at all
    assert m["CP"] == 0 and m["CR"] == 0 and m["CF1"] == 0 and m["OP"] == 0 and m["OR"] == 0


def test_prf_mask_removes_a_false_positive():
    mask = np.ones_like(TARGETS)
    mask[2, 0] = 0  # image 2's false positive for class 0
    m = prf_at_threshold(SCORES, TARGETS, 0.5, mask=mask)
    assert m["OP"] == pytest.approx(3 / 4)
    assert m["CP"] == pytest.approx((1 + 1 / 2 + 1) / 3)


def test_top3_predicts_exactly_three_labels_hand_case():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    targets = np.array([[1, 0, 0, 1], [0, 0, 0, 1]])
    predicted = top_k_predictions(scores, 3)
    assert predicted.tolist() == [[True, True, True, False], [False, True, True, True]]
    # classes 1 and 2 have no positives: out of CP/CR.  class 0: P 1, R 1; class 3: P 1, R 1/2.
    m = prf_top_k(scores, targets, k=3)
    assert m["CP"] == pytest.approx(1.0)
    assert m["CR"] == pytest.approx(0.75)
    assert m["CF1"] == pytest.approx(6 / 7)
    assert m["OP"] == pytest.approx(2 / 6)
    assert m["OR"] == pytest.approx(2 / 3)
    assert m["OF1"] == pytest.approx(4 / 9)
    # ML-GCN's released code also requires score >= threshold among the top k.
    m = prf_top_k(scores, targets, k=3, threshold=0.5)
    assert m["CP"] == pytest.approx(0.5) and m["OR"] == pytest.approx(1 / 3)


def test_per_class_prf_table():
    table = per_class_prf(SCORES, TARGETS, 0.5)
    np.testing.assert_allclose(table["precision"], [0.5, 0.5, 1.0])
    np.testing.assert_allclose(table["recall"], [1.0, 0.5, 1.0])
    np.testing.assert_allclose(table["f1"], [2 / 3, 0.5, 1.0])
    assert table["num_positives"].tolist() == [1, 2, 1]
    assert table["num_predicted"].tolist() == [2, 2, 1]
    empty = per_class_prf(SCORES, TARGETS, 0.95)
    assert np.isnan(empty["precision"]).all() and np.isnan(empty["f1"]).all()


def test_precision_recall_curve_hand_case_with_ties():
    precision, recall, thresholds = precision_recall_curve([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0])
    np.testing.assert_allclose(thresholds, [0.9, 0.5, 0.1])
    np.testing.assert_allclose(precision, [1.0, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 1.0, 1.0])


def test_evaluate_scores_summary_is_json_and_in_percent():
    scores = np.array([[0.9, 0.6, 0.1, 0.2], [0.2, 0.7, 0.8, 0.1], [0.6, 0.3, 0.4, 0.3]])
    targets = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0]])
    report = evaluate_scores(scores, targets, ["a", "b", "c", "d"])
    json.dumps(report, allow_nan=False)  # None, never nan
    assert report["per_class_ap"]["d"] is None
    assert report["per_class_ap"]["a"] == pytest.approx(100.0)
    expected_map = 100 * np.mean([1.0, (1 + 2 / 3) / 2, 1.0])
    assert report["mAP"] == pytest.approx(expected_map, abs=1e-3)
    assert report["CP"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert set(report["top3"]) == {"CP", "CR", "CF1", "OP", "OR", "OF1"}
    assert report["num_images"] == 3 and report["num_positives"] == {"a": 1, "b": 2, "c": 1, "d": 0}
    assert report["num_classes_evaluated"] == 3
