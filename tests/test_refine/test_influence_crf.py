# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.refine.influence_crf`.

References: pydensecrf called directly with the paper's constants
(IRN's ``crf_inference_label``: 10 iterations, Gaussian (3, 3), bilateral
(50, 5, 10), gt_prob 0.7) and a breadth-first-search clean-up.
"""
from collections import deque

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
from pydensecrf.utils import unary_from_labels

from mmwsss.refine import DenseCRF, InfluenceCRF, influence_cleanup
from mmwsss.registry import TASK_UTILS


def make_case(seed=0, h=30, w=36):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w, 3), 100.0)
    blob = (yy - 12)**2 + (xx - 12)**2 < 40
    img[blob] = (200, 60, 50)
    img = np.clip(img + rng.normal(0, 15, img.shape), 0, 255)
    scores = np.zeros((5, h, w), np.float32)
    scores[0] = 0.3
    scores[3] = np.exp(-((yy - 12)**2 + (xx - 14)**2) / 60.0)
    scores[3] += rng.uniform(0, 0.2, (h, w))
    return img.astype(np.uint8), scores


def reference_crf(img, sel):
    n, h, w = sel.shape
    crf = dcrf.DenseCRF2D(w, h, n)
    crf.setUnaryEnergy(
        unary_from_labels(np.argmax(sel, 0), n, 0.7, zero_unsure=False))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(
        sxy=50, srgb=5, rgbim=np.ascontiguousarray(img), compat=10)
    return np.array(crf.inference(10)).reshape(n, h, w)


def brute_cleanup(lab, inf, min_area, thr, hole_area):
    h, w = lab.shape
    out = lab.copy()

    def comps(mask, nbrs):
        seen = np.zeros_like(mask)
        for y in range(h):
            for x in range(w):
                if mask[y, x] and not seen[y, x]:
                    q, cur = deque([(y, x)]), []
                    seen[y, x] = True
                    while q:
                        a, b = q.popleft()
                        cur.append((a, b))
                        for da, db in nbrs:
                            c, d = a + da, b + db
                            if (0 <= c < h and 0 <= d < w and mask[c, d]
                                    and not seen[c, d]):
                                seen[c, d] = True
                                q.append((c, d))
                    yield cur

    n8 = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]
    n4 = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    mean = inf.mean()
    for cls in set(lab.ravel().tolist()) - {0}:
        for cur in comps(lab == cls, n8):
            m = np.mean([inf[p] for p in cur])
            if len(cur) < min_area or m / mean < thr:
                for p in cur:
                    out[p] = 0
    res = out.copy()
    for cur in comps(out == 0, n4):
        pts = set(cur)
        border = any(a in (0, h - 1) or b in (0, w - 1) for a, b in cur)
        nb = {
            out[a + da, b + db]
            for a, b in cur
            for da, db in n4
            if 0 <= a + da < h and 0 <= b + db < w and (a + da,
                                                        b + db) not in pts
        }
        if not border and len(cur) < hole_area and len(nb) == 1:
            for p in cur:
                res[p] = next(iter(nb))
    return res


@pytest.mark.parametrize('influence', [None, 'const'])
def test_uniform_reduces_to_densecrf(influence):
    img, scores = make_case()
    inf = None if influence is None else np.full(scores.shape[1:], 2.5)
    refiner = TASK_UTILS.build(
        dict(type='InfluenceCRF', min_area=5, hole_area=6, influence_thr=0.9))
    q, keys = refiner.probs(img, scores, [3], inf)
    ref = reference_crf(img, scores[[0, 3]])
    np.testing.assert_allclose(q, ref, rtol=0, atol=1e-6)
    dq, dkeys = DenseCRF(preset='irn_label').probs(img, scores, [3])
    np.testing.assert_array_equal(q, dq)
    np.testing.assert_array_equal(keys, dkeys)
    lab = refiner(img, scores, [3], inf)
    crf_lab = DenseCRF()(img, scores, [3])
    np.testing.assert_array_equal(lab,
                                  influence_cleanup(crf_lab, None, 5, 0.0, 6))
    # 3-argument call == uniform influence
    np.testing.assert_array_equal(lab, refiner(img, scores, [3]))


def test_influence_direction():
    """High influence turns a marginally background region (one colour
    segment) to foreground through the seed boost; the plain CRF and the
    low-influence half stay background."""
    h, w = 24, 24
    img = np.full((h, w, 3), 120, np.uint8)
    img[:, 12:] = 60
    scores = np.zeros((3, h, w), np.float32)
    scores[0] = 0.5
    scores[1] = 0.4  # slightly below background everywhere
    inf = np.zeros((h, w))
    inf[:, 12:] = 1.0
    refiner = InfluenceCRF(beta=1.0, gamma=0.0, influence_thr=0.0)
    base = DenseCRF()(img, scores, [1])
    out = refiner(img, scores, [1], inf)
    assert (base == 0).all()
    assert (out[:, 12:] == 1).all()
    assert (out[:, :12] == 0).all()
    # a boost too small to flip the seeds changes nothing
    small = InfluenceCRF(beta=0.2, gamma=0.0, influence_thr=0.0)
    assert (small(img, scores, [1], inf) == 0).all()
    # the foreground marginal grows with beta where influence is high
    q_lo, _ = InfluenceCRF(beta=0.2, gamma=0.0).probs(img, scores, [1], inf)
    q_hi, _ = InfluenceCRF(beta=1.0, gamma=0.0).probs(img, scores, [1], inf)
    assert (q_hi[1, :, 12:] > q_lo[1, :, 12:]).all()


def test_gamma_weakens_unary_at_high_influence():
    """gamma lowers the unary confidence where influence is high: an
    isolated label in a uniform image is smoothed away only there."""
    h, w = 20, 20
    img = np.full((h, w, 3), 120, np.uint8)
    scores = np.zeros((2 + 1, h, w), np.float32)
    scores[0] = 0.6
    scores[1, 9:11, 9:11] = 1.0
    inf = np.zeros((h, w))
    inf[5:15, 5:15] = 1.0
    r0, _ = InfluenceCRF(beta=0.0, gamma=0.0).probs(img, scores, [1], inf)
    r1, _ = InfluenceCRF(beta=0.0, gamma=0.9).probs(img, scores, [1], inf)
    assert r1[1, 10, 10] < r0[1, 10, 10]


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_cleanup_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    lab = rng.choice(4, size=(14, 15), p=[0.55, 0.2, 0.15, 0.1])
    lab[3:8, 3:8] = 2
    lab[5, 5] = 0  # a one-pixel hole
    inf = rng.uniform(0, 1, lab.shape)
    for min_area, thr, hole in [(3, 0.0, 0), (0, 0.9, 0), (2, 0.5, 3),
                                (0, 0.0, 50)]:
        got = influence_cleanup(lab, inf, min_area, thr, hole)
        ref = brute_cleanup(lab, inf, min_area, thr, hole)
        np.testing.assert_array_equal(got, ref)
    assert influence_cleanup(lab, inf, 0, 0.0, 3)[5, 5] == 2


def test_invalid_args():
    with pytest.raises(ValueError):
        InfluenceCRF(gamma=1.0)
    with pytest.raises(ValueError):
        InfluenceCRF(beta=-1)
    img, scores = make_case()
    with pytest.raises(ValueError):
        InfluenceCRF()(img, scores, [3], np.ones((2, 2)))
