# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.cams.cam_ops` on hand-computed small tensors."""
import pytest
import torch

from mmwsss.cams import (background_scores, fuse_maps, label_mask,
                         normalize_cams)


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# a 1x2x2x2 CAM: class 0 has negatives and max 3, class 1 max 0.5
CAM = t([[[[1., -2.], [3., 0.]], [[0.5, 0.5], [0., -1.]]]])


@pytest.mark.parametrize('eps', [0.0, 1e-5])
def test_normalize_max_by_hand(eps):
    out = normalize_cams(CAM, 'max', eps=eps)
    expected = t([[[[1 / (3 + eps), 0.], [3 / (3 + eps), 0.]],
                   [[.5 / (.5 + eps), .5 / (.5 + eps)], [0., 0.]]]])
    assert out.shape == (1, 2, 2, 2)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)


def test_normalize_max_3d_and_all_zero_channel():
    # (K, H, W) input; a channel with no positive value stays 0 (no NaN)
    cams = t([[[-1., -2.], [0., -3.]], [[2., 4.], [1., 0.]]])
    out = normalize_cams(cams, 'max')
    expected = t([[[0., 0.], [0., 0.]],
                  [[2 / (4 + 1e-5), 4 / (4 + 1e-5)], [1 / (4 + 1e-5), 0.]]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)


def test_normalize_minmax_by_hand():
    # min > 0 so that minmax differs from max: (x - 2) / (10 - 2)
    cams = t([[[2., 4.], [6., 10.]], [[-5., 1.], [3., 0.]]])
    out = normalize_cams(cams, 'minmax', eps=0.0)
    # second channel after relu: [[0, 1], [3, 0]], min 0, max 3
    expected = t([[[0., .25], [.5, 1.]], [[0., 1 / 3], [1., 0.]]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    out = normalize_cams(cams, 'minmax')  # default eps 1e-5
    torch.testing.assert_close(
        out[0], t([[0., 2.], [4., 8.]]) / (8 + 1e-5), rtol=0, atol=1e-7)
    # max mode on the same channel: x / 10
    torch.testing.assert_close(
        normalize_cams(cams, 'max', eps=0.0)[0],
        t([[.2, .4], [.6, 1.]]),
        rtol=0,
        atol=1e-7)


@pytest.mark.parametrize('mode', ['max', 'minmax'])
def test_normalize_constant_channel_without_eps(mode):
    # 0 / 0 must not turn into NaN (it would poison the argmax)
    cams = t([[[0., 0.], [-1., 0.]], [[2., 2.], [2., 2.]], [[0., 1.], [2.,
                                                                       0.]]])
    out = normalize_cams(cams, mode, eps=0.0)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros(2, 2))
    expected_1 = torch.ones(2, 2) if mode == 'max' else torch.zeros(2, 2)
    assert torch.equal(out[1], expected_1)
    assert torch.equal(out[2], t([[0., .5], [1., 0.]]))


def test_normalize_none_is_relu():
    out = normalize_cams(CAM, 'none')
    expected = t([[[[1., 0.], [3., 0.]], [[0.5, 0.5], [0., 0.]]]])
    assert torch.equal(out, expected)


def test_normalize_bad_mode():
    with pytest.raises(ValueError, match='norm mode'):
        normalize_cams(CAM, 'l2')


def test_fuse_maps_by_hand():
    a = t([[1., 5.], [-2., 0.]])
    b = t([[3., 2.], [-4., 1.]])
    c = t([[2., 2.], [0., 4.]])
    assert torch.equal(fuse_maps([a, b], 'sum'), t([[4., 7.], [-6., 1.]]))
    assert torch.equal(fuse_maps([a, b], 'max'), t([[3., 5.], [-2., 1.]]))
    assert torch.equal(fuse_maps([a, b], 'mean'), t([[2., 3.5], [-3., .5]]))
    assert torch.equal(fuse_maps([a, b, c], 'sum'), t([[6., 9.], [-6., 5.]]))
    assert torch.equal(fuse_maps([a, b, c], 'max'), t([[3., 5.], [0., 4.]]))
    assert torch.equal(
        fuse_maps((a, b, c), 'mean'), t([[2., 3.], [-2., 5 / 3]]))
    # a single map is returned unchanged for every mode
    for mode in ('sum', 'max', 'mean'):
        assert torch.equal(fuse_maps([a], mode), a)


def test_fuse_maps_errors():
    with pytest.raises(ValueError, match='at least one'):
        fuse_maps([], 'sum')
    with pytest.raises(ValueError, match='fusion mode'):
        fuse_maps([t([1.])], 'min')


def test_label_mask():
    assert torch.equal(label_mask([1, 3], 4), t([1., 0., 1.]))
    assert torch.equal(label_mask([], 4), t([0., 0., 0.]))
    assert torch.equal(label_mask([2, 2], 3), t([0., 1.]))
    assert torch.equal(label_mask(torch.tensor([3]), 4), t([0., 0., 1.]))
    for bad in (0, 4, -1):
        with pytest.raises(ValueError, match='outside'):
            label_mask([1, bad], 4)


def test_background_const():
    cams = t([[[.5, 1.], [0., .2]], [[.8, 0.], [0., .1]]])
    bg = background_scores(cams, 'const', thr=0.3)
    assert torch.equal(bg, torch.full((1, 2, 2), 0.3))


def test_background_power_by_hand():
    cams = t([[[.5, 1.], [0., .2]], [[.8, 0.], [0., .1]], [[0., 0.], [0.,
                                                                      1.5]]])
    # max over classes [[.8, 1], [0, 1.5]] -> (1 - max).clamp(0) ** 2
    bg = background_scores(cams, 'power', alpha=2.0)
    torch.testing.assert_close(
        bg, t([[[.04, 0.], [1., 0.]]]), rtol=0, atol=1e-7)
    bg = background_scores(cams[:2], 'power', alpha=1.0)
    torch.testing.assert_close(
        bg, t([[[.2, 0.], [1., .8]]]), rtol=0, atol=1e-7)


def test_background_no_class():
    """An image without labelled classes still gets one background map."""
    empty = torch.zeros(0, 2, 3)
    const = background_scores(empty, 'const', thr=0.15)
    assert torch.equal(const, torch.full((1, 2, 3), 0.15))
    assert torch.equal(background_scores(empty, 'power'), torch.ones(1, 2, 3))


def test_background_bad_mode():
    with pytest.raises(ValueError, match='background mode'):
        background_scores(torch.zeros(1, 2, 2), 'crf')
