# Copyright (c) mmwsss contributors.
"""The "own images" command chain of docs/en/user_guides/own_data.md.

A tiny folder (12 images of 64 x 64 with mixed suffixes, labels.csv by
class name, 4 masks, 3 new images) goes through the documented commands:
CAM training (with the CAM picture hook) -> palette pseudo-labels ->
seeds of the masked images + threshold sweep -> final DeepLabV3+ ->
predictions on the new images -> vis_cam. Iterations are cut to 2; the
numbers are meaningless, the test checks that every step ran and wrote
what it should. A bad label table stops training and labelling with the
file and row named, before anything is written.
"""
import glob
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CAM_CFG = 'configs/cam/cam_effl0-d16_1xb16-500it_folder-128x128.py'
SEG_CFG = ('configs/deeplabv3plus/'
           'deeplabv3plus_effl0-d16_1xb16-800it_folder-pseudo-128x128.py')


def tool(rel):
    """Import a tool script as a module (its ``main(argv)``)."""
    name = 'tool_' + osp.splitext(osp.basename(rel))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def data_opts(data, workers=True):
    opts = [
        f'train_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}'
    ]
    if workers:
        opts += [
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False'
        ]
    return opts


def train(config, work, opts):
    cmd = [
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work), '--cfg-options', 'train_cfg.max_iters=2',
        'train_dataloader.batch_size=4'
    ] + opts
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work / 'iter_2.pth'


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    data = tmp_path_factory.mktemp('own') / 'shapes'
    tool('tools/dataset_converters/make_shapes_folder.py').main([
        str(data), '--num-images', '12', '--img-size', '64', '--num-masks',
        '4', '--num-new', '3'
    ])
    return data


def test_folder_chain(shapes, tmp_path):
    data, work = shapes, tmp_path / 'work'
    table = {
        row.split(',')[0]: row.split(',')[1].split(';')
        for row in (data / 'labels.csv').read_text().split()[1:]
    }
    names = ['background', 'circle', 'square', 'triangle']

    # 1. CAM classifier; the hook draws 2 images at iterations 1 and 2
    cam_ckpt = train(
        CAM_CFG, work / 'cam',
        data_opts(data) +
        ['custom_hooks.2.interval=1', 'custom_hooks.2.num_images=2'])
    pics = glob.glob(
        str(work / 'cam' / '*' / 'vis_data' / 'vis_image' / 'cam_*.png'))
    assert sorted(osp.basename(p) for p in pics) == [
        'cam_shape_000_1.png', 'cam_shape_000_2.png', 'cam_shape_001_1.png',
        'cam_shape_001_2.png'
    ]
    state = torch.load(cam_ckpt, map_location='cpu', weights_only=True)
    assert list(state['meta']['dataset_meta']['classes']) == names

    # 2. pseudo-labels of every labelled image (palette PNGs)
    mpl = tool('tools/make_pseudo_labels.py')
    pseudo = work / 'pseudo_labels'
    res = mpl.main([
        CAM_CFG,
        str(cam_ckpt), '--split', 'train', '--out',
        str(pseudo), '--refine', 'irn_label', '--procs', '1', '--no-progress',
        '--cfg-options'
    ] + data_opts(data))
    assert res['processed'] == 12
    for img, labels in table.items():
        stem = osp.splitext(img)[0]
        with Image.open(pseudo / f'{stem}.png') as im:
            assert im.mode == 'P' and im.size == (64, 64)
            lab = np.asarray(im)
        assert set(np.unique(lab)) <= {0} | {names.index(c) for c in labels}
    assert not [f for f in os.listdir(pseudo) if f.endswith('.tmp')]

    # 3. seeds of the 4 masked images and the background sweep
    seeds = work / 'seeds'
    res = mpl.main([
        CAM_CFG,
        str(cam_ckpt), '--split', 'test', '--out',
        str(seeds), '--refine', 'none', '--save-scores', '--procs', '1',
        '--no-progress', '--cfg-options'
    ] + data_opts(data) + ['model.test_cfg.bg_mode=const'])
    assert res['processed'] == 4
    sweep = tool('tools/analysis_tools/sweep_thresholds.py').main([
        '--scores-dir',
        str(seeds / 'scores'), '--gt-dir',
        str(data / 'masks'), '--class-names', ','.join(names)
    ])
    assert sweep['num_images'] == 4
    assert 0 < sweep['best_global']['thr'] < 1

    # 4. final model on the pseudo-labels
    seg_ckpt = train(
        SEG_CFG, work / 'seg',
        data_opts(data) +
        [f'train_dataloader.dataset.data_prefix.seg_map_path={pseudo}'])

    # 5. predictions on new images (mmseg.apis.inference_model)
    res = tool('tools/predict.py').main([
        SEG_CFG,
        str(seg_ckpt),
        str(data / 'new_images'), '--out',
        str(work / 'predictions'), '--overlay', '--cfg-options'
    ] + data_opts(data, workers=False))
    assert res == dict(total=3, skipped=0, written=3)
    for i in range(3):
        with Image.open(work / 'predictions' / f'new_{i:03d}.png') as im:
            assert im.mode == 'P' and im.size == (64, 64)
            assert np.asarray(im).max() <= 3

    # 6. CAM pictures of the labelled images with their masks
    out = tool('tools/visualization/vis_cam.py').main([
        CAM_CFG,
        str(cam_ckpt),
        str(data / 'images'), '--labels',
        str(data / 'labels.csv'), '--gt-dir',
        str(data / 'masks'), '--out',
        str(work / 'vis'), '--refine', 'none', '--cfg-options',
        'model.test_cfg.scales=(1.0,)', 'model.test_cfg.flip=False'
    ] + data_opts(data, workers=False))
    assert len(out) == 12 and all(osp.isfile(p) for p in out)


def test_bad_label_table_stops_before_writing(shapes, tmp_path, monkeypatch):
    bad = tmp_path / 'bad.csv'
    rows = (shapes / 'labels.csv').read_text().split('\n')
    rows[3] = rows[3].split(',')[0] + ',circle;sqare'
    bad.write_text('\n'.join(rows))
    opts = data_opts(shapes) + [
        f'train_dataloader.dataset.label_file={bad}',
        f'test_dataloader.dataset.label_file={bad}'
    ]
    want = (f'{bad} line 4 names the unknown class "sqare" (did you mean '
            '"square"?)')
    # training: stops when the dataset is built, no checkpoint
    work = tmp_path / 'cam'
    monkeypatch.setattr(
        sys, 'argv',
        ['train.py', CAM_CFG, '--work-dir',
         str(work), '--cfg-options'] + opts)
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        tool('tools/train.py').main()
    assert want in str(e.value)
    assert not glob.glob(str(work / '*.pth'))
    # pseudo-labels: stops before the model runs, nothing written
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')  # never read: the dataset is checked first
    out = tmp_path / 'pseudo'
    with pytest.raises(SystemExit) as e:
        tool('tools/make_pseudo_labels.py').main([
            CAM_CFG,
            str(ckpt), '--split', 'train', '--out',
            str(out), '--cfg-options'
        ] + opts)
    assert want in str(e.value)
    assert not out.exists()
