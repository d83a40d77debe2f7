import math

import torch

from ram_core.config import LossConfig
from ram_core.losses import anchor_loss, positive_loss, ram_loss, scale_loss
from ram_core.model import RAMOutput


def tr(s_x, s_y, t_x, t_y):
    return torch.tensor([[[s_x, s_y, t_x, t_y]]], dtype=torch.float32)  # (B=1, K=1, 4)


def test_anchor_loss_zero_at_anchor_and_grows_away():
    anchors = torch.tensor([[0.5, -0.5]])
    assert anchor_loss(tr(0.3, 0.3, 0.5, -0.5), anchors) == 0
    near = anchor_loss(tr(0.3, 0.3, 0.6, -0.5), anchors)
    far = anchor_loss(tr(0.3, 0.3, 0.9, -0.1), anchors)
    assert 0 < near < far
    assert torch.isclose(near, torch.tensor(0.5 * 0.1 ** 2))


def test_scale_loss_zero_up_to_alpha_then_quadratic():
    for s in (0.1, 0.3, 0.5, -0.5):
        assert scale_loss(tr(s, s, 0, 0), 0.5) == 0
    a = scale_loss(tr(0.6, 0.5, 0, 0), 0.5)
    b = scale_loss(tr(0.9, 0.5, 0, 0), 0.5)
    assert torch.isclose(a, torch.tensor(0.01)) and b > a
    assert scale_loss(tr(-0.9, 0.5, 0, 0), 0.5) == b  # |s|


def test_positive_loss_zero_above_beta_then_linear():
    assert positive_loss(tr(0.1, 0.5, 0, 0), 0.1) == 0
    assert torch.isclose(positive_loss(tr(0.0, 0.5, 0, 0), 0.1), torch.tensor(0.1))
    assert torch.isclose(positive_loss(tr(-0.4, -0.4, 0, 0), 0.1), torch.tensor(1.0))


def test_ram_loss_reports_each_term_and_weights_them():
    out = RAMOutput(logits=torch.zeros(1, 2), global_logits=torch.zeros(1, 2), step_logits=torch.zeros(1, 1, 2),
                    transforms=tr(0.9, -0.2, 0.3, 0.3))
    cfg = LossConfig(anchor_weight=1.0, scale_weight=2.0, positive_weight=3.0)
    terms = ram_loss(out, torch.tensor([[1.0, 0.0]]), cfg, torch.tensor([[0.0, 0.0]]))
    expect = terms.classification + terms.anchor + 2 * terms.scale + 3 * terms.positive
    assert torch.isclose(terms.total, expect)
    assert terms.anchor > 0 and terms.scale > 0 and terms.positive > 0


def test_mask_removes_ignored_labels():
    out = RAMOutput(logits=torch.tensor([[5.0, -5.0]]), global_logits=torch.zeros(1, 2),
                    step_logits=torch.zeros(1, 0, 2), transforms=torch.zeros(1, 0, 4))
    full = ram_loss(out, torch.tensor([[0.0, 0.0]]), LossConfig(), torch.zeros(0, 2))
    masked = ram_loss(out, torch.tensor([[0.0, 0.0]]), LossConfig(), torch.zeros(0, 2), mask=torch.tensor([[0.0, 1.0]]))
    assert masked.classification < full.classification


# --- exact values on batches of several images and steps (each term against a loop written out) ---

def batch_transforms(b=3, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(b, k, 4, generator=g) * 1.6 - 0.6  # scales in [-0.6, 1.0]: every constraint is active
    return t


ANCHORS = torch.tensor([[0.0, 0.0], [0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]])


def per_image(fn, t):
    """mean over images of the sum over steps of fn(s_x, s_y, t_x, t_y, step)."""
    b, k, _ = t.shape
    return sum(sum(fn(*t[i, j].tolist(), j) for j in range(k)) for i in range(b)) / b


def test_anchor_loss_sums_steps_averages_images_and_uses_each_steps_own_anchor():
    t = batch_transforms()
    expect = per_image(lambda sx, sy, tx, ty, j: 0.5 * ((tx - ANCHORS[j, 0]) ** 2 + (ty - ANCHORS[j, 1]) ** 2), t)
    assert torch.isclose(anchor_loss(t, ANCHORS), torch.tensor(float(expect)), atol=1e-6)
    # each step at its own anchor: zero; the anchors handed to other steps: not zero
    at_anchor = torch.cat([torch.full((3, 5, 2), 0.3), ANCHORS.expand(3, 5, 2)], -1)
    assert anchor_loss(at_anchor, ANCHORS) == 0
    assert anchor_loss(at_anchor, ANCHORS.roll(1, 0)) > 0


def test_scale_loss_sums_steps_averages_images():
    t = batch_transforms()
    expect = per_image(lambda sx, sy, tx, ty, j: max(abs(sx) - 0.5, 0) ** 2 + max(abs(sy) - 0.5, 0) ** 2, t)
    assert expect > 0
    assert torch.isclose(scale_loss(t, 0.5), torch.tensor(float(expect)), atol=1e-6)


def test_positive_loss_sums_steps_averages_images():
    t = batch_transforms()
    expect = per_image(lambda sx, sy, tx, ty, j: max(0.1 - sx, 0) + max(0.1 - sy, 0), t)
    assert expect > 0
    assert torch.isclose(positive_loss(t, 0.1), torch.tensor(float(expect)), atol=1e-6)


LOGITS = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.3, 1.5, -2.0, 1.0], [-0.5, 0.2, 0.1, 3.0]])
TARGETS = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])


def test_paper_classification_loss_softmax_against_l1_normalised_labels_summed_over_classes():
    from ram_core.losses import classification_loss

    expect = 0.0
    for i in range(3):
        z = LOGITS[i].tolist()
        e = [math.exp(v) for v in z]
        p = [v / sum(e) for v in e]
        y = TARGETS[i].tolist()
        g = [v / sum(y) for v in y]  # label vector / its L1 norm
        expect += sum((a - b) ** 2 for a, b in zip(p, g))
    expect /= 3  # summed over classes, averaged over images
    assert torch.isclose(classification_loss(LOGITS, TARGETS, "softmax_mse"), torch.tensor(expect), atol=1e-6)


def test_other_classification_losses_sum_over_classes_and_average_over_images():
    from ram_core.losses import classification_loss

    sig = torch.sigmoid(LOGITS)
    assert torch.isclose(classification_loss(LOGITS, TARGETS, "sigmoid_mse"), ((sig - TARGETS) ** 2).sum() / 3)
    bce = -(TARGETS * sig.log() + (1 - TARGETS) * (1 - sig).log())
    assert torch.isclose(classification_loss(LOGITS, TARGETS, "bce"), bce.sum() / 3, atol=1e-6)


def test_ram_loss_total_is_cls_plus_gamma_times_the_weighted_constraints():
    t = batch_transforms()
    out = RAMOutput(logits=LOGITS, global_logits=LOGITS, step_logits=LOGITS[:, None].expand(3, 5, 4), transforms=t)
    cfg = LossConfig(classification="softmax_mse", gamma=0.1, scale_weight=1.0, anchor_weight=0.01,
                     positive_weight=0.1)
    terms = ram_loss(out, TARGETS, cfg, ANCHORS)
    expect = terms.classification + 0.1 * (terms.scale + 0.01 * terms.anchor + 0.1 * terms.positive)
    assert torch.isclose(terms.total, expect)
    assert torch.isclose(terms.anchor, anchor_loss(t, ANCHORS)) and terms.scale > 0 and terms.positive > 0


def test_old_mse_name_reads_as_sigmoid_mse():
    assert LossConfig(classification="mse").classification == "sigmoid_mse"
