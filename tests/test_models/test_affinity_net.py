# Copyright (c) mmwsss contributors.
"""Tests of :class:`AffinityNet`, :class:`AffinityHead` and the demo config.

References: the pair loss is recomputed by a Python loop over every pair
of grid nodes; the random walk of ``predict`` by a dense numpy transition
matrix built with explicit loops and ``np.linalg.matrix_power``; padding
and flips by hand-written numpy slicing.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image
from scipy import ndimage

from mmwsss.models import AffinityNet
from mmwsss.models.heads.affinity_head import AffinityHead
from mmwsss.refine.affinity_random_walk import (affinity_transition,
                                                pair_indices, pair_offsets,
                                                pair_slices, random_walk,
                                                resolve_walk)
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules(init_default_scope=False)

REPO = Path(__file__).resolve().parents[2]
CONFIG = (
    REPO / 'configs' / 'camguide' /
    'affinitynet_effl0_1xb16-300it_demo-128x128.py')
NUM_CLASSES = 4
PREPROCESSOR = dict(
    type='mmseg.SegDataPreProcessor',
    mean=[127.0, 127.0, 127.0],
    std=[128.0, 128.0, 128.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=8)


def tiny_model(**test_cfg) -> AffinityNet:
    """ResNetV1c-18 with 8 base channels, strides 4 / 8 / 16."""
    with DefaultScope.overwrite_default_scope('mmwsss'):
        return MODELS.build(
            dict(
                type='AffinityNet',
                num_classes=NUM_CLASSES,
                data_preprocessor=PREPROCESSOR,
                backbone=dict(
                    type='mmseg.ResNetV1c',
                    depth=18,
                    stem_channels=8,
                    base_channels=8,
                    out_indices=(0, 1, 2),
                    init_cfg=None),
                affinity_head=dict(
                    type='AffinityHead',
                    in_channels=(8, 16, 32),
                    channels=(8, 8, 16),
                    feat_dim=16,
                    norm_cfg=dict(type='GN', num_groups=4),
                    init_cfg=None),
                test_cfg=test_cfg))


# ----------------------------------------------------------------------
# the loss
def brute_force_loss(feats, labels, radius, ignore=255, eps=1e-5):
    """PSA's loss by a loop over all unordered node pairs of each image."""
    n, _, h, w = feats.shape
    sums, counts = [0.0, 0.0, 0.0], [0, 0, 0]
    for b in range(n):
        for i in range(h * w):
            yi, xi = divmod(i, w)
            for j in range(i + 1, h * w):
                yj, xj = divmod(j, w)
                if (yi - yj)**2 + (xi - xj)**2 >= radius**2:
                    continue
                li, lj = int(labels[b, yi, xi]), int(labels[b, yj, xj])
                if li == ignore or lj == ignore:
                    continue
                a = float(
                    torch.exp(-(feats[b, :, yi, xi] -
                                feats[b, :, yj, xj]).abs().mean()))
                if li == lj:
                    k = 0 if li == 0 else 1
                    sums[k] += -np.log(a + eps)
                else:
                    k = 2
                    sums[k] += -np.log(1 + eps - a)
                counts[k] += 1
    terms = [s / (c + eps) for s, c in zip(sums, counts)]
    return terms, counts


def test_loss_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 5, 6), generator=gen)
    labels[torch.rand(2, 5, 6, generator=gen) < 0.2] = 255
    head = AffinityHead(in_channels=(4, ), channels=(8, ), radius=3)
    losses = head.loss_by_feat(feats, labels)
    terms, counts = brute_force_loss(feats, labels, 3)
    assert min(counts) > 0
    assert [int(losses[k])
            for k in ('num_bg_pos', 'num_fg_pos', 'num_neg')] == counts
    for key, term, weight in zip(
        ('loss_aff_bg', 'loss_aff_fg', 'loss_aff_neg'), terms,
        (0.25, 0.25, 0.5)):
        assert float(losses[key]) == pytest.approx(term * weight, rel=1e-9)


def test_loss_downsamples_labels_nearest_and_guards_empty_sets():
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(
        1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    # labels at twice the grid resolution; the grid takes [::2, ::2]
    full = torch.randint(0, 2, (1, 1, 8, 10), generator=gen)
    head = AffinityHead(
        in_channels=(4, ), channels=(8, ), radius=2, loss_weights=(1., 2., 3.))
    losses = head.loss_by_feat(feats, full)
    terms, _ = brute_force_loss(feats.detach(), full[:, 0, ::2, ::2], 2)
    for key, term, weight in zip(
        ('loss_aff_bg', 'loss_aff_fg', 'loss_aff_neg'), terms, (1., 2., 3.)):
        assert float(losses[key].detach()) == pytest.approx(
            term * weight, rel=1e-9)
    # all uncertain: zero loss, no NaN, still differentiable
    losses = head.loss_by_feat(feats, torch.full((1, 4, 5), 255))
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert float(total.detach()) == 0.0
    total.backward()
    assert torch.isfinite(feats.grad).all()


def test_head_bad_inputs():
    with pytest.raises(ValueError, match='channels'):
        AffinityHead(in_channels=(4, 8), channels=(8, ))
    with pytest.raises(ValueError, match='in_index'):
        AffinityHead(in_channels=(4, ), in_index=(1, ), channels=(8, ))
    with pytest.raises(ValueError, match='num_groups'):
        AffinityHead(in_channels=(4, ), channels=(6, ))
    with pytest.raises(ValueError, match='loss_weights'):
        AffinityHead(in_channels=(4, ), channels=(8, ), loss_weights=(1, ))
    with pytest.raises(ValueError, match='radius'):
        AffinityHead(in_channels=(4, ), channels=(8, ), radius=0)
    head = AffinityHead(in_channels=(4, ), channels=(8, ))
    with pytest.raises(ValueError, match='labels must be'):
        head.loss_by_feat(torch.rand(1, 2, 4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match='2 label maps for 1'):
        head.loss_by_feat(torch.rand(1, 2, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match='feature maps'):
        head([torch.rand(1, 4, 4, 4)] * 2)


# ----------------------------------------------------------------------
# training
def train_batch(n=2, size=32):
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for i in range(n):
        inputs.append(
            torch.randint(0, 256, (3, size, size), generator=gen).float())
        seg = torch.zeros(1, size, size, dtype=torch.long)
        seg[:, 8:24, 4:20] = 1 + i
        seg[:, :, 26:] = 255
        s = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                img_labels=[1 + i]))
        s.gt_sem_seg = PixelData(data=seg)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


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
    # mode='tensor' gives the stride-4 affinity features
    model.eval()
    feats = model(torch.rand(1, 3, 32, 32), mode='tensor')
    assert feats.shape == (1, 16, 8, 8)


def test_loss_needs_gt():
    model = tiny_model()
    with pytest.raises(KeyError, match='gt_sem_seg'):
        model.loss(torch.rand(1, 3, 32, 32), [SegDataSample()])


# ----------------------------------------------------------------------
# prediction
def dense_walk(feats: np.ndarray, cams: np.ndarray, radius: int, beta: float,
               n_steps: int) -> np.ndarray:
    d, h, w = feats.shape
    n = h * w
    aff = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            (yi, xi), (yj, xj) = divmod(i, w), divmod(j, w)
            if (yi - yj)**2 + (xi - xj)**2 < radius**2:
                aff[i, j] = np.exp(-np.abs(feats[:, yi, xi] -
                                           feats[:, yj, xj]).mean())**beta
    trans = aff / aff.sum(0, keepdims=True)
    out = cams.reshape(len(cams), -1) @ np.linalg.matrix_power(trans, n_steps)
    return out.reshape(cams.shape)


def block_mean(x: np.ndarray, k: int) -> np.ndarray:
    c, h, w = x.shape
    return x.reshape(c, h // k, k, w // k, k).mean(axis=(2, 4))


def upsample(x: np.ndarray, size) -> np.ndarray:
    """Bilinear (half-pixel centres), as PSA / IRN upsample."""
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
    scores[2] = 0.0  # not an image label
    return scores


@pytest.mark.parametrize('bg_mode', ['power', 'const'])
def test_predict_matches_dense_reference(tmp_path, bg_mode):
    h = w = 16
    scores = make_scores(h, w)
    write_scores(tmp_path, 'img1', scores, [1, 3])
    cfg = dict(
        cam_dir=str(tmp_path),
        radius=3,
        beta=4.0,
        n_steps=32,
        bg_mode=bg_mode,
        bg_alpha=2.0,
        bg_thr=0.4)
    model = tiny_model(**cfg).eval()
    rng = np.random.default_rng(1)
    feats = rng.normal(scale=0.3, size=(3, 4, 4))
    model.affinity_features = lambda x: torch.from_numpy(feats)[None].float(
    ).repeat(x.shape[0], 1, 1, 1)
    sample = SegDataSample(
        metainfo=dict(
            img_path='/data/img1.jpg', ori_shape=(h, w), img_shape=(h, w)))
    out = model.predict(torch.zeros(1, 3, h, w), [sample])[0]
    got = out.seg_logits.data.numpy()

    fg = scores[1:].copy()
    if bg_mode == 'power':
        bg = (1 - fg.max(0))**2.0
        maps = np.concatenate([bg[None], fg])
    else:
        maps = fg
    walked = dense_walk(feats, block_mean(maps, 4), 3, 4.0, 32)
    ref = upsample(walked, (h, w))
    if bg_mode == 'const':
        ref = np.concatenate([np.full((1, h, w), 0.4), ref / ref.max()])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    keys = np.array([0, 1, 3])
    np.testing.assert_array_equal(out.pred_sem_seg.data[0].numpy(),
                                  keys[ref[keys].argmax(0)])
    assert np.all(got[2] == 0)


def test_predict_undoes_padding_and_flip(tmp_path):
    # the image (12 x 16) is flipped by the pipeline and padded to 16 x 20
    # (left 0, right 4, top 0, bottom 4); the grid has stride 4
    h0, w0 = 12, 16
    scores = make_scores(h0, w0, seed=2)
    write_scores(tmp_path, 'pic', scores, [1, 3])
    model = tiny_model(
        cam_dir=str(tmp_path),
        radius=2,
        beta=8.0,
        n_steps=16,
        bg_mode='power',
        bg_alpha=16.0).eval()
    rng = np.random.default_rng(3)
    feats = rng.normal(scale=0.2, size=(2, 4, 5))
    model.affinity_features = lambda x: torch.from_numpy(feats)[None].float()
    meta = dict(
        img_path='x/pic.png',
        ori_shape=(h0, w0),
        img_shape=(h0, w0),
        flip=True,
        flip_direction='horizontal',
        padding_size=(0, 4, 0, 4))
    out = model.predict(
        torch.zeros(1, 3, 16, 20), [SegDataSample(metainfo=meta)])[0]
    fg = scores[1:]
    maps = np.concatenate([((1 - fg.max(0))**16.0)[None], fg])
    maps = np.pad(maps[:, :, ::-1], ((0, 0), (0, 4), (0, 4)))
    walked = dense_walk(feats, block_mean(maps, 4), 2, 8.0, 16)
    ref = upsample(walked, (16, 20))[:, :h0, :w0][:, :, ::-1]
    got = out.seg_logits.data.numpy()
    assert got.shape == (NUM_CLASSES, h0, w0)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_predict_real_network_with_crf(tmp_path):
    h, w = 24, 28
    write_scores(tmp_path, 'real', make_scores(h, w, seed=4), [1, 3])
    model = tiny_model(
        cam_dir=str(tmp_path),
        flip=True,
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
    pred = out.pred_sem_seg.data
    assert pred.shape == (1, h, w)
    assert set(pred.unique().tolist()) <= {0, 1, 3}
    # no refiner: the argmax is restricted to the image's classes too
    model.set_refiner(None)
    with torch.no_grad():
        out = model.test_step(data)[0]
    assert set(out.pred_sem_seg.data.unique().tolist()) <= {0, 1, 3}


def test_predict_errors(tmp_path):
    sample = SegDataSample(
        metainfo=dict(
            img_path='d/none.jpg', ori_shape=(8, 8), img_shape=(8, 8)))
    model = tiny_model(cam_dir=str(tmp_path)).eval()
    missing = str(tmp_path / 'none.npz')
    with pytest.raises(FileNotFoundError, match=missing):
        model.predict(torch.zeros(1, 3, 8, 8), [sample])
    write_scores(tmp_path, 'none', np.zeros((5, 8, 8)), [1])
    with pytest.raises(ValueError, match='5 channels .* num_classes=4'):
        model.predict(torch.zeros(1, 3, 8, 8), [sample])
    write_scores(tmp_path, 'none', np.zeros((4, 6, 8)), [1])
    with pytest.raises(ValueError, match='original image size'):
        model.predict(torch.zeros(1, 3, 8, 8), [sample])
    write_scores(tmp_path, 'none', np.zeros((4, 8, 8)), [4])
    with pytest.raises(ValueError, match=r'img_labels \[4\]'):
        model.predict(torch.zeros(1, 3, 8, 8), [sample])
    (tmp_path / 'none.npz').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='cannot read CAM scores'):
        model.predict(torch.zeros(1, 3, 8, 8), [sample])
    with pytest.raises(ValueError, match='cam_dir'):
        tiny_model().predict(torch.zeros(1, 3, 8, 8), [sample])
    with pytest.raises(KeyError, match='unknown AffinityNet test_cfg key'):
        tiny_model(bg_thres=0.3)
    with pytest.raises(ValueError, match='bg_mode'):
        tiny_model(bg_mode='psa')
    with pytest.raises(ValueError, match='n_steps'):
        tiny_model(n_steps=-1)


# ----------------------------------------------------------------------
# the head interface (issue #19) leaves AffinityHead's numbers unchanged
def legacy_sparse_transition(feats, radius, beta):
    """``sparse_transition`` as it was before the walk asked the head for
    its pair affinities (copied from the earlier code, dense result)."""
    _, h, w = feats.shape
    n = h * w
    dists = []
    for dy, dx in pair_offsets(radius):
        (fy, fx), (ty, tx) = pair_slices(h, w, dy, dx)
        diff = (feats[:, fy, fx] - feats[:, ty, tx]).abs()
        dists.append(diff.mean(dim=0).reshape(-1))
    src, dst = pair_indices(h, w, radius, feats.device)
    aff = torch.exp(-float(beta) * torch.cat(dists))
    diag = torch.arange(n)
    rows = torch.cat([src, dst, diag])
    cols = torch.cat([dst, src, diag])
    vals = torch.cat([aff, aff, feats.new_ones(n)])
    colsum = feats.new_zeros(n).index_add_(0, cols, vals)
    vals = vals / colsum[cols]
    return torch.sparse_coo_tensor(
        torch.stack([rows, cols]), vals, (n, n),
        check_invariants=False).coalesce()


def legacy_loss(feats, labels, radius, eps=1e-5):
    """The pair loss loop of AffinityHead before the refactor."""
    h, w = feats.shape[2:]
    sums = [feats.new_zeros(()) for _ in range(3)]
    counts = [feats.new_zeros(()) for _ in range(3)]
    for dy, dx in pair_offsets(radius):
        (fy, fx), (ty, tx) = pair_slices(h, w, dy, dx)
        lf, lt = labels[:, fy, fx], labels[:, ty, tx]
        if lf.numel() == 0:
            continue
        valid = (lf != 255) & (lt != 255)
        pos = valid & (lf == lt)
        masks = (pos & (lf == 0), pos & (lf != 0), valid & (lf != lt))
        dist = (feats[:, :, fy, fx] - feats[:, :, ty, tx]).abs().mean(1)
        aff = torch.exp(-dist)
        pos_loss = -torch.log(aff + eps)
        neg_loss = -torch.log(1 + eps - aff)
        for k, (mask,
                term) in enumerate(zip(masks, (pos_loss, pos_loss, neg_loss))):
            sums[k] = sums[k] + (term * mask).sum()
            counts[k] = counts[k] + mask.sum()
    terms = [s / (c + eps) for s, c in zip(sums, counts)]
    return [terms[0] * 0.25, terms[1] * 0.25, terms[2] * 0.5], counts


@pytest.mark.parametrize('flip', [False, True])
def test_affinity_head_walk_and_loss_unchanged_by_refactor(tmp_path, flip):
    """The walk through ``head.walk_affinities`` / ``walk_inputs`` and the
    loss through ``head.pair_affinities`` give AffinityHead's earlier
    numbers bit for bit."""
    h, w = 24, 28
    scores = make_scores(h, w, seed=5)
    write_scores(tmp_path, 'same', scores, [1, 3])
    torch.manual_seed(0)
    model = tiny_model(
        cam_dir=str(tmp_path),
        flip=flip,
        radius=3,
        beta=8.0,
        n_steps=dict(reach=0.5),
        bg_mode='const').eval()
    x = torch.randint(
        0, 256, (1, 3, h, w),
        generator=torch.Generator().manual_seed(1)).float()
    meta = dict(img_path='a/same.jpg', ori_shape=(h, w), img_shape=(h, w))
    with torch.no_grad():
        out = model.predict(x, [SegDataSample(metainfo=meta)])[0]
        feats = model.affinity_features(x)
        if flip:
            feats = (feats + model.affinity_features(x.flip(-1)).flip(-1)) / 2
    # the earlier walk_scores body, with the earlier transition
    feats = feats[0].float()
    fg = torch.from_numpy(scores[1:]).clone()
    fg[1] = 0  # class 2 is not an image label
    maps = model._from_original(fg.clamp(min=0), meta, (h, w))
    grid = feats.shape[-2:]
    pooled = F.adaptive_avg_pool2d(maps[None], grid)[0]
    radius, n_steps = resolve_walk(3, dict(reach=0.5), grid)
    trans = legacy_sparse_transition(feats, radius, 8.0)
    walked = random_walk(trans, pooled.float(), n_steps)
    up = F.interpolate(
        walked[None], size=(h, w), mode='bilinear', align_corners=False)[0]
    up = up / up.max()
    got = out.seg_logits.data
    assert torch.equal(got[1:], up)
    new_trans = affinity_transition(
        model.affinity_head.walk_affinities(feats, radius, 8.0), grid,
        radius).to_dense()
    assert torch.equal(new_trans, trans.to_dense())
    # the loss
    gen = torch.Generator().manual_seed(2)
    fts = torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 6, 7), generator=gen)
    labels[torch.rand(2, 6, 7, generator=gen) < 0.2] = 255
    head = AffinityHead(in_channels=(4, ), channels=(8, ), radius=4)
    losses = head.loss_by_feat(fts, labels)
    terms, counts = legacy_loss(fts, labels, 4)
    for key, ref in zip(('loss_aff_bg', 'loss_aff_fg', 'loss_aff_neg'), terms):
        assert torch.equal(losses[key], ref), key
    for key, ref in zip(('num_bg_pos', 'num_fg_pos', 'num_neg'), counts):
        assert torch.equal(losses[key], ref), key


# ----------------------------------------------------------------------
# the demo config
def test_demo_config(tmp_path):
    cfg = Config.fromfile(str(CONFIG))
    assert cfg.default_scope == 'mmwsss'
    ds = cfg.train_dataloader.dataset
    assert ds.data_prefix.seg_map_path == cfg.aff_label_dir
    assert cfg.model.test_cfg.cam_dir == cfg.cam_dir
    assert cfg.model.data_preprocessor.seg_pad_val == 255
    names = [t['type'] for t in cfg.train_pipeline]
    assert 'mmseg.LoadAnnotations' in names
    assert not cfg.train_pipeline[1].get('reduce_zero_label', False)

    # the training pipeline keeps 255 and moves it with the image
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 30:] = 255
    label = np.zeros((40, 60), np.uint8)
    label[:, 30:] = 255
    label[10:20, 5:15] = 3
    Image.fromarray(img).save(tmp_path / 'im.png')
    Image.fromarray(label).save(tmp_path / 'lab.png')
    with DefaultScope.overwrite_default_scope('mmwsss'):
        pipeline = Compose(cfg.train_pipeline)
        out = pipeline(
            dict(
                img_path=str(tmp_path / 'im.png'),
                seg_map_path=str(tmp_path / 'lab.png'),
                reduce_zero_label=False,
                seg_fields=[],
                img_labels=[3]))
        seg = out['data_samples'].gt_sem_seg.data[0]
        pix = out['inputs'].float().mean(0)
        assert set(seg.unique().tolist()) <= {0, 3, 255}
        assert (seg == 255).any()
        # labels follow the image (bright half = 255, dark half = 0 / 3;
        # the interpolated edge column is left out)
        bright, dark = (pix > 200).numpy(), (pix < 50).numpy()
        # bilinear image vs nearest labels: keep 2 px off the edge
        bright = ndimage.binary_erosion(bright, iterations=2)
        dark = ndimage.binary_erosion(dark, iterations=2)
        assert bright.any() and dark.any()
        assert (seg.numpy()[bright] == 255).all()
        assert (seg.numpy()[dark] != 255).all()

        # the model builds (no pretrained download: init_weights is not
        # called) and takes a training step on a 64 x 64 batch
        model = MODELS.build(cfg.model)
    assert model.test_cfg['bg_mode'] in ('power', 'const')
    data = model.data_preprocessor(train_batch(n=1, size=64), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)


def test_relative_radius_and_reach_in_predict_and_loss(tmp_path):
    # on a 4 x 4 grid: radius dict(rel=0.75) -> 3, reach 1.2 ->
    # round((1.2 * 4) ** 2 / step_msd(3)) = round(23.04 / 4) = 6 steps;
    # the prediction equals the dense reference with those values
    h = w = 16
    scores = make_scores(h, w)
    write_scores(tmp_path, 'img1', scores, [1, 3])
    model = tiny_model(
        cam_dir=str(tmp_path),
        radius=dict(rel=0.75),
        beta=4.0,
        n_steps=dict(reach=1.2),
        bg_mode='const',
        bg_thr=0.4).eval()
    rng = np.random.default_rng(1)
    feats = rng.normal(scale=0.3, size=(3, 4, 4))
    model.affinity_features = lambda x: torch.from_numpy(feats)[None].float()
    sample = SegDataSample(
        metainfo=dict(
            img_path='/data/img1.jpg', ori_shape=(h, w), img_shape=(h, w)))
    got = model.predict(torch.zeros(1, 3, h, w), [sample])[0]
    walked = dense_walk(feats, block_mean(scores[1:], 4), 3, 4.0, 6)
    ref = upsample(walked, (h, w))
    ref = np.concatenate([np.full((1, h, w), 0.4), ref / ref.max()])
    np.testing.assert_allclose(
        got.seg_logits.data.numpy(), ref, rtol=1e-4, atol=1e-5)
    # the training loss resolves a relative radius on its grid too
    gen = torch.Generator().manual_seed(0)
    fts = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 5, 6), generator=gen)
    rel = AffinityHead(
        in_channels=(4, ), channels=(8, ), radius=dict(rel=3 / 5.477))
    ab = AffinityHead(in_channels=(4, ), channels=(8, ), radius=3)
    for k, v in ab.loss_by_feat(fts, labels).items():
        assert float(rel.loss_by_feat(fts, labels)[k]) == float(v), k
    with pytest.raises(ValueError, match='n_steps'):
        tiny_model(n_steps=dict(steps=3))
    with pytest.raises(ValueError, match='radius'):
        tiny_model(radius=dict(rel=-1))
