# Copyright (c) mmwsss contributors.
"""Smoke test of IRN's boundary "+RW" config through the real tools.

``tools/train.py`` (2 iterations) and ``tools/test.py`` (the random walk
of saved CAM scores) with
``configs/camguide/irn-boundary_effl0_1xb16-300it_demo-128x128.py`` on 6
demo images of 64 pixels, with confident labels and CAM scores made from
the masks. About 15 s on one core; the figures are meaningless.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
from PIL import Image

from mmwsss.datasets.demo_scenes import generate_demo_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/camguide/irn-boundary_effl0_1xb16-300it_demo-128x128.py'
NUM_CLASSES = 8


def _run(cmd):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable] + cmd,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_irn_boundary_train_and_walk(tmp_path):
    data = tmp_path / 'data'
    generate_demo_dataset(str(data), num_train=6, num_val=0, img_size=64)
    names = (data / 'ImageSets/Segmentation/train.txt').read_text().split()
    img_labels = json.loads((data / 'image_labels.json').read_text())
    labels_dir, scores_dir = tmp_path / 'aff_labels', tmp_path / 'scores'
    labels_dir.mkdir()
    scores_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        with Image.open(data / 'SegmentationClass' / f'{name}.png') as im:
            gt = np.asarray(im).astype(np.int64)
        conf = gt.copy()
        conf[rng.random(gt.shape) < 0.2] = 255  # uncertain pixels
        Image.fromarray(conf.astype(np.uint8)).save(labels_dir / f'{name}.png')
        scores = np.zeros((NUM_CLASSES, ) + gt.shape, np.float32)
        scores[0] = 0.75
        for c in img_labels[name]:
            scores[c] = 0.8 * (gt == c) + 0.2 * rng.random(gt.shape)
        np.savez(
            scores_dir / f'{name}.npz',
            scores=scores,
            img_labels=np.asarray(img_labels[name]))

    work = str(tmp_path / 'work')
    train_opts = [
        'train_cfg.max_iters=2', 'train_dataloader.batch_size=3',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.ann_file={data}/ImageSets/Segmentation/'
        'train.txt', f'train_dataloader.dataset.data_prefix.img_path={data}/'
        'JPEGImages',
        f'train_dataloader.dataset.data_prefix.seg_map_path={labels_dir}',
        f'train_dataloader.dataset.label_file={data}/image_labels.json',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ]
    out = _run(
        ['tools/train.py', CONFIG, '--work-dir', work, '--cfg-options'] +
        train_opts)
    logs = re.findall(r'Iter\(train\) \[\d/2\].*', out)
    assert len(logs) == 2, out[-3000:]
    for line in logs:
        assert float(re.search(r' num_neg: ([\d.]+)', line).group(1)) > 0
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)

    test_opts = [
        f'test_dataloader.dataset.data_root={data}',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'model.test_cfg.cam_dir={scores_dir}'
    ]
    out = _run(
        ['tools/test.py', CONFIG, ckpt, '--work-dir', work, '--cfg-options'] +
        test_opts)
    miou = re.search(r'Iter\(test\) \[6/6\].* mIoU: ([\d.]+)', out)
    assert miou is not None, out[-3000:]
    assert 0.0 <= float(miou.group(1)) <= 100.0
