# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.refine.heuristic_targets`.

The references compose :class:`DenseCRF`, :func:`morph_close` and
:class:`SLICRandomWalk` directly, image by image; the closing test checks a
hand-built blob whose hole must (or must not) be filled.
"""
import pickle

import numpy as np
import pytest

from mmwsss.refine.densecrf import DenseCRF, morph_close
from mmwsss.refine.heuristic_targets import HeuristicTargets
from mmwsss.refine.slic_random_walk import SLICRandomWalk
from mmwsss.registry import TASK_UTILS

H, W = 32, 48
NUM_CLASSES = 8
RW = dict(n_segments=24, n_iters=12)
CRF = dict(preset='irn_label', n_iters=5)
BG = (100, 100, 100)
RED = (200, 50, 50)


def blob_case(hole=True):
    """A red rectangle of class 7 with a background-coloured hole.

    The CAM is 0.9 on the rectangle and 0 on the hole, the background
    score a constant 0.3, so the CRF keeps the hole as background and
    only the closing can fill it.
    """
    img = np.empty((H, W, 3), np.uint8)
    img[:] = BG
    img[8:24, 12:36] = RED
    scores = np.zeros((NUM_CLASSES, H, W), np.float32)
    scores[0] = 0.3
    scores[7, 8:24, 12:36] = 0.9
    if hole:
        img[14:19, 21:26] = BG
        scores[7, 14:19, 21:26] = 0.
    return img, scores


def random_batch(n=4, seed=0):
    """Noisy images with two coloured blobs (one holed), noisy CAMs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    imgs = np.empty((n, H, W, 3), np.uint8)
    scores = np.zeros((n, NUM_CLASSES, H, W), np.float32)
    labels = []
    for i in range(n):
        cls_a, cls_b = rng.choice(np.arange(1, NUM_CLASSES), 2, False)
        cy, cx = rng.integers(10, 22), rng.integers(10, 38)
        blob_a = (yy - cy)**2 / 40 + (xx - cx)**2 / 60 < 1
        blob_b = (yy - 24)**2 / 30 + (xx - 40)**2 / 30 < 1
        # A background-coloured hole in blob a, for the closing to fill.
        hole = (np.abs(yy - cy) < 2) & (np.abs(xx - cx) < 2)
        img = np.empty((H, W, 3), np.float64)
        img[:] = rng.integers(60, 140, 3)
        img[blob_a & ~hole] = rng.integers(150, 255, 3)
        img[blob_b] = rng.integers(0, 60, 3)
        img += rng.normal(0, 8, img.shape)
        imgs[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        scores[i, 0] = rng.uniform(0.05, 0.3)
        scores[i, cls_a] = blob_a * ~hole * rng.uniform(0.3, 1, (H, W))
        scores[i, cls_b] = blob_b * rng.uniform(0.3, 1, (H, W))
        labels.append([int(cls_a), int(cls_b)])
    return imgs, scores, labels


def test_targets_equal_direct_composition():
    imgs, scores, labels = random_batch(3)
    crf_cfg = dict(CRF, scale_factor=2.)
    gen = HeuristicTargets(crf=crf_cfg, close_kernel=9, rw=RW)
    out = gen(imgs, scores, labels)
    assert set(out) == {'crf', 'rw'}
    crf = DenseCRF(**crf_cfg)
    rw = SLICRandomWalk(**RW)
    n_closed = 0
    for i in range(3):
        raw = crf(imgs[i], scores[i], labels[i])
        ref_crf = morph_close(raw, 9)
        n_closed += int((ref_crf != raw).sum())
        np.testing.assert_array_equal(out['crf'][i], ref_crf)
        np.testing.assert_array_equal(out['rw'][i],
                                      rw(imgs[i], scores[i], labels[i]))
        assert set(np.unique(out['crf'][i])) <= {0, *labels[i]}
    assert out['crf'].dtype == np.int64 and out['rw'].dtype == np.int64
    assert out['crf'].shape == (3, H, W)
    # The closing changed something, so the comparison covers it.
    assert n_closed > 0


def test_which_selects_targets():
    imgs, scores, labels = random_batch(2)
    gen = HeuristicTargets(crf=CRF, rw=RW)
    both = gen(imgs, scores, labels)
    only_rw = gen(imgs, scores, labels, which='rw')
    assert set(only_rw) == {'rw'}
    np.testing.assert_array_equal(only_rw['rw'], both['rw'])
    crf_gen = HeuristicTargets(crf=CRF, rw=None)
    only_crf = crf_gen(imgs, scores, labels, which=['crf'])
    np.testing.assert_array_equal(only_crf['crf'], both['crf'])


def test_closing_fills_hole():
    img, scores = blob_case()
    hole = np.zeros((H, W), bool)
    hole[14:19, 21:26] = True
    crf_only = DenseCRF(**CRF)(img, scores, [7])
    assert (crf_only[hole] == 0).all()  # the CRF leaves the hole open
    targets = []
    for kernel in (15, 1):
        gen = HeuristicTargets(crf=CRF, close_kernel=kernel, rw=None)
        targets.append(gen(img[None], scores[None], [[7]], 'crf')['crf'][0])
    closed, open_ = targets
    assert (closed[hole] == 7).all()
    assert (open_[hole] == 0).all()
    expected = np.zeros((H, W), np.int64)
    expected[8:24, 12:36] = 7
    np.testing.assert_array_equal(closed, expected)


@pytest.mark.parametrize('ignore_index', [255, 254])
def test_ignore(ignore_index):
    img, scores = blob_case()
    valid = np.ones((1, H, W), bool)
    valid[0, :, 30:] = False  # e.g. crop padding over part of the blob
    valid[0, 16, 23] = False  # an ignored pixel inside the hole
    gen = HeuristicTargets(
        crf=CRF, close_kernel=15, rw=RW, ignore_index=ignore_index)
    out = gen(img[None], scores[None], [[7]], valid_masks=valid)
    full = gen(img[None], scores[None], [[7]])
    for name in ('crf', 'rw'):
        target = out[name][0]
        assert (target[~valid[0]] == ignore_index).all()
        np.testing.assert_array_equal(target[valid[0]],
                                      full[name][0][valid[0]])
        assert set(np.unique(target)) <= {0, 7, ignore_index}
    # The closing filled the rest of the hole around the ignored pixel.
    assert out['crf'][0, 14:19, 21:26].tolist().count(ignore_index) == 0
    hole = out['crf'][0, 14:19, 21:26]
    assert (hole == 7).sum() == 24 and (hole == ignore_index).sum() == 1


def test_worker_pool_matches_serial():
    imgs, scores, labels = random_batch(4, seed=5)
    serial_gen = HeuristicTargets(crf=CRF, close_kernel=9, rw=RW)
    serial = serial_gen(imgs, scores, labels)
    with HeuristicTargets(
            crf=CRF, close_kernel=9, rw=RW, num_workers=2) as gen:
        pooled = gen(imgs, scores, labels)
        pool = gen._pool
        assert pool is not None
        again = gen(imgs[:2], scores[:2], labels[:2], which='rw')
        assert gen._pool is pool  # persistent
        clone = pickle.loads(pickle.dumps(gen))
        assert clone._pool is None and gen._pool is pool
    assert gen._pool is None
    for name in ('crf', 'rw'):
        np.testing.assert_array_equal(pooled[name], serial[name])
    np.testing.assert_array_equal(again['rw'], serial['rw'][:2])
    assert clone.num_workers == 2 and repr(clone) == repr(gen)


def test_registry():
    gen = TASK_UTILS.build(
        dict(type='HeuristicTargets', crf=CRF, close_kernel=15, rw=RW))
    assert isinstance(gen, HeuristicTargets)
    assert gen.crf.n_iters == 5 and gen.crf.unary == 'label'
    assert gen.rw.n_segments == 24 and gen.rw.n_iters == 12
    default = HeuristicTargets()
    assert default.rw.n_segments == 1100 and default.rw.n_iters == 12
    assert default.close_kernel == 15 and default.crf.n_iters == 5


def test_bad_inputs():
    imgs, scores, labels = random_batch(2)
    gen = HeuristicTargets(crf=CRF, rw=RW)
    with pytest.raises(ValueError, match='imgs.*scores'):
        gen(imgs, scores[:1], labels)
    with pytest.raises(ValueError, match='imgs.*scores'):
        gen(imgs, scores[..., :-1], labels)
    with pytest.raises(ValueError, match='img_labels'):
        gen(imgs, scores, labels[:1])
    with pytest.raises(ValueError, match='img_labels'):
        gen(imgs, scores, [labels[0], [NUM_CLASSES]])
    bad = scores.copy()
    bad[1, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match='scores.*NaN'):
        gen(imgs, bad, labels)
    with pytest.raises(ValueError, match='imgs.*uint8'):
        gen(imgs.astype(np.float32), scores, labels)
    with pytest.raises(ValueError, match='imgs'):
        gen(imgs[0], scores, labels)
    with pytest.raises(ValueError, match='scores'):
        gen(imgs, scores[0], labels)
    with pytest.raises(ValueError, match='which'):
        gen(imgs, scores, labels, which='edge')
    with pytest.raises(ValueError, match='valid_masks'):
        gen(imgs, scores, labels, valid_masks=np.ones((2, H, W + 1), bool))
    with pytest.raises(ValueError, match="'rw'"):
        HeuristicTargets(crf=CRF, rw=None)(imgs, scores, labels)
    with pytest.raises(ValueError, match='num_workers'):
        HeuristicTargets(num_workers=-1)
    with pytest.raises(ValueError, match='ignore_index'):
        HeuristicTargets(ignore_index=0)


def test_relative_sizes():
    gen = HeuristicTargets(
        crf=dict(
            preset='irn_label',
            n_iters=5,
            gauss_sxy=dict(rel=3 / 512),
            bi_sxy=dict(rel=50 / 512)),
        close_kernel=dict(rel=15 / 128),
        rw=dict(n_segments=dict(rel=1100 / 128**2), n_iters=12))
    # the paper's 512 crop: stride-4 grid 128, the current VOC config's
    # values (closing 15, SLIC 1100, stds / 4)
    assert gen.resolved_sizes((128, 128)) == dict(
        close_kernel=15, gauss_sxy=0.75, bi_sxy=12.5, n_segments=1100)
    # the 128 demo crop: grid 32
    assert gen.resolved_sizes((32, 32)) == dict(
        close_kernel=3, gauss_sxy=0.1875, bi_sxy=3.125, n_segments=69)
    # targets equal a direct composition with the resolved sizes
    imgs, scores, labels = random_batch(2)
    side = (H * W)**0.5
    crf = DenseCRF(
        preset='irn_label',
        n_iters=5,
        gauss_sxy=3 / 512 * side,
        bi_sxy=50 / 512 * side)
    close = 2 * int(15 / 128 * side / 2) + 1
    rw = SLICRandomWalk(n_segments=round(1100 / 128**2 * H * W), n_iters=12)
    out = gen(imgs, scores, labels)
    for i in range(2):
        expect = morph_close(crf(imgs[i], scores[i], labels[i]), close)
        np.testing.assert_array_equal(out['crf'][i], expect)
        np.testing.assert_array_equal(out['rw'][i],
                                      rw(imgs[i], scores[i], labels[i]))
    # the generator stays picklable (worker pools)
    clone = pickle.loads(pickle.dumps(gen))
    np.testing.assert_array_equal(
        clone(imgs, scores, labels)['crf'], out['crf'])
    with pytest.raises(ValueError, match='close_kernel'):
        HeuristicTargets(close_kernel=dict(rel=-1))
