# Copyright (c) mmwsss contributors.
"""End-to-end smoke test of the whole WSSS chain through the real tools.

``tools/run_demo.py`` on a tiny demo set: make_demo_dataset.py ->
train.py (CAM, 2 iterations) ->
make_pseudo_labels.py (scores, then DenseCRF) -> sweep_thresholds.py ->
eval_label_maps.py -> train.py / test.py of the final DeepLabV3+ on the
pseudo-labels and on the real masks. The figures are meaningless at this
size; the test checks that every stage ran and wrote what it should.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_chain(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    cmd = [
        sys.executable, 'tools/run_demo.py', '--work-dir',
        str(work), '--data-root',
        str(data), '--num-train', '8', '--num-val', '3', '--img-size', '64',
        '--cam-iters', '2', '--seg-iters', '2', '--batch-size', '4',
        '--scales', '1.0', '--workers', '1'
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '| + DenseCRF pseudo-labels (train) |' in proc.stdout

    res = json.loads((work / 'demo_results.json').read_text())
    for key in ('seed_miou_config_thr', 'seed_miou_best_global',
                'seed_miou_classwise', 'crf_miou', 'final_miou',
                'upper_bound_miou'):
        assert 0.0 <= res[key] <= 1.0, key
    assert 0.0 < res['best_global_thr'] < 1.0

    names = (data / 'ImageSets/Segmentation/train.txt').read_text().split()
    assert len(names) == 8
    crf = work / 'cam' / 'pseudo_labels' / 'crf'
    labels = json.loads((data / 'image_labels.json').read_text())
    for name in names:
        with Image.open(crf / f'{name}.png') as im:
            assert im.mode == 'P' and im.size == (64, 64)
            lab = np.asarray(im)
        assert set(np.unique(lab)) <= {0, *labels[name]}
        assert (crf.parent.parent / 'seeds' / 'scores' /
                f'{name}.npz').is_file()
    assert not [f for f in os.listdir(crf) if '.tmp' in f]
    from mmwsss.visualization import HEADER_H, LEGEND_H
    with Image.open(work / 'demo_grid.png') as im:
        # 8 rows of 5 tiles at the image size, under titles, over a legend
        assert im.size == (5 * 64, HEADER_H + 8 * 64 + LEGEND_H)

    # checkpoints of both stages load with weights_only=True
    for sub in ('cam', 'seg_pseudo', 'seg_gt'):
        ckpt = (work / sub / 'last_checkpoint').read_text().strip()
        state = torch.load(ckpt, map_location='cpu', weights_only=True)
        assert 'state_dict' in state and 'message_hub' in state

    # a second run skips every stage
    proc2 = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert 'tools/train.py' not in proc2.stdout
    assert 'skipping 8 already done' in proc2.stdout + proc2.stderr
