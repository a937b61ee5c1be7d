# Copyright (c) mmwsss contributors.
"""WSSSVisualizer: registry, single pictures, panels of a CAM result."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from mmwsss.registry import VISUALIZERS
from mmwsss.visualization import WSSSVisualizer, cam_overlay, colourise

CLASSES = ['background', 'cat', 'dog', 'bird']
PALETTE = [[0, 0, 0], [200, 10, 10], [10, 200, 10], [10, 10, 200]]
H, W = 24, 32


def make_vis(**kwargs):
    return WSSSVisualizer(
        name='test_wsss_visualizer',
        classes=CLASSES,
        palette=PALETTE,
        **kwargs)


def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (H, W, 3), dtype=np.uint8)


def test_built_from_registry_with_meta_the_right_way_round():
    init_default_scope('mmwsss')
    vis = VISUALIZERS.build(
        dict(
            type='WSSSVisualizer',
            name='test_reg',
            classes=CLASSES,
            palette=PALETTE))
    assert isinstance(vis, WSSSVisualizer)
    # mmseg's SegLocalVisualizer.__init__ swaps classes and palette
    assert list(vis.dataset_meta['classes']) == CLASSES
    assert [list(c) for c in vis.dataset_meta['palette']] == PALETTE
    assert vis.class_name(2) == 'dog' and vis.class_name(9) == 'class_9'


def test_draw_label_and_cam():
    vis = make_vis(alpha=0.25)
    label = np.zeros((H, W), np.int64)
    label[:, 5:] = 2
    label[0, 0] = 255
    np.testing.assert_array_equal(
        vis.draw_label(label), colourise(label, PALETTE))
    img = np.full((H, W, 3), 100, np.uint8)
    # 0.75 * 100 + 0.25 * (10, 200, 10), truncated
    np.testing.assert_array_equal(
        vis.draw_label(label, img)[3, 7], [77, 125, 77])
    cam = np.zeros((H, W), np.float32)
    cam[2, 3] = 1
    out = vis.draw_cam(img, cam)
    np.testing.assert_array_equal(out[2, 3], [114, 50, 50])  # dark red
    np.testing.assert_array_equal(out[0, 0], [50, 50, 114])  # dark blue
    np.testing.assert_array_equal(vis.get_image(), out)


def test_draw_influence_divides_by_max():
    vis = make_vis()
    img = np.full((H, W, 3), 100, np.uint8)
    inf = np.zeros((1, H, W), np.float32)
    inf[0, 1, 1] = 7.5
    out = vis.draw_influence(img, inf)
    np.testing.assert_array_equal(out[1, 1], [114, 50, 50])
    np.testing.assert_array_equal(out[5, 5], [50, 50, 114])
    flat = vis.draw_influence(img, np.zeros((H, W)))
    np.testing.assert_array_equal(flat, cam_overlay(img, np.zeros((H, W))))


def test_draw_proposals_edges_only():
    vis = make_vis(max_proposals=1)
    img = np.zeros((H, W, 3), np.uint8)
    boxes = torch.tensor([[4., 4., 20., 16.], [1., 1., 30., 22.]])
    out = vis.draw_proposals(img, boxes)
    changed = out.any(axis=2)
    ys, xs = np.nonzero(changed)
    # only the first (best ranked) box, drawn on its edges
    assert 3 <= ys.min() <= 5 and 15 <= ys.max() <= 17
    assert 3 <= xs.min() <= 5 and 19 <= xs.max() <= 21
    assert not changed[8:12, 9:15].any()  # inside stays untouched
    assert vis.draw_proposals(img, boxes, max_num=2).any(axis=2)[1, 10]


def full_sample():
    rng = np.random.default_rng(3)
    cams = rng.random((3, H, W)).astype(np.float32)
    seed = rng.integers(0, 4, (1, H, W))
    s = SegDataSample(
        metainfo=dict(
            img_labels=[1, 3],
            img_scores=[0.9, 0.2, 0.7],
            bg_thr=0.4,
            bg_mode='const',
            refine='irn_label'))
    s.cams = PixelData(data=torch.from_numpy(cams))
    s.coarse_cams = PixelData(data=torch.from_numpy(cams[::-1].copy()))
    s.refined_cams = PixelData(data=torch.from_numpy(cams * 0.5))
    s.influence = PixelData(data=torch.from_numpy(cams[:1] * 3))
    s.proposals = InstanceData(bboxes=torch.tensor([[2., 2., 10., 10.]]))
    s.seed_sem_seg = PixelData(data=torch.from_numpy(seed))
    s.refined_sem_seg = PixelData(data=torch.from_numpy(seed[:, ::-1].copy()))
    s.gt_sem_seg = PixelData(data=torch.from_numpy(np.zeros((1, H, W))))
    return s, cams, seed


def test_cam_panels_order_titles_and_content():
    vis = make_vis()
    img = image()
    sample, cams, seed = full_sample()
    panels = vis.cam_panels(img, sample)
    titles = [t for t, _ in panels]
    top = float((cams[0] * 3).max())
    assert titles == [
        'image', 'CAM cat p=0.90', 'CAM bird p=0.70',
        f'influence (IG-CAM, max {top:.3g})', 'proposals (IG-CAM, top 1 of 1)',
        'coarse CAM (CamGuide)', 'refined CAM z1 (CamGuide)', 'seed (bg 0.4)',
        'refined (irn_label)', 'ground truth'
    ]
    pics = dict(panels)
    np.testing.assert_array_equal(pics['CAM bird p=0.70'],
                                  cam_overlay(img, cams[2]))
    # CamGuide maps: the maximum over the drawn classes (1 and 3)
    coarse = cams[::-1][[0, 2]].max(0)
    np.testing.assert_array_equal(pics['coarse CAM (CamGuide)'],
                                  cam_overlay(img, coarse))
    np.testing.assert_array_equal(pics['seed (bg 0.4)'],
                                  colourise(seed[0], PALETTE))
    # explicit classes override img_labels
    titles = [t for t, _ in vis.cam_panels(img, sample, classes=[2])]
    assert 'CAM dog p=0.20' in titles and 'CAM cat p=0.90' not in titles
    with pytest.raises(ValueError, match='class 4 has no CAM'):
        vis.cam_panels(img, sample, classes=[4])


def test_add_cam_sample_to_local_backend(tmp_path):
    vis = WSSSVisualizer(
        name='test_backend',
        classes=CLASSES,
        palette=PALETTE,
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'vis'),
        tile=64)
    sample, _, _ = full_sample()
    out = vis.add_cam_sample(
        'cam_x', image(), sample, step=3, out_file=str(tmp_path / 'x.png'))
    saved = tmp_path / 'vis' / 'vis_data' / 'vis_image' / 'cam_x_3.png'
    assert saved.is_file()
    np.testing.assert_array_equal(np.asarray(Image.open(saved)), out)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / 'x.png')), out)
    # panels of 48 x 64 (aspect of the 24 x 32 image, longer side 64)
    from mmwsss.visualization import HEADER_H, LEGEND_H
    assert out.shape == (HEADER_H + 48 + LEGEND_H, 10 * 64, 3)
