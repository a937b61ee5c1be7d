# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.apis.pseudo_labels` and its CLI.

A tiny CAM segmentor (ResNet-18 at 1/8 width, random weights) labels a few
64x64 demo scenes; the checkpoint is written without a runner.
"""
import copy
import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmwsss.apis import PseudoLabelError, make_pseudo_labels
from mmwsss.apis.pseudo_labels import dataset_cfg_for_split, read_rgb
from mmwsss.datasets.demo_scenes import DEMO_PALETTE, generate_demo_dataset
from mmwsss.refine import DenseCRF
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()

REPO = Path(__file__).resolve().parents[2]
CAM_CFG = REPO / 'configs' / 'cam' / 'cam_r18-w32_1xb32-600it_demo-128x128.py'
TOOL = REPO / 'tools' / 'make_pseudo_labels.py'
NUM_CLASSES = 8


def tiny_options(data_root, scales=(1.0, ), flip=False) -> dict:
    """``--cfg-options`` making the demo CAM config tiny."""
    opts = {
        'model.backbone.base_channels': 8,
        'model.backbone.stem_channels': 8,
        'model.cam_head.in_channels': 64,
        'model.test_cfg.scales': tuple(scales),
        'model.test_cfg.flip': flip,
    }
    # the demo CAM config has no val_dataloader (seeds are scored by
    # tools/test.py)
    for split in ('train', 'test'):
        opts[f'{split}_dataloader.dataset.data_root'] = str(data_root)
    return opts


def tiny_cfg(data_root, **kwargs) -> Config:
    cfg = Config.fromfile(str(CAM_CFG))
    cfg.merge_from_dict(tiny_options(data_root, **kwargs))
    return cfg


@pytest.fixture(scope='module', autouse=True)
def one_torch_thread():
    """Tiny convolutions are much slower with a thread team on a shared CPU.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    generate_demo_dataset(str(root), num_train=6, num_val=0, img_size=64)
    cfg = tiny_cfg(root)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = root / 'tiny_cam.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, str(ckpt))
    with open(root / 'image_labels.json') as f:
        labels = json.load(f)
    names = sorted(labels)
    return SimpleNamespace(
        root=root, cfg=cfg, ckpt=str(ckpt), labels=labels, names=names)


def run(demo, out, **kwargs):
    kwargs.setdefault('progress', False)
    return make_pseudo_labels(demo.cfg, demo.ckpt, str(out), **kwargs)


def read_png(path):
    with Image.open(path) as im:
        im.load()
        return im.mode, im.getpalette(), np.asarray(im)


def load_outputs(out, names):
    return {n: read_png(Path(out) / f'{n}.png')[2] for n in names}


def tmp_files(folder):
    return [str(p) for p in Path(folder).rglob('*.tmp')]


def test_outputs_format(demo, tmp_path):
    out = tmp_path / 'pl'
    res = run(demo, out, refine='none', save_scores=True)
    assert res['total'] == res['processed'] == 6 and res['skipped'] == 0
    flat_palette = [v for rgb in DEMO_PALETTE for v in rgb]
    n_fg = 0
    for name in demo.names:
        mode, palette, label = read_png(out / f'{name}.png')
        assert mode == 'P'
        assert palette[:len(flat_palette)] == flat_palette
        with Image.open(demo.root / 'JPEGImages' / f'{name}.jpg') as im:
            assert label.shape == (im.height, im.width)
        allowed = {0} | set(demo.labels[name])
        assert set(np.unique(label).tolist()) <= allowed
        n_fg += int((label > 0).sum())
        with np.load(out / 'scores' / f'{name}.npz') as z:
            assert z['scores'].shape == (NUM_CLASSES, ) + label.shape
            assert z['scores'].dtype == np.float32
            assert z['img_labels'].tolist() == demo.labels[name]
            # channels outside the image labels are zero
            off = [c for c in range(1, NUM_CLASSES) if c not in allowed]
            assert not z['scores'][off].any()
    assert n_fg > 0  # a random model still paints some foreground
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['count'] == meta['done'] == 6 and meta['complete']
    assert meta['refine'] == 'none' and meta['bg_thr'] == 0.3
    assert meta['checkpoint'] == os.path.abspath(demo.ckpt)
    assert tmp_files(out) == []
    # files are readable like ordinary ones (mkstemp alone gives 0600)
    umask = os.umask(0)
    os.umask(umask)
    for path in (out / f'{demo.names[0]}.png', out / 'meta.json',
                 out / 'scores' / f'{demo.names[0]}.npz'):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask

    # the scores are what sweep_thresholds.py reads
    spec = importlib.util.spec_from_file_location(
        'sweep_thresholds',
        REPO / 'tools' / 'analysis_tools' / 'sweep_thresholds.py')
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    result = sweep.main([
        '--scores-dir',
        str(out / 'scores'), '--gt-dir',
        str(demo.root / 'SegmentationClass'), '--out',
        str(tmp_path / 'sweep.json')
    ])
    assert result['num_images'] == 6
    assert result['num_classes'] == NUM_CLASSES


def test_none_is_argmax_with_ties_to_background(demo, tmp_path):
    out = tmp_path / 'a'
    run(demo, out, refine='none', save_scores=True, bg_thr=0.2)
    for name in demo.names:
        with np.load(out / 'scores' / f'{name}.npz') as z:
            scores = z['scores']
        assert np.all(scores[0] == np.float32(0.2))  # --bg-thr applied
        label = read_png(out / f'{name}.png')[2]
        np.testing.assert_array_equal(label, scores.argmax(0))

    # With norm_eps=0 every labelled CAM reaches exactly 1.0 at its peak;
    # a background score of 1.0 ties there and must win.
    cfg = copy.deepcopy(demo.cfg)
    cfg.model.test_cfg['norm_eps'] = 0.0
    out = tmp_path / 'tie'
    make_pseudo_labels(
        cfg,
        demo.ckpt,
        str(out),
        refine='none',
        save_scores=True,
        bg_thr=1.0,
        progress=False)
    n_ties = 0
    for name in demo.names:
        with np.load(out / 'scores' / f'{name}.npz') as z:
            scores = z['scores']
        n_ties += int((scores[1:] == 1.0).sum())
        assert not read_png(out / f'{name}.png')[2].any()
    assert n_ties > 0


def test_crf_workers_match_and_use_the_image_file(demo, tmp_path):
    res1 = run(
        demo,
        tmp_path / 'w1',
        refine='psa_softmax',
        workers=1,
        save_scores=True)
    res2 = run(demo, tmp_path / 'w2', refine='psa_softmax', workers=2)
    assert res1['processed'] == res2['processed'] == 6
    out1 = load_outputs(tmp_path / 'w1', demo.names)
    out2 = load_outputs(tmp_path / 'w2', demo.names)
    run(demo, tmp_path / 'none', refine='none')
    plain = load_outputs(tmp_path / 'none', demo.names)
    crf = DenseCRF(preset='psa_softmax')
    changed = 0
    for name in demo.names:
        np.testing.assert_array_equal(out1[name], out2[name])
        img_path = str(demo.root / 'JPEGImages' / f'{name}.jpg')
        with Image.open(img_path) as im:
            img = np.asarray(im.convert('RGB'))
        with np.load(tmp_path / 'w1' / 'scores' / f'{name}.npz') as z:
            scores = z['scores']
        ref = crf(read_rgb(img_path), scores, demo.labels[name])
        np.testing.assert_array_equal(out1[name], ref)
        assert read_rgb(img_path).shape == img.shape
        assert np.abs(read_rgb(img_path).astype(int) - img).mean() < 2
        changed += int((out1[name] != plain[name]).sum())
    assert changed > 0  # the CRF did something

    # refine='config' follows model.test_cfg.refine
    cfg = copy.deepcopy(demo.cfg)
    cfg.model.test_cfg['refine'] = dict(type='DenseCRF', preset='psa_softmax')
    make_pseudo_labels(
        cfg, demo.ckpt, str(tmp_path / 'cfg'), refine='config', progress=False)
    from_cfg = load_outputs(tmp_path / 'cfg', demo.names)
    for name in demo.names:
        np.testing.assert_array_equal(from_cfg[name], out1[name])
    run(demo, tmp_path / 'cfg_none', refine='config')  # refine=None
    cfg_none = load_outputs(tmp_path / 'cfg_none', demo.names)
    for name in demo.names:
        np.testing.assert_array_equal(cfg_none[name], plain[name])


def test_crf_scale_factor(demo, tmp_path):
    """``crf_scale_factor`` is DenseCRF's ``scale_factor`` for the presets."""
    run(demo, tmp_path / 'scores', refine='none', save_scores=True)
    scores_dir = str(tmp_path / 'scores' / 'scores')
    out = tmp_path / 'crf4'
    run(demo, out, refine='irn_label', from_scores=scores_dir,
        crf_scale_factor=4.0)
    got = load_outputs(out, demo.names)
    crf4 = DenseCRF(preset='irn_label', scale_factor=4.0)
    crf1 = DenseCRF(preset='irn_label')
    differs = 0
    for name in demo.names:
        img = read_rgb(str(demo.root / 'JPEGImages' / f'{name}.jpg'))
        with np.load(tmp_path / 'scores' / 'scores' / f'{name}.npz') as z:
            scores = z['scores']
        np.testing.assert_array_equal(
            got[name], crf4(img, scores, demo.labels[name]))
        differs += int(
            (crf1(img, scores, demo.labels[name]) != got[name]).sum())
    assert differs > 0  # the factor changed the CRF
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['refine_cfg'] == dict(
        type='DenseCRF', preset='irn_label', scale_factor=4.0)
    with pytest.raises(PseudoLabelError, match='refine_cfg'):
        run(demo, out, refine='irn_label', from_scores=scores_dir)
    with pytest.raises(PseudoLabelError, match="not 'none'"):
        run(demo, tmp_path / 'x', refine='none', crf_scale_factor=2.0)
    with pytest.raises(PseudoLabelError, match='> 0'):
        run(demo, tmp_path / 'y', refine='irn_label', crf_scale_factor=0.0)


def test_resume_skips_finished_and_cleans_temporaries(demo, tmp_path, capsys):
    out = tmp_path / 'pl'
    res = run(
        demo,
        out,
        refine='irn_label',
        save_scores=True,
        limit=3,
        progress=True)
    assert (res['processed'], res['skipped'], res['total']) == (3, 0, 3)
    first = demo.names[:3]
    assert sorted(p.stem for p in out.glob('*.png')) == first
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['count'] == 3 and meta['limit'] == 3
    old = 1_000_000_000
    for name in first:
        os.utime(out / f'{name}.png', (old, old))
        os.utime(out / 'scores' / f'{name}.npz', (old, old))
    # temporaries a killed run may leave (ours), and a foreign one
    stale = [
        out / f'.{demo.names[4]}.png.abcd_123.tmp',
        out / f'.{demo.names[0]}.png.zzzz9999.tmp',
        out / 'scores' / f'.{demo.names[5]}.npz.q1w2e3r4.tmp',
    ]
    for p in stale:
        p.write_bytes(b'partial')
    foreign = out / '.other_image.png.abcdefgh.tmp'
    foreign.write_bytes(b'partial')
    # an npz missing for a finished png: that image is redone
    os.unlink(out / 'scores' / f'{first[2]}.npz')
    capsys.readouterr()

    res = run(demo, out, refine='irn_label', save_scores=True, progress=True)
    err = capsys.readouterr().err
    assert (res['processed'], res['skipped'], res['total']) == (4, 2, 6)
    assert 'skipping 2 already done, 4 to do' in err
    for name in first[:2]:
        assert os.stat(out / f'{name}.png').st_mtime == old
        assert os.stat(out / 'scores' / f'{name}.npz').st_mtime == old
    assert os.stat(out / f'{first[2]}.png').st_mtime != old
    assert not any(p.exists() for p in stale)
    assert foreign.exists()  # maybe another shard's file in flight
    foreign.unlink()
    assert tmp_files(out) == []
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['count'] == meta['done'] == 6 and meta['complete']

    # the resumed result equals an uninterrupted run
    run(demo, tmp_path / 'full', refine='irn_label')
    a = load_outputs(out, demo.names)
    b = load_outputs(tmp_path / 'full', demo.names)
    for name in demo.names:
        np.testing.assert_array_equal(a[name], b[name])

    # nothing left to do
    res = run(demo, out, refine='irn_label', save_scores=True)
    assert (res['processed'], res['skipped']) == (0, 6)
    # other settings into the same folder are refused
    with pytest.raises(PseudoLabelError, match='other settings'):
        run(demo, out, refine='irn_label', bg_thr=0.5)
    with pytest.raises(PseudoLabelError, match='refine_cfg'):
        run(demo, out, refine='psa_softmax')
    # nor a different checkpoint (compared by content, not path)
    state = torch.load(demo.ckpt, weights_only=True)
    key = next(iter(state['state_dict']))
    state['state_dict'][key] = state['state_dict'][key] + 1
    other = tmp_path / 'retrained.pth'
    torch.save(state, str(other))
    with pytest.raises(PseudoLabelError, match='checkpoint'):
        make_pseudo_labels(
            demo.cfg, str(other), str(out), refine='irn_label', progress=False)


def test_shards_and_train_split(demo, tmp_path):
    out = tmp_path / 'sharded'
    r0 = run(demo, out, refine='none', num_shards=2, shard_id=0)
    assert sorted(p.stem for p in out.glob('*.png')) == demo.names[0::2]
    r1 = run(demo, out, refine='none', num_shards=2, shard_id=1)
    assert r0['processed'] == r1['processed'] == 3
    assert (out / 'meta_shard0of2.json').is_file()
    assert (out / 'meta_shard1of2.json').is_file()
    assert not (out / 'meta.json').exists()
    # another split into the same folder is refused
    with pytest.raises(PseudoLabelError, match='split'):
        run(demo, out, refine='none', num_shards=2, shard_id=0, split='train')
    full = tmp_path / 'full'
    run(demo, full, refine='none')
    # the train split is labelled with the test pipeline (no random crop)
    train = tmp_path / 'train'
    run(demo, train, refine='none', split='train')
    a = load_outputs(out, demo.names)
    b = load_outputs(full, demo.names)
    c = load_outputs(train, demo.names)
    for name in demo.names:
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(c[name], b[name])
    ds_cfg = dataset_cfg_for_split(demo.cfg, 'train')
    types = [(t['type'], t.get('_scope_')) for t in ds_cfg['pipeline']]
    assert types == [('LoadImageFromFile', 'mmseg'), ('PackWSSSInputs', None)]
    test_cfg = dataset_cfg_for_split(demo.cfg, 'test')
    assert 'seg_map_path' not in test_cfg['data_prefix']
    assert demo.cfg.test_dataloader.dataset.data_prefix.seg_map_path


def load_tool():
    spec = importlib.util.spec_from_file_location('make_pseudo_labels', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_clear_errors(demo, tmp_path):
    out = str(tmp_path / 'out')
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        make_pseudo_labels(demo.cfg, str(tmp_path / 'missing.pth'), out)
    with pytest.raises(PseudoLabelError, match='unknown refine'):
        make_pseudo_labels(demo.cfg, demo.ckpt, out, refine='crf')
    cfg = copy.deepcopy(demo.cfg)
    cfg.test_dataloader = None
    with pytest.raises(PseudoLabelError, match='test_dataloader'):
        make_pseudo_labels(cfg, demo.ckpt, out)
    with pytest.raises(PseudoLabelError, match='shard_id'):
        make_pseudo_labels(demo.cfg, demo.ckpt, out, num_shards=2, shard_id=2)
    assert not os.path.exists(out)
    gt_dir = demo.root / 'SegmentationClass'
    before = {p.name: p.stat().st_mtime_ns for p in gt_dir.iterdir()}
    with pytest.raises(PseudoLabelError, match='no meta'):
        make_pseudo_labels(demo.cfg, demo.ckpt, str(gt_dir))
    assert {p.name: p.stat().st_mtime_ns for p in gt_dir.iterdir()} == before

    tool = load_tool()
    args = [str(CAM_CFG), str(tmp_path / 'missing.pth'), '--out', out]
    with pytest.raises(SystemExit, match='checkpoint not found'):
        tool.main(args)
    with pytest.raises(SystemExit) as e:
        tool.main(args[:2] + ['--out', out, '--refine', 'crf'])
    assert e.value.code == 2  # argparse choices
    opts = [f'{k}={v}' for k, v in tiny_options(demo.root).items()]
    with pytest.raises(SystemExit, match='no val_dataloader'):
        tool.main([
            str(CAM_CFG), demo.ckpt, '--out', out, '--split', 'val',
            '--cfg-options', 'val_dataloader=None'
        ] + opts[:5])
    res = tool.main([
        str(CAM_CFG), demo.ckpt, '--out', out, '--limit', '2', '--no-progress',
        '--cfg-options'
    ] + opts)
    assert res['processed'] == 2


def test_cli_killed_midway_then_completed(demo, tmp_path):
    """SIGKILL the CLI (and its workers) mid-run, then run it again."""
    root = tmp_path / 'many'
    n = 48
    generate_demo_dataset(str(root), num_train=n, num_val=0, img_size=96)
    out = tmp_path / 'pl'
    opts = tiny_options(root, scales=(1.0, 0.5, 1.5), flip=True)
    cmd = [
        sys.executable,
        str(TOOL),
        str(CAM_CFG), demo.ckpt, '--out',
        str(out), '--refine', 'psa_softmax', '--save-scores', '--workers', '2',
        '--cfg-options'
    ] + [f'{k}={v}' for k, v in opts.items()]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    log1 = open(tmp_path / 'run1.log', 'w')
    proc = subprocess.Popen(
        cmd,
        cwd=str(REPO),
        env=env,
        stdout=log1,
        stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.time() + 60
        while not list(out.glob('*.png')):
            assert proc.poll() is None, (tmp_path / 'run1.log').read_text()
            assert time.time() < deadline, 'no output within 60 s'
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log1.close()
    done = sorted(p.stem for p in out.glob('*.png'))
    assert 1 <= len(done) < n, 'the run finished before it was killed'
    for name in done:  # whatever exists is complete
        assert read_png(out / f'{name}.png')[2].shape == (96, 96)
        with np.load(out / 'scores' / f'{name}.npz') as z:
            assert z['scores'].shape == (NUM_CLASSES, 96, 96)
    mtimes = {n_: os.stat(out / f'{n_}.png').st_mtime_ns for n_ in done}

    res = subprocess.run(
        cmd,
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        timeout=120)
    assert res.returncode == 0, res.stderr
    assert f'skipping {len(done)} already done, {n - len(done)} to do' \
        in res.stderr
    names = [f'demo_{i:06d}' for i in range(n)]
    assert sorted(p.stem for p in out.glob('*.png')) == names
    for name in names:
        mode, _, label = read_png(out / f'{name}.png')
        assert mode == 'P' and label.shape == (96, 96)
        with np.load(out / 'scores' / f'{name}.npz') as z:
            assert z['scores'].shape == (NUM_CLASSES, 96, 96)
    for name, mtime in mtimes.items():
        assert os.stat(out / f'{name}.png').st_mtime_ns == mtime
    assert tmp_files(out) == []
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['complete'] and meta['done'] == n


def test_from_scores_equals_a_direct_run(demo, tmp_path):
    """CRF labels from saved scores at another bg_thr equal a direct run."""
    run(demo, tmp_path / 'seeds', refine='none', bg_thr=0.2, save_scores=True)
    direct = run(demo, tmp_path / 'direct', refine='irn_label', bg_thr=0.45)
    assert direct['processed'] == 6
    res = run(
        demo,
        tmp_path / 'reuse',
        refine='irn_label',
        bg_thr=0.45,
        from_scores=str(tmp_path / 'seeds' / 'scores'))
    assert res['processed'] == 6
    a = load_outputs(tmp_path / 'direct', demo.names)
    b = load_outputs(tmp_path / 'reuse', demo.names)
    for name in demo.names:
        np.testing.assert_array_equal(a[name], b[name])
    # and the threshold really is replaced: bg_thr 0.0 labels every pixel
    # with a foreground class of the image wherever a CAM is positive
    run(demo,
        tmp_path / 'zero',
        refine='none',
        bg_thr=0.0,
        from_scores=str(tmp_path / 'seeds' / 'scores'))
    zero = load_outputs(tmp_path / 'zero', demo.names)
    seeds = load_outputs(tmp_path / 'seeds', demo.names)
    assert sum(int((zero[n] > 0).sum()) for n in demo.names) > \
        sum(int((seeds[n] > 0).sum()) for n in demo.names)
    with pytest.raises(FileNotFoundError, match='saved scores'):
        run(demo,
            tmp_path / 'missing',
            refine='none',
            from_scores=str(tmp_path / 'direct'))


def test_procs_equal_one_process(demo, tmp_path):
    """``procs`` forked one-thread processes give the very same files.

    (The one-process run leaves malloc alone, the other keeps freed memory
    in the heap: the files do not depend on it either.)
    """
    one = run(
        demo, tmp_path / 'p1', refine='psa_softmax', save_scores=True,
        procs=1, reuse_heap=False)
    three = run(
        demo, tmp_path / 'p3', refine='psa_softmax', save_scores=True,
        procs=3, workers=2)
    assert one['processed'] == three['processed'] == 6
    for name in demo.names:
        np.testing.assert_array_equal(
            read_png(tmp_path / 'p1' / f'{name}.png')[2],
            read_png(tmp_path / 'p3' / f'{name}.png')[2])
        with np.load(tmp_path / 'p1' / 'scores' / f'{name}.npz') as a, \
                np.load(tmp_path / 'p3' / 'scores' / f'{name}.npz') as b:
            np.testing.assert_array_equal(a['scores'], b['scores'])
            np.testing.assert_array_equal(a['img_labels'], b['img_labels'])
    meta = json.loads((tmp_path / 'p3' / 'meta.json').read_text())
    assert meta['complete'] and meta['done'] == 6
    assert sorted(p.name for p in (tmp_path / 'p3').glob('meta*')) == [
        'meta.json'
    ]
    assert not tmp_files(tmp_path / 'p3')
    # resumable like one process: nothing left to do
    again = run(demo, tmp_path / 'p3', refine='psa_softmax', save_scores=True,
                procs=3)
    assert again['skipped'] == 6 and again['processed'] == 0
    with pytest.raises(PseudoLabelError, match='procs must be >= 1'):
        run(demo, tmp_path / 'p0', procs=0)


def test_procs_report_a_corrupt_image_and_keep_the_rest(demo, tmp_path):
    import shutil
    root = tmp_path / 'data'
    shutil.copytree(demo.root, root)
    bad = root / 'JPEGImages' / f'{demo.names[3]}.jpg'
    bad.write_bytes(b'not a jpeg')
    cfg = tiny_cfg(root)
    out = tmp_path / 'out'
    with pytest.raises(PseudoLabelError, match=demo.names[3]):
        make_pseudo_labels(
            cfg, demo.ckpt, str(out), refine='none', procs=2, progress=False)
    written = {p.stem for p in out.glob('*.png')}
    assert demo.names[3] not in written
    assert written  # the other process (and earlier images) finished
    assert not tmp_files(out)


def test_fuse_conv_bn_and_channels_last(demo, tmp_path, monkeypatch):
    """Folded BN + channels-last: same labels, scores within rounding."""
    import mmcv.cnn
    real_fuse, left = mmcv.cnn.fuse_conv_bn, []

    def spy(module):
        module = real_fuse(module)
        left.append(
            sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                for m in module.modules()))
        return module

    monkeypatch.setattr(mmcv.cnn, 'fuse_conv_bn', spy)
    plain = run(demo, tmp_path / 'plain', refine='none', save_scores=True)
    fast = run(
        demo,
        tmp_path / 'fast',
        refine='none',
        save_scores=True,
        fuse_conv_bn=True,
        channels_last=True,
        procs=2)
    assert plain['processed'] == fast['processed'] == 6
    for name in demo.names:
        with np.load(tmp_path / 'plain' / 'scores' / f'{name}.npz') as a, \
                np.load(tmp_path / 'fast' / 'scores' / f'{name}.npz') as b:
            np.testing.assert_allclose(
                b['scores'], a['scores'], rtol=1e-4, atol=1e-5)
        # float rounding may flip an exact tie; nothing more
        same = (read_png(tmp_path / 'plain' / f'{name}.png')[2] ==
                read_png(tmp_path / 'fast' / f'{name}.png')[2]).mean()
        assert same >= 0.999
    assert left == [0]  # every BatchNorm was folded


def test_fast_model_refuses_a_model_it_would_break(demo, tmp_path,
                                                   monkeypatch):
    """A conversion that changes the scores is refused, nothing written."""
    import mmcv.cnn

    def bad_fuse(module):
        for p in module.parameters():
            with torch.no_grad():
                p.mul_(1.5)
        return module

    monkeypatch.setattr(mmcv.cnn, 'fuse_conv_bn', bad_fuse)
    out = tmp_path / 'bad'
    with pytest.raises(PseudoLabelError, match='fuse_conv_bn changes'):
        run(demo, out, refine='none', fuse_conv_bn=True)
    assert not list(out.glob('*.png'))
