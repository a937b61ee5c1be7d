# Copyright (c) mmwsss contributors.
"""Simulated CAMs: shape, absent classes, peak on the object, determinism."""
import numpy as np
import pytest

from mmwsss.cams.simulate import simulate_cams


def _mask():
    gt = np.zeros((64, 96), np.uint8)
    gt[16:48, 8:40] = 2  # a square of class 2 on the left
    gt[0, :4] = 255
    return gt


def test_shape_and_absent_classes():
    cams = simulate_cams(_mask(), 5, stride=16, rng=np.random.default_rng(0))
    assert cams.shape == (4, 4, 6) and cams.dtype == np.float32
    for c in (1, 3, 4):  # absent: negative logits (zero after the ReLU)
        assert (cams[c - 1] < 0).all()


def test_peak_on_the_object_and_spill():
    gt = _mask()
    cams = simulate_cams(
        gt,
        5,
        stride=16,
        false_prob=0.0,
        noise=0.0,
        rng=np.random.default_rng(0))[1]
    y, x = np.unravel_index(np.argmax(cams), cams.shape)
    cell = gt[16 * y:16 * y + 16, 16 * x:16 * x + 16]
    assert (cell == 2).mean() > 0.5
    # far right (no object within 3 blur sigmas): below the logit offset
    assert cams[:, -1].max() < 0
    # maps normalised to a max of 1, then area pooled: below scale - offset
    assert 0 < cams.max() <= 8.0 - 1.0


def test_deterministic_and_validated():
    a = simulate_cams(_mask(), 5, rng=np.random.default_rng(3))
    b = simulate_cams(_mask(), 5, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match='core'):
        simulate_cams(_mask(), 5, core=2)
    with pytest.raises(ValueError, match='gt'):
        simulate_cams(np.zeros((2, 2, 2)), 5)
