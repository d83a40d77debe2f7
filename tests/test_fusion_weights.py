"""Per-class fusion weights (config.class_companion_weights, training/fusion_weights.py)."""

import numpy as np
import pytest
import torch

from ram_core.config import ConfigBoundsError, RAMConfig, check_config_dict
from ram_core.model import build_head
from ram_core.training.fusion_weights import (choose_class_weights, choose_min_positives, mix, mix_by_fold,
                                              nested_fold_choices, nested_fold_weights)
from ram_core.viz.figures import fusion_text

CLASSES = ["cat", "dog", "person"]


def make_cfg(**changes) -> RAMConfig:
    base = dict(class_names=CLASSES, backbone="tf_efficientnet_lite0", head="ram", num_steps=3, region_size=4,
                region_encoder="pool", embed_dim=16, hidden_size=16, region_skip=True, fusion="average",
                companion="csra", companion_weight=0.5, dropout=0.0)
    return RAMConfig(**{**base, **changes})


def synthetic_branches(n: int = 400, seed: int = 0):
    """cat: only the recurrent branch knows it; person: only the companion; dog: rare (8 positives),
    only the recurrent branch knows it."""
    rng = np.random.default_rng(seed)
    targets = np.zeros((n, 3), np.float32)
    targets[:, 0] = rng.random(n) < 0.4
    targets[rng.choice(n, 8, replace=False), 1] = 1
    targets[:, 2] = rng.random(n) < 0.4
    noise = rng.normal(size=(n, 2, 3)).astype(np.float32)
    branches = noise.copy()
    branches[:, 0, 0] += 4 * targets[:, 0]  # recurrent knows cat
    branches[:, 1, 2] += 4 * targets[:, 2]  # companion knows person
    branches[:, 0, 1] += 4 * targets[:, 1]  # recurrent knows dog, but dog is rare
    return branches, targets, np.ones_like(targets)


def test_frequent_classes_get_their_own_weight_rare_ones_keep_the_base():
    branches, targets, masks = synthetic_branches()
    w = choose_class_weights(branches, targets, masks, base_weight=0.5, min_positives=50)
    assert w[0] == 1.0  # cat: the recurrent branch alone
    assert w[2] == 0.0  # person: the companion alone
    assert w[1] == 0.5  # dog: 8 positives, too few to choose: the base mix
    # with a lower bar, dog chooses too
    assert choose_class_weights(branches, targets, masks, 0.5, min_positives=5)[1] > 0.5


def test_ties_go_to_the_weight_nearest_the_base_mix():
    branches, targets, masks = synthetic_branches()
    same = np.repeat(branches[:, :1], 2, axis=1)  # both branches identical: every weight ties
    assert (choose_class_weights(same, targets, masks, 0.5, min_positives=5) == 0.5).all()


def test_a_folds_weights_never_see_that_folds_labels():
    branches, targets, masks = synthetic_branches()
    folds = np.arange(len(targets)) % 4
    before = nested_fold_weights(branches, targets, masks, folds, 0.5, 50)
    flipped = targets.copy()
    flipped[folds == 2] = 1 - flipped[folds == 2]  # fold 2's labels turned upside down
    after = nested_fold_weights(branches, flipped, masks, folds, 0.5, 50)
    np.testing.assert_array_equal(before[2], after[2])
    assert not all(np.array_equal(before[f], after[f]) for f in (0, 1, 3))
    # each photo is mixed with its own fold's weights
    mixed = mix_by_fold(branches, folds, before)
    np.testing.assert_allclose(mixed[folds == 1], mix(branches[folds == 1], before[1]))


def test_the_bar_is_chosen_by_cv_and_a_fold_never_chooses_with_its_own_labels():
    branches, targets, masks = synthetic_branches(n=600)
    targets[:, 1] = 0
    targets[np.arange(0, 600, 25), 1] = 1  # dog: 24 positives, only the recurrent branch knows it
    branches[:, 0, 1] = np.random.default_rng(1).normal(size=600) + 4 * targets[:, 1]
    folds = np.arange(len(targets)) % 4
    evaluated = np.ones(3, bool)
    bar, scores = choose_min_positives(branches, targets, masks, folds, evaluated, 0.5, (50, 10))
    assert bar == 10 and scores[10] > scores[50]  # letting dog choose the recurrent branch pays
    same = np.repeat(branches[:, :1], 2, axis=1)  # identical branches: every bar ties, the larger wins
    assert choose_min_positives(same, targets, masks, folds, evaluated, 0.5, (50, 10))[0] == 50
    before = nested_fold_choices(branches, targets, masks, folds, evaluated, 0.5, (50, 10))
    flipped = targets.copy()
    flipped[folds == 2] = 1 - flipped[folds == 2]
    after = nested_fold_choices(branches, flipped, masks, folds, evaluated, 0.5, (50, 10))
    assert before[2][0] == after[2][0]
    np.testing.assert_array_equal(before[2][1], after[2][1])


def test_the_head_mixes_each_class_with_its_own_weight():
    torch.manual_seed(0)
    head = build_head(make_cfg(class_companion_weights=[1.0, 0.5, 0.0])).eval()
    out = head(torch.randn(2, 1280, 5, 6))
    rec, comp = out.branch_logits[:, 0], out.branch_logits[:, 1]
    torch.testing.assert_close(out.logits[:, 0], rec[:, 0])
    torch.testing.assert_close(out.logits[:, 1], (rec[:, 1] + comp[:, 1]) / 2)
    torch.testing.assert_close(out.logits[:, 2], comp[:, 2])


def test_config_refuses_bad_class_weights():
    with pytest.raises(ValueError, match="one weight per class"):
        make_cfg(class_companion_weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        make_cfg(class_companion_weights=[0.5, 1.5, 0.5])
    with pytest.raises(ValueError, match="needs a companion"):
        make_cfg(companion="none", class_companion_weights=[0.5, 0.5, 0.5])
    data = make_cfg(class_companion_weights=[0.1, 0.2, 0.3]).to_dict()
    check_config_dict(data)
    assert RAMConfig.from_dict(data).class_companion_weights == [0.1, 0.2, 0.3]
    with pytest.raises(ConfigBoundsError, match="class_companion_weights"):
        check_config_dict({**data, "class_companion_weights": [0.1, float("nan"), 0.3]})
    with pytest.raises(ConfigBoundsError, match="one weight per class"):
        check_config_dict({**data, "class_companion_weights": "0.5"})


def test_weights_stored_in_a_checkpoint_change_its_scores(tmp_path):
    from ram_core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, update_config
    from ram_core.model import build_model

    torch.manual_seed(0)
    model = build_model(make_cfg(input_size=64)).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    x = torch.randn(2, 3, 64, 64)
    update_config(path, class_companion_weights=[0.0, 0.5, 1.0])
    loaded, info = load_checkpoint(path)
    assert info.config.class_companion_weights == [0.0, 0.5, 1.0]
    with torch.inference_mode():
        out = loaded(x)
    w = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(out.logits, w * out.branch_logits[:, 0] + (1 - w) * out.branch_logits[:, 1])
    # a change the stored tensors do not fit is refused, and the file is left as it was
    with pytest.raises(CheckpointError, match="does not match its config"):
        update_config(path, hidden_size=32)
    assert load_checkpoint(path)[1].config.hidden_size == 16


def test_the_caption_names_the_classes_with_their_own_weight():
    text = fusion_text(make_cfg(class_companion_weights=[0.5, 0.5, 0.0]))
    assert "share is 50%, except person 0%" in text and "cat" not in text.split("except")[1]
    assert "mixed 50% / 50%" in fusion_text(make_cfg())
