"""ram_core.eval_views: tables, selections and figures of a saved evaluation (hand-made, no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ram_core import eval_views as ev
from ram_core import metrics

CLASSES = ["cat", "dog", "car"]


def record(i, scores, truth, steps=2, ignored=(), max_step=None, image="", objects=()):
    """One predictions.jsonl line; step k's box is centred at (0.25 k, 0.5) with side 0.2 k."""
    steps_json = []
    for k in range(1, steps + 1):
        cx, side = 0.25 * k, 0.2 * k
        box = [cx - side / 2, 0.5 - side / 2, cx + side / 2, 0.5 + side / 2]
        steps_json.append({"step": k, "box": [v * 100 for v in box], "box_norm": box,
                           "transform": {"s_x": side, "s_y": side, "t_x": 2 * cx - 1, "t_y": 0.0},
                           "scores": {c: s * (0.5 + 0.25 * k) for c, s in zip(CLASSES, scores)}})
    rec = {"id": f"im{i}", "image": image or f"/nowhere/im{i}.jpg", "width": 100, "height": 80,
           "scores": dict(zip(CLASSES, scores)), "global_scores": {c: s / 2 for c, s in zip(CLASSES, scores)},
           "max_step": max_step or {c: steps for c in CLASSES}, "steps": steps_json, "ground_truth": list(truth),
           "threshold": 0.5}
    if ignored:
        rec["ignored"] = list(ignored)
    if objects:
        rec["objects"] = [list(o) for o in objects]
    return rec


@pytest.fixture
def data():
    rows = [
        ([0.9, 0.2, 0.1], ["cat"]),
        ([0.8, 0.6, 0.3], ["cat", "dog"]),
        ([0.4, 0.7, 0.2], ["cat"]),  # cat missed at 0.5, dog a false positive
        ([0.3, 0.1, 0.9], ["car"]),
        ([0.6, 0.3, 0.7], ["car"]),  # cat a false positive
        ([0.2, 0.8, 0.4], ["dog", "car"]),
    ]
    records = [record(i, s, t) for i, (s, t) in enumerate(rows)]
    records[3]["ignored"] = ["dog"]
    records[0]["max_step"] = {"cat": 1, "dog": 2, "car": 0}
    report = {"per_class_ap": {c: None for c in CLASSES}, "class_names": CLASSES, "threshold": 0.5,
              "model": {"head": "ram", "num_steps": 2, "anchors": [[-0.5, 0.0], [0.5, 0.0]]},
              "dataset": {"root": "/nowhere"}}
    return ev.eval_data(report, records, "hand")


def test_eval_data_reads_scores_truth_masks_and_steps(data):
    assert len(data) == 6 and data.num_steps == 2
    assert data.targets[:, 0].tolist() == [True, True, True, False, False, False]
    assert not data.masks[3, 1] and data.masks.sum() == 17
    assert data.step_scores.shape == (6, 2, 3) and data.box_norm.shape == (6, 2, 4)
    assert data.max_step[0].tolist() == [1, 2, 0]
    assert data.anchors == [[-0.5, 0.0], [0.5, 0.0]]


def test_per_class_table_matches_metrics(data):
    table = ev.per_class_table(data, 0.5)
    assert table["class"].tolist() == CLASSES
    ap = metrics.per_class_ap(data.scores, data.targets, data.masks)
    np.testing.assert_allclose(table["AP"], 100 * ap)
    cat = table.iloc[0]
    assert (cat["positives"], cat["predicted"]) == (3, 3)  # 0.9, 0.8 right; 0.6 wrong; 0.4 missed
    assert cat["precision"] == pytest.approx(200 / 3) and cat["recall"] == pytest.approx(200 / 3)
    assert {"AP global step", "gain over global", "top step"} <= set(table.columns)
    np.testing.assert_allclose(table["gain over global"], table["AP"] - table["AP global step"])


def test_summary_follows_the_threshold(data):
    low, high = ev.summary(data, 0.05), ev.summary(data, 0.95)
    assert low["mAP"] == high["mAP"]
    assert low["OF1"] != high["OF1"]
    assert high["CF1"] == 0.0  # nothing predicted above 0.95
    assert low["num_images"] == 6 and low["global_mAP"] is not None


def test_browse_splits_true_and_false_positives_and_misses(data):
    assert ev.browse(data, "cat", 0.5, "TP") == [0, 1]  # highest score first
    assert ev.browse(data, "cat", 0.5, "FP") == [4]
    assert ev.browse(data, "cat", 0.5, "FN") == [2]
    assert ev.browse(data, "dog", 0.5, "FP") == [2]
    assert 3 not in ev.browse(data, "dog", 0.5, "all")  # dog left out of evaluation there
    assert ev.browse(data, "car", 0.35, "FN") == []
    assert ev.browse(data, "car", 0.95, "FN") == [5, 4, 3]  # lowest score first: the worst misses
    assert ev.browse_counts(data, "cat", 0.5) == {"TP": 2, "FP": 1, "FN": 1, "all": 6}
    with pytest.raises(ValueError):
        ev.browse(data, "cat", 0.5, "TN")


def test_comparison_table_finds_improved_and_regressed(data):
    worse_records = [dict(r, scores=dict(r["scores"])) for r in data.records]
    for r in worse_records:  # dog scores reversed: dog gets worse, the rest unchanged
        r["scores"]["dog"] = 1 - r["scores"]["dog"]
    worse = ev.eval_data(data.report, worse_records)
    table = ev.comparison_table(data, worse)
    row = table.set_index("class")
    assert row.loc["dog", "verdict"] == "improved" and row.loc["dog", "ΔAP"] > 0
    assert row.loc["cat", "verdict"] == "same" and row.loc["cat", "ΔAP"] == 0
    assert table["ΔAP"].iloc[0] == table["ΔAP"].max()
    assert ev.comparison_counts(ev.comparison_table(worse, data))["regressed"] == 1
    assert ev.same_images(data, worse)


def test_attention_statistics(data):
    boxes = ev.step_boxes(data)
    assert len(boxes) == 12
    step2 = boxes[boxes["step"] == 2]
    np.testing.assert_allclose(step2["cx"], 0.5)
    np.testing.assert_allclose(step2["w"], 0.4)
    summary = ev.step_box_summary(data)
    assert summary["anchor cx"].tolist() == [0.25, 0.75]
    assert summary["off anchor"].tolist() == pytest.approx([0.0, 0.25])
    freq = ev.max_step_frequency(data, positives_only=True)
    assert list(freq.columns) == ["global", "step 1", "step 2"]
    assert freq.loc["cat"].tolist() == pytest.approx([0, 1 / 3, 2 / 3])  # image 0 took step 1
    assert freq.loc["car", "global"] == 0  # image 0 is not a car
    assert ev.max_step_frequency(data, positives_only=False).loc["car", "global"] == pytest.approx(1 / 6)
    np.testing.assert_allclose(freq.sum(axis=1), 1.0)


def test_figures_are_built(data):
    table = ev.per_class_table(data, 0.5)
    figs = [ev.ap_bar_figure(table), ev.pr_figure(data, ["cat", "car"], 0.5),
            ev.ap_diff_figure(ev.comparison_table(data, data)), ev.attention_figure(data),
            ev.max_step_figure(ev.max_step_frequency(data))]
    kinds = [f.layout.meta["kind"] for f in figs]
    assert kinds == ["ap_bars", "pr", "ap_diff", "attention", "max_step"]
    pr = figs[1]
    assert [t.name.split(" (")[0] for t in pr.data if t.showlegend is not False] == ["cat", "car"]
    json.dumps(figs[3].to_plotly_json(), default=str)  # serialisable for the page


def test_baseline_evaluation_has_no_attention(data):
    records = [dict(r, steps=[], max_step={c: 0 for c in CLASSES}) for r in data.records]
    base = ev.eval_data({**data.report, "model": {"head": "baseline", "num_steps": 0}}, records)
    assert base.num_steps == 0 and base.anchors == []
    assert "gain over global" not in ev.per_class_table(base, 0.5)
    assert ev.step_boxes(base).empty and ev.step_box_summary(base).empty


def test_thumbnail_draws_on_the_photo_or_a_placeholder(data, tmp_path):
    placeholder = ev.browse_thumbnail(data, 0, "cat", None, max_side=200)
    assert placeholder.size == (200, 160)  # the record's 100 x 80 aspect
    photo = Image.new("RGB", (100, 80), (0, 0, 0))
    drawn = ev.browse_thumbnail(data, 0, "cat", photo, max_side=200)
    assert drawn.size == (200, 160)
    arr = np.asarray(drawn)
    # step 1 (the one that gave cat its score) is drawn thick in its colour around x = 0.25
    assert arr[60:100, 25:60].reshape(-1, 3).max(0).sum() > 200
    framed = ev.browse_thumbnail(data, 0, "cat", photo, max_side=200, aspect=2.0)
    assert framed.size == (200, 100)  # the 5:4 picture fitted, centred, into a 2:1 frame
    assert np.asarray(framed)[50, 5].tolist() == [246, 247, 249] and np.asarray(framed)[50, 100].sum() < 600
    assert ev.resolve_image(data, 0) is None
    (tmp_path / "im0.jpg").write_bytes(b"")
    assert ev.resolve_image(data, 0, str(tmp_path)) == tmp_path / "im0.jpg"


def test_listing_and_labelling_saved_evaluations(tmp_path, monkeypatch):
    for name, m in (("default_val", 80.0), ("baseline_val", 70.0), ("nested/deeper/other", None)):
        d = tmp_path / name
        d.mkdir(parents=True)
        (d / "report.json").write_text(json.dumps({"per_class_ap": {}, "mAP": m, "num_images": 5,
                                                   "model": {"head": "ram", "num_steps": 5}}))
    (tmp_path / "not_one").mkdir()
    found = ev.list_evaluations([tmp_path, tmp_path / "missing"])
    assert [p.name for p in found] == ["baseline_val", "default_val", "other"]
    assert found[ev.preferred(found)].name == "default_val"
    assert ev.baseline_for(found, tmp_path / "default_val") == tmp_path / "baseline_val"
    assert ev.baseline_for(found, tmp_path / "baseline_val") is None
    assert "mAP 80.0" in ev.evaluation_label(tmp_path / "default_val") and "RAM K=5" in ev.evaluation_label(found[1])
    assert "n/a" in ev.evaluation_label(found[2])
    assert "unreadable" in ev.evaluation_label(tmp_path / "not_one")
    monkeypatch.setenv(ev.ENV_EVAL_DIR, f"{tmp_path}, relative/dir")
    assert ev.default_eval_folders() == [tmp_path, ev.ROOT / "relative" / "dir"]
    assert ev.default_run_name("runs/x/best.safetensors", "voc", "test", 100) == "best-voc-test-first100"
