# Copyright (c) mmwsss contributors.
"""IG-CAM losses (eq. (10)-(12)) against hand-computed values and finite
differences (``torch.autograd.gradcheck`` in float64)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from mmwsss.models import MultiLabelCutMix, MultiLabelMixUp
from mmwsss.models.losses import (BoundaryAlignmentLoss,
                                  InfluenceWeightedBCELoss,
                                  MultiScaleConsistencyLoss, sobel_magnitude)
from mmwsss.models.utils import valid_shape
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# ---------------------------------------------------------------- L_IG


def test_ig_bce_hand_computed():
    loss = InfluenceWeightedBCELoss(eps=0.01, loss_weight=2.0)
    # map means 1 and 3 -> m / mean(m) + eps = [0.51, 1.51], batch mean
    # 1.01, rescaled to mean 1 (inside the [0.25, 4] clamp)
    maps = torch.stack([torch.ones(1, 2, 2), 3 * torch.ones(1, 2, 2)])
    w = [0.51 / 1.01, 1.51 / 1.01]
    logits = torch.tensor([[0., 0.], [math.log(3.), 0.]])
    targets = torch.tensor([[1., 0.], [1., 1.]])
    # image 0: BCE(0, .) = log 2 for both classes
    # image 1: -log sigmoid(log 3) = log(4/3) and log 2
    per = [math.log(2.), (math.log(4 / 3) + math.log(2.)) / 2]
    expected = 2.0 * (w[0] * per[0] + w[1] * per[1]) / 2
    got = loss(logits, targets, influence_maps=maps)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # explicit weights take precedence; no maps -> plain soft-margin loss
    got_w = loss(logits, targets, weight=torch.tensor([1., 0.]))
    assert got_w.item() == pytest.approx(2.0 * per[0] / 2, rel=1e-6)
    plain = loss(logits, targets)
    assert plain.item() == pytest.approx(2.0 * sum(per) / 2, rel=1e-6)
    assert torch.allclose(
        loss.sample_weights(maps).float(), torch.tensor(w), atol=1e-6)
    assert loss.loss_name == 'loss_ig'


def test_ig_bce_weights_detached_and_gradcheck():
    loss = InfluenceWeightedBCELoss()
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 1, 4, 4, generator=gen, dtype=torch.float64)
    maps.requires_grad_(True)
    logits = torch.randn(3, 5, generator=gen, dtype=torch.float64,
                         requires_grad=True)
    targets = (torch.rand(3, 5, generator=gen) > 0.5).double()
    out = loss(logits, targets, influence_maps=maps)
    out.backward()
    assert maps.grad is None  # weights are detached
    assert torch.autograd.gradcheck(
        lambda z: loss(z, targets, influence_maps=maps.detach()),
        (logits.detach().requires_grad_(True), ))


# --------------------------------------------------------- consistency


def test_consistency_hand_computed():
    # one image, class 1 labelled, class 2 absent (its maps must not count)
    a = torch.zeros(1, 2, 2, 2)
    a[0, 0] = torch.tensor([[2., 0.], [0., 0.]])  # normalised [1, 0, 0, 0]
    a[0, 1] = torch.tensor([[5., -1.], [3., 0.]])
    b = torch.zeros(1, 2, 2, 2)
    b[0, 0] = torch.tensor([[1., 1.], [0., 0.]])  # normalised [1, 1, 0, 0]
    b[0, 1] = torch.tensor([[0., 7.], [1., 2.]])
    t = torch.tensor([[1., 0.]])
    # base [1, .5, 0, 0]: squared differences .25 at one pixel per scale
    l2 = MultiScaleConsistencyLoss(norm_eps=0., loss_weight=1.0)
    assert l2([a, b], t).item() == pytest.approx(0.5 / 4)
    l1 = MultiScaleConsistencyLoss(
        distance='l1', norm_eps=0., loss_weight=1.0)
    assert l1([a, b], t).item() == pytest.approx(1.0 / 4)
    # weights: scale a gets [[1, 2], [3, 4]] (two channels averaged), b 1
    wa = torch.stack([torch.tensor([[0., 2.], [2., 4.]]),
                      torch.tensor([[2., 2.], [4., 4.]])])[None]
    wb = torch.ones(1, 1, 2, 2)
    assert l2([a, b], t, [wa, wb]).item() == pytest.approx(0.75 / 4)
    # a 1x1 scale is upsampled to 2x2: constant, normalised to 1
    c = torch.full((1, 2, 1, 1), 5.)
    # base [1, .5, .5, .5]: .25 at three pixels in both scales
    assert l2([a, c], t).item() == pytest.approx(1.5 / 4)
    # loss_weight scales, detach_base keeps the value
    half = MultiScaleConsistencyLoss(norm_eps=0., detach_base=True)
    assert half([a, b], t).item() == pytest.approx(0.5 * 0.5 / 4)
    # a single scale has nothing to be consistent with
    assert l2([a], t).item() == 0


@pytest.mark.parametrize('distance', ['l2', 'l1'])
def test_consistency_gradcheck(distance):
    gen = torch.Generator().manual_seed(1)
    cams = [
        (torch.rand(2, 3, 4, 4, generator=gen, dtype=torch.float64) +
         0.1).requires_grad_(True),
        (torch.rand(2, 3, 2, 2, generator=gen, dtype=torch.float64) +
         0.1).requires_grad_(True),
    ]
    weights = [torch.rand(2, 1, 4, 4, generator=gen, dtype=torch.float64),
               None]
    t = torch.tensor([[1., 0., 1.], [0., 1., 0.]], dtype=torch.float64)
    loss = MultiScaleConsistencyLoss(distance=distance)
    assert torch.autograd.gradcheck(lambda x, y: loss([x, y], t, weights),
                                    tuple(cams))
    # with a detached base the value is the same, the gradient is that of
    # sum_s d(C_s, b) at fixed b (no finite-difference counterpart)
    det = MultiScaleConsistencyLoss(distance=distance, detach_base=True)
    g_full = torch.autograd.grad(loss(cams, t, weights), cams[1])[0]
    v = det(cams, t, weights)
    g_det = torch.autograd.grad(v, cams[1])[0]
    assert v.item() == pytest.approx(loss(cams, t, weights).item())
    assert not torch.allclose(g_full, g_det)


# ------------------------------------------------------------ boundary


def _step_case():
    # image: 8 x 8, columns 0..3 dark, 4..7 bright -> area pooled to the
    # 4 x 4 CAM grid: columns [0, 0, 1, 1]. Sobel / 8 with replicated
    # borders: |grad G| columns [0, .5, .5, 0].
    img = torch.zeros(1, 3, 8, 8)
    img[..., 4:] = 1.
    # CAM columns [0, 0, 0, 2] -> normalised [0, 0, 0, 1] -> |grad C|
    # columns [0, 0, .5, .5]; a second, unlabelled class is ignored.
    cam = torch.zeros(1, 2, 4, 4)
    cam[0, 0, :, 3] = 2.
    cam[0, 1] = torch.arange(16.).view(4, 4)
    t = torch.tensor([[1., 0.]])
    return cam, img, t


def test_sobel_magnitude_hand_computed():
    x = torch.tensor([0., 0., 1., 1.]).repeat(4, 1)[None, None]
    mag = sobel_magnitude(x, eps=0.)
    assert torch.allclose(mag[0, 0],
                          torch.tensor([0., .5, .5, 0.]).repeat(4, 1))


def test_boundary_l1_hand_computed():
    cam, img, t = _step_case()
    loss = BoundaryAlignmentLoss(norm_eps=0., grad_eps=0., loss_weight=1.0)
    # |diff| columns [0, .5, 0, .5]; W_b = sigmoid(1 * |grad G|) columns
    # [s(0), s(.5), s(.5), s(0)]; 4 equal rows over 16 pixels
    row = 0.5 * sig(0.5) + 0.5 * sig(0.)
    assert loss(cam, img, t).item() == pytest.approx(4 * row / 16, rel=1e-6)
    # a uniform influence of 2 doubles the sigmoid's argument
    row2 = 0.5 * sig(1.0) + 0.5 * sig(0.)
    inf = torch.full((1, 1, 2, 2), 2.)
    assert loss(cam, img, t, inf).item() == pytest.approx(
        4 * row2 / 16, rel=1e-6)
    assert BoundaryAlignmentLoss(norm_eps=0., grad_eps=0.)(
        cam, img, t).item() == pytest.approx(0.3 * 4 * row / 16, rel=1e-6)


def test_boundary_cosine_hand_computed():
    cam, img, t = _step_case()
    loss = BoundaryAlignmentLoss(
        mode='cosine', norm_eps=0., grad_eps=0., loss_weight=1.0)
    s = sig(0.5)
    # per row: <W g_c, g_i> = s * .25; W g_c^2 = (s + .5) * .25;
    # W g_i^2 = 2 s * .25
    expected = 1 - s / math.sqrt((s + 0.5) * 2 * s)
    assert loss(cam, img, t).item() == pytest.approx(expected, rel=1e-6)
    # identical edge maps -> 0
    same = torch.zeros(1, 1, 4, 4)
    same[..., 2:] = 1.
    img4 = torch.zeros(1, 3, 4, 4)
    img4[..., 2:] = 1.
    assert loss(same, img4).item() == pytest.approx(0., abs=1e-7)


@pytest.mark.parametrize('mode', ['l1', 'cosine'])
def test_boundary_gradcheck(mode):
    gen = torch.Generator().manual_seed(2)
    cam = (torch.rand(2, 2, 5, 5, generator=gen, dtype=torch.float64) +
           0.1).requires_grad_(True)
    img = torch.rand(2, 3, 10, 10, generator=gen, dtype=torch.float64)
    inf = torch.rand(2, 1, 3, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([[1., 1.], [0., 1.]], dtype=torch.float64)
    loss = BoundaryAlignmentLoss(mode=mode)
    assert torch.autograd.gradcheck(lambda c: loss(c, img, t, inf), (cam, ))


def test_losses_build_from_registry():
    for name, key in (('InfluenceWeightedBCELoss', 'loss_ig'),
                      ('MultiScaleConsistencyLoss', 'loss_consistency'),
                      ('BoundaryAlignmentLoss', 'loss_boundary')):
        assert MODELS.build(dict(type=name)).loss_name == key
    with pytest.raises(ValueError):
        MultiScaleConsistencyLoss(distance='l3')
    with pytest.raises(ValueError):
        BoundaryAlignmentLoss(mode='dot')


@pytest.mark.parametrize('mode', ['l1', 'cosine'])
def test_boundary_ignores_the_padding(mode):
    """A crop padded at the bottom / right (as the data preprocessor does)
    with garbage CAM cells over the padding gives exactly the loss of the
    crop alone; without ``valid_shapes`` the padding does create loss."""
    gen = torch.Generator().manual_seed(3)
    d = torch.float64
    # image 0: a 24 x 40 crop padded to 32 x 48; image 1 fills the input
    crop = torch.rand(1, 3, 24, 40, generator=gen, dtype=d)
    full = torch.rand(1, 3, 32, 48, generator=gen, dtype=d)
    cam_crop = torch.randn(1, 2, 3, 5, generator=gen, dtype=d)  # stride 8
    cam_full = torch.randn(1, 2, 4, 6, generator=gen, dtype=d)
    cam0 = 5 * torch.randn(1, 2, 4, 6, generator=gen, dtype=d)  # garbage
    cam0[..., :3, :5] = cam_crop
    img0 = torch.zeros(1, 3, 32, 48, dtype=d)
    img0[..., :24, :40] = crop
    cam = torch.cat([cam0, cam_full])
    imgs = torch.cat([img0, full])
    t = torch.tensor([[1., 1.], [0., 1.]], dtype=d)
    # influence on the upsampled grid (stride 2: factor 4 -> 16 x 24)
    inf = torch.rand(2, 1, 16, 24, generator=gen, dtype=d) + 0.5
    loss = BoundaryAlignmentLoss(mode=mode, max_stride=2, loss_weight=1.)
    got = loss(cam, imgs, t, inf, valid_shapes=[(24, 40), (32, 48)])
    a = loss(cam_crop, crop, t[:1], inf[:1, :, :12, :20])
    b = loss(cam_full, full, t[1:], inf[1:])
    if mode == 'l1':  # mean over valid cells of labelled class maps
        n0, n1 = 2 * 12 * 20, 1 * 16 * 24
        ref = (a * n0 + b * n1) / (n0 + n1)
    else:  # mean over labelled class maps
        ref = (2 * a + b) / 3
    assert got.item() == pytest.approx(ref.item(), rel=1e-12)
    # the padded image alone, too
    one = loss(cam0, img0, t[:1], inf[:1], valid_shapes=[(24, 40)])
    assert one.item() == pytest.approx(a.item(), rel=1e-12)
    # the test can fail: without the valid area the padding counts
    unmasked = loss(cam0, img0, t[:1], inf[:1])
    assert abs(unmasked.item() - a.item()) > 1e-3
    # a shape that is not a multiple of the stride drops the partial cell
    part = loss(cam0, img0, t[:1], inf[:1], valid_shapes=[(30, 47)])
    assert part.item() == pytest.approx(a.item(), rel=1e-12)


def test_boundary_runs_at_eighth_resolution():
    """A 1/32 CAM (4 x 4 of 128 px) is upsampled bilinearly by 4 to 1/8
    before the loss: the same as giving the upsampled CAM with the old,
    resolution-keeping loss."""
    gen = torch.Generator().manual_seed(4)
    cam = torch.randn(2, 3, 4, 4, generator=gen)
    img = torch.rand(2, 3, 128, 128, generator=gen)
    t = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    new = BoundaryAlignmentLoss(loss_weight=1.)
    assert new.upsample_factor((4, 4), (128, 128)) == 4
    assert new.upsample_factor((32, 32), (128, 128)) == 1
    up = F.interpolate(cam, size=(16, 16), mode='bilinear',
                       align_corners=False)
    old = BoundaryAlignmentLoss(max_stride=None, loss_weight=1.)
    assert new(cam, img, t).item() == pytest.approx(
        old(up, img, t).item(), rel=1e-6)
    assert abs(new(cam, img, t).item() - old(cam, img, t).item()) > 1e-3
    with pytest.raises(ValueError):
        BoundaryAlignmentLoss(max_stride=0)


def test_mixes_intersect_the_valid_shapes():
    """MixUp / CutMix write the intersection of both images' unpadded
    areas as ``valid_shape`` (the partner's padding is in the mix)."""
    def samples():
        out = []
        for shape in ((20, 32), (32, 24), (32, 32)):
            s = SegDataSample()
            s.set_metainfo(dict(img_labels=[1], img_shape=shape))
            out.append(s)
        return out

    x = torch.zeros(3, 3, 32, 32)
    _, mixed = MultiLabelMixUp().mix(x, samples(), 0.5, [1, 2, 0])
    assert [valid_shape(s) for s in mixed] == [(20, 24), (32, 24), (20, 32)]
    _, cut = MultiLabelCutMix().mix(x, samples(), (0, 8, 0, 8), [2, 0, 1])
    assert [valid_shape(s) for s in cut] == [(20, 32), (20, 24), (32, 24)]
    # an empty box mixes nothing
    _, same = MultiLabelCutMix().mix(x, samples(), (4, 4, 0, 8), [1, 2, 0])
    assert [valid_shape(s) for s in same] == [(20, 32), (32, 24), (32, 32)]
