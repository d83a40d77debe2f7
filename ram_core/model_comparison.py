"""Two models on one photo: where their scores and labels disagree.

Both traces are of the same photo; the classes compared are those both models know (in the first
model's order).  Each model's labels follow its own thresholds (per-class ones when its checkpoint has
them), since that is what each would answer.
"""

from __future__ import annotations

import pandas as pd

from .trace import AttentionTrace


def shared_classes(a: AttentionTrace, b: AttentionTrace) -> list[str]:
    known = set(b.scores)
    return [c for c in a.class_names if c in known]


def disagreements(a: AttentionTrace, b: AttentionTrace, threshold_a: float | None = None,
                  threshold_b: float | None = None) -> pd.DataFrame:
    """One row per shared class, the largest disagreement first: score A, score B, A - B, whether each
    model labels it, and a verdict ("both", "only A", "only B", "neither").  threshold_a / threshold_b:
    one threshold for all classes of that model (None: the trace's own thresholds)."""
    classes = shared_classes(a, b)
    labels_a, labels_b = set(a.labels(threshold_a)), set(b.labels(threshold_b))
    table = pd.DataFrame({
        "class": classes,
        "score A": [a.scores[c] for c in classes],
        "score B": [b.scores[c] for c in classes],
    })
    table["A − B"] = table["score A"] - table["score B"]
    table["label A"] = [c in labels_a for c in classes]
    table["label B"] = [c in labels_b for c in classes]
    table["verdict"] = [("both" if x and y else "only A" if x else "only B" if y else "neither")
                        for x, y in zip(table["label A"], table["label B"])]
    order = table["A − B"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)


def label_agreement(table: pd.DataFrame) -> dict[str, list[str]]:
    """{"both": [...], "only A": [...], "only B": [...]} from a disagreements table."""
    return {v: table.loc[table["verdict"] == v, "class"].tolist() for v in ("both", "only A", "only B")}
