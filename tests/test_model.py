import pytest
import torch
import torch.nn.functional as F

from ram_core.config import RAMConfig
from ram_core.model import (BaselineHead, RecurrentAttentionHead, pool_region, sample_region, transform_to_box,
                            transform_to_theta)


def make_head(**kw):
    cfg = RAMConfig(class_names=["a", "b", "c", "d"], num_steps=kw.pop("num_steps", 5), region_size=4,
                    embed_dim=16, hidden_size=16, **kw)
    torch.manual_seed(0)
    return RecurrentAttentionHead(cfg, in_channels=8), cfg


def test_output_shapes():
    head, cfg = make_head()
    out = head(torch.randn(3, 8, 7, 7))
    assert out.logits.shape == (3, 4)
    assert out.global_logits.shape == (3, 4)
    assert out.step_logits.shape == (3, 5, 4)
    assert out.transforms.shape == (3, 5, 4)


def test_identity_transform_is_the_whole_image_box():
    identity = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert torch.allclose(transform_to_box(identity), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    # and half scale at the top-left anchor covers the top-left quadrant... centred on (0.25, 0.25)
    box = transform_to_box(torch.tensor([0.5, 0.5, -0.5, -0.5]))
    assert torch.allclose(box, torch.tensor([0.0, 0.0, 0.5, 0.5]))


def test_identity_sampling_reproduces_the_map():
    fmap = torch.randn(2, 3, 6, 6)
    region = sample_region(fmap, torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 2), 6)
    assert torch.allclose(region, fmap, atol=1e-5)


def test_sampler_reads_the_region_the_box_names():
    # a map that is 1 only in its top-left quadrant: sampling the top-left box reads only ones
    fmap = torch.zeros(1, 1, 8, 8)
    fmap[..., :4, :4] = 1.0
    region = sample_region(fmap, torch.tensor([[0.5, 0.5, -0.5, -0.5]]), 4)
    assert torch.allclose(region, torch.ones_like(region))
    region = sample_region(fmap, torch.tensor([[0.5, 0.5, 0.5, 0.5]]), 4)
    assert torch.allclose(region, torch.zeros_like(region))


def test_theta_layout():
    theta = transform_to_theta(torch.tensor([0.3, 0.4, 0.1, -0.2]))
    assert torch.allclose(theta, torch.tensor([[0.3, 0.0, 0.1], [0.0, 0.4, -0.2]]))


def test_box_to_transform_inverts_transform_to_box():
    from ram_core.sampler import box_to_transform

    t = torch.tensor([[0.2, 0.5, 0.4, -0.5], [1.0, 1.0, 0.0, 0.0]])
    assert torch.allclose(box_to_transform(transform_to_box(t)), t, atol=1e-6)


def test_gradients_reach_the_transform_head_through_the_sampler():
    head, _ = make_head(init_scale=0.6)
    fmap = torch.randn(2, 8, 7, 7)
    out = head(fmap)
    # the loss depends on transforms only through the sampled regions (no constraint terms)
    F.binary_cross_entropy_with_logits(out.logits, torch.ones_like(out.logits)).backward()
    g = head.localizer.weight.grad
    assert g is not None and g.abs().sum() > 0


def test_fused_score_is_the_max_over_steps():
    head, _ = make_head()
    out = head(torch.randn(4, 8, 7, 7))
    assert torch.equal(out.logits, out.step_logits.max(1).values)


def test_fuse_global_option_includes_the_global_step():
    head, _ = make_head(fuse_global=True)
    out = head(torch.randn(4, 8, 7, 7))
    pool = torch.cat([out.global_logits[:, None], out.step_logits], 1)
    assert torch.equal(out.logits, pool.max(1).values)


def test_first_step_uses_the_identity_then_k_transforms():
    head, cfg = make_head(transform_mode="anchored", num_steps=5)
    out = head(torch.randn(2, 8, 7, 7))
    # anchored mode starts each step at its anchor with the initial scale
    centres = out.transforms[0, :, 2:]
    assert torch.allclose(centres, torch.tensor(cfg.anchors), atol=0.05)


def test_steps_depend_on_memory():
    # the LSTM carries state: feeding a different map changes later steps' transforms
    head, _ = make_head()
    with torch.no_grad():
        head.localizer.weight.normal_(std=0.3)
    a = head(torch.randn(1, 8, 7, 7)).transforms
    b = head(torch.randn(1, 8, 7, 7)).transforms
    assert not torch.allclose(a[0, 1:], b[0, 1:])


def test_asymmetric_transform_to_box():
    # s_x != s_y and t_x != t_y: x spans t_x -+ s_x, y spans t_y -+ s_y, as fractions of the image
    box = transform_to_box(torch.tensor([[0.2, 0.5, 0.4, -0.5], [0.1, 0.3, -0.7, 0.2]]))
    assert torch.allclose(box, torch.tensor([[0.6, 0.0, 0.8, 0.5], [0.1, 0.45, 0.2, 0.75]]))


def test_box_and_sampler_agree_on_an_asymmetric_map():
    """A map 6 rows x 10 columns that is 1 in one wide, short block; a transform whose box (from
    transform_to_box) is that block reads only ones, and the transposed transform reads none."""
    fmap = torch.zeros(1, 1, 6, 10)
    fmap[..., 0:4, 5:10] = 1.0  # rows 0-3 (top two thirds), columns 5-9 (right half)
    t = torch.tensor([[0.4, 1 / 6, 0.6, -1 / 3]])  # x: 0.6 +- 0.4 -> [0.6, 1.0]; y: [0.25, 5/12]
    assert torch.allclose(transform_to_box(t), torch.tensor([[0.6, 0.25, 1.0, 5 / 12]]), atol=1e-6)
    region = sample_region(fmap, t, 4)
    assert torch.allclose(region, torch.ones_like(region), atol=1e-5)
    assert torch.allclose(pool_region(fmap, t, 4), torch.ones(1, 1), atol=1e-5)
    swapped = t[:, [1, 0, 3, 2]]
    assert sample_region(fmap, swapped, 4).abs().max() == 0
    assert pool_region(fmap, swapped, 4).abs().max() == 0


def test_flatten_encoder_and_region_skip():
    head, _ = make_head(region_encoder="flatten", region_skip=True)
    out = head(torch.randn(2, 8, 7, 7))
    assert out.logits.shape == (2, 4)


def test_baseline_head_is_gap_plus_linear():
    cfg = RAMConfig(class_names=["a", "b"], head="baseline")
    head = BaselineHead(cfg, 8)
    fmap = torch.randn(3, 8, 5, 5)
    out = head(fmap)
    assert torch.allclose(out.logits, head.classifier(fmap.mean((2, 3))))
    assert out.step_logits.shape == (3, 0, 2)


def test_full_model_on_images(random_model, small_cfg):
    out = random_model(torch.randn(2, 3, small_cfg.input_size, small_cfg.input_size))
    assert out.step_logits.shape == (2, small_cfg.num_steps, small_cfg.num_classes)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        RAMConfig(class_names=["a"], head="nope")
    with pytest.raises(ValueError):
        RAMConfig(class_names=["a", "a"])
    with pytest.raises(ValueError):
        RAMConfig.from_dict({"class_names": ["a"], "no_such_field": 1})


def test_evidence_localizer_looks_where_the_evidence_is():
    head, cfg = make_head(transform_mode="evidence", num_steps=1)
    with torch.no_grad():  # every class's evidence = channel 0 of the map
        head.localizer.evidence.weight.zero_()
        head.localizer.evidence.weight[:, 0] = 1.0
        head.localizer.evidence.bias.zero_()
    centres = []
    for cell in [(1, 1), (5, 5), (1, 5)]:
        fmap = torch.zeros(1, 8, 7, 7)
        fmap[0, 0, cell[0], cell[1]] = 10.0  # a strong object at row, column
        centres.append(head(fmap).transforms[0, 0, 2:])
    (tl, br, tr) = centres
    assert tl[0] < 0 and tl[1] < 0  # top-left object: centre moves up and left
    assert br[0] > 0 and br[1] > 0
    assert tr[0] > 0 and tr[1] < 0  # (t_x, t_y) = (column, row)


@pytest.mark.parametrize("size", [1, 3, 7])
def test_separable_pooling_matches_grid_sample(size):
    from ram_core.model import pool_region, sample_region

    torch.manual_seed(1)
    fmap = torch.randn(4, 5, 9, 11, dtype=torch.float64)
    # inside, partly outside, mirrored (negative scale) and tiny regions
    tr = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.4, 0.7, 0.8, -0.9], [-0.5, 0.3, 0.1, 0.2], [0.05, 0.1, -0.3, 0.4]],
                      dtype=torch.float64, requires_grad=True)
    ref = sample_region(fmap, tr, size)
    assert torch.allclose(pool_region(fmap, tr, size), ref.mean((2, 3)), atol=1e-10)
    # and the gradients with respect to the transform agree (away from the kinks of the bilinear
    # weights, where float rounding picks the one-sided derivative, e.g. the identity on this grid)
    tr2 = (tr.detach() + torch.tensor([0.013, -0.021, 0.017, 0.029], dtype=torch.float64)).requires_grad_()
    g_ours, = torch.autograd.grad(pool_region(fmap, tr2, size).square().sum(), tr2)
    g_ref, = torch.autograd.grad(sample_region(fmap, tr2, size).mean((2, 3)).square().sum(), tr2)
    assert torch.allclose(g_ours, g_ref, atol=1e-8)


@pytest.mark.parametrize("mode", ["anchored", "evidence"])
def test_every_step_starts_at_its_own_anchor(mode):
    """With nothing learned yet (no evidence anywhere), step k's centre is nearest to anchor k."""
    head, cfg = make_head(transform_mode=mode, num_steps=5)
    if mode == "evidence":
        with torch.no_grad():
            head.localizer.evidence.weight.zero_()
            head.localizer.evidence.bias.zero_()
            head.localizer.adjust.weight.zero_()
    centres = head(torch.randn(2, 8, 9, 9)).transforms[..., 2:]  # (B, K, 2)
    anchors = torch.tensor(cfg.anchors)
    nearest = torch.cdist(centres, anchors[None].expand(2, 5, 2)).argmin(-1)  # (B, K)
    assert nearest.tolist() == [[0, 1, 2, 3, 4]] * 2


def test_separable_sampler_equals_affine_grid_sampling():
    """The separable sampler (two small matrix products; the ONNX export's path) reads the same region
    as affine grid + bilinear sampling, on a map with more columns than rows."""
    from ram_core.sampler import sample_region, sample_region_separable

    torch.manual_seed(0)
    features = torch.randn(5, 7, 9, 11)
    # regions inside, across the border, mirrored (negative scale) and fully outside the map
    transforms = torch.tensor([[0.5, 0.4, 0.1, -0.2], [0.9, 1.2, 0.6, 0.5], [-0.3, 0.5, 0.0, 0.0],
                               [0.2, 0.2, 1.8, -1.7], [1.0, 1.0, 0.0, 0.0]])
    expected = sample_region(features, transforms, 4)
    got = sample_region_separable(features, transforms, 4)
    assert got.shape == expected.shape == (5, 7, 4, 4)
    assert torch.allclose(got, expected, atol=1e-5)


def test_explained_inhibition_lowers_only_the_classes_already_found():
    """Per-class inhibition: where an earlier step found class 0, class 0's evidence is lowered and the
    next step follows class 1 elsewhere; if that step had found class 1 there instead, class 0's peak
    still draws the next step (a place is not closed to the classes it has not explained)."""
    from ram_core.heads.recurrent import EvidenceLocalizer

    loc = EvidenceLocalizer(in_channels=2, num_classes=2, hidden=4, init_scale=0.5, sigma=10.0,
                            sharpness=20.0, explained=8.0)
    evidence = torch.zeros(1, 2, 7, 7)
    evidence[0, 0, 3, 1] = 10.0  # class 0: strong, on the left
    evidence[0, 1, 3, 5] = 6.0  # class 1: weaker, on the right
    h, anchor = torch.zeros(1, 4), torch.zeros(2)
    left = torch.zeros(1, 49)
    left[0, 3 * 7 + 1] = 1.0  # an earlier step looked at the left peak's cell
    found_0 = torch.stack([left, torch.zeros_like(left)], 1)  # (B, classes, H*W): it found class 0
    found_1 = torch.stack([torch.zeros_like(left), left], 1)  # it found class 1 there
    with torch.no_grad():
        loc.adjust.weight.zero_()
        free = loc(evidence, h, anchor)[0, 2]
        after_0 = loc(evidence, h, anchor, explained=found_0)[0, 2]
        after_1 = loc(evidence, h, anchor, explained=found_1)[0, 2]
    assert free < -0.3  # t_x: the strongest evidence, on the left
    assert after_0 > 0.3  # class 0 explained there: the step goes to class 1 on the right
    assert after_1 < -0.3  # class 1 "explained" on the left changes nothing for class 0


def test_explained_inhibition_reads_the_scores_the_model_reports():
    """The localizer's view of what step k found is step k's reported scores (dropout aside), so the
    inhibition follows the classes the user sees each step score."""
    head, cfg = make_head(transform_mode="evidence", region_skip=True, evidence_explained=4.0, num_steps=4)
    head.eval()
    with torch.no_grad():  # scores that differ from class to class, so that what is found matters
        head.region_classifier.weight.normal_(std=2.0)
    seen = []
    original = head.region_scores
    head.region_scores = lambda z, region: seen.append(original(z, region)) or seen[-1]
    features = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        out = head(features)
    assert len(seen) == cfg.num_steps - 1  # steps 1..K-1 steer a later step
    assert torch.allclose(torch.stack(seen, 1), out.step_logits[:, :-1], atol=1e-5)
    # it moves the later steps, not the first
    head.localizer.explained = 0.0
    with torch.no_grad():
        plain = head(features).transforms
    assert torch.allclose(plain[:, 0], out.transforms[:, 0])
    assert not torch.allclose(plain[:, 1:], out.transforms[:, 1:], atol=1e-4)
