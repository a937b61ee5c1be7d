# Copyright (c) mmwsss contributors.
"""``tools/analysis_tools/camguide_target_quality.py`` on saved scores.

A trained model's CAMs (``--scores-dir``) replace the simulated ones: with
scores equal to the masks' class indicators, the thresholded CAM is the
mask itself (mIoU 1 at any tau in (0, 1)), which the simulated CAMs never
give; ``--variants`` adds a named target setting to the tau sweep.
"""
import importlib.util
import io
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def tool():
    rel = 'tools/analysis_tools/camguide_target_quality.py'
    spec = importlib.util.spec_from_file_location('tool_cg_target_quality',
                                                  osp.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_scene(root, num_classes=4, n=3, side=64):
    """VOC-layout images / masks of rectangles, and one-hot scores."""
    rng = np.random.default_rng(0)
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation',
                'scores'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        gt = np.zeros((side, side), np.uint8)
        img = np.full((side, side, 3), 40, np.uint8)
        for c in rng.choice(np.arange(1, num_classes), 2, replace=False):
            # on the stride-4 grid's cells, so the area-averaged scores
            # are exactly 0 / 1 on the grid
            y, x = 4 * rng.integers(0, side // 8, 2)
            gt[y:y + side // 2, x:x + 20] = c
        for c in range(1, num_classes):
            img[gt == c] = (60 * c, 200 - 40 * c, 90)
        stem = f'im{i}'
        ids.append(stem)
        cv2.imwrite(str(root / 'JPEGImages' / f'{stem}.jpg'), img[..., ::-1])
        Image.fromarray(gt).save(root / 'SegmentationClass' / f'{stem}.png')
        scores = np.zeros((num_classes, side, side), np.float32)
        scores[0] = 0.5
        for c in range(1, num_classes):
            scores[c] = gt == c
        buf = io.BytesIO()
        np.savez(buf, scores=scores, img_labels=np.unique(gt[gt > 0]))
        (root / 'scores' / f'{stem}.npz').write_bytes(buf.getvalue())
    (root / 'ImageSets/Segmentation/train.txt').write_text('\n'.join(ids))
    return root


def test_scores_dir_and_variants(tmp_path):
    mod = tool()
    root = write_scene(tmp_path / 'scene')
    out = tmp_path / 'tq.json'
    res = mod.main([
        '--data-root',
        str(root), '--num-images', '3', '--num-classes', '4', '--taus', '0.5',
        '--sweep', '0.3', '0.6', '--scores-dir',
        str(root / 'scores'), '--sigmas', '0.5', '--variants',
        json.dumps({'bi big': {
            'crf': {
                'bi_sxy': {
                    'rel': 0.4
                }
            }
        }}), '--out',
        str(out)
    ])
    # perfect CAMs, no dropout: the thresholded CAM is the mask
    assert res['rows']['+D1 (no-dropout forward)']['0.5']['cam'] == \
        pytest.approx(1.0)
    for tau in ('0.3', '0.6'):
        assert res['sweep'][tau]['cam'] == pytest.approx(1.0)
        assert 'crf[bi big]' in res['sweep'][tau]
        assert 'rw[bi big]' in res['sweep'][tau]
        assert 'rw_renorm=class, sigma_color 0.5' in res['sweep'][tau]
    # the variant is the after setting with only bi_sxy replaced
    var = res['variants']['bi big']
    after = mod.configurations()[mod.AFTER]['targets']
    assert var['crf']['bi_sxy'] == {'rel': 0.4} != after['crf']['bi_sxy']
    assert var['crf']['gauss_sxy'] == after['crf']['gauss_sxy']
    assert var['rw'] == after['rw']
    assert json.loads(out.read_text())['settings']['scores_dir']


def test_missing_scores_named(tmp_path):
    mod = tool()
    root = write_scene(tmp_path / 'scene', n=1)
    (root / 'scores' / 'im0.npz').unlink()
    with pytest.raises(FileNotFoundError, match='im0.npz'):
        mod.main([
            '--data-root',
            str(root), '--num-images', '1', '--num-classes', '4',
            '--scores-dir',
            str(root / 'scores')
        ])


def test_merged_keeps_relative_specs_whole():
    mod = tool()
    base = dict(crf=dict(bi_sxy=dict(rel=0.1), n_iters=5), close_kernel=3)
    out = mod.merged(base, dict(crf=dict(bi_sxy=dict(rel=0.4))))
    assert out == dict(crf=dict(bi_sxy=dict(rel=0.4), n_iters=5),
                       close_kernel=3)
    assert base['crf']['bi_sxy'] == dict(rel=0.1)


@pytest.mark.parametrize('name', [
    'camguide-stage3_effl0_1xb32-300it_demo-128x128.py',
    'camguide-stage3_r18_1xb32-3k_voc12aug-512x512.py'
])
def test_after_is_the_stage3_configs(name):
    """The tool's "after" targets are the ones the configs train with."""
    from mmengine import Config
    mod = tool()
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'camguide', name))
    ht = cfg.to_dict()['model']['heuristic_targets']
    after = mod.configurations()[mod.AFTER]['targets']
    for key in ('preset', 'n_iters', 'gauss_sxy', 'bi_sxy'):
        assert ht['crf'][key] == after['crf'][key], key
    assert ht['close_kernel'] == after['close_kernel']
    for key in ('n_segments', 'n_iters', 'sigma_color'):
        assert ht['rw'][key] == after['rw'][key], key
    assert ht['rw'].get('renorm', 'class') == after['rw']['renorm'] == 'class'
