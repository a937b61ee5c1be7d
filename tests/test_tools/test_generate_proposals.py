# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.apis.proposals` and ``tools/generate_proposals.py``.
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmwsss.apis import ProposalError, generate_proposals
from mmwsss.apis.proposals import propose_image
from mmwsss.datasets.demo_scenes import generate_demo_dataset
from mmwsss.proposals import selective_search
from mmwsss.registry import DATASETS
from mmwsss.utils import register_all_modules

register_all_modules()

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'generate_proposals.py'
CAM_CFG = REPO / 'configs' / 'cam' / 'cam_r18-w32_1xb32-600it_demo-128x128.py'
SETTINGS = dict(
    mode='single',
    scale=None,
    sigma=0.8,
    min_size=None,
    similarities=None,
    max_proposals=15,
    min_area=30.,
    max_aspect=3.,
    seed=0)


def write_images(folder: Path, n: int, size=(40, 52)) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        img = np.full(size + (3, ), 120, dtype=np.uint8)
        for _ in range(3):
            x1, y1 = rng.integers(0,
                                  size[1] - 10), rng.integers(0, size[0] - 8)
            w, h = rng.integers(6, 20), rng.integers(5, 16)
            img[y1:y1 + h, x1:x1 + w] = rng.integers(0, 256, 3)
        name = f'im{i:02d}'
        cv2.imwrite(str(folder / f'{name}.png'), img)
        names.append(name)
    return names


def run(src, out, **kwargs):
    kw = dict(SETTINGS, progress=False)
    kw.update(kwargs)
    return generate_proposals(str(src), str(out), **kw)


def read(path):
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def tmp_files(folder):
    return sorted(str(p) for p in Path(folder).rglob('*.tmp'))


def test_outputs_and_resume(tmp_path):
    names = write_images(tmp_path / 'imgs', 6)
    out = tmp_path / 'props'
    res = run(tmp_path / 'imgs', out, limit=3)
    assert (res['total'], res['skipped'], res['processed']) == (3, 0, 3)
    assert sorted(p.stem for p in out.glob('*.npz')) == names[:3]
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['complete'] and meta['done'] == 3 and meta['limit'] == 3
    assert meta['proposal_settings']['max_proposals'] == 15
    first = {n: read(out / f'{n}.npz') for n in names[:3]}

    res = run(tmp_path / 'imgs', out)
    assert (res['total'], res['skipped'], res['processed']) == (6, 3, 3)
    for n in names[:3]:  # not rewritten
        np.testing.assert_array_equal(
            read(out / f'{n}.npz')['boxes'], first[n]['boxes'])
    for n in names:
        data = read(out / f'{n}.npz')
        boxes = data['boxes']
        assert boxes.dtype == np.float32 and boxes.shape[1] == 4
        assert data['img_shape'].tolist() == [40, 52]
        assert 0 < len(boxes) <= 15
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        assert (w * h >= 30).all()
        assert (np.maximum(w / h, h / w) <= 3).all()
        # exactly the filtered ranking of selective_search on the RGB image
        img = cv2.imread(str(tmp_path / 'imgs' / f'{n}.png'))[..., ::-1]
        ref = selective_search(
            np.ascontiguousarray(img), mode='single', max_proposals=None)
        w, h = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
        ref = ref[(w * h >= 30) & (np.maximum(w / h, h / w) <= 3)][:15]
        np.testing.assert_array_equal(boxes, ref)
    res = run(tmp_path / 'imgs', out)
    assert (res['skipped'], res['processed']) == (6, 0)
    assert json.loads((out / 'meta.json').read_text())['complete']


def test_interrupted_run_resumes(tmp_path):
    names = write_images(tmp_path / 'imgs', 5)
    bad = tmp_path / 'imgs' / f'{names[3]}.png'
    bad.write_bytes(b'not an image')
    out = tmp_path / 'props'
    with pytest.raises(RuntimeError, match=str(bad)):
        run(tmp_path / 'imgs', out)
    done = sorted(p.stem for p in out.glob('*.npz'))
    assert done == names[:3]
    for n in done:  # complete files only
        assert len(read(out / f'{n}.npz')['boxes']) > 0
    assert tmp_files(out) == []
    meta = json.loads((out / 'meta.json').read_text())
    assert not meta['complete'] and meta['done'] == 3
    # a temporary file of a killed writer is cleaned up
    stale = out / f'.{names[4]}.npz.abc123.tmp'
    stale.write_bytes(b'partial')
    write_images(tmp_path / 'imgs', 5)  # repairs the bad image
    res = run(tmp_path / 'imgs', out)
    assert (res['skipped'], res['processed']) == (3, 2)
    assert tmp_files(out) == []
    assert json.loads((out / 'meta.json').read_text())['complete']


def test_workers_and_shards_give_the_same_files(tmp_path):
    write_images(tmp_path / 'imgs', 5)
    run(tmp_path / 'imgs', tmp_path / 'one')
    res = run(tmp_path / 'imgs', tmp_path / 'two', workers=2)
    assert res['processed'] == 5
    for s in range(2):
        res = run(
            tmp_path / 'imgs', tmp_path / 'shards', num_shards=2, shard_id=s)
        assert res['total'] == (3, 2)[s]
        assert (tmp_path / 'shards' / f'meta_shard{s}of2.json').is_file()
    for p in sorted((tmp_path / 'one').glob('*.npz')):
        for other in ('two', 'shards'):
            np.testing.assert_array_equal(
                read(p)['boxes'],
                read(tmp_path / other / p.name)['boxes'])


def test_refuses_other_settings_and_foreign_folders(tmp_path):
    write_images(tmp_path / 'imgs', 2)
    out = tmp_path / 'props'
    run(tmp_path / 'imgs', out)
    with pytest.raises(ProposalError, match='max_proposals: 15 there'):
        run(tmp_path / 'imgs', out, max_proposals=20)
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    np.savez(foreign / 'x.npz', a=np.zeros(1))
    with pytest.raises(ProposalError, match='no meta'):
        run(tmp_path / 'imgs', foreign)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match='not a config'):
        run(tmp_path / 'missing', tmp_path / 'o')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ProposalError, match='no image files'):
        run(tmp_path / 'empty', tmp_path / 'o')
    write_images(tmp_path / 'imgs', 1)
    for kwargs, match in [(dict(workers=0), 'workers'),
                          (dict(shard_id=2, num_shards=2), 'shard_id'),
                          (dict(mode='slow'), 'mode'),
                          (dict(max_aspect=0.5), 'max_aspect'),
                          (dict(similarities=['CX']), 'similarities'),
                          (dict(max_proposals=0), 'max_proposals')]:
        with pytest.raises(ProposalError, match=match):
            run(tmp_path / 'imgs', tmp_path / 'o', **kwargs)


def test_propose_image_respects_max():
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    boxes = propose_image(img, dict(SETTINGS, max_proposals=4, mode='fast'))
    assert len(boxes) == 4


def test_config_source_and_load_in_dataset(tmp_path):
    root = tmp_path / 'demo'
    generate_demo_dataset(str(root), num_train=3, num_val=0, img_size=48)
    cfg = Config.fromfile(str(CAM_CFG))
    cfg.train_dataloader.dataset.data_root = str(root)
    out = root / 'proposals'
    res = generate_proposals(cfg, str(out), split='train', progress=False)
    assert res['processed'] == 3
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['split'] == 'train'
    assert meta['proposal_settings']['max_proposals'] == 2000
    # the training dataset with LoadProposals in its pipeline
    ds_cfg = cfg.train_dataloader.dataset.copy()
    ds_cfg.pipeline = [
        dict(type='mmseg.LoadImageFromFile'),
        dict(type='LoadProposals', proposal_dir=str(out)),
        dict(
            type='mmseg.RandomResize',
            scale=(48, 48),
            ratio_range=(0.5, 1.5),
            keep_ratio=True,
            resize_type='mmseg.Resize'),
        dict(type='mmseg.RandomCrop', crop_size=(32, 32)),
        dict(type='mmseg.RandomFlip', prob=0.5),
        dict(type='PackWSSSInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmwsss'):
        dataset = DATASETS.build(ds_cfg)
        item = dataset[0]
    assert item['data_samples'].proposals.bboxes.shape[1] == 4
    with pytest.raises(ProposalError, match='no val_dataloader'):
        generate_proposals(cfg, str(out), split='val', progress=False)


def test_cli_killed_then_resumed(tmp_path):
    """SIGKILL in the middle leaves only complete files; a rerun skips."""
    names = write_images(tmp_path / 'imgs', 40, size=(96, 128))
    out = tmp_path / 'props'
    cmd = [
        sys.executable,
        str(TOOL),
        str(tmp_path / 'imgs'), '--out',
        str(out), '--mode', 'fast', '--no-progress'
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list(out.glob('*.npz'))) < 3:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = sorted(p.stem for p in out.glob('*.npz'))
    assert 3 <= len(done) < len(names)
    for n in done:
        assert read(out / f'{n}.npz')['boxes'].shape[1] == 4
    spec = importlib.util.spec_from_file_location('generate_proposals', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    res = tool.main([
        str(tmp_path / 'imgs'), '--out',
        str(out), '--mode', 'fast', '--no-progress'
    ])
    assert res['skipped'] >= len(done) and res['processed'] > 0
    assert res['skipped'] + res['processed'] == len(names)
    assert tmp_files(out) == []
    with pytest.raises(SystemExit, match='max_aspect: 4.0 there'):
        tool.main([
            str(tmp_path / 'imgs'), '--out',
            str(out), '--mode', 'fast', '--max-aspect', '0', '--no-progress'
        ])
