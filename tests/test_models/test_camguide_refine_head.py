# Copyright (c) mmwsss contributors.
"""CamGuide refinement head and guided filter (CamGuide eqs. (17)-(22)).

References are independent of the code under test: a brute-force numpy
guided filter with explicit loops over windows and ``np.linalg.solve``,
OpenCV bilinear resizing, block means by reshaping and ``F.conv2d``.
"""
import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.models import CamGuideRefineHead, GuidedFilter
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()
D64 = torch.float64


def gf_reference(p, img, radius, eps, guide):
    """He et al.'s guided filter by explicit loops over windows.

    Args:
        p (np.ndarray): ``(K, H, W)`` input.
        img (np.ndarray): ``(3, H, W)`` guide.

    Returns:
        np.ndarray: ``(K, H, W)``.
    """
    p = np.asarray(p, np.float64)
    g = np.asarray(img, np.float64)
    if guide == 'gray':
        g = g.mean(axis=0, keepdims=True)
    c, h, w = g.shape
    nk = p.shape[0]
    a = np.zeros((h, w, nk, c))
    b = np.zeros((h, w, nk))
    for y in range(h):
        for x in range(w):
            ys = range(max(0, y - radius), min(h, y + radius + 1))
            xs = range(max(0, x - radius), min(w, x + radius + 1))
            pix = [(yy, xx) for yy in ys for xx in xs]
            n = len(pix)
            mu = sum(g[:, yy, xx] for yy, xx in pix) / n
            sigma = sum(
                np.outer(g[:, yy, xx] - mu, g[:, yy, xx] - mu)
                for yy, xx in pix) / n
            for k in range(nk):
                pbar = sum(p[k, yy, xx] for yy, xx in pix) / n
                cov = sum((g[:, yy, xx] - mu) * (p[k, yy, xx] - pbar)
                          for yy, xx in pix) / n
                a[y, x, k] = np.linalg.solve(sigma + eps * np.eye(c), cov)
                b[y, x, k] = pbar - a[y, x, k] @ mu
    q = np.zeros((nk, h, w))
    for y in range(h):
        for x in range(w):
            wins = [
                (yy, xx)
                for yy in range(max(0, y - radius), min(h, y + radius + 1))
                for xx in range(max(0, x - radius), min(w, x + radius + 1))
            ]
            for k in range(nk):
                q[k, y, x] = np.mean([
                    a[yy, xx, k] @ g[:, y, x] + b[yy, xx, k] for yy, xx in wins
                ])
    return q


# ------------------------------------------------------------ guided filter


@pytest.mark.parametrize('guide', ['color', 'gray'])
@pytest.mark.parametrize('shape,radius,eps', [((7, 9), 2, 1e-2),
                                              ((3, 4), 5, 0.1),
                                              ((4, 5), 0, 1e-2)])
def test_guided_filter_matches_brute_force(guide, shape, radius, eps):
    rng = np.random.default_rng(0)
    h, w = shape
    p = rng.normal(size=(2, 2, h, w))
    img = rng.uniform(size=(2, 3, h, w))
    # a correlated guide makes the covariance non-trivial
    img[:, 1] = 0.5 * img[:, 0] + 0.5 * img[:, 1]
    gf = GuidedFilter(radius=radius, eps=eps, guide=guide)
    out = gf(torch.from_numpy(p), torch.from_numpy(img)).numpy()
    for i in range(2):
        ref = gf_reference(p[i], img[i], radius, eps, guide)
        np.testing.assert_allclose(out[i], ref, rtol=1e-9, atol=1e-9)


def test_guided_filter_float32_and_half():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(1, 3, 6, 5))
    img = rng.uniform(size=(1, 3, 6, 5))
    ref = gf_reference(p[0], img[0], 2, 1e-2, 'color')
    gf = GuidedFilter(2, 1e-2, 'color')
    out32 = gf(torch.from_numpy(p).float(), torch.from_numpy(img).float())
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32[0].numpy(), ref, atol=1e-4)
    out16 = gf(torch.from_numpy(p).half(), torch.from_numpy(img).half())
    assert out16.dtype == torch.float16
    np.testing.assert_allclose(out16[0].float().numpy(), ref, atol=2e-2)


@pytest.mark.parametrize('guide', ['color', 'gray'])
def test_guided_filter_gradcheck(guide):
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(1, 2, 4, 5, generator=gen, dtype=D64, requires_grad=True)
    img = torch.rand(1, 3, 4, 5, generator=gen, dtype=D64, requires_grad=True)
    gf = GuidedFilter(radius=1, eps=0.05, guide=guide)
    assert torch.autograd.gradcheck(gf, (p, img))


def test_guided_filter_preserves_step_edges():
    h, w, edge = 8, 12, 6
    step = torch.zeros(1, 1, h, w, dtype=D64)
    step[..., edge:] = 1.0
    p = step.clone()
    # gray step: both modes keep the jump, a box filter smears it
    img = step.expand(1, 3, h, w)
    for guide in ('color', 'gray'):
        q = GuidedFilter(3, 1e-2, guide)(p, img)[0, 0]
        assert (q[:, edge - 1] < 0.1).all() and (q[:, edge] > 0.9).all()
    box = F.avg_pool2d(
        p, 7, stride=1, padding=3, count_include_pad=False)[0, 0]
    assert (box[:, edge - 1] > 0.3).all() and (box[:, edge] < 0.7).all()
    # isoluminant red | green edge: only the colour guide sees it
    img = torch.zeros(1, 3, h, w, dtype=D64)
    img[:, 0, :, :edge] = 1.0
    img[:, 1, :, edge:] = 1.0
    q = GuidedFilter(3, 1e-2, 'color')(p, img)[0, 0]
    assert (q[:, edge - 1] < 0.1).all() and (q[:, edge] > 0.9).all()
    # constant gray guide: a = 0, b = box(p), q = box(box(p))
    q = GuidedFilter(3, 1e-2, 'gray')(p, img)[0, 0]
    box2 = F.avg_pool2d(
        box[None, None], 7, stride=1, padding=3, count_include_pad=False)[0, 0]
    torch.testing.assert_close(q, box2)
    assert (q[:, edge - 1] > 0.3).all() and (q[:, edge] < 0.7).all()


def test_guided_filter_bad_input():
    gf = GuidedFilter(1, 1e-2)
    p = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match='^p must'):
        gf(p[0], torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match='^I must'):
        gf(p, torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match='^I must'):
        gf(p, torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="^I must have 3 channels"):
        gf(p, torch.zeros(1, 1, 4, 4))
    # the gray guide takes any channel count
    assert GuidedFilter(1, 1e-2, 'gray')(p, torch.rand(1, 1, 4, 4)).shape \
        == p.shape
    with pytest.raises(ValueError, match='radius'):
        GuidedFilter(-1)
    with pytest.raises(ValueError, match='eps'):
        GuidedFilter(1, 0.0)
    with pytest.raises(ValueError, match='guide'):
        GuidedFilter(1, 1e-2, 'rgb')


# ---------------------------------------------------------- refine head

N, NUM_CLASSES, C1 = 2, 5, 6
K = NUM_CLASSES - 1


def _inputs(seed=0, h=64, w=48):
    gen = torch.Generator().manual_seed(seed)
    cls_map = torch.randn(N, K, h // 16, w // 16, generator=gen)
    stage1 = torch.randn(N, C1, h // 4, w // 4, generator=gen)
    img = torch.randn(N, 3, h, w, generator=gen)
    return cls_map, stage1, img


def _head(**kwargs):
    cfg = dict(
        num_classes=NUM_CLASSES, stage1_channels=C1, channels=8, gf_radius=2)
    cfg.update(kwargs)
    return CamGuideRefineHead(**cfg)


def _cv2_upsample(x, size):
    """Bilinear (half-pixel) upsampling of ``(N, K, h, w)`` with OpenCV."""
    h, w = size
    out = np.stack([
        np.stack([
            cv2.resize(ch, (w, h), interpolation=cv2.INTER_LINEAR)
            for ch in sample
        ]) for sample in x.numpy().astype(np.float64)
    ])
    return torch.from_numpy(out)


def test_head_shapes_and_registry():
    cls_map, stage1, img = _inputs()
    head = MODELS.build(
        dict(
            type='CamGuideRefineHead',
            num_classes=NUM_CLASSES,
            stage1_channels=C1,
            channels=8))
    assert isinstance(head.guided_filter, GuidedFilter)
    assert head(cls_map, stage1, img).shape == (N, K, 16, 12)
    outs = head.forward_all(cls_map, stage1, img)
    for key in ('x_up', 'z0', 'g', 'r', 'a', 'z1'):
        assert outs[key].shape == (N, K, 16, 12), key
    gf = MODELS.build(dict(type='GuidedFilter', radius=1, guide='gray'))
    assert gf.radius == 1 and gf.guide == 'gray'


@pytest.mark.parametrize('init_cfg', [
    None,
    dict(type='Kaiming', layer='Conv2d'),
    [dict(type='Normal', layer='Conv2d', std=1.0, bias=0.5)],
])
def test_head_starts_as_upsampled_cam(init_cfg):
    cls_map, stage1, img = _inputs()
    head = _head(init_cfg=init_cfg)
    head.init_weights()
    head.eval()
    with torch.no_grad():
        z1 = head(cls_map, stage1, img)
        outs = head.forward_all(cls_map, stage1, img)
    ref = _cv2_upsample(cls_map, (16, 12)).float()
    torch.testing.assert_close(z1, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(outs['z0'], outs['x_up'])
    assert torch.equal(outs['z1'], outs['z0'])
    assert torch.equal(outs['r'], torch.zeros_like(outs['r']))
    # the same holds in training when there is no dropout
    head = _head(dropout_ratio=0.0).train()
    torch.testing.assert_close(
        head(cls_map, stage1, img), ref, atol=1e-5, rtol=1e-5)


def test_head_zero_init_can_be_disabled():
    cls_map, stage1, img = _inputs()
    head = _head(zero_init=False).eval()
    ref = _cv2_upsample(cls_map, (16, 12)).float()
    assert not torch.allclose(head(cls_map, stage1, img), ref, atol=1e-3)


@pytest.mark.parametrize('channel_dropout', [False, True])
def test_head_dropout_on_classifier_output(channel_dropout):
    # stage-1 grid == classifier grid: the upsampling is the identity, so
    # the zero-initialised head returns the dropped map itself
    gen = torch.Generator().manual_seed(3)
    cls_map = torch.randn(N, K, 8, 8, generator=gen)
    stage1 = torch.randn(N, C1, 8, 8, generator=gen)
    img = torch.randn(N, 3, 32, 32, generator=gen)
    # the head's own dropout is off by default (the paper's dropout is the
    # CAM head's, on features); set explicitly here
    head = _head(channel_dropout=channel_dropout, dropout_ratio=0.5).train()
    torch.manual_seed(0)
    z1 = head(cls_map, stage1, img)
    kept = torch.isclose(z1, 2 * cls_map)
    dropped = z1 == 0
    assert (kept | dropped).all()
    assert kept.any() and dropped.any()
    if channel_dropout:
        per_map = kept.flatten(2)
        assert (per_map.all(2) | (~per_map).all(2)).all()
    head.eval()
    torch.testing.assert_close(head(cls_map, stage1, img), cls_map)


def test_head_uses_guided_filter_of_downsized_image():
    cls_map, stage1, img = _inputs()
    head = _head(gf_radius=1, gf_eps=0.1).eval()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        head.f_res.weight.copy_(
            0.3 * torch.randn(head.f_res.weight.shape, generator=gen))
        head.f_res.bias.copy_(0.1 * torch.randn(K, generator=gen))
        z1 = head(cls_map, stage1, img)
        z1_other = head(cls_map, stage1, torch.flip(img, dims=[2, 3]))
    assert not torch.allclose(z1, z1_other, atol=1e-4)
    # independent composition: area downsizing by block means, numpy GF,
    # conv and gate of eqs. (20)-(22)
    z0 = _cv2_upsample(cls_map, (16, 12))
    img_down = img.double().reshape(N, 3, 16, 4, 12, 4).mean(dim=(3, 5))
    g = torch.from_numpy(
        np.stack([
            gf_reference(z0[i].numpy(), img_down[i].numpy(), 1, 0.1, 'color')
            for i in range(N)
        ]))
    r = F.conv2d(
        g, head.f_res.weight.double(), head.f_res.bias.double(), padding=1)
    ref = z0 + torch.sigmoid(r) * r
    torch.testing.assert_close(z1.double(), ref, atol=1e-4, rtol=1e-4)


def test_head_backward():
    cls_map, stage1, img = _inputs()
    cls_map.requires_grad_(True)
    stage1.requires_grad_(True)
    head = _head().train()
    # at init only psi and f_res receive gradients (zero-init residuals)
    head(cls_map, stage1, img).square().sum().backward()
    assert head.psi.weight.grad.abs().sum() > 0
    assert head.f_res.weight.grad.abs().sum() > 0
    assert cls_map.grad.abs().sum() > 0
    head.zero_grad()
    stage1.grad = None
    with torch.no_grad():
        for conv in (head.psi, head.f_res):
            conv.weight.normal_(0, 0.1)
    head(cls_map, stage1, img).square().sum().backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert torch.isfinite(param.grad).all(), name
    assert stage1.grad.abs().sum() > 0


def test_head_gradcheck_eval():
    gen = torch.Generator().manual_seed(7)
    head = _head(channels=4, gf_radius=1).double().eval()
    with torch.no_grad():
        for conv in (head.psi, head.f_res):
            conv.weight.normal_(0, 0.3, generator=gen)
    cls_map = torch.randn(
        1, K, 2, 2, generator=gen, dtype=D64, requires_grad=True)
    stage1 = torch.randn(1, C1, 4, 4, generator=gen, dtype=D64)
    img = torch.randn(1, 3, 8, 8, generator=gen, dtype=D64)
    assert torch.autograd.gradcheck(lambda c: head(c, stage1, img),
                                    (cls_map, ))


def test_head_param_count():
    # K=20 (num_classes=21), stage1_channels=64 (ResNet-18), channels=128:
    # phi 29,056 + psi 2,580 + f_res 3,620 = 35,256 parameters, far below
    # the ~1.41 M the paper reports (sec. IV.C) for its unspecified widths.
    head = CamGuideRefineHead(num_classes=21, stage1_channels=64)
    count = sum(p.numel() for p in head.parameters())
    phi = sum(p.numel() for p in head.phi.parameters())
    assert phi == (84 * 128 + 2 * 128) + (128 * 9 + 2 * 128) + (128 * 128 +
                                                                2 * 128)
    assert count == phi + (128 * 20 + 20) + (20 * 20 * 9 + 20) == 35256


def test_head_paper_size_param_count():
    # phi = 3x3 Conv-BN-ReLU (84 -> 448) + 5 x (depthwise 3x3 Conv-BN-ReLU
    # + 1x1 Conv-BN-ReLU 448 -> 448); psi 448 -> 20; f_res 20 -> 20 3x3.
    # ~1.41 M added parameters in the paper (sec. IV.C).
    head = CamGuideRefineHead(
        num_classes=21,
        stage1_channels=64,
        channels=448,
        fusion_kernel=3,
        num_mix=5)
    count = sum(p.numel() for p in head.parameters())
    c = 448
    first = 84 * 9 * c + 2 * c
    mix = (9 * c + 2 * c) + (c * c + 2 * c)
    assert count == first + 5 * mix + (c * 20 + 20) + (20 * 20 * 9 + 20)
    print(f'CamGuideRefineHead paper-size parameters: {count:,}')
    assert abs(count - 1.41e6) / 1.41e6 < 0.03
    # the defaults keep the small head and no dropout of their own
    small = CamGuideRefineHead(num_classes=21, stage1_channels=64)
    assert isinstance(small.dropout, nn.Identity)
    # the paper-size head also starts as the upsampled CAM
    cls_map = torch.randn(1, 20, 4, 4)
    out = head.eval()(cls_map, torch.randn(1, 64, 16, 16),
                      torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(
        out,
        F.interpolate(
            cls_map, size=(16, 16), mode='bilinear', align_corners=False))


def test_head_relative_gf_radius():
    # radius 4 on the 128-pixel grid of a 512 crop -> 1 on a 32 grid,
    # 2 on a 64 grid, at least 1
    head = _head(gf_radius=dict(rel=4 / 128))
    assert head.resolve_gf_radius((128, 128)) == 4
    assert head.resolve_gf_radius((32, 32)) == 1
    assert head.resolve_gf_radius((64, 64)) == 2
    assert head.resolve_gf_radius((8, 8)) == 1
    # the forward uses the resolved radius: same output as an absolute head
    cls_map, stage1, img = _inputs(h=256, w=256)
    rel = _head(gf_radius=dict(rel=4 / 128)).eval()
    ab = _head(gf_radius=2).eval()
    for h in (rel, ab):
        with torch.no_grad():
            nn.init.normal_(h.f_res.weight, 0, 0.3)
            nn.init.normal_(h.psi.weight, 0, 0.3)
    ab.load_state_dict(rel.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            rel(cls_map, stage1, img), ab(cls_map, stage1, img))
        other = _head(gf_radius=1).eval()
        other.load_state_dict(rel.state_dict())
        assert not torch.allclose(
            rel(cls_map, stage1, img), other(cls_map, stage1, img))
    with pytest.raises(ValueError, match='gf_radius'):
        _head(gf_radius=dict(rel=-1))


def test_head_bad_input():
    cls_map, stage1, img = _inputs()
    head = _head()
    with pytest.raises(ValueError, match='^cls_map must have'):
        head(cls_map[:, :2], stage1, img)
    with pytest.raises(ValueError, match='^cls_map must be a 4-D'):
        head(cls_map[0], stage1, img)
    with pytest.raises(ValueError, match='^stage1 must have'):
        head(cls_map, stage1[:, :3], img)
    with pytest.raises(ValueError, match='^img must have 3'):
        head(cls_map, stage1, img[:, :1])
    with pytest.raises(ValueError, match='^img has batch size'):
        head(cls_map, stage1, img[:1])
    with pytest.raises(ValueError, match='^stage1 has batch size'):
        head(cls_map, stage1[:1], img)
    with pytest.raises(ValueError, match='num_classes'):
        _head(num_classes=1)
    with pytest.raises(ValueError, match='dropout_ratio'):
        _head(dropout_ratio=1.0)
    with pytest.raises(ValueError, match='img_resize'):
        _head(img_resize='nearest')
    with pytest.raises(ValueError, match='guide'):
        _head(gf_guide='rgb')
    with pytest.raises(ValueError, match='fusion_kernel'):
        _head(fusion_kernel=5)
    with pytest.raises(ValueError, match='num_mix'):
        _head(num_mix=-1)


def test_head_bilinear_image_resize_option():
    cls_map, stage1, img = _inputs()
    head = _head(img_resize='bilinear').eval()
    with torch.no_grad():
        nn.init.normal_(head.f_res.weight, 0, 0.3)
    area = _head(img_resize='area').eval()
    area.load_state_dict(head.state_dict())
    with torch.no_grad():
        assert not torch.allclose(
            head(cls_map, stage1, img), area(cls_map, stage1, img))
