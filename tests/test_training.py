"""Training: the model learns on generated scenes, resumes exactly, and repairs its feature cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ram_core.attention_stats import box_hit_rates
from ram_core.config import RAMConfig
from ram_core.data.synthetic import make_synthetic_voc
from ram_core.data.voc import VOCDataset
from ram_core.model import transform_to_box
from ram_core.training.feature_cache import FeatureCache, cache_key
from ram_core.training.loop import TrainOptions, head_scores, train, validation_metrics


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root, classes = make_synthetic_voc(tmp_path_factory.mktemp("scenes"), 240, image_size=160, seed=1)
    return root, classes


def _cfg(classes, **kw):
    base = dict(class_names=classes, input_size=192, num_steps=3, region_size=3, embed_dim=128,
                hidden_size=128, dropout=0.1, region_encoder="flatten", region_channels=32)
    base.update(kw)
    return RAMConfig(**base)


def test_ram_learns_on_synthetic_scenes_and_looks_at_objects(scenes, tmp_path):
    root, classes = scenes
    train_set = VOCDataset(root, "trainval", class_names=classes)
    val_set = VOCDataset(root, "test", class_names=classes)
    # the evidence localizer (the default model's); no ImageNet prior for shapes, so its evidence
    # map starts random and is learned from the classification loss alone
    cfg = _cfg(classes, transform_mode="evidence")
    opts = TrainOptions(out_dir=str(tmp_path / "run"), epochs=25, batch_size=16, lr=2e-3,
                        cache_dir=str(tmp_path / "cache"), device="cpu", log=lambda *_: None)
    result = train(cfg, opts, train_set, val_set)
    # chance: AP of random scores is the positive rate of each class
    chance = float(np.mean(val_set.targets.mean(0))) * 100
    assert result["best"] > chance + 30, (result["best"], chance)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 25 and {"loss_anchor", "loss_scale", "loss_positive", "val_mAP"} <= set(log[0])

    # the learned boxes land on objects more often than random boxes of the same sizes do
    from ram_core.checkpoints import load_checkpoint

    model, _ = load_checkpoint(result["best_checkpoint"])
    feats, _ = FeatureCache(opts.cache_dir).load(cache_key(cfg, val_set.name, val_set.ids, "orig", "default"))
    _, _, transforms = head_scores(model.head, feats, torch.device("cpu"))
    boxes = transform_to_box(torch.from_numpy(transforms)).numpy()
    own = box_hit_rates(boxes, val_set.boxes, val_set.image_sizes)["hit_rate"]
    rng = np.random.default_rng(0)
    random_boxes = boxes.copy()
    shift = rng.uniform(0, 1, size=boxes.shape[:2] + (2,)) - (boxes[..., :2] + boxes[..., 2:]) / 2
    random_boxes[..., :2] += shift
    random_boxes[..., 2:] += shift
    rand = box_hit_rates(random_boxes, val_set.boxes, val_set.image_sizes)["hit_rate"]
    print(f"mAP {result['best']:.1f} (chance {chance:.1f}); box hits {own:.1f} % vs random boxes {rand:.1f} %")
    assert own > rand + 5, (own, rand)


def test_resume_continues_exactly(scenes, tmp_path):
    root, classes = scenes
    train_set = VOCDataset(root, "train", class_names=classes)
    cfg = _cfg(classes, input_size=96, num_steps=2)
    common = dict(batch_size=16, cache_dir=str(tmp_path / "cache"), device="cpu", log=lambda *_: None)
    full = train(cfg, TrainOptions(out_dir=str(tmp_path / "full"), epochs=4, **common), train_set)

    def killed_after_epoch_2(message: str) -> None:
        if message.startswith("epoch 2/4"):
            raise KeyboardInterrupt  # as if the process were killed once epoch 2 was saved

    with pytest.raises(KeyboardInterrupt):
        train(cfg, TrainOptions(out_dir=str(tmp_path / "cut"), epochs=4, **{**common, "log": killed_after_epoch_2}),
              train_set)
    opts = TrainOptions(out_dir=str(tmp_path / "cut"), epochs=4, resume=True, **common)
    resumed = train(cfg, opts, train_set)
    lines = (tmp_path / "cut" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    a, b = full["model"].head.state_dict(), resumed["model"].head.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_damaged_cache_entry_is_detected_and_rebuilt(scenes, tmp_path):
    from ram_core.backbones import build_backbone

    root, classes = scenes
    ds = VOCDataset(root, "val", class_names=classes)
    cfg = _cfg(classes, input_size=64)
    cache = FeatureCache(tmp_path / "cache")
    backbone = build_backbone(cfg.backbone)
    first = cache.get_or_build(backbone, ds, cfg, "orig", torch.device("cpu"), "default", log=lambda *_: None)
    key = cache_key(cfg, ds.name, ds.ids, "orig", "default")
    arr = np.load(cache.entry(key) / "features.npy", mmap_mode="r+")
    arr[3] = 0  # damage one image's features on disk
    arr.flush()
    del arr
    _, bad = cache.load(key)
    assert bad == [3]
    messages = []
    again = cache.get_or_build(backbone, ds, cfg, "orig", torch.device("cpu"), "default", log=messages.append)
    assert "damaged" in messages[0]
    # recomputed alone rather than in a batch: equal up to float16 rounding
    assert np.abs(again[3]).max() > 0
    np.testing.assert_allclose(again.astype(np.float32), first.astype(np.float32), atol=2e-2, rtol=2e-2)
    assert cache.load(key)[1] == []  # repaired on disk too


def test_validation_metrics_selects_classes_with_enough_positives():
    targets = np.array([[1, 0], [0, 0], [1, 1], [0, 0]], np.float32)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.3], [0.1, 0.2]], np.float32)
    report = validation_metrics(scores, targets, np.ones_like(targets), ["a", "b"], min_positives=2)
    assert report["selected_classes"] == ["a"]
    assert report["mAP_selected"] == pytest.approx(100.0)


def test_fine_tuning_trains_the_backbone_end_to_end(scenes, tmp_path):
    """--fine-tune: images through the backbone every step, the backbone's weights change too."""
    root, classes = scenes
    ds = VOCDataset(root, "val", class_names=classes)
    cfg = _cfg(classes, input_size=64, num_steps=2, freeze_backbone=False)
    opts = TrainOptions(out_dir=str(tmp_path / "ft"), epochs=1, batch_size=8, use_cache=False, device="cpu",
                        backbone_lr=1e-3, log=lambda *_: None)
    from ram_core.backbones import build_backbone

    before = build_backbone(cfg.backbone).state_dict()
    result = train(cfg, opts, ds, ds)
    after = result["model"].backbone.state_dict()
    changed = [k for k in before if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k])]
    assert changed, "the backbone did not train"
    assert (tmp_path / "ft" / "best.safetensors").is_file()
    from ram_core.checkpoints import read_metadata

    assert read_metadata(tmp_path / "ft" / "best.safetensors").backbone_weights == "checkpoint"
