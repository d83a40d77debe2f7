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
