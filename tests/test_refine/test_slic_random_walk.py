# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.refine.slic_random_walk`.

The reference walk is a dense numpy re-implementation of CamGuide eqs.
(13)-(16) built with explicit loops over pixels and their 4-neighbours
from the superpixel labels; only the SLIC labels and the RGB -> CIELab
conversion come from scikit-image.
"""
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from skimage.color import rgb2lab
from skimage.segmentation import slic

from mmwsss.refine.slic_random_walk import (SLICRandomWalk, slic_random_walk,
                                            superpixel_graph)
from mmwsss.registry import TASK_UTILS

H, W = 32, 48
DARK_RED = (120, 20, 20)
LIGHT_BLUE = (170, 200, 250)


def two_region_image(seed=0, noise=4.):
    """Left half dark red, right half light blue, mild noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 3), np.float64)
    img[:, :W // 2] = DARK_RED
    img[:, W // 2:] = LIGHT_BLUE
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def seeded_scores():
    """One channel, 1 on a 6x6 patch inside the left region."""
    scores = np.zeros((1, H, W), np.float32)
    scores[0, 12:18, 8:14] = 1.
    return scores


def dense_reference(img, scores, segments, n_iters, sigma_color, self_loop,
                    color_space):
    """Eqs. (13)-(16) with dense matrices and explicit loops."""
    h, w = segments.shape
    labels = sorted({int(v) for v in segments.ravel()})
    index = {lab: i for i, lab in enumerate(labels)}
    n = len(labels)
    if color_space == 'lab':
        feats = rgb2lab(img)
    else:
        feats = img.astype(np.float64) / 255.
    col_sum = np.zeros((n, 3))
    score_sum = np.zeros((n, scores.shape[0]))
    count = np.zeros(n)
    adjacent = np.zeros((n, n), bool)
    for i in range(h):
        for j in range(w):
            a = index[int(segments[i, j])]
            count[a] += 1
            col_sum[a] += feats[i, j]
            score_sum[a] += scores[:, i, j]
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                ii, jj = i + di, j + dj
                if 0 <= ii < h and 0 <= jj < w:
                    b = index[int(segments[ii, jj])]
                    if a != b:
                        adjacent[a, b] = True
    mu = col_sum / count[:, None]
    weights = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            if adjacent[a, b]:
                dist = np.sqrt(np.sum((mu[a] - mu[b])**2))
                weights[a, b] = np.exp(-dist / (2 * sigma_color**2))
        if self_loop:
            weights[a, a] = 1.
    trans = weights / weights.sum(1, keepdims=True)
    u = np.linalg.matrix_power(trans, n_iters) @ (score_sum / count[:, None])
    out = np.zeros(scores.shape)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = u[index[int(segments[i, j])]]
    return out, mu, trans


def test_walk_spreads_inside_region_not_across_edge():
    img = two_region_image()
    scores = seeded_scores()
    before = slic_random_walk(img, scores, n_segments=24, n_iters=0)
    after = slic_random_walk(img, scores, n_segments=24, n_iters=12)
    assert after.dtype == np.float32 and after.shape == scores.shape
    left, right = after[0, :, :W // 2], after[0, :, W // 2:]
    # Without the walk most of the left region has no evidence ...
    assert (before[0, :, :W // 2] == 0).mean() > 0.5
    # ... after it every left pixel does, and the values are nearly flat.
    assert left.min() > 0.5 * left.max()
    # The strong colour edge stops the walk.
    assert right.max() < 0.02 * left.min()
    # Mass is conserved only up to leaks; the walk neither creates evidence
    # on the right nor inflates the left above the seed.
    assert left.max() <= 1.


def test_walk_crosses_without_edge():
    img = np.full((H, W, 3), 128, np.uint8)
    after = slic_random_walk(img, seeded_scores(), n_segments=24, n_iters=12)
    assert after[0, :, W // 2:].min() > 0.1 * after[0].max()


def test_constant_channel_stays_constant():
    img = two_region_image(seed=3, noise=20.)
    scores = np.concatenate(
        [np.full((1, H, W), 0.3, np.float32),
         seeded_scores()])
    after = slic_random_walk(img, scores, n_segments=30, n_iters=12)
    np.testing.assert_allclose(after[0], 0.3, rtol=1e-6)


@pytest.mark.parametrize('self_loop,color_space,sigma', [(True, 'lab', None),
                                                         (False, 'lab', 4.),
                                                         (True, 'rgb', 0.3)])
def test_matches_dense_reference(self_loop, color_space, sigma):
    rng = np.random.default_rng(1)
    h, w = 9, 11
    img = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    scores = rng.uniform(0, 1, (3, h, w)).astype(np.float32)
    n_iters = 5
    graph = superpixel_graph(
        img,
        n_segments=12,
        sigma_color=sigma,
        self_loop=self_loop,
        color_space=color_space)
    ref_sigma = sigma if sigma is not None else 2.5
    ref, mu, trans = dense_reference(img, scores, graph.segments, n_iters,
                                     ref_sigma, self_loop, color_space)
    assert isinstance(graph.transition, sp.csr_matrix)
    n = trans.shape[0]
    assert n > 3  # a real graph, not a single node
    np.testing.assert_allclose(graph.colors, mu, rtol=1e-10)
    np.testing.assert_allclose(graph.transition.toarray(), trans, atol=1e-12)
    out = slic_random_walk(
        img,
        scores,
        n_segments=12,
        n_iters=n_iters,
        sigma_color=sigma,
        self_loop=self_loop,
        color_space=color_space)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_superpixel_graph_segments_match_slic():
    img = two_region_image(seed=2, noise=10.)
    graph = superpixel_graph(img, n_segments=24, start_label=5)
    raw = slic(
        img, n_segments=24, compactness=10., start_label=0, channel_axis=-1)
    # Same partition, labels contiguous from start_label.
    assert graph.segments.min() == 5
    n = graph.transition.shape[0]
    assert set(np.unique(graph.segments)) == set(range(5, 5 + n))
    pairs = set(zip(raw.ravel().tolist(), graph.segments.ravel().tolist()))
    assert len(pairs) == n == len(np.unique(raw))
    np.testing.assert_allclose(
        np.asarray(graph.transition.sum(1)).ravel(), 1., rtol=1e-12)


def test_single_superpixel_keeps_value():
    img = np.full((4, 4, 3), 50, np.uint8)
    scores = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    out = slic_random_walk(
        img, scores, n_segments=1, n_iters=3, self_loop=False)
    np.testing.assert_allclose(out, 7.5)


def test_bad_inputs():
    img = two_region_image()
    scores = seeded_scores()
    with pytest.raises(ValueError, match='scores'):
        slic_random_walk(img, scores[:, :-1])
    with pytest.raises(ValueError, match='scores'):
        slic_random_walk(img, scores[0])
    bad = scores.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        slic_random_walk(img, bad)
    with pytest.raises(ValueError, match='img.*uint8'):
        slic_random_walk(img.astype(np.float32), scores)
    with pytest.raises(ValueError, match='img'):
        slic_random_walk(img[..., :2], scores)
    with pytest.raises(ValueError, match='n_iters'):
        slic_random_walk(img, scores, n_iters=-1)
    with pytest.raises(ValueError, match='color_space'):
        superpixel_graph(img, color_space='hsv')
    with pytest.raises(ValueError, match='sigma_color'):
        SLICRandomWalk(sigma_color=0.)


def labelled_case():
    """Class 5 covers the left region with a hole in its CAM; 8 channels."""
    img = two_region_image(seed=4)
    scores = np.zeros((8, H, W), np.float32)
    scores[0] = 0.3  # constant background threshold
    scores[5, :, :W // 2] = 0.9
    scores[5, 8:24, 4:20] = 0.  # hole covering whole superpixels
    scores[2] = 0.95  # not an image label: must be ignored
    return img, scores


def test_slic_random_walk_labels():
    img, scores = labelled_case()
    rw = SLICRandomWalk(n_segments=24, n_iters=12)
    label_map = rw(img, scores, [5])
    assert label_map.dtype == np.int64 and label_map.shape == (H, W)
    expected = np.zeros((H, W), np.int64)
    expected[:, :W // 2] = 5
    np.testing.assert_array_equal(label_map, expected)
    # The hole is background before the walk.
    no_walk = SLICRandomWalk(n_segments=24, n_iters=0)(img, scores, [5])
    assert (no_walk[8:24, 4:20] == 0).any()
    # Independent composition: argmax over [0, 5] of the walk, the class
    # map divided by its maximum (renorm='class', the default).
    walked = slic_random_walk(img, scores[[0, 5]], n_segments=24)
    walked[1] /= walked[1].max()
    np.testing.assert_array_equal(label_map,
                                  np.array([0, 5])[np.argmax(walked, axis=0)])


def blob_case():
    """A blob of class 3 (peak 1) and one of class 6 (peak 0.6) on a smooth
    colour ramp (regular superpixels, no strong edge); constant background
    0.5."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:H, :W]
    img = np.stack([xx * 4 + 20, yy * 5 + 40, 128 + 0 * xx], -1)
    img = img + rng.normal(0, 2, (H, W, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    scores = np.zeros((8, H, W), np.float32)
    scores[0] = 0.5
    scores[3, 10:20, 6:16] = 1.0
    scores[6, 10:20, 30:40] = 0.6
    return img, scores


def test_renorm_after_walk():
    img, scores = blob_case()
    kw = dict(n_segments=60, n_iters=4)
    raw = SLICRandomWalk(renorm=None, **kw)
    per_class = SLICRandomWalk(renorm='class', **kw)
    glob = SLICRandomWalk(renorm='global', **kw)
    walked, keys = raw.probs(img, scores, [3, 6])
    np.testing.assert_array_equal(keys, [0, 3, 6])
    # the walk spreads the blobs: their peaks fall below the constant
    # background, so without renormalisation no foreground is left (D2)
    assert walked[1].max() < 0.5 and walked[2].max() < 0.5
    assert (raw(img, scores, [3, 6]) == 0).all()
    # independent renormalisations of the raw walk
    ref_c = walked.copy()
    ref_c[1] /= walked[1].max()
    ref_c[2] /= walked[2].max()
    ref_g = walked.copy()
    ref_g[1:] /= walked[1:].max()
    np.testing.assert_allclose(
        per_class.probs(img, scores, [3, 6])[0], ref_c, rtol=1e-6)
    np.testing.assert_allclose(
        glob.probs(img, scores, [3, 6])[0], ref_g, rtol=1e-6)
    lab_c = per_class(img, scores, [3, 6])
    np.testing.assert_array_equal(lab_c, keys[np.argmax(ref_c, axis=0)])
    assert (lab_c == 3).any() and (lab_c == 6).any()
    # the background channel is never rescaled
    np.testing.assert_allclose(
        per_class.probs(img, scores, [3, 6])[0][0], 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match='renorm'):
        SLICRandomWalk(renorm='max')


def test_relative_segments():
    rel = SLICRandomWalk(n_segments=dict(rel=1100 / 128**2), n_iters=3)
    assert rel.resolve_segments((128, 128)) == 1100
    assert rel.resolve_segments((32, 32)) == 69
    assert rel.resolve_segments((H, W)) == round(1100 / 128**2 * H * W)
    assert SLICRandomWalk(n_segments=dict(rel=1e-6)).resolve_segments(
        (8, 8)) == 1
    img, scores = labelled_case()
    ab = SLICRandomWalk(n_segments=round(1100 / 128**2 * H * W), n_iters=3)
    np.testing.assert_array_equal(
        rel.probs(img, scores, [5])[0],
        ab.probs(img, scores, [5])[0])
    with pytest.raises(ValueError, match='n_segments'):
        SLICRandomWalk(n_segments=dict(rel=0))


def test_slic_random_walk_labels_none_and_errors():
    img, scores = labelled_case()
    rw = SLICRandomWalk(n_segments=24, n_iters=12)
    scores[2] = 0
    np.testing.assert_array_equal(rw(img, scores, None), rw(img, scores, [5]))
    with pytest.raises(ValueError, match='img_labels'):
        rw(img, scores, [9])
    with pytest.raises(ValueError, match='img_labels'):
        rw(img, scores, [0])


def test_registry_and_pickle():
    rw = TASK_UTILS.build(
        dict(type='SLICRandomWalk', n_segments=24, n_iters=3))
    assert isinstance(rw, SLICRandomWalk)
    clone = pickle.loads(pickle.dumps(rw))
    assert repr(clone) == repr(rw)
    img, scores = labelled_case()
    np.testing.assert_array_equal(
        clone(img, scores, [5]), rw(img, scores, [5]))
