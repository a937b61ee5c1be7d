# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.cams.thresholds` against a per-pixel brute force."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmseg.evaluation.metrics import IoUMetric
from PIL import Image

from mmwsss.cams import (ThresholdAccumulator, apply_thresholds,
                         iou_from_confusion, threshold_grid)

IGNORE = 255
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def make_dataset(seed, num_classes, num_images=6, bins=20, h=9, w=11):
    """Random scores, gts and labels.

    Half of the CAM values lie exactly on the grid edges ``k / bins`` (as
    float64, so ties with on-grid thresholds really happen), the others are
    random; a few are outside [0, 1].
    """
    rng = np.random.default_rng(seed)
    data = []
    for i in range(num_images):
        n_lab = rng.integers(0 if i == 0 else 1, num_classes)
        labels = sorted(
            rng.choice(np.arange(1, num_classes), n_lab,
                       replace=False).tolist())
        scores = rng.uniform(-0.05, 1.05, (num_classes, h, w))
        on_grid = rng.random((num_classes, h, w)) < 0.5
        scores[on_grid] = rng.integers(0, bins + 1, on_grid.sum()) / bins
        # exact ties between two labelled classes
        if len(labels) >= 2:
            scores[labels[1], :2] = scores[labels[0], :2]
        gt = rng.integers(0, num_classes, (h, w))
        gt[rng.random((h, w)) < 0.15] = IGNORE
        data.append((scores, gt, labels))
    return data


def brute_predict(scores, labels, thr):
    """The documented rule, one pixel at a time in plain Python."""
    _, h, w = scores.shape
    pred = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            best, best_v = None, None
            for c in labels:  # sorted: the first maximum wins ties
                v = float(scores[c, y, x])
                if best is None or v > best_v:
                    best, best_v = c, v
            if best is not None and best_v > thr[best]:
                pred[y, x] = best
    return pred


def brute_miou(data, num_classes, thr):
    conf = np.zeros((num_classes, num_classes), np.int64)
    for scores, gt, labels in data:
        pred = brute_predict(scores, labels, thr)
        m = gt != IGNORE
        conf += np.bincount(
            pred[m] * num_classes + gt[m],
            minlength=num_classes**2).reshape(num_classes, num_classes)
    inter = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = np.full(num_classes, np.nan)
    iou[union > 0] = inter[union > 0] / union[union > 0]
    return np.nanmean(iou), iou, conf


def accumulate(data, num_classes, bins):
    acc = ThresholdAccumulator(num_classes, bins=bins, ignore_index=IGNORE)
    for scores, gt, labels in data:
        acc.update(scores, gt, labels)
    return acc


@pytest.mark.parametrize('seed,num_classes', [(0, 4), (1, 5), (2, 6)])
def test_accumulator_matches_brute_force(seed, num_classes):
    bins = 20
    data = make_dataset(seed, num_classes, bins=bins)
    acc = accumulate(data, num_classes, bins)
    rng = np.random.default_rng(100 + seed)
    vectors = [np.full(num_classes, k / bins) for k in (0, 3, 10, 20)]
    vectors += [
        rng.integers(0, bins + 1, num_classes) / bins for _ in range(6)
    ]
    for thr in vectors:
        miou, iou, conf = brute_miou(data, num_classes, thr)
        np.testing.assert_array_equal(acc.confusion_matrix(thr), conf)
        got_miou, got_iou = acc.miou_for_thresholds(thr)
        assert got_miou == pytest.approx(miou, abs=1e-12)
        np.testing.assert_allclose(got_iou, iou, rtol=0, atol=1e-12)
        # apply_thresholds follows the same rule
        for scores, _, labels in data[:3]:
            np.testing.assert_array_equal(
                apply_thresholds(scores, labels, thr),
                brute_predict(scores, labels, thr))


def test_global_rule_is_irn_argmax():
    """A global threshold equals argmax([t, cams]) with ties to bg."""
    data = make_dataset(3, 5, bins=10)
    for scores, _, labels in data[1:]:
        for t in (0.0, 0.3, 0.5, 1.0):
            stack = np.concatenate(
                [np.full((1, ) + scores.shape[1:], t), scores[labels]])
            keys = np.array([0] + labels)
            np.testing.assert_array_equal(
                apply_thresholds(scores, labels, t),
                keys[np.argmax(stack, axis=0)])


def test_float32_and_float16_scores():
    bins = 20
    data = make_dataset(4, 5, bins=bins)
    for dtype in (np.float32, np.float16):
        cast = [(s.astype(dtype), g, lab) for s, g, lab in data]
        acc = accumulate(cast, 5, bins)
        for k in (2, 7, 13):
            thr = np.full(5, k / bins)
            np.testing.assert_array_equal(
                acc.confusion_matrix(thr),
                brute_miou(cast, 5, thr)[2])


def test_sweep_and_snapping():
    data = make_dataset(5, 5, bins=100)
    acc = accumulate(data, 5, 100)
    sweep = acc.sweep_global()
    assert [t for t, _ in sweep] == pytest.approx(list(threshold_grid()))
    for t, m in sweep:
        assert m == pytest.approx(brute_miou(data, 5, np.full(5, t))[0])
    # 0.05 * 3 != 0.15 in floating point; it is snapped to the edge 0.15
    assert acc.miou_for_thresholds(0.05 * 3)[0] == \
        acc.miou_for_thresholds(0.15)[0]
    assert acc.sweep_global([0.05 * 3])[0][0] == 0.15


def test_matches_mmseg_iou_metric():
    num_classes = 5
    data = make_dataset(6, num_classes, bins=20)
    thr = np.array([0, 0.2, 0.35, 0.5, 0.1])
    acc = accumulate(data, num_classes, 20)
    miou, iou = acc.miou_for_thresholds(thr)

    metric = IoUMetric(ignore_index=IGNORE)
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(num_classes)])
    results = []
    for scores, gt, labels in data:
        pred = apply_thresholds(scores, labels, thr)
        results.append(
            IoUMetric.intersect_and_union(
                torch.from_numpy(pred), torch.from_numpy(gt), num_classes,
                IGNORE))
        metric.process({}, [
            dict(
                pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                gt_sem_seg=dict(data=torch.from_numpy(gt)[None]))
        ])
    inter, union, _, _ = (sum(r) for r in zip(*results))
    ref_iou = (inter / union).numpy()
    np.testing.assert_allclose(iou, ref_iou, rtol=1e-6, equal_nan=True)
    reported = metric.compute_metrics(metric.results)['mIoU']
    assert reported == pytest.approx(round(miou * 100, 2), abs=1e-6)


def test_miou_ignores_absent_classes():
    conf = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    miou, iou = iou_from_confusion(conf)
    assert np.isnan(iou[2])
    assert miou == pytest.approx(np.mean([5 / 8, 3 / 6]))


def test_classwise_beats_global_when_classes_differ():
    """Class 1 is weak (needs t < 0.3), class 2 is strong (needs t >= 0.6)."""
    h, w = 10, 10
    data = []
    obj = np.zeros((h, w), bool)
    obj[2:7, 2:7] = True
    for cls, fg_val, bg_val in ((1, 0.3, 0.1), (2, 0.9, 0.6)):
        for _ in range(2):
            scores = np.zeros((3, h, w), np.float32)
            scores[cls] = np.where(obj, fg_val, bg_val)
            gt = np.where(obj, cls, 0)
            data.append((scores, gt, [cls]))
    acc = accumulate(data, 3, 100)
    best_global = max(m for _, m in acc.sweep_global())
    assert best_global < 0.99
    thr, miou = acc.best_classwise()
    assert miou == pytest.approx(1.0)
    assert np.isnan(thr[0])
    assert 0.1 <= thr[1] < 0.3 and 0.6 <= thr[2] < 0.9
    assert acc.miou_for_thresholds(thr)[0] == pytest.approx(1.0)
    assert brute_miou(data, 3, np.nan_to_num(thr))[0] == pytest.approx(1.0)


@pytest.mark.parametrize('seed', [7, 8, 9])
def test_classwise_never_worse_than_global(seed):
    data = make_dataset(seed, 6, num_images=8, bins=20)
    acc = accumulate(data, 6, 20)
    best_global = max(m for _, m in acc.sweep_global())
    thr, miou = acc.best_classwise(rounds=3)
    assert miou >= best_global - 1e-12
    # the reported value is the mIoU of the returned thresholds
    assert miou == pytest.approx(
        brute_miou(data, 6, np.nan_to_num(thr))[0], abs=1e-12)
    # after convergence no single-class change improves the mIoU
    thr10, miou10 = acc.best_classwise(rounds=50)
    for c in range(1, 6):
        for k in range(21):
            trial = np.nan_to_num(thr10).copy()
            trial[c] = k / 20
            assert acc.miou_for_thresholds(trial)[0] <= miou10 + 1e-12


def test_merge_equals_single_pass():
    data = make_dataset(10, 5, bins=20)
    whole = accumulate(data, 5, 20)
    part = accumulate(data[:3], 5, 20)
    part.merge(accumulate(data[3:], 5, 20))
    np.testing.assert_array_equal(part.hist, whole.hist)
    np.testing.assert_array_equal(part.always_bg, whole.always_bg)
    assert part.num_images == whole.num_images == len(data)
    assert part.miou_for_thresholds(0.3)[0] == \
        whole.miou_for_thresholds(0.3)[0]


def test_errors():
    acc = ThresholdAccumulator(4, bins=10)
    scores = np.zeros((4, 5, 6), np.float32)
    gt = np.zeros((5, 6), np.int64)
    with pytest.raises(ValueError, match='channels'):
        acc.update(scores[:3], gt, [1])
    with pytest.raises(ValueError, match='does not match'):
        acc.update(scores, gt[:4], [1])
    with pytest.raises(ValueError, match='img_labels'):
        acc.update(scores, gt, [4])
    bad = scores.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        acc.update(bad, gt, [1])
    gt_bad = gt.copy()
    gt_bad[0, 0] = 7
    with pytest.raises(ValueError, match=r'\[7\]'):
        acc.update(scores, gt_bad, [1])
    with pytest.raises(ValueError, match='length'):
        acc.miou_for_thresholds([0.1, 0.2])
    with pytest.raises(ValueError, match='update'):
        acc.best_classwise()


def _load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'sweep_thresholds.py')
    spec = importlib.util.spec_from_file_location('sweep_thresholds', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sweep_tool(tmp_path, capsys):
    num_classes = 5
    data = make_dataset(11, num_classes, bins=20)
    scores_dir, gt_dir = tmp_path / 'scores', tmp_path / 'gt'
    scores_dir.mkdir()
    gt_dir.mkdir()
    table = {}
    for i, (scores, gt, labels) in enumerate(data):
        name = f'img{i:02d}'
        np.savez(
            scores_dir / f'{name}.npz',
            scores=scores.astype(np.float32),
            img_labels=np.array(labels, np.int64))
        Image.fromarray(gt.astype(np.uint8)).save(gt_dir / f'{name}.png')
        table[name] = labels
    labels_file = tmp_path / 'labels.json'
    labels_file.write_text(json.dumps(table))
    out = tmp_path / 'res.json'
    tool = _load_tool()
    result = tool.main([
        '--scores-dir',
        str(scores_dir), '--gt-dir',
        str(gt_dir), '--labels',
        str(labels_file), '--out',
        str(out), '--step', '0.1', '--bins', '20'
    ])
    printed = capsys.readouterr().out
    assert 'best global threshold' in printed
    assert 'class_4' in printed
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert [d['thr'] for d in saved['global_sweep']
            ] == pytest.approx([0.1 * k for k in range(1, 10)])
    cast = [(s.astype(np.float32), g, lab) for s, g, lab in data]
    for entry in saved['global_sweep']:
        expected = brute_miou(cast, num_classes,
                              np.full(num_classes, entry['thr']))[0]
        assert entry['miou'] == pytest.approx(expected)
    thr = np.array([0.] + [
        saved['classwise']['thresholds'][f'class_{c}']
        for c in range(1, num_classes)
    ])
    assert saved['classwise']['miou'] == pytest.approx(
        brute_miou(cast, num_classes, thr)[0])
    assert saved['classwise']['miou'] >= saved['best_global']['miou']
    # without --labels the img_labels of the .npz files are used
    result2 = tool.main([
        '--scores-dir',
        str(scores_dir), '--gt-dir',
        str(gt_dir), '--out',
        str(tmp_path / 'res2.json'), '--step', '0.1', '--bins', '20'
    ])
    assert result2['global_sweep'] == result['global_sweep']
