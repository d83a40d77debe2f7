"""Rough edges a newcomer met on the Evaluate page: a failed run, the PR-curve classes, plural words,
and where undefined (NaN) rows go when a column is sorted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from test_app_evaluate import app, metric, no_exception, setup  # noqa: F401 - fixtures

from ram_core import eval_views as ev


def test_a_failed_run_keeps_the_open_evaluation_shown(app, tmp_path):  # noqa: F811
    before = metric(app, "mAP").value
    app.text_input(key="evaluate.root").set_value(str(tmp_path / "no_such_dataset"))
    next(b for b in app.button if b.label == "Run evaluation").click()
    app.run()
    no_exception(app)
    assert any("could not run" in e.value for e in app.error)
    assert metric(app, "mAP").value == before  # the evaluation below the form is still there
    assert app.dataframe  # and its per-class table


def test_pr_curve_classes_are_chosen_per_evaluation(app, setup):  # noqa: F811
    pr = next(m for m in app.multiselect if m.label == "Precision-recall curves of")
    pr.set_value(["circle"]).run()
    no_exception(app)
    assert next(m for m in app.multiselect if m.label == "Precision-recall curves of").value == ["circle"]
    app.selectbox(key="evaluate.pick").set_value(str(setup["evals"] / "baseline_val")).run()
    no_exception(app)
    pr = next(m for m in app.multiselect if m.label == "Precision-recall curves of")
    assert len(pr.value) == 3  # the new evaluation's three hardest classes, not the other one's choice


def test_sorting_the_per_class_table_puts_undefined_rows_last_both_ways():
    table = pd.DataFrame({"class": ["a", "b", "c", "d"], "AP": [50.0, np.nan, 10.0, 90.0]})
    assert ev.sort_table(table, "AP", ascending=True)["class"].tolist() == ["c", "a", "d", "b"]
    assert ev.sort_table(table, "AP", ascending=False)["class"].tolist() == ["d", "a", "c", "b"]
    assert ev.sort_table(table, "nope")["class"].tolist() == ["a", "b", "c", "d"]


def test_counts_read_in_the_singular_for_one():
    assert ev.count_of(1, "FP") == "1 false positive"
    assert ev.count_of(2, "FP") == "2 false positives"
    assert ev.count_of(1, "all") == "1 image" and ev.count_of(0, "all") == "0 images"


def test_the_table_sort_control_orders_the_rows(app):  # noqa: F811
    app.selectbox(key="evaluate.sort_by").set_value("AP").run()
    app.toggle(key="evaluate.sort_descending").set_value(True).run()
    no_exception(app)
    ap = app.dataframe[0].value["AP"].tolist()
    defined = [v for v in ap if not np.isnan(v)]
    assert defined == sorted(defined, reverse=True) and ap[:len(defined)] == defined
