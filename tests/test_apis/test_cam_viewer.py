# Copyright (c) mmwsss contributors.
"""vis_cam without a model: pictures from saved scores (--scores-dir)."""
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image

from mmwsss.apis.cam_viewer import (CamViewerError, class_indices,
                                    visualize_cams)
from mmwsss.datasets.shapes_folder import SHAPES_CLASSES
from mmwsss.visualization import HEADER_H, cam_overlay, colourise, voc_palette

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CAM_CFG = osp.join(ROOT,
                   'configs/cam/cam_effl0-d16_1xb16-500it_folder-128x128.py')
H, W = 24, 32


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / 'img').mkdir()
    (tmp_path / 'scores').mkdir()
    (tmp_path / 'gt').mkdir()
    out = {}
    for name, labels in (('a', [1, 3]), ('b', [2])):
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / 'img' / f'{name}.png'), img[..., ::-1])
        scores = np.zeros((4, H, W), np.float32)
        scores[0] = 0.4
        for c in labels:
            scores[c] = rng.random((H, W))
        np.savez(
            tmp_path / 'scores' / f'{name}.npz',
            scores=scores,
            img_labels=np.array(labels),
            influence=rng.random((H, W)).astype(np.float32))
        out[name] = (img, scores, labels)
    gt = np.zeros((H, W), np.uint8)
    gt[4:10, 4:10] = 1
    Image.fromarray(gt).save(tmp_path / 'gt' / 'a.png')
    return tmp_path, out


def tile(picture, j, h=96, w=128):
    return picture[HEADER_H:HEADER_H + h, j * w:(j + 1) * w]


def test_scores_dir_pictures(saved):
    root, data = saved
    written = visualize_cams(
        CAM_CFG,
        None,
        str(root / 'img'),
        str(root / 'out'),
        scores_dir=str(root / 'scores'),
        gt_dir=str(root / 'gt'),
        refine='none',
        tile=128,
        progress=False)
    assert [osp.basename(p) for p in written] == ['a.png', 'b.png']
    pic = np.asarray(Image.open(root / 'out' / 'a.png'))
    img, scores, labels = data['a']
    pal = voc_palette(4)
    # image | CAM circle | CAM triangle | influence | seed | ground truth
    np.testing.assert_array_equal(
        tile(pic, 1),
        cv2.resize(
            cam_overlay(img, scores[1]), (128, 96),
            interpolation=cv2.INTER_NEAREST))
    seed = colourise(scores.argmax(0), pal)
    np.testing.assert_array_equal(
        tile(pic, 4),
        cv2.resize(seed, (128, 96), interpolation=cv2.INTER_NEAREST))
    assert pic.shape[1] == 6 * 128
    # b has no mask: no ground-truth panel
    assert np.asarray(Image.open(root / 'out' / 'b.png')).shape[1] == 4 * 128


def test_scores_dir_bg_thr_and_classes(saved):
    root, data = saved
    visualize_cams(
        CAM_CFG,
        None,
        str(root / 'img' / 'a.png'),
        str(root / 'out'),
        classes='triangle',
        scores_dir=str(root / 'scores'),
        refine='none',
        bg_thr=0.9,
        tile=128,
        progress=False)
    pic = np.asarray(Image.open(root / 'out' / 'a.png'))
    _, scores, _ = data['a']
    scores = scores.copy()
    scores[0] = 0.9
    # image | CAM triangle | influence | seed at the new background
    np.testing.assert_array_equal(
        tile(pic, 3),
        cv2.resize(
            colourise(scores.argmax(0), voc_palette(4)), (128, 96),
            interpolation=cv2.INTER_NEAREST))


def test_scores_dir_refined_with_densecrf(saved):
    from mmwsss.refine import DenseCRF
    root, data = saved
    visualize_cams(
        CAM_CFG,
        None,
        str(root / 'img' / 'b.png'),
        str(root / 'out'),
        scores_dir=str(root / 'scores'),
        refine='irn_label',
        tile=128,
        progress=False)
    img, scores, labels = data['b']
    want = DenseCRF(preset='irn_label')(img, scores, labels)
    pic = np.asarray(Image.open(root / 'out' / 'b.png'))
    np.testing.assert_array_equal(
        tile(pic, 4),
        cv2.resize(
            colourise(want, voc_palette(4)), (128, 96),
            interpolation=cv2.INTER_NEAREST))


def test_errors(saved, tmp_path):
    root, _ = saved
    assert class_indices('square, circle', SHAPES_CLASSES) == [1, 2]
    with pytest.raises(CamViewerError, match='did you mean "circle"'):
        class_indices('circel', SHAPES_CLASSES)
    with pytest.raises(CamViewerError, match='saved scores not found'):
        visualize_cams(
            CAM_CFG,
            None,
            str(root / 'img'),
            str(tmp_path / 'o'),
            scores_dir=str(tmp_path),
            progress=False)
    big = np.zeros((H + 1, W, 3), np.uint8)
    cv2.imwrite(str(root / 'img' / 'a.png'), big)
    with pytest.raises(
            CamViewerError, match=r'scores of 32x24 for the '
            r'32x25 image'):
        visualize_cams(
            CAM_CFG,
            None,
            str(root / 'img' / 'a.png'),
            str(tmp_path / 'o'),
            scores_dir=str(root / 'scores'),
            progress=False)
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        visualize_cams(
            CAM_CFG,
            'nope.pth',
            str(root / 'img'),
            str(tmp_path / 'o'),
            progress=False)
