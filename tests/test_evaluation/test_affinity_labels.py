# Copyright (c) mmwsss contributors.
"""Precision of confident affinity labels: brute force over all pairs."""
import itertools

import numpy as np
import pytest
from PIL import Image

from mmwsss.evaluation.affinity_labels import (AffinityLabelPrecision,
                                               evaluate_affinity_label_dir)


def brute(conf, gt, radius, ign=255):
    """Counts by enumerating every unordered pair of grid nodes."""
    h, w = conf.shape
    nodes = [(y, x) for y in range(h) for x in range(w)]
    c = dict(pos_bg=0, pos_bg_ok=0, pos_fg=0, pos_fg_ok=0, neg=0, neg_ok=0)
    for (y0, x0), (y1, x1) in itertools.combinations(nodes, 2):
        if (y0 - y1)**2 + (x0 - x1)**2 >= radius**2:
            continue
        a, b, ga, gb = conf[y0, x0], conf[y1, x1], gt[y0, x0], gt[y1, x1]
        if ign in (a, b, ga, gb):
            continue
        if a == b:
            key = 'pos_bg' if a == 0 else 'pos_fg'
            c[key] += 1
            c[key + '_ok'] += int(ga == gb)
        else:
            c['neg'] += 1
            c['neg_ok'] += int(ga != gb)
    return c


def random_case(seed, h=9, w=11):
    rng = np.random.default_rng(seed)
    gt = rng.choice([0, 0, 1, 2], size=(h, w))
    gt[0, :3] = 255
    conf = np.where(
        rng.random((h, w)) < 0.7, gt, rng.choice([0, 1, 2, 255], size=(h, w)))
    conf[rng.random((h, w)) < 0.2] = 255
    return conf, gt


@pytest.mark.parametrize('radius', [2, 3, 5])
def test_pairs_match_brute_force(radius):
    acc = AffinityLabelPrecision(radius=radius, stride=1)
    ref = dict.fromkeys(brute(*random_case(0), radius), 0)
    for seed in range(3):
        conf, gt = random_case(seed)
        acc.add(conf, gt)
        for k, v in brute(conf, gt, radius).items():
            ref[k] += v
    res = acc.results()
    for k, v in ref.items():
        assert res['n_' + k] == v, k
    assert res['neg_precision'] == ref['neg_ok'] / ref['neg']
    assert res['pos_fg_precision'] == ref['pos_fg_ok'] / ref['pos_fg']
    assert 0 < res['neg_precision'] < 1


def test_pixels_hand_computed():
    conf = np.array([[1, 1, 255], [0, 0, 2]])
    gt = np.array([[1, 2, 0], [0, 1, 255]])
    acc = AffinityLabelPrecision(radius=2, stride=1)
    acc.add(conf, gt)
    res = acc.results()
    # fg pixels (valid gt): (0,0) ok, (0,1) wrong; (1,2) has gt 255
    assert res['fg_precision'] == 0.5
    # bg pixels: (1,0) ok, (1,1) wrong
    assert res['bg_precision'] == 0.5
    # 5 valid pixels, 4 confident
    assert res['coverage'] == 4 / 5


def test_stride_uses_nearest_grid():
    gt = np.zeros((8, 8), np.int64)
    gt[:, 4:] = 1
    conf = gt.copy()
    conf[1::2] = 255  # odd rows uncertain: the stride-2 grid skips them
    acc = AffinityLabelPrecision(radius=2, stride=2)
    acc.add(conf, gt)
    res = acc.results()
    assert res['pos_bg_precision'] == res['pos_fg_precision'] == 1
    assert res['neg_precision'] == 1
    grid_conf = conf[::2, ::2]
    ref = brute(grid_conf, gt[::2, ::2], 2)
    assert res['n_neg'] == ref['neg'] and res['n_pos_fg'] == ref['pos_fg']


def test_dir_evaluation(tmp_path):
    (tmp_path / 'lab').mkdir()
    (tmp_path / 'gt').mkdir()
    acc = AffinityLabelPrecision(radius=3, stride=1)
    for i in range(3):
        conf, gt = random_case(i)
        Image.fromarray(conf.astype(np.uint8)).save(tmp_path / 'lab' /
                                                    f'x{i}.png')
        if i < 2:
            Image.fromarray(gt.astype(np.uint8)).save(tmp_path / 'gt' /
                                                      f'x{i}.png')
            acc.add(conf, gt)
    with pytest.raises(FileNotFoundError, match='x2.png'):
        evaluate_affinity_label_dir(
            str(tmp_path / 'lab'), str(tmp_path / 'gt'), radius=3, stride=1)
    res = evaluate_affinity_label_dir(
        str(tmp_path / 'lab'),
        str(tmp_path / 'gt'),
        radius=3,
        stride=1,
        missing='skip')
    assert res == acc.results() and res['images'] == 2
