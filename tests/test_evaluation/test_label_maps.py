# Copyright (c) mmwsss contributors.
"""Label-map mIoU against mmseg's IoUMetric counting."""
import numpy as np
import pytest
import torch
from mmseg.evaluation.metrics import IoUMetric
from PIL import Image

from mmwsss.evaluation import (evaluate_label_dirs, iou_from_counts,
                               label_map_confusion)


def _mmseg_iou(preds, gts, num_classes):
    totals = [torch.zeros(num_classes, dtype=torch.float64) for _ in range(4)]
    for p, g in zip(preds, gts):
        out = IoUMetric.intersect_and_union(
            torch.from_numpy(p.astype(np.int64)),
            torch.from_numpy(g.astype(np.int64)), num_classes, 255)
        for t, o in zip(totals, out):
            t += o.double()
    inter, union = totals[0], totals[1]
    iou = (inter / union).numpy()
    return float(np.nanmean(iou)), iou


def test_hand_example():
    pred = np.array([[0, 1], [255, 2]])
    gt = np.array([[0, 1], [1, 255]])
    conf = label_map_confusion(pred, gt, 3)
    miou, iou = iou_from_counts(conf)
    # class 0: 1/1; class 1: inter 1, pred 1, gt 2 -> 1/2; class 2 absent
    # from valid gt and its prediction sits on an ignored pixel -> NaN
    np.testing.assert_allclose(iou[:2], [1.0, 0.5])
    assert np.isnan(iou[2])
    assert miou == pytest.approx(0.75)


def test_matches_mmseg_iou_metric():
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for _ in range(5):
        g = rng.integers(0, 5, (17, 23))
        g[rng.random(g.shape) < 0.1] = 255
        p = np.where(rng.random(g.shape) < 0.6, g, rng.integers(0, 5, g.shape))
        p[rng.random(g.shape) < 0.05] = 255
        preds.append(p)
        gts.append(g)
    conf = sum(label_map_confusion(p, g, 5) for p, g in zip(preds, gts))
    miou, iou = iou_from_counts(conf)
    ref_miou, ref_iou = _mmseg_iou(preds, gts, 5)
    np.testing.assert_allclose(iou, ref_iou, rtol=1e-12)
    assert miou == pytest.approx(ref_miou, rel=1e-12)


def test_dirs_and_errors(tmp_path):
    pred_dir, gt_dir = tmp_path / 'pred', tmp_path / 'gt'
    pred_dir.mkdir()
    gt_dir.mkdir()
    g = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    Image.fromarray(g).save(gt_dir / 'a.png')
    Image.fromarray(g).save(pred_dir / 'a.png')
    res = evaluate_label_dirs(str(pred_dir), str(gt_dir), 3, progress=False)
    assert res['miou'] == 1.0 and res['num_images'] == 1
    with pytest.raises(FileNotFoundError, match='b.png'):
        evaluate_label_dirs(
            str(pred_dir), str(gt_dir), 3, names=['a', 'b'], progress=False)
    with pytest.raises(ValueError, match='"a".*outside'):
        evaluate_label_dirs(str(pred_dir), str(gt_dir), 2, progress=False)
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(pred_dir / 'a.png')
    with pytest.raises(ValueError, match='shape'):
        evaluate_label_dirs(str(pred_dir), str(gt_dir), 3, progress=False)
