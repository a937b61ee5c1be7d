# Copyright (c) mmwsss contributors.
"""The label-free background rules of background_scores (#20)."""
import numpy as np
import pytest
import torch

from mmwsss.cams import background_scores
from mmwsss.cams.cam_ops import otsu_background
from mmwsss.cams.thresholds import apply_thresholds


def _brute_otsu(x, bins=256):
    """Threshold maximising the between-class variance, by enumeration."""
    lo, hi = float(x.min()), float(x.max())
    counts, edges = np.histogram(x.ravel(), bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    best, arg = -1.0, None
    for k in range(bins - 1):
        w1, w2 = counts[:k + 1].sum(), counts[k + 1:].sum()
        if w1 == 0 or w2 == 0:
            continue
        m1 = (counts[:k + 1] * centres[:k + 1]).sum() / w1
        m2 = (counts[k + 1:] * centres[k + 1:]).sum() / w2
        var = w1 * w2 * (m1 - m2)**2
        if var > best:
            best, arg = var, centres[k]
    return arg


def test_otsu_is_the_between_class_variance_maximum():
    rng = np.random.default_rng(0)
    # a bimodal CAM: weak background, a peaked object
    cam = np.clip(rng.normal(0.15, 0.05, (40, 50)), 0, 1)
    cam[10:25, 12:30] = np.clip(rng.normal(0.8, 0.1, (15, 18)), 0, 1)
    t = otsu_background(torch.from_numpy(cam))
    assert t == pytest.approx(_brute_otsu(cam), abs=1e-6)
    assert 0.3 < t < 0.7
    cams = torch.from_numpy(np.stack([cam, cam * 0.5])).float()
    bg = background_scores(cams, 'otsu', thr=0.9)
    assert bg.shape == (1, 40, 50)
    assert torch.all(bg == bg[0, 0, 0])
    assert float(bg[0, 0, 0]) == pytest.approx(
        _brute_otsu(cams.max(0).values.numpy()), abs=1e-6)


def test_otsu_fallback_and_no_class():
    flat = torch.full((2, 5, 5), 0.4)
    assert torch.all(background_scores(flat, 'otsu', thr=0.25) == 0.25)
    empty = torch.zeros(0, 3, 4)
    assert torch.equal(background_scores(empty, 'otsu'), torch.ones(1, 3, 4))


@pytest.mark.parametrize('alpha', [1.0, 4.0, 16.0])
def test_power_rule_is_a_constant_threshold_for_the_argmax(alpha):
    """(1 - m)^a > m  iff  m < t with t = (1 - t)^a (documented)."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid < (1 - mid)**alpha else (lo, mid)
    rng = np.random.default_rng(1)
    scores = rng.random((3, 30, 30)).astype(np.float32)
    labels = [1, 2]
    cams = torch.from_numpy(scores[1:])
    bg = background_scores(cams, 'power', alpha=alpha)[0].numpy()
    full = np.concatenate([bg[None], scores[1:]])
    power = full.argmax(0)
    const = apply_thresholds(scores, labels, lo)
    assert (power != const).mean() < 1e-3  # ties at the float boundary


def test_sweep_thresholds_scores_the_otsu_rule(tmp_path):
    """The tool's label-free line against per-pixel brute force."""
    import importlib.util
    import os.path as osp

    from PIL import Image
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'sweep', osp.join(root, 'tools/analysis_tools/sweep_thresholds.py'))
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    rng = np.random.default_rng(5)
    conf = np.zeros((3, 3), np.int64)
    (tmp_path / 's').mkdir()
    (tmp_path / 'g').mkdir()
    for i, labels in enumerate(([1], [1, 2], [2])):
        scores = np.zeros((3, 12, 10), np.float32)
        for c in labels:
            scores[c] = rng.random((12, 10))**2
        gt = rng.integers(0, 3, (12, 10)).astype(np.uint8)
        gt[0, 0] = 255
        np.savez(
            tmp_path / 's' / f'{i}.npz',
            scores=scores,
            img_labels=np.array(labels))
        Image.fromarray(gt).save(tmp_path / 'g' / f'{i}.png')
        t = _brute_otsu(scores[labels].max(0))
        for y in range(12):
            for x in range(10):
                if gt[y, x] == 255:
                    continue
                best = max(labels, key=lambda c: (scores[c, y, x], -c))
                pred = best if scores[best, y, x] > t else 0
                conf[pred, gt[y, x]] += 1
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    want = np.nanmean(
        np.where(union > 0, inter / np.maximum(union, 1), np.nan))
    res = sweep.main([
        '--scores-dir',
        str(tmp_path / 's'), '--gt-dir',
        str(tmp_path / 'g'), '--out',
        str(tmp_path / 'r.json')
    ])
    assert res['otsu']['miou'] == pytest.approx(want, abs=1e-9)
