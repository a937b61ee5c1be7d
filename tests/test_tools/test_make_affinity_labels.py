# Copyright (c) mmwsss contributors.
"""Tests of ``tools/make_affinity_labels.py`` (IRN ``cam_to_ir_label``)."""
import importlib.util
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mmwsss.refine import DenseCRF

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    'make_affinity_labels', REPO / 'tools' / 'make_affinity_labels.py')
tool = importlib.util.module_from_spec(_spec)
# registered so that the pool workers can unpickle its functions
sys.modules['make_affinity_labels'] = tool
_spec.loader.exec_module(tool)

# Three hand-made score files (C = 4 classes with background). Channel 0
# holds the constant background of the CAM stage (0.75), which the tool
# replaces by fg_thr = 0.30 / bg_thr = 0.05.
CASES = {
    # one class: 0.5 / 0.31 beat 0.30 -> fg 1; 0.2 is between the
    # thresholds -> 255; 0.02, 0.0 and the tie 0.05 (ties go to
    # background) -> 0
    'a':
    dict(
        labels=[1],
        cams={1: [[0.5, 0.2, 0.02], [0.31, 0.05, 0.0]]},
        conf=[[1, 255, 0], [1, 0, 0]]),
    # two classes; channel 2 is not an image label and is ignored even
    # though it is the largest score
    'b':
    dict(
        labels=[1, 3],
        cams={
            1: [[0.9, 0.1, 0.2, 0.04]],
            2: [[0.99, 0.99, 0.99, 0.99]],
            3: [[0.4, 0.6, 0.25, 0.01]]
        },
        conf=[[1, 3, 255, 0]]),
    # no foreground label: everything is confident background
    'c':
    dict(labels=[], cams={}, conf=[[0, 0], [0, 0]]),
}


def write_case(folder: Path, stem: str, case: dict) -> None:
    shape = np.asarray(case['conf']).shape
    scores = np.zeros((4, ) + shape, np.float32)
    scores[0] = 0.75
    for c, v in case['cams'].items():
        scores[c] = v
    np.savez_compressed(
        folder / f'{stem}.npz',
        scores=scores,
        img_labels=np.asarray(case['labels'], np.int64))


@pytest.fixture
def scores_dir(tmp_path):
    folder = tmp_path / 'scores'
    folder.mkdir()
    for stem, case in CASES.items():
        write_case(folder, stem, case)
    return folder


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def run(src, out, **kwargs):
    kwargs.setdefault('crf', 'none')
    kwargs.setdefault('progress', False)
    return tool.make_affinity_labels(str(src), str(out), **kwargs)


def test_confident_labels_hand_computed(scores_dir, tmp_path):
    out = tmp_path / 'aff'
    res = run(scores_dir, out)
    assert res['processed'] == 3 and res['skipped'] == 0
    for stem, case in CASES.items():
        img = Image.open(out / f'{stem}.png')
        assert img.mode == 'P'  # palette PNG (VOC colours, 255 white)
        np.testing.assert_array_equal(
            np.asarray(img), np.asarray(case['conf'], np.uint8))
    meta = (out / 'meta.json').read_text()
    assert '"complete": true' in meta


def test_rerun_skips_and_resumes(scores_dir, tmp_path):
    out = tmp_path / 'aff'
    run(scores_dir, out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob('*.png')}
    res = run(scores_dir, out)
    assert res['processed'] == 0 and res['skipped'] == 3
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in out.glob('*.png')}
    # an interrupted run: one PNG missing and a stale temporary file
    (out / 'b.png').unlink()
    (out / '.b.png.x1y2.tmp').write_bytes(b'partial')
    res = run(scores_dir, out)
    assert res['processed'] == 1 and res['skipped'] == 2
    assert not list(out.glob('.*.tmp'))
    np.testing.assert_array_equal(
        read_png(out / 'b.png'), np.asarray(CASES['b']['conf'], np.uint8))
    # other settings into the same folder are refused
    with pytest.raises(tool.AffinityLabelError, match='other settings'):
        run(scores_dir, out, fg_thr=0.4)


def test_workers_and_no_palette(scores_dir, tmp_path):
    out = tmp_path / 'aff'
    res = run(scores_dir, out, workers=2, palette=False)
    assert res['processed'] == 3
    for stem, case in CASES.items():
        img = Image.open(out / f'{stem}.png')
        assert img.mode == 'L'
        np.testing.assert_array_equal(
            np.asarray(img), np.asarray(case['conf'], np.uint8))


def test_crf_matches_irn_composition(tmp_path):
    # red | blue | green bands and a CAM ramp 0.6 - 0.025 x that crosses
    # fg_thr 0.30 at x = 12 and bg_thr 0.05 at x = 22, two columns into
    # the blue and green bands: the CRF snaps both maps to the colour edges
    # (x = 10 and x = 20)
    h, w = 12, 30
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :10] = (200, 40, 40)
    img[:, 10:20] = (40, 40, 200)
    img[:, 20:] = (40, 160, 40)
    xx = np.arange(w)[None].repeat(h, 0)
    scores = np.zeros((3, h, w), np.float32)
    scores[0] = 0.2
    scores[2] = np.clip(0.6 - 0.025 * xx, 0, None)
    src, imgs = tmp_path / 'scores', tmp_path / 'img'
    src.mkdir()
    imgs.mkdir()
    np.savez(src / 'x.npz', scores=scores, img_labels=np.array([2]))
    cv2.imwrite(str(imgs / 'x.png'), img[..., ::-1])  # BGR on disk
    run(src,
        tmp_path / 'aff',
        crf='irn_label',
        img_dir=str(imgs),
        img_suffix='.png')
    got = read_png(tmp_path / 'aff' / 'x.png')
    # IRN cam_to_ir_label, spelled out with the CRF called directly
    crf = DenseCRF(preset='irn_label')
    s_fg, s_bg = scores.copy(), scores.copy()
    s_fg[0], s_bg[0] = 0.30, 0.05
    fg, bg = crf(img, s_fg, [2]), crf(img, s_bg, [2])
    want = fg.copy()
    want[fg == 0] = 255
    want[(bg + fg) == 0] = 0
    np.testing.assert_array_equal(got, want)
    # and by hand: class 2 on red, uncertain on blue, background on green
    band = np.repeat([2, 255, 0], 10)[None].repeat(h, 0)
    np.testing.assert_array_equal(got, band)
    # without the CRF the thresholds cut at x = 12 and x = 22 (the tie at
    # x = 12 goes to background)
    plain = tool.confident_labels(scores, [2], 0.30, 0.05)
    band = np.repeat([2, 255, 0], [12, 10, 8])[None].repeat(h, 0)
    np.testing.assert_array_equal(plain, band)


def test_bad_inputs(scores_dir, tmp_path):
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'broken.npz').write_bytes(b'not a zip file')
    with pytest.raises(
            tool.AffinityLabelError,
            match=r'cannot read score file .*broken\.npz'):
        run(bad, tmp_path / 'o1')
    os.unlink(bad / 'broken.npz')
    np.savez(bad / 'nolabels.npz', scores=np.zeros((2, 3, 3), np.float32))
    with pytest.raises(tool.AffinityLabelError, match='img_labels'):
        run(bad, tmp_path / 'o2')
    os.unlink(bad / 'nolabels.npz')
    np.savez(
        bad / 'range.npz',
        scores=np.zeros((2, 3, 3), np.float32),
        img_labels=np.array([2]))
    with pytest.raises(tool.AffinityLabelError, match=r'\[1, 1\]'):
        run(bad, tmp_path / 'o3')
    with pytest.raises(tool.AffinityLabelError, match='--img-dir'):
        run(scores_dir, tmp_path / 'o4', crf='irn_label')
    with pytest.raises(tool.AffinityLabelError, match='bg_thr <= fg_thr'):
        run(scores_dir, tmp_path / 'o5', fg_thr=0.05, bg_thr=0.3)
    with pytest.raises(FileNotFoundError, match='scores folder'):
        run(tmp_path / 'missing', tmp_path / 'o6')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(tool.AffinityLabelError, match='no .npz'):
        run(empty, tmp_path / 'o7')
    # missing image for the CRF names the path
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    with pytest.raises(tool.AffinityLabelError, match=r'image not found'):
        run(scores_dir, tmp_path / 'o8', crf='irn_label', img_dir=str(imgs))
    # the CLI turns user errors into a one-line exit message
    with pytest.raises(SystemExit, match='error: .*no .npz'):
        tool.main([str(empty), str(tmp_path / 'o9'), '--crf', 'none'])


def test_cli(scores_dir, tmp_path):
    res = tool.main([
        str(scores_dir),
        str(tmp_path / 'aff'), '--crf', 'none', '--fg-thr', '0.3', '--bg-thr',
        '0.05', '--no-progress'
    ])
    assert res['processed'] == 3
    np.testing.assert_array_equal(
        read_png(tmp_path / 'aff' / 'a.png'),
        np.asarray(CASES['a']['conf'], np.uint8))


def test_sigkill_midway_then_rerun_is_byte_identical(tmp_path):
    """SIGKILL the CLI part-way; the rerun completes the same bytes."""
    import hashlib
    import signal
    import subprocess
    import time

    src, imgs = tmp_path / 'scores', tmp_path / 'img'
    src.mkdir()
    imgs.mkdir()
    rng = np.random.default_rng(0)
    n = 100
    for i in range(n):
        scores = np.zeros((4, 64, 64), np.float32)
        scores[0] = 0.75
        scores[1] = cv2.GaussianBlur(
            rng.random((64, 64)).astype(np.float32), (9, 9), 3)
        np.savez(src / f'im{i:04d}.npz', scores=scores, img_labels=[1])
        cv2.imwrite(
            str(imgs / f'im{i:04d}.jpg'), (rng.random(
                (64, 64, 3)) * 255).astype(np.uint8))

    def cmd(out):
        return [
            sys.executable,
            str(REPO / 'tools' / 'make_affinity_labels.py'),
            str(src),
            str(out), '--img-dir',
            str(imgs), '--fg-thr', '0.6', '--bg-thr', '0.3', '--workers', '1'
        ]

    env = dict(os.environ, OMP_NUM_THREADS='1')
    ref = tmp_path / 'ref'
    subprocess.run(cmd(ref), env=env, check=True, capture_output=True)
    out = tmp_path / 'out'
    proc = subprocess.Popen(
        cmd(out),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.time() + 60
        while len(list(out.glob('*.png'))) < 5:
            assert proc.poll() is None, 'finished before it was killed'
            assert time.time() < deadline
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list(out.glob('*.png')))
    assert 5 <= done < n
    res = subprocess.run(
        cmd(out), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f'skipping {done} already done' in res.stdout + res.stderr

    def digest(folder):
        return {
            p.name: hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob('*.png'))
        }

    assert digest(out) == digest(ref) and len(digest(ref)) == n
    assert not [p for p in out.iterdir() if 'tmp' in p.name]


def test_cli_precision(scores_dir, tmp_path, capsys):
    # masks of 'a' and 'b' only (a labelled subset); 'c' is skipped
    gt_dir = tmp_path / 'gt'
    gt_dir.mkdir()
    gts = {
        'a': [[1, 1, 1], [0, 0, 0]],  # conf [[1, 255, 0], [1, 0, 0]]
        'b': [[1, 3, 3, 0]],  # conf [[1, 3, 255, 0]]
    }
    for stem, gt in gts.items():
        Image.fromarray(np.asarray(gt, np.uint8)).save(gt_dir / f'{stem}.png')
    res = tool.main([
        str(scores_dir),
        str(tmp_path / 'aff'), '--crf', 'none', '--no-progress', '--gt-dir',
        str(gt_dir), '--grid-stride', '1', '--radius', '2'
    ])
    prec = res['precision']
    assert prec['images'] == 2
    # fg pixels: a (0,0) ok, a (1,0) wrong (gt 0); b 1 ok, 3 ok -> 3 / 4
    assert prec['fg_precision'] == 0.75
    # bg pixels: a (0,2) wrong (gt 1), (1,1) ok, (1,2) ok; b (0,3) ok
    assert prec['bg_precision'] == 0.75
    assert prec['coverage'] == 8 / 10
    out = capsys.readouterr().out
    assert 'fg 75.0%' in out and 'coverage 80.0%' in out
    import json
    saved = json.loads((tmp_path / 'aff' / 'precision.json').read_text())
    assert saved['fg_precision'] == 0.75 and saved['radius'] == 2
    with pytest.raises(SystemExit, match='no mask'):
        tool.main([
            str(scores_dir),
            str(tmp_path / 'aff'), '--crf', 'none', '--no-progress',
            '--gt-dir',
            str(tmp_path)
        ])
