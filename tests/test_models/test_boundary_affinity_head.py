# Copyright (c) mmwsss contributors.
"""Tests of :class:`BoundaryAffinityHead` (IRN) inside :class:`AffinityNet`.

References: the loss on a 2 x 3 label map from pairs, paths and boundary
values listed by hand, and on random maps by a loop over every pair of
nodes; the random walk of ``predict`` by a dense numpy transition matrix
of path maxima built with explicit loops and ``np.linalg.matrix_power``.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmseg.structures import SegDataSample

from mmwsss.experiments.budget import config_items, diff_keys
from mmwsss.models import AffinityNet
from mmwsss.models.heads import BoundaryAffinityHead
from mmwsss.refine.boundary_affinity import path_pixels
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules
# the AffinityNet tests' batch of confident labels (same directory)
from test_affinity_net import train_batch

register_all_modules(init_default_scope=False)

REPO = Path(__file__).resolve().parents[2]
CONFIG = (
    REPO / 'configs' / 'camguide' /
    'irn-boundary_effl0_1xb16-300it_demo-128x128.py')
PARENT = (
    REPO / 'configs' / 'camguide' /
    'affinitynet_effl0_1xb16-300it_demo-128x128.py')
NUM_CLASSES = 4
EPS = 1e-5


def tiny_model(**test_cfg) -> AffinityNet:
    """ResNetV1c-18 with 8 base channels, strides 4 / 8 / 16, IRN head."""
    with DefaultScope.overwrite_default_scope('mmwsss'):
        return MODELS.build(
            dict(
                type='AffinityNet',
                num_classes=NUM_CLASSES,
                data_preprocessor=dict(
                    type='mmseg.SegDataPreProcessor',
                    mean=[127.0, 127.0, 127.0],
                    std=[128.0, 128.0, 128.0],
                    bgr_to_rgb=True,
                    pad_val=0,
                    seg_pad_val=255,
                    size_divisor=8),
                backbone=dict(
                    type='mmseg.ResNetV1c',
                    depth=18,
                    stem_channels=8,
                    base_channels=8,
                    out_indices=(0, 1, 2),
                    init_cfg=None),
                affinity_head=dict(
                    type='BoundaryAffinityHead',
                    in_channels=(8, 16, 32),
                    channels=8,
                    radius=4),
                test_cfg=test_cfg))


# ----------------------------------------------------------------------
# architecture
def test_head_architecture_is_irn_edge_branch():
    """IRN fc_edge1-6: per level 1x1 conv (no bias) -> GN(4, 32) ->
    bilinear resize to the first level -> ReLU; concat; 1x1 conv to one
    logit with bias."""
    head = BoundaryAffinityHead(in_channels=(64, 256, 512, 1024, 2048))
    assert head.radius == 10 and head.loss_weights == (0.25, 0.25, 0.5)
    for proj, c_in in zip(head.projs, (64, 256, 512, 1024, 2048)):
        conv, norm = proj
        assert (conv.in_channels, conv.out_channels) == (c_in, 32)
        assert conv.kernel_size == (1, 1) and conv.bias is None
        assert isinstance(norm, nn.GroupNorm)
        assert (norm.num_groups, norm.num_channels) == (4, 32)
    assert isinstance(head.act, nn.ReLU)
    assert head.conv_edge.in_channels == 160
    assert head.conv_edge.out_channels == 1
    assert head.conv_edge.bias is not None

    torch.manual_seed(0)
    small = BoundaryAffinityHead(in_channels=(4, 6), channels=(8, 4))
    feats = [torch.randn(2, 4, 8, 10), torch.randn(2, 6, 4, 5)]
    out = small(feats)
    assert out.shape == (2, 1, 8, 10)
    a = F.relu(small.projs[0](feats[0]))
    b = small.projs[1](feats[1])
    b = F.relu(
        F.interpolate(b, size=(8, 10), mode='bilinear', align_corners=False))
    torch.testing.assert_close(out, small.conv_edge(torch.cat([a, b], 1)))


def test_head_bad_inputs():
    with pytest.raises(ValueError, match='channels'):
        BoundaryAffinityHead(in_channels=(4, 8), channels=(8, ))
    with pytest.raises(ValueError, match='in_index'):
        BoundaryAffinityHead(in_channels=(4, ), in_index=(1, ))
    with pytest.raises(ValueError, match='num_groups'):
        BoundaryAffinityHead(in_channels=(4, ), channels=6)
    with pytest.raises(ValueError, match='radius'):
        BoundaryAffinityHead(in_channels=(4, ), radius=0)
    head = BoundaryAffinityHead(in_channels=(4, ))
    with pytest.raises(ValueError, match='feature maps'):
        head([torch.rand(1, 4, 4, 4)] * 2)
    with pytest.raises(ValueError, match=r'\(\.\.\., 1, h, w\)'):
        head.pair_affinities(torch.rand(1, 2, 4, 4), 3)
    with pytest.raises(ValueError, match='beta'):
        head.walk_affinities(torch.rand(1, 4, 4), 3, beta=0)
    with pytest.raises(ValueError, match='NaN'):
        head.walk_affinities(torch.full((1, 4, 4), float('nan')), 3, 10.0)
    with pytest.raises(TypeError, match='BaseAffinityHead'):
        with DefaultScope.overwrite_default_scope('mmwsss'):
            MODELS.build(
                dict(
                    type='AffinityNet',
                    backbone=dict(
                        type='mmseg.ResNetV1c',
                        depth=18,
                        stem_channels=8,
                        base_channels=8,
                        init_cfg=None),
                    affinity_head=dict(
                        type='CAMHead', in_channels=64, num_classes=3)))


# ----------------------------------------------------------------------
# the loss
def logit(p):
    p = torch.as_tensor(p, dtype=torch.float64)
    return torch.log(p / (1 - p))


def test_loss_hand_computed_tiny_map():
    """2 x 3 grid, radius 2 (offsets (0, 1), (1, -1), (1, 0), (1, 1)).

    Nodes      labels        boundary B
    a b c      0   0   1     .1 .2 .6
    d e f      0  255  1     .3 .9 .4

    Pairs without the uncertain e, with their path nodes (an offset of
    length 1 joins its two nodes; a diagonal one takes its 2 x 2 box):
    a-b {a,b} bg+ 1-.2; a-d {a,d} bg+ 1-.3; b-d {a,b,d,e} bg+ 1-.9;
    c-f {c,f} fg+ 1-.6; b-c {b,c} neg 1-.6; b-f {b,c,e,f} neg 1-.9.
    """
    labels = torch.tensor([[[0, 0, 1], [0, 255, 1]]])
    boundary = torch.tensor([[.1, .2, .6], [.3, .9, .4]])
    head = BoundaryAffinityHead(in_channels=(4, ), channels=8, radius=2)
    losses = head.loss_by_feat(logit(boundary)[None, None], labels)
    bg = [0.8, 0.7, 0.1]
    fg = [0.4]
    neg = [0.4, 0.1]
    assert [int(losses[k])
            for k in ('num_bg_pos', 'num_fg_pos', 'num_neg')] == [3, 1, 2]
    ref_bg = sum(-np.log(a + EPS) for a in bg) / (3 + EPS)
    ref_fg = sum(-np.log(a + EPS) for a in fg) / (1 + EPS)
    ref_neg = sum(-np.log(1 + EPS - a) for a in neg) / (2 + EPS)
    # IRN: ((bg / 2 + fg / 2) + neg) / 2
    assert float(losses['loss_aff_bg']) == pytest.approx(ref_bg / 4)
    assert float(losses['loss_aff_fg']) == pytest.approx(ref_fg / 4)
    assert float(losses['loss_aff_neg']) == pytest.approx(ref_neg / 2)
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert float(total) == pytest.approx(((ref_bg + ref_fg) / 2 + ref_neg) / 2)


def brute_force_loss(boundary, labels, radius, ignore=255):
    """IRN's affinity loss by a loop over all unordered node pairs."""
    n, h, w = labels.shape
    sums, counts = [0.0, 0.0, 0.0], [0, 0, 0]
    for b in range(n):
        for i in range(h * w):
            yi, xi = divmod(i, w)
            for j in range(i + 1, h * w):
                yj, xj = divmod(j, w)
                dy, dx = yj - yi, xj - xi
                if dy * dy + dx * dx >= radius**2:
                    continue
                li, lj = int(labels[b, yi, xi]), int(labels[b, yj, xj])
                if li == ignore or lj == ignore:
                    continue
                top = max(
                    float(boundary[b, yi + py, xi + px])
                    for py, px in path_pixels(dy, dx))
                a = 1 - top
                if li == lj:
                    k = 0 if li == 0 else 1
                    sums[k] += -np.log(a + EPS)
                else:
                    k = 2
                    sums[k] += -np.log(1 + EPS - a)
                counts[k] += 1
    return [s / (c + EPS) for s, c in zip(sums, counts)], counts


def test_loss_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 6, 7, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 6, 7), generator=gen)
    labels[torch.rand(2, 6, 7, generator=gen) < 0.2] = 255
    head = BoundaryAffinityHead(in_channels=(4, ), channels=8, radius=4)
    losses = head.loss_by_feat(logits, labels)
    terms, counts = brute_force_loss(torch.sigmoid(logits[:, 0]), labels, 4)
    assert min(counts) > 0
    assert [int(losses[k])
            for k in ('num_bg_pos', 'num_fg_pos', 'num_neg')] == counts
    for key, term, weight in zip(
        ('loss_aff_bg', 'loss_aff_fg', 'loss_aff_neg'), terms,
        (0.25, 0.25, 0.5)):
        assert float(losses[key]) == pytest.approx(term * weight, rel=1e-9)


def test_uncertain_and_padding_give_no_pairs():
    gen = torch.Generator().manual_seed(1)
    head = BoundaryAffinityHead(in_channels=(4, ), channels=8, radius=5)
    # all uncertain: no pair, zero loss, finite gradients
    logits = torch.randn(
        1, 1, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    losses = head.loss_by_feat(logits, torch.full((1, 5, 6), 255))
    assert all(
        int(losses[k]) == 0 for k in ('num_bg_pos', 'num_fg_pos', 'num_neg'))
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert float(total.detach()) == 0.0
    total.backward()
    assert torch.isfinite(logits.grad).all()
    # an uncertain pixel takes no pair, but may lie on a pair's path
    labels = torch.zeros(1, 1, 5)
    labels[0, 0, 2] = 255
    one = head.loss_by_feat(torch.zeros(1, 1, 1, 5), labels)
    assert int(one['num_bg_pos']) == 10 - 4
    # padding (255, as the data preprocessor's seg_pad_val): the same
    # pairs and loss as the unpadded map, whatever the padded logits
    labels = torch.randint(0, 3, (2, 6, 7), generator=gen)
    logits = torch.randn(2, 1, 6, 7, generator=gen, dtype=torch.float64)
    padded_labels = F.pad(labels, (0, 3, 0, 2), value=255)
    padded_logits = torch.randn(2, 1, 8, 10, generator=gen).double() * 5
    padded_logits[..., :6, :7] = logits
    ref = head.loss_by_feat(logits, labels)
    got = head.loss_by_feat(padded_logits, padded_labels)
    for key, val in ref.items():
        assert float(got[key]) == pytest.approx(float(val), rel=1e-12), key


# ----------------------------------------------------------------------
# training
def test_train_two_iterations():
    torch.manual_seed(0)
    model = tiny_model()
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    before = [p.detach().clone() for p in model.affinity_head.parameters()]
    for _ in range(2):
        log_vars = model.train_step(train_batch(), optim)
        assert np.isfinite(float(log_vars['loss'].detach()))
        assert float(log_vars['num_neg']) > 0
        assert float(log_vars['num_fg_pos']) > 0
    after = list(model.affinity_head.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    # mode='tensor' gives the stride-4 boundary logits
    model.eval()
    logits = model(torch.rand(1, 3, 32, 32), mode='tensor')
    assert logits.shape == (1, 1, 8, 8)


# ----------------------------------------------------------------------
# prediction
def dense_irn_walk(boundary: np.ndarray, cams: np.ndarray, radius: int,
                   beta: float, n_steps: int) -> np.ndarray:
    """IRN propagate_to_edge on a grid: dense path-max affinities."""
    h, w = boundary.shape
    n = h * w
    aff = np.eye(n)
    for i in range(n):
        yi, xi = divmod(i, w)
        for j in range(i + 1, n):
            yj, xj = divmod(j, w)
            dy, dx = yj - yi, xj - xi
            if dy * dy + dx * dx < radius**2:
                top = max(boundary[yi + py, xi + px]
                          for py, px in path_pixels(dy, dx))
                aff[i, j] = aff[j, i] = 1 - top
    scaled = aff**beta
    trans = scaled / scaled.sum(0, keepdims=True)
    x = (cams * (1 - boundary)).reshape(len(cams), -1)
    return (x @ np.linalg.matrix_power(trans, n_steps)).reshape(cams.shape)


def block_mean(x: np.ndarray, k: int) -> np.ndarray:
    c, h, w = x.shape
    return x.reshape(c, h // k, k, w // k, k).mean(axis=(2, 4))


def upsample(x: np.ndarray, size) -> np.ndarray:
    t = torch.from_numpy(x)[None]
    return F.interpolate(
        t, size=size, mode='bilinear', align_corners=False)[0].numpy()


def write_scores(cam_dir: Path, stem: str, scores: np.ndarray, labels) -> None:
    cam_dir.mkdir(parents=True, exist_ok=True)
    np.savez(
        cam_dir / f'{stem}.npz',
        scores=scores.astype(np.float32),
        img_labels=np.asarray(labels, np.int64))


def make_scores(h, w, seed=0):
    rng = np.random.default_rng(seed)
    scores = np.zeros((NUM_CLASSES, h, w), np.float32)
    scores[0] = 0.3
    scores[1] = rng.random((h, w))
    scores[3] = rng.random((h, w)) * 0.8
    return scores


@pytest.mark.parametrize('flip', [False, True])
def test_predict_matches_dense_irn_reference(tmp_path, flip):
    """IRN's inference: flip-averaged logits, path-max affinities ** beta,
    cams * (1 - B), the walk, / max, constant background."""
    h = w = 16
    scores = make_scores(h, w)
    write_scores(tmp_path, 'img1', scores, [1, 3])
    model = tiny_model(
        cam_dir=str(tmp_path),
        flip=flip,
        radius=3,
        beta=10.0,
        n_steps=32,
        bg_mode='const',
        bg_thr=0.25).eval()
    rng = np.random.default_rng(1)
    plain, mirrored = rng.normal(scale=2.0, size=(2, 1, 4, 4))

    def fake_logits(x):
        # the mirrored input (see inputs below) has its marker on the left
        src = mirrored if float(x[0, 0, 0, 0]) == 1 else plain
        return torch.from_numpy(src)[None].float()

    model.affinity_features = fake_logits
    inputs = torch.zeros(1, 3, h, w)
    inputs[..., -1] = 1.0
    sample = SegDataSample(
        metainfo=dict(
            img_path='/data/img1.jpg', ori_shape=(h, w), img_shape=(h, w)))
    out = model.predict(inputs, [sample])[0]
    got = out.seg_logits.data.numpy()

    # IRN EdgeDisplacement: sigmoid(edge / 2 + flipped edge / 2)
    logits = (plain + mirrored[..., ::-1]) / 2 if flip else plain
    boundary = 1 / (1 + np.exp(-logits[0].astype(np.float64)))
    walked = dense_irn_walk(boundary, block_mean(scores[1:], 4), 3, 10.0, 32)
    ref = upsample(walked, (h, w))
    ref = np.concatenate([np.full((1, h, w), 0.25), ref / ref.max()])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert np.all(got[2] == 0)
    keys = np.array([0, 1, 3])
    np.testing.assert_array_equal(out.pred_sem_seg.data[0].numpy(),
                                  keys[ref[keys].argmax(0)])


def test_predict_without_boundary_weighting(tmp_path):
    h = w = 8
    scores = make_scores(h, w, seed=3)
    write_scores(tmp_path, 'x', scores, [1, 3])
    model = tiny_model(
        cam_dir=str(tmp_path), radius=2, beta=10.0, n_steps=4,
        bg_mode='const').eval()
    model.affinity_head.weight_cams_by_boundary = False
    logits = np.random.default_rng(2).normal(size=(1, 2, 2))
    model.affinity_features = lambda x: torch.from_numpy(logits)[None].float()
    sample = SegDataSample(
        metainfo=dict(img_path='x.jpg', ori_shape=(h, w), img_shape=(h, w)))
    got = model.predict(torch.zeros(1, 3, h, w), [sample])[0]
    boundary = 1 / (1 + np.exp(-logits[0]))
    cams = block_mean(scores[1:], 4) / (1 - boundary)  # undo the weighting
    walked = dense_irn_walk(boundary, cams, 2, 10.0, 4)
    ref = upsample(walked, (h, w))
    ref = np.concatenate([np.full((1, h, w), 0.25), ref / ref.max()])
    np.testing.assert_allclose(
        got.seg_logits.data.numpy(), ref, rtol=1e-4, atol=1e-5)


def test_predict_real_network_relative_walk(tmp_path):
    h, w = 24, 28
    write_scores(tmp_path, 'real', make_scores(h, w, seed=4), [1, 3])
    model = tiny_model(
        cam_dir=str(tmp_path),
        flip=True,
        radius=dict(rel=5 / 128, min=2),
        beta=10.0,
        n_steps=dict(reach=0.4127),
        bg_mode='const',
        refine=dict(type='DenseCRF', preset='irn_label')).eval()
    data = dict(
        inputs=[torch.randint(0, 256, (3, h, w)).float()],
        data_samples=[
            SegDataSample(
                metainfo=dict(
                    img_path='a/real.jpg', ori_shape=(h, w), img_shape=(h, w)))
        ])
    with torch.no_grad():
        out = model.test_step(data)[0]
    assert out.seg_logits.data.shape == (NUM_CLASSES, h, w)
    assert torch.isfinite(out.seg_logits.data).all()
    assert set(out.pred_sem_seg.data.unique().tolist()) <= {0, 1, 3}


# ----------------------------------------------------------------------
# the demo config
def test_demo_config_differs_from_affinitynet_only_in_head_and_walk():
    cfg = Config.fromfile(str(CONFIG))
    parent = Config.fromfile(str(PARENT))
    changed = diff_keys(config_items(cfg), config_items(parent))
    allowed = ('model.affinity_head.', 'model.test_cfg.flip',
               'model.test_cfg.beta')
    assert changed and all(k.startswith(allowed) for k in changed), changed
    head = cfg.model.affinity_head
    assert head.type == 'BoundaryAffinityHead'
    assert head.radius == 10 and head.channels == 32
    assert head.norm_cfg == dict(type='GN', num_groups=4)
    assert 'feat_dim' not in head
    tc = cfg.model.test_cfg
    assert (tc.flip, tc.radius, tc.beta) == (True, 5, 10.0)
    assert tc.n_steps == parent.model.test_cfg.n_steps
    assert cfg.wsss_row.name == 'Our + RW (IRN boundary)'
    assert cfg.wsss_row.parent == parent.wsss_row.parent

    with DefaultScope.overwrite_default_scope('mmwsss'):
        model = MODELS.build(cfg.model)
    assert isinstance(model.affinity_head, BoundaryAffinityHead)
    data = model.data_preprocessor(train_batch(n=2, size=64), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    assert float(losses['num_neg']) > 0
