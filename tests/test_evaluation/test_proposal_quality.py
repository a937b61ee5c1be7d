# Copyright (c) mmwsss contributors.
"""Proposal measures against brute-force references on small masks."""
import itertools
import os.path as osp
import runpy

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from mmwsss.evaluation import (ProposalQuality, coverage_map,
                               evaluate_proposal_dir, mask_objects)
from mmwsss.models.utils import select_boxes

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _mask():
    gt = np.zeros((12, 16), np.uint8)
    gt[1:4, 1:5] = 1  # object A of class 1
    gt[4:6, 5:7] = 1  # touches A at a corner: the same 8-connected object
    gt[8:11, 10:15] = 1  # object B of class 1
    gt[6:9, 1:3] = 2  # one object of class 2
    gt[0, 15] = 2  # a one-pixel sliver
    gt[11, 0] = 255  # ignored
    return gt


def _objects_ref(gt, min_area):
    """Tight boxes from scipy's labelling (independent of OpenCV)."""
    out = []
    for c in np.unique(gt):
        if c in (0, 255):
            continue
        lab, _ = ndimage.label(gt == c, structure=np.ones((3, 3)))
        for i, sl in enumerate(ndimage.find_objects(lab), 1):
            if (lab == i).sum() >= min_area:
                out.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
    return sorted(out)


def _iou_ref(a, b):
    """IoU of two integer boxes by counting pixels."""
    pa = {(y, x)
          for y in range(int(a[1]), int(a[3]))
          for x in range(int(a[0]), int(a[2]))}
    pb = {(y, x)
          for y in range(int(b[1]), int(b[3]))
          for x in range(int(b[0]), int(b[2]))}
    return len(pa & pb) / len(pa | pb)


@pytest.mark.parametrize('min_area', [1, 2])
def test_mask_objects_match_scipy_labelling(min_area):
    gt = _mask()
    got = sorted(mask_objects(gt, min_area=min_area).tolist())
    assert got == _objects_ref(gt, min_area)
    # the corner-touching parts merge, the sliver goes with min_area 2
    assert len(got) == (4 if min_area == 1 else 3)
    with pytest.raises(ValueError, match='2-D'):
        mask_objects(gt[None])


def test_coverage_map_counts_boxes_per_pixel():
    boxes = torch.tensor([[0., 0., 8., 6.], [4., 2., 16., 12.],
                          [5., 5., 6., 6.]])
    got = coverage_map(boxes, (12, 16), chunk=2)
    ref = np.zeros((12, 16))
    for y, x in itertools.product(range(12), range(16)):
        ref[y, x] = sum(b[0] <= x < b[2] and b[1] <= y < b[3]
                        for b in boxes.tolist()) / 3
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert not coverage_map(torch.zeros(0, 4), (3, 4)).any()


def test_abo_recall_and_auc_against_brute_force():
    gt = _mask()
    boxes = np.array(
        [[1, 1, 7, 6], [9, 8, 15, 11], [0, 0, 16, 12], [1, 6, 3, 9]],
        np.float32)
    q = ProposalQuality(min_area=2, iou_thr=0.7)
    q.add('some', boxes[:2], gt)
    q.add('none', np.zeros((0, 4)), gt)
    r = q.results()
    objects = _objects_ref(gt, 2)
    best = [max(_iou_ref(o, b) for b in boxes[:2]) for o in objects]
    assert r['some']['objects'] == len(objects) == 3
    assert r['some']['abo'] == pytest.approx(np.mean(best))
    assert r['some']['recall'] == pytest.approx(
        np.mean([b >= 0.7 for b in best]))
    assert r['some']['boxes'] == 2
    assert r['some']['box_area'] == pytest.approx(
        np.mean([30 / 192, 18 / 192]))
    assert r['none']['abo'] == 0 and r['none']['recall'] == 0
    assert r['none']['box_area'] is None

    # boxes exactly on the objects: a perfect coverage map
    exact_gt = np.zeros_like(gt)
    for i, o in enumerate(objects, 1):  # one class each: touching boxes
        exact_gt[o[1]:o[3], o[0]:o[2]] = i  # stay separate objects
    exact2 = ProposalQuality(min_area=1)
    exact2.add('x', np.array(objects, np.float32), exact_gt)
    assert exact2.results()['x']['coverage_auc'] == pytest.approx(1.0)
    assert exact2.results()['x']['abo'] == pytest.approx(1.0)
    # a box on the background only: coverage below chance
    bg = ProposalQuality()
    bg.add('x', np.array([[7, 0, 10, 4]], np.float32), exact_gt)
    assert bg.results()['x']['coverage_auc'] < 0.5


def test_select_boxes_rules_and_errors():
    boxes = torch.tensor([[0., 0., 2., 2.], [0., 0., 4., 4.], [1., 1., 1., 3.],
                          [0., 0., 3., 3.]])
    ranks = torch.tensor([2, 0, 5, 1])
    assert select_boxes(boxes, 2, 'rank', ranks).tolist() == \
        [[0., 0., 4., 4.], [0., 0., 3., 3.]]
    assert select_boxes(boxes, 2, 'area').tolist() == \
        [[0., 0., 4., 4.], [0., 0., 3., 3.]]
    assert select_boxes(boxes, None, 'rank').shape == (3, 4)  # empty box
    torch.manual_seed(0)
    a = select_boxes(boxes, 2, 'random')
    torch.manual_seed(0)
    assert torch.equal(a, select_boxes(boxes, 2, 'random'))
    with pytest.raises(ValueError, match='mode'):
        select_boxes(boxes, 2, 'best')


def _write_set(root, gt, boxes):
    import os
    os.makedirs(osp.join(root, 'gt'))
    os.makedirs(osp.join(root, 'prop'))
    Image.fromarray(gt).save(osp.join(root, 'gt', 'a.png'))
    np.savez(
        osp.join(root, 'prop', 'a.npz'),
        boxes=boxes,
        img_shape=np.array(gt.shape))
    with open(osp.join(root, 'split.txt'), 'w') as f:
        f.write('a\n')


def test_evaluate_proposal_dir_and_tool(tmp_path, capsys):
    gt = _mask()
    boxes = np.array([[1, 1, 7, 6], [9, 8, 15, 11], [0, 0, 16, 12]],
                     np.float32)
    _write_set(str(tmp_path), gt, boxes)
    res = evaluate_proposal_dir(
        str(tmp_path / 'prop'),
        str(tmp_path / 'gt'), ['a'],
        top_k=2,
        modes=('rank', 'area', 'all'))
    ref = ProposalQuality()
    ref.add('rank', boxes[:2], gt)
    ref.add('area', boxes[[2, 0]], gt)
    ref.add('all', boxes, gt)
    assert res == ref.results()

    tool = osp.join(ROOT, 'tools', 'analysis_tools', 'proposal_quality.py')
    main = runpy.run_path(tool)['main']
    out = main([
        str(tmp_path / 'prop'),
        str(tmp_path / 'gt'), '--split',
        str(tmp_path / 'split.txt'), '--top-k', '2', '--min-area', '1',
        '--out',
        str(tmp_path / 'q.json')
    ])
    assert out['results']['rank'] == res['rank']
    assert osp.isfile(tmp_path / 'q.json')
    assert 'coverage AUC' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='b.npz'):
        with open(tmp_path / 'split.txt', 'a') as f:
            f.write('b\n')
        Image.fromarray(gt).save(tmp_path / 'gt' / 'b.png')
        main([
            str(tmp_path / 'prop'),
            str(tmp_path / 'gt'), '--split',
            str(tmp_path / 'split.txt')
        ])
