# Copyright (c) mmwsss contributors.
"""Foreground AUC of continuous maps, against a brute-force pair count."""
import numpy as np
import pytest

from mmwsss.evaluation.target_quality import ForegroundAUC, foreground_auc


def brute_auc(score, gt):
    """P(fg pixel > bg pixel) + P(tie) / 2 over every (fg, bg) pair."""
    fg = score[(gt != 0) & (gt != 255)].ravel()
    bg = score[gt == 0].ravel()
    total = 0.0
    for a in fg:
        total += float((a > bg).sum()) + 0.5 * float((a == bg).sum())
    return total / (fg.size * bg.size)


def test_auc_matches_pair_count_with_ties():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (12, 10))
    gt[0, :4] = 255
    # few distinct values: many ties
    score = rng.integers(0, 4, (12, 10)).astype(np.float32)
    score[gt > 0] += rng.integers(0, 2, int((gt > 0).sum()))
    assert foreground_auc(score, gt) == pytest.approx(brute_auc(score, gt))


def test_auc_extremes_and_none():
    gt = np.zeros((4, 4), np.uint8)
    gt[1:3, 1:3] = 5
    perfect = (gt > 0).astype(np.float32)
    assert foreground_auc(perfect, gt) == pytest.approx(1.0)
    assert foreground_auc(1 - perfect, gt) == pytest.approx(0.0)
    assert foreground_auc(np.ones((4, 4)), gt) == pytest.approx(0.5)
    # ignored pixels count for neither side
    gt2 = gt.copy()
    gt2[0, 0] = 255
    s = perfect.copy()
    s[0, 0] = 9.0
    assert foreground_auc(s, gt2) == pytest.approx(1.0)
    assert foreground_auc(perfect, np.zeros((4, 4))) is None
    assert foreground_auc(perfect, np.full((4, 4), 3)) is None
    with pytest.raises(ValueError, match='2-D'):
        foreground_auc(np.zeros((1, 4, 4)), gt)


def test_auc_resizes_the_map_to_the_mask():
    gt = np.zeros((8, 8), np.uint8)
    gt[:, 4:] = 1
    small = np.array([[0, 1], [0, 1]], np.float32)  # a 4x upsampled map
    assert foreground_auc(small, gt) == pytest.approx(1.0)


def test_mean_over_images_skips_empty_masks():
    acc = ForegroundAUC()
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 1
    good = (gt > 0).astype(np.float32)
    acc.add('m', good, gt)
    acc.add('m', 1 - good, gt)
    acc.add('m', good, np.zeros((4, 4), np.uint8))  # skipped
    acc.add('other', good, np.zeros((4, 4), np.uint8))
    assert acc.results() == {'m': pytest.approx(0.5)}
