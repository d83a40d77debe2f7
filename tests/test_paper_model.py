"""The paper's model, pinned equation by equation (docs/PAPER.md).

`paper_reference` below re-implements the paper's recurrence from its equations, by hand (its own
affine matrices, LSTM gates and max fusion), with the head's parameters; the head must give the same
numbers.  The weights are randomised first, W_M included, so that the transforms differ between
steps, between images and between x and y (a head that swapped them, forgot its memory, started
somewhere other than the whole map or read the scores off h_k would not match).
"""

import pytest
import torch
import torch.nn.functional as F

from ram_core.config import RAMConfig
from ram_core.heads import RecurrentAttentionHead
from ram_core.losses import ram_loss
from ram_core.presets import (PAPER_ALPHA, PAPER_ANCHORS, PAPER_BETA, PAPER_GAMMA, PAPER_LAMBDA1, PAPER_LAMBDA2,
                              departures_from_paper, paper_config)

CLASSES = ["a", "b", "c", "d", "e"]


def small_paper_head(seed: int = 0, **changes) -> RecurrentAttentionHead:
    cfg = paper_config(CLASSES, **changes).replace(region_size=4, region_channels=3, embed_dim=12, hidden_size=10,
                                                    z_size=10)
    torch.manual_seed(seed)
    return RecurrentAttentionHead(cfg, in_channels=6)


def randomise(head: torch.nn.Module, seed: int = 3) -> None:
    """Random weights everywhere; W_M small, its bias a valid asymmetric box (s_x != s_y, t_x != t_y)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        head.localizer.weight.copy_(torch.randn(head.localizer.weight.shape, generator=g) * 0.3)
        head.localizer.bias.copy_(torch.tensor([0.6, 0.35, 0.2, -0.3]))


def lstm_cell(x, h, c, cell: torch.nn.LSTMCell):
    """torch.nn.LSTMCell's equations written out: gates i, f, g, o."""
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def paper_reference(head: RecurrentAttentionHead, f_I: torch.Tensor, memory: bool = True):
    """(fused (B, C), scores of steps 1..K (B, K, C), M_1..M_K as (B, K, 2, 3)) by the paper's equations."""
    cfg = head.cfg
    b = f_I.shape[0]
    fmap = F.conv2d(f_I, head.encoder.reduce.weight, head.encoder.reduce.bias)  # the 1x1 projection
    r = cfg.region_size
    M = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(b, 2, 3)  # M_0: the whole map
    h = c = torch.zeros(b, cfg.hidden_size)
    scores, Ms = [], []
    for k in range(cfg.num_steps + 1):
        grid = F.affine_grid(M, [b, fmap.shape[1], r, r], align_corners=False)
        region = F.max_pool2d(F.grid_sample(fmap, grid, align_corners=False), 2)  # f_k = ST(f_I, M_k)
        x = region.flatten(1) @ head.encoder.fc.weight.T + head.encoder.fc.bias
        if not memory:
            h = c = torch.zeros(b, cfg.hidden_size)
        h, c = lstm_cell(x, h, c, head.lstm)
        z = torch.relu(h @ head.bottleneck[0].weight.T + head.bottleneck[0].bias)  # z_k = ReLU(W_z h_k)
        s = z @ head.classifier.weight.T + head.classifier.bias  # s_k = W_s z_k
        if k > 0:
            scores.append(s)
            Ms.append(M)
        m = z @ head.localizer.weight.T + head.localizer.bias  # M_{k+1} = W_M z_k: (s_x, s_y, t_x, t_y)
        zero = torch.zeros(b)
        M = torch.stack([torch.stack([m[:, 0], zero, m[:, 2]], 1), torch.stack([zero, m[:, 1], m[:, 3]], 1)], 1)
    scores = torch.stack(scores, 1)
    return scores.max(1).values, scores, torch.stack(Ms, 1)


def asymmetric_map(b=3, c=6, h=6, w=10, seed=2):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("memory", [True, False])
def test_paper_head_follows_the_papers_equations(memory):
    head = small_paper_head(memory=memory)
    randomise(head)
    fmap = asymmetric_map()
    with torch.no_grad():
        out = head(fmap)
        fused, steps, Ms = paper_reference(head, fmap, memory=memory)
    assert torch.allclose(out.transforms, torch.stack([Ms[..., 0, 0], Ms[..., 1, 1], Ms[..., 0, 2], Ms[..., 1, 2]], -1),
                          atol=1e-5)
    assert torch.allclose(out.step_logits, steps, atol=1e-5)
    assert torch.allclose(out.logits, fused, atol=1e-5)
    assert torch.allclose(out.global_logits, out.global_logits)  # (shapes above: hidden = z = 10)
    # the randomised transforms really are asymmetric and differ from step to step
    assert (out.transforms[..., 0] - out.transforms[..., 1]).abs().min() > 1e-3
    assert (out.transforms[:, 1:] - out.transforms[:, :-1]).abs().amax() > 1e-2


def test_memory_matters():
    """With memory the later steps depend on what earlier steps saw; the reset ablation differs."""
    head = small_paper_head()
    randomise(head)
    fmap = asymmetric_map()
    with torch.no_grad():
        with_memory = head(fmap)
        head.cfg.memory = False
        without = head(fmap)
    assert not torch.allclose(with_memory.step_logits[:, 1:], without.step_logits[:, 1:], atol=1e-4)


def test_step_zero_is_the_identity_and_is_left_out_of_the_fusion():
    head = small_paper_head()
    randomise(head)
    fmap = asymmetric_map()
    with torch.no_grad():
        out = head(fmap)
    # the fused score is the max over steps 1..K, not 0..K (step 0 is the largest somewhere here, so
    # including it would change the fused scores)
    assert (out.global_logits > out.step_logits.amax(1)).any()
    assert torch.equal(out.logits, out.step_logits.amax(1))
    assert out.transforms.shape == (3, 5, 4)  # M_1..M_K: M_0 is not a prediction
    # step 0 reads the whole (projected) map: its scores equal the reference's first step
    fmap_r = F.conv2d(fmap, head.encoder.reduce.weight, head.encoder.reduce.bias)
    r = head.cfg.region_size
    grid = F.affine_grid(torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]).expand(3, 2, 3), [3, 3, r, r], align_corners=False)
    x = F.max_pool2d(F.grid_sample(fmap_r, grid, align_corners=False), 2).flatten(1)
    h, _ = lstm_cell(head.encoder.fc(x), torch.zeros(3, 10), torch.zeros(3, 10), head.lstm)
    s0 = head.classifier(head.bottleneck(h))
    assert torch.allclose(out.global_logits, s0, atol=1e-5)


def test_before_training_every_step_sees_the_whole_map():
    head = small_paper_head()  # fresh: W_M = 0, bias = identity
    assert torch.count_nonzero(head.localizer.weight) == 0
    assert head.localizer.bias.tolist() == [1.0, 1.0, 0.0, 0.0]
    out = head(asymmetric_map())
    assert torch.allclose(out.transforms, torch.tensor([1.0, 1.0, 0.0, 0.0]).expand(3, 5, 4))


def test_paper_preset_numbers_one_by_one():
    cfg = RAMConfig.paper(CLASSES)
    assert cfg == paper_config(CLASSES)
    assert cfg.preset == "paper" and cfg.head == "ram"
    assert cfg.num_steps == 5
    assert cfg.loss.gamma == 0.1 == PAPER_GAMMA
    assert cfg.loss.scale_weight == 1.0
    assert cfg.loss.anchor_weight == 0.01 == PAPER_LAMBDA1
    assert cfg.loss.positive_weight == 0.1 == PAPER_LAMBDA2
    assert cfg.loss.alpha == 0.5 == PAPER_ALPHA
    assert cfg.loss.beta == 0.1 == PAPER_BETA
    assert cfg.loss.classification == "softmax_mse" and cfg.score_activation == "softmax"
    assert cfg.anchors == [[0.0, 0.0], [0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]] == PAPER_ANCHORS
    assert cfg.transform_mode == "direct" and cfg.init_scale == 1.0
    assert cfg.z_size > 0 and cfg.memory is True
    assert cfg.fuse_global is False and cfg.region_skip is False and cfg.imagenet_groups is None
    assert cfg.test_time_flip is False and cfg.dropout == 0.0
    assert cfg.region_encoder == "maxpool" and cfg.region_size == 14
    vgg = RAMConfig.paper(CLASSES, backbone="vgg16")
    assert (vgg.region_channels, vgg.embed_dim, vgg.hidden_size, vgg.z_size) == (0, 4096, 4096, 4096)
    assert departures_from_paper(vgg) == []
    assert vgg.feature_norm is False and cfg.feature_norm is True  # a frozen Lite0 map is standardised
    assert {d["field"] for d in departures_from_paper(cfg)} == {"backbone", "region_channels", "embed_dim",
                                                                "hidden_size", "z_size", "feature_norm"}


def test_paper_loss_is_the_papers_sum_on_a_paper_head():
    """L = L_cls + 0.1 (L_S + 0.01 L_A + 0.1 L_P) on the head's own output, batch of 3."""
    head = small_paper_head()
    randomise(head)
    out = head(asymmetric_map())
    y = torch.tensor([[1.0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [1, 1, 1, 0, 0]])
    cfg = head.cfg.loss
    terms = ram_loss(out, y, cfg, torch.tensor(cfg.anchors))
    t = out.transforms.detach()
    p = out.logits.detach().softmax(1)
    g = y / y.sum(1, keepdim=True)
    cls = ((p - g) ** 2).sum() / 3
    anchors = torch.tensor(PAPER_ANCHORS)
    la = (0.5 * ((t[..., 2:] - anchors) ** 2).sum(-1)).sum() / 3
    ls = ((t[..., :2].abs() - 0.5).clamp(min=0) ** 2).sum() / 3
    lp = (0.1 - t[..., :2]).clamp(min=0).sum() / 3
    assert torch.isclose(terms.classification, cls, atol=1e-6)
    assert torch.isclose(terms.total, cls + 0.1 * (ls + 0.01 * la + 0.1 * lp), atol=1e-6)


def test_feature_norm_standardises_the_map_the_region_encoder_reads():
    """feature_norm: the recurrent path reads (f - mean) / std per channel, with the statistics
    measured on training features; a head without it is unchanged (and has no such buffers)."""
    import numpy as np

    from ram_core.feature_norm import channel_stats, set_feature_stats
    from ram_core.heads import RecurrentAttentionHead

    rng = np.random.default_rng(0)
    feats = (rng.random((10, 6, 4, 5)) * np.arange(1, 7)[None, :, None, None] + np.arange(6)[None, :, None, None]).astype(np.float16)
    mean, std = channel_stats(feats, chunk=3)
    ref = feats.astype(np.float64)
    assert np.allclose(mean.numpy(), ref.mean((0, 2, 3)), atol=1e-4)
    assert np.allclose(std.numpy(), ref.std((0, 2, 3)), atol=1e-4)

    cfg = paper_config(["a", "b", "c"]).replace(feature_norm=True, region_channels=4, embed_dim=8, hidden_size=8, z_size=8)
    torch.manual_seed(0)
    head = RecurrentAttentionHead(cfg, 6)
    assert set_feature_stats(head, feats)
    plain = RecurrentAttentionHead(cfg.replace(feature_norm=False), 6)
    plain.load_state_dict({k: v for k, v in head.state_dict().items() if not k.startswith("feature_")})
    assert not hasattr(plain, "feature_mean") and not set_feature_stats(plain, feats)
    x = torch.from_numpy(feats.astype(np.float32))
    normed = (x - mean[:, None, None]) / std[:, None, None]
    with torch.no_grad():
        assert torch.allclose(head(x).step_logits, plain(normed).step_logits, atol=1e-5)
        assert not torch.allclose(head(x).step_logits, plain(x).step_logits, atol=1e-3)


def test_average_fusion_is_the_mean_of_the_global_step_and_the_steps_max():
    from ram_core.config import RAMConfig
    from ram_core.heads import RecurrentAttentionHead

    cfg = RAMConfig(class_names=["a", "b", "c"], num_steps=3, region_channels=4, embed_dim=8, hidden_size=8,
                    region_encoder="flatten", region_size=4, fusion="average")
    torch.manual_seed(0)
    head = RecurrentAttentionHead(cfg, 6).eval()
    out = head(torch.randn(2, 6, 5, 5))
    assert torch.allclose(out.logits, (out.global_logits + out.step_logits.amax(1)) / 2)
    with pytest.raises(ValueError, match="fuse_global"):
        cfg.replace(fuse_global=True)


def test_another_head_on_the_default_recipe_builds():
    """--preset default --head csra / baseline: the strongest baselines on the default model's recipe."""
    from ram_core.cli import build_parser
    from ram_core.cli.train import config_from_args

    for head in ("csra", "baseline"):
        args = build_parser().parse_args(["train", "--data", "voc", "--root", "x", "--out", "y",
                                          "--preset", "default", "--head", head])
        cfg = config_from_args(args, ["aeroplane", "person", "cat"])
        assert cfg.head == head and cfg.global_attention == 0.0 and cfg.imagenet_mode == "prior+init"
        assert cfg.imagenet_groups[0] and not cfg.imagenet_groups[1]  # person has no ImageNet group
