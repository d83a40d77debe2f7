"""The cross-validation protocol of the model card: folds, out-of-fold reassembly, bundled evaluations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ram_core.config import RAMConfig
from ram_core.data.base import MultiLabelDataset
from ram_core.evaluation import load_evaluation, score_outputs, write_evaluation
from ram_core.model import RAMOutput
from ram_core.training import cross_validation as cv


def _labels(n=200, c=6, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.4, 0.03, c)).astype(np.float32)
    y[:5, -1] = 1  # the rarest class: exactly its positives are known
    y[5:, -1] = 0
    return y


def test_stratified_folds_spread_every_class_and_are_fixed_by_the_seed():
    y = _labels()
    folds = cv.stratified_folds(y, None, k=5, seed=0)
    assert folds.shape == (200,) and set(folds.tolist()) == set(range(5))
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 2  # balanced photo counts
    # the class with 5 positives has one in each fold; every class with >= 5 positives is in every fold
    assert sorted(folds[y[:, -1] > 0].tolist()) == [0, 1, 2, 3, 4]
    for c in range(y.shape[1]):
        if y[:, c].sum() >= 5:
            assert set(folds[y[:, c] > 0].tolist()) == set(range(5)), c
    assert np.array_equal(folds, cv.stratified_folds(y, None, k=5, seed=0))
    assert not np.array_equal(folds, cv.stratified_folds(y, None, k=5, seed=1))


class _MeanHead(torch.nn.Module):
    """Scores every photo with the logit of its training set's class frequencies and the fold's size:
    a photo's out-of-fold output tells which photos its model was trained on."""

    def __init__(self, targets: np.ndarray) -> None:
        super().__init__()
        p = torch.from_numpy(targets.mean(0)).clamp(0.01, 0.99)
        self.register_buffer("logit", torch.log(p / (1 - p)))
        self.n = len(targets)

    def forward(self, x):
        b, c = len(x), len(self.logit)
        logits = self.logit.expand(b, c) + x.flatten(1)[:, :1] * 0
        return RAMOutput(logits, logits, logits.new_zeros(b, 0, c), logits.new_zeros(b, 0, 4))


def test_out_of_fold_outputs_come_from_the_model_that_left_the_photo_out(monkeypatch):
    y = _labels(n=60, c=3)
    folds = cv.stratified_folds(y, None, k=3, seed=0)
    seen = []

    def fake_fit(cfg, recipe, views, targets, masks, seed=0, init=None):
        seen.append(len(targets))
        return _MeanHead(targets)

    monkeypatch.setattr(cv, "fit_head", fake_fit)
    feats = np.arange(60, dtype=np.float32).reshape(60, 1, 1, 1)
    cfg = RAMConfig(class_names=["a", "b", "c"], head="baseline")
    res = cv.cross_validate(cfg, cv.Recipe(), [feats], y, np.ones_like(y), folds, min_positives=1)
    assert seen == [int((folds != f).sum()) for f in range(3)]
    for i in range(60):  # photo i's scores are the frequencies of the photos outside its fold
        p = torch.from_numpy(y[folds != folds[i]].mean(0)).clamp(0.01, 0.99)
        assert torch.allclose(res.oof.logits[i], torch.log(p / (1 - p)), atol=1e-6), i
    assert len(res.fold_mAP) == 3 and res.oof_scores.shape == (60, 3)


def test_cross_validate_learns_a_separable_problem_and_measures_flip_averaging():
    rng = np.random.default_rng(0)
    n, c, d = 150, 3, 1280  # the default backbone's channels (build_head sizes the head by them)
    y = (rng.random((n, c)) < 0.4).astype(np.float32)
    w = rng.normal(size=(c, d))
    feats = (y @ w + 0.3 * rng.normal(size=(n, d))).astype(np.float32)[:, :, None, None]
    flipped = feats + 0.05 * rng.normal(size=feats.shape).astype(np.float32)
    folds = cv.stratified_folds(y, None, k=3, seed=0)
    cfg = RAMConfig(class_names=["a", "b", "c"], head="baseline", dropout=0.0)
    res = cv.cross_validate(cfg, cv.Recipe(epochs=40, lr=1e-2, batch_size=16), [feats, flipped], y,
                            np.ones_like(y), folds, min_positives=1)
    assert res.mAP > 90, res.fold_mAP
    other = res.summary()["other_flip_setting"]
    assert other["test_time_flip"] is True and len(other["fold_mAP"]) == 3 and other["mAP_mean_over_folds"] > 90


def test_out_of_fold_outputs_become_a_browsable_evaluation(tmp_path):
    n, k = 6, 2
    boxes = [[(0, 0, 0, 50, 50, False), (1, 50, 50, 100, 100, False)] for _ in range(n)]
    ds = MultiLabelDataset(["a", "b"], [f"p{i}" for i in range(n)], [tmp_path / f"p{i}.jpg" for i in range(n)],
                           np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], np.float32), boxes=boxes,
                           image_sizes=[(100, 100)] * n, name="toy")
    logits = torch.tensor([[3.0, 2.0], [2.0, -2.0], [-1.0, 1.0], [1.0, 0.5], [-3.0, -3.0], [0.5, -1.0]])
    # step 1 centred on object a (top-left), step 2 on object b (bottom-right): two objects visited
    transforms = torch.tensor([[0.2, 0.2, -0.5, -0.5], [0.2, 0.2, 0.5, 0.5]]).expand(n, k, 4)
    out = RAMOutput(logits, logits, logits[:, None].expand(n, k, 2), transforms)
    cfg = RAMConfig(class_names=["a", "b"], num_steps=k)
    res = score_outputs(out, cfg, ds, list(range(n)), [(100, 100)] * n, extra={"protocol": {"kind": "cv"}})
    assert res.report["mAP"] == pytest.approx(100.0)
    assert res.report["protocol"] == {"kind": "cv"}
    div = res.report["step_diversity"]
    assert div["objects_visited"] == 2 and div["all_on_one_object"] == 0 and div["num_images"] == n
    # both objects are a quarter of the photo: the count over large objects is the same
    large = res.report["step_diversity_large"]
    assert large == {**div, "min_area": 0.05}
    write_evaluation(res, tmp_path / "ev", compress=True)
    report, records = load_evaluation(tmp_path / "ev")
    assert report["step_diversity"] == div and [r["id"] for r in records] == ds.ids
