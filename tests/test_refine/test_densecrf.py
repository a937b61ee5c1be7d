# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.refine.densecrf`.

The reference outputs call ``pydensecrf`` directly with the constants of
IRN's ``crf_inference_label`` and PSA's ``crf_inference``, independently of
the class under test.
"""
import pickle

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
from pydensecrf.utils import unary_from_labels, unary_from_softmax

from mmwsss.refine import DenseCRF, morph_close
from mmwsss.registry import TASK_UTILS

KEYS = np.array([0, 3, 17])  # background + two non-contiguous labels
NUM_CLASSES = 21


def make_case(seed=0, h=40, w=50, img_noise=20.):
    """Two coloured blobs with noisy CAMs for classes 3 and 17.

    The image noise sets how much the bilateral kernel dominates; it is
    chosen per preset so that every constant of the preset changes the
    output.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.empty((h, w, 3), np.float64)
    img[:] = (90, 120, 90)
    img[(yy - 15)**2 / 120 + (xx - 15)**2 / 150 < 1] = (200, 60, 50)
    img[(yy - 25)**2 / 150 + (xx - 35)**2 / 120 < 1] = (40, 70, 190)
    img += rng.normal(0, img_noise, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)

    def bump(cy, cx, sy, sx):
        return np.exp(-((yy - cy)**2 / (2 * sy**2) + (xx - cx)**2 /
                        (2 * sx**2)))

    scores = np.zeros((NUM_CLASSES, h, w), np.float32)
    cam_a = bump(13, 18, 6, 8) + rng.uniform(0, 0.6, (h, w))
    cam_b = bump(27, 33, 7, 6) + rng.uniform(0, 0.6, (h, w))
    scores[3] = cam_a / cam_a.max()
    scores[17] = cam_b / cam_b.max()
    return img, scores


def with_constant_bg(scores, bg=0.4):
    out = scores.copy()
    out[0] = bg
    return out


def with_power_bg(scores, alpha=4):
    out = scores.copy()
    out[0] = (1 - scores[1:].max(0))**alpha
    return out


def ref_label(img, scores, gt_prob=0.7, gauss=(3, 3), bi=(50, 5, 10), t=10):
    """IRN ``crf_inference_label`` on the image's classes, by hand."""
    sel = scores[KEYS]
    n, h, w = sel.shape
    labels = np.argmax(sel, axis=0)
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(
        unary_from_labels(labels, n, gt_prob=gt_prob, zero_unsure=False))
    d.addPairwiseGaussian(sxy=gauss[0], compat=gauss[1])
    d.addPairwiseBilateral(
        sxy=bi[0],
        srgb=bi[1],
        rgbim=np.ascontiguousarray(np.copy(img)),
        compat=bi[2])
    q = np.array(d.inference(t)).reshape((n, h, w))
    return KEYS[np.argmax(q, axis=0)]


def ref_softmax(img, scores, gauss=(3, 3), bi=(80, 13, 10), t=10):
    """PSA ``crf_inference`` on the image's classes, by hand."""
    probs = scores[KEYS]
    n, h, w = probs.shape
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    d.addPairwiseGaussian(sxy=gauss[0], compat=gauss[1])
    d.addPairwiseBilateral(
        sxy=bi[0], srgb=bi[1], rgbim=np.copy(img), compat=bi[2])
    q = np.array(d.inference(t)).reshape((n, h, w))
    return KEYS[np.argmax(q, axis=0)]


@pytest.fixture(scope='module')
def case():
    return make_case()


@pytest.fixture(scope='module')
def case_psa():
    return make_case(img_noise=45.)


def test_irn_preset_matches_pydensecrf(case):
    img, scores = case
    scores = with_constant_bg(scores)
    expected = ref_label(img, scores)
    out = DenseCRF(preset='irn_label')(img, scores, [3, 17])
    assert out.shape == img.shape[:2]
    np.testing.assert_array_equal(out, expected)
    # the CRF changes the argmax labels, so the comparison is not vacuous
    assert (expected != KEYS[np.argmax(scores[KEYS], 0)]).sum() > 50
    # no preset means IRN's constants
    np.testing.assert_array_equal(DenseCRF()(img, scores, [3, 17]), expected)


def test_psa_preset_matches_pydensecrf(case_psa):
    img, scores = case_psa
    scores = with_power_bg(scores)
    expected = ref_softmax(img, scores)
    out = DenseCRF(preset='psa_softmax')(img, scores, [3, 17])
    np.testing.assert_array_equal(out, expected)
    assert (expected != KEYS[np.argmax(scores[KEYS], 0)]).sum() > 50
    # scale_factor divides both spatial stds as in PSA
    out = DenseCRF(preset='psa_softmax', scale_factor=2.)(img, scores, [3, 17])
    np.testing.assert_array_equal(
        out, ref_softmax(img, scores, gauss=(1.5, 3), bi=(40, 13, 10)))


@pytest.mark.parametrize('override,ref_kwargs', [
    (dict(gt_prob=0.6), dict(gt_prob=0.6)),
    (dict(gauss_sxy=5.), dict(gauss=(5, 3))),
    (dict(gauss_compat=5.), dict(gauss=(3, 5))),
    (dict(bi_sxy=80.), dict(bi=(80, 5, 10))),
    (dict(bi_srgb=13.), dict(bi=(50, 13, 10))),
    (dict(bi_compat=4.), dict(bi=(50, 5, 4))),
    (dict(n_iters=5), dict(t=5)),
])
def test_irn_constants_matter(case, override, ref_kwargs):
    img, scores = case
    scores = with_constant_bg(scores)
    changed = ref_label(img, scores, **ref_kwargs)
    # a wrong constant would give a different map
    assert (changed != ref_label(img, scores)).any()
    # explicit keyword arguments override the preset
    out = DenseCRF(preset='irn_label', **override)(img, scores, [3, 17])
    np.testing.assert_array_equal(out, changed)


@pytest.mark.parametrize('override,ref_kwargs', [
    (dict(gauss_sxy=5.), dict(gauss=(5, 3))),
    (dict(gauss_compat=1.), dict(gauss=(3, 1))),
    (dict(bi_sxy=30.), dict(bi=(30, 13, 10))),
    (dict(bi_srgb=5.), dict(bi=(80, 5, 10))),
    (dict(bi_compat=4.), dict(bi=(80, 13, 4))),
    (dict(n_iters=5), dict(t=5)),
])
def test_psa_constants_matter(case_psa, override, ref_kwargs):
    img, scores = case_psa
    scores = with_power_bg(scores)
    changed = ref_softmax(img, scores, **ref_kwargs)
    assert (changed != ref_softmax(img, scores)).any()
    out = DenseCRF(preset='psa_softmax', **override)(img, scores, [3, 17])
    np.testing.assert_array_equal(out, changed)


def test_label_remapping_and_auto_keys(case):
    img, scores = case
    scores = with_constant_bg(scores)
    crf = DenseCRF(preset='irn_label')
    out = crf(img, scores, [17, 3])  # order does not matter
    assert out.dtype == np.int64
    assert set(np.unique(out)) == {0, 3, 17}
    # img_labels=None picks the nonzero foreground channels
    np.testing.assert_array_equal(crf(img, scores), out)
    q, keys = crf.probs(img, scores, [3, 17])
    np.testing.assert_array_equal(keys, KEYS)
    assert q.shape == (3, ) + img.shape[:2]
    np.testing.assert_allclose(q.sum(0), 1, atol=1e-4)
    np.testing.assert_array_equal(keys[q.argmax(0)], out)


def test_no_foreground_gives_background(case):
    img, scores = case
    out = DenseCRF()(img, scores, [])
    assert out.shape == img.shape[:2] and not out.any()


def test_image_conversion(case):
    img, scores = case
    scores = with_constant_bg(scores)
    crf = DenseCRF()
    expected = crf(img, scores, [3, 17])
    np.testing.assert_array_equal(
        crf(img.astype(np.int32), scores, [3, 17]), expected)
    np.testing.assert_array_equal(
        crf(img.astype(np.float32), scores, [3, 17]), expected)
    with pytest.raises(ValueError, match=r'outside \[0, 255\]'):
        crf(img / 255. * 300, scores, [3, 17])
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        crf(img[..., 0], scores, [3, 17])


def test_errors(case):
    img, scores = case
    crf = DenseCRF()
    bad = scores.copy()
    bad[3, 5, 5] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        crf(img, bad, [3, 17])
    with pytest.raises(ValueError, match=r'\(40, 50, 3\).*\(21, 30, 50\)'):
        crf(img, scores[:, :30], [3, 17])
    with pytest.raises(ValueError, match='21 channels'):
        crf(img, scores, [3, 21])
    with pytest.raises(ValueError, match='foreground'):
        crf(img, scores, [0, 3])
    with pytest.raises(ValueError, match='preset'):
        DenseCRF(preset='deeplab')
    with pytest.raises(ValueError, match='unary'):
        DenseCRF(unary='hard')


def test_pickle_and_registry(case):
    img, scores = case
    scores = with_power_bg(scores)
    crf = TASK_UTILS.build(dict(type='DenseCRF', preset='psa_softmax'))
    assert isinstance(crf, DenseCRF)
    clone = pickle.loads(pickle.dumps(crf))
    assert repr(clone) == repr(crf)
    np.testing.assert_array_equal(
        clone(img, scores, [3, 17]), crf(img, scores, [3, 17]))


def test_morph_close():
    lab = np.zeros((20, 24), np.uint8)
    lab[4:12, 2:8] = 1
    lab[4:12, 9:14] = 1  # one-pixel gap at column 8
    lab[7, 8] = 255  # an ignore pixel inside the gap stays
    lab[4:12, 15:18] = 2  # class 2 two pixels right of class 1
    out = morph_close(lab, kernel_size=3)
    assert out.dtype == lab.dtype
    gap = np.zeros_like(lab, bool)
    gap[4:12, 8] = True
    gap[7, 8] = False
    assert (out[gap] == 1).all()
    assert out[7, 8] == 255
    # pixels of another class are never overwritten
    assert (out[lab == 2] == 2).all()
    assert (out[lab == 1] == 1).all()
    # nothing else changed
    changed = out != lab
    assert not changed[~gap].any()
    # kernel_size <= 1 is the identity
    np.testing.assert_array_equal(morph_close(lab, kernel_size=1), lab)


def test_morph_close_overlap_goes_to_smaller_class():
    # class 1: a thick horizontal bar cut at column 5 (30 px)
    # class 2: a thin vertical bar cut at rows 4..6 (8 px)
    # both closings want the 3 gap pixels (rows 4..6, column 5)
    lab = np.zeros((11, 11), np.uint8)
    lab[4:7, :] = 1
    lab[:, 5] = 2
    lab[4:7, 5] = 0
    out = morph_close(lab, kernel_size=5)
    assert (out[4:7, 5] == 2).all()  # the smaller class is served first
    assert (out[lab == 1] == 1).all()
    # swap the class ids: the order is by area, not by class index
    lab2 = np.choose(lab, [0, 2, 1]).astype(np.uint8)
    out2 = morph_close(lab2, kernel_size=5)
    assert (out2[4:7, 5] == 1).all()
    assert (out2[lab2 == 2] == 2).all()


def test_morph_close_does_not_grow_objects_to_the_border():
    """A block near the border keeps its extent (brute-force closing)."""
    from mmwsss.refine.densecrf import morph_close
    lab = np.zeros((12, 12), np.int64)
    lab[2:6, 2:6] = 3
    out = morph_close(lab, kernel_size=7)
    np.testing.assert_array_equal(out, lab)
    # brute force: closing of a convex block with a square kernel, with the
    # outside of the image as background, is the block itself; a gap of 2
    # px between two blocks of one class is filled
    lab2 = np.zeros((12, 12), np.int64)
    lab2[0:4, 0:3] = 2
    lab2[0:4, 5:8] = 2
    out2 = morph_close(lab2, kernel_size=3)
    # brute-force reference
    pad = np.pad(lab2 == 2, 3)
    k = 1
    dil = np.zeros_like(pad)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            dil |= np.roll(np.roll(pad, dy, 0), dx, 1)
    ero = np.ones_like(pad)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            ero &= np.roll(np.roll(dil, dy, 0), dx, 1)
    ref = np.where(ero[3:-3, 3:-3], 2, 0)
    np.testing.assert_array_equal(out2, ref)
