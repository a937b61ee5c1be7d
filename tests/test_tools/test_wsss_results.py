# Copyright (c) mmwsss contributors.
"""Tests of ``tools/analysis_tools/wsss_results.py`` on fake results.

A fake tree mimics what the two ablation drivers leave on disk (per-seed
``threshold_sweep.json`` / ``crf_eval.json``, score ``.npz`` and label
PNG folders, the drivers' JSON in both formats) for seeds 0 and 1; the
tool runs with ``--report-only --seeds 0 1 2``. Expected numbers are
computed here with numpy from the values written; expected label tiles by
explicit per-pixel loops.
"""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    'wsss_results', REPO / 'tools' / 'analysis_tools' / 'wsss_results.py')
tool = importlib.util.module_from_spec(_spec)
sys.modules['wsss_results'] = tool
_spec.loader.exec_module(tool)

NAMES = ['img_a', 'img_b', 'img_c', 'img_d']
SIZE = 32
NCLS = 8
PALETTE = [[0, 0, 0], [200, 10, 10], [10, 200, 10], [200, 200, 10],
           [10, 10, 200], [200, 10, 200], [10, 200, 200], [120, 120, 120]]
CLASSES = ['background', 's', 'r', 'c', 'cr', 'b', 'k', 'l']
THR_VEC = [None, 0.3, 0.5, 0.4, 0.2, 0.6, 0.35, 0.45]
CAMGUIDE_BEST = 'Our (morphology + local consistency)'
IGCAM_CRF = '+CRF (InfluenceCRF)'


def _png(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label.astype(np.uint8)).save(path)


def _values(i: int, seed: int, spec) -> dict:
    """Train mIoUs of row ``i``; seeds differ by 0.05 (std != ddof 0)."""
    g = 0.10 + 0.01 * i + 0.05 * seed
    v = dict(thr=0.25, miou_global=g, miou_classwise=g + 0.004, crf=g + 0.02)
    if spec.shared:  # the teacher: best of all, but shared
        v.update(miou_global=0.9, miou_classwise=0.91)
    if spec.name == CAMGUIDE_BEST and seed == 0:
        v['miou_classwise'] = 0.60  # best of seed 0 (a seed candidate)
    if spec.name == IGCAM_CRF and seed == 1:
        v['crf'] = 0.65  # best of seed 1 (InfluenceCRF labels)
    return v


@pytest.fixture(scope='module')
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp('results')
    rng = np.random.default_rng(0)
    data = root / 'data'
    (data / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (data / 'ImageSets' / 'Segmentation' /
     'train.txt').write_text('\n'.join(NAMES) + '\n')
    (data / 'meta.json').write_text(
        json.dumps(dict(classes=CLASSES, palette=PALETTE)))
    gts, imgs, scores, img_labels = {}, {}, {}, {}
    for n in NAMES:
        img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        (data / 'JPEGImages').mkdir(exist_ok=True)
        Image.fromarray(img).save(data / 'JPEGImages' / f'{n}.jpg')
        imgs[n] = np.asarray(Image.open(data / 'JPEGImages' / f'{n}.jpg'))
        gts[n] = rng.integers(0, NCLS, (SIZE, SIZE))
        gts[n][0, :4] = 255
        _png(data / 'SegmentationClass' / f'{n}.png', gts[n])
        labs = sorted(rng.choice(np.arange(1, NCLS), 2, replace=False))
        img_labels[n] = [int(x) for x in labs]
        scores[n] = rng.random((NCLS, SIZE, SIZE)).astype(np.float32)

    dirs = dict(
        cg=str(root / 'cg'), ig=str(root / 'ig'), res=str(root / 'res'))
    specs = tool.row_specs()
    truth = {}  # (path of threshold_sweep.json / crf_eval.json) -> values
    crf_labels = {}  # crf label dir -> {name: label}
    json_rows = {'camguide': {}, 'igcam': {}}
    for i, spec in enumerate(specs):
        for seed in ([None] if spec.shared else [0, 1]):
            v = _values(i, 0 if seed is None else seed, spec)
            sd = Path(spec.seed_dir.format(seed=seed, **dirs))
            sd.mkdir(parents=True, exist_ok=True)
            if (sd / 'threshold_sweep.json').is_file():
                # the +CRF row reuses +Influence's seeds, as its driver
                v = dict(truth[str(sd / 'threshold_sweep.json')], crf=v['crf'])
            sweep = dict(
                best_global=dict(thr=v['thr'], miou=v['miou_global']),
                classwise=dict(miou=v['miou_classwise'], thr_vector=THR_VEC))
            (sd / 'threshold_sweep.json').write_text(json.dumps(sweep))
            truth[str(sd / 'threshold_sweep.json')] = v
            for n in NAMES:
                p = sd / 'seeds' / 'scores' / f'{n}.npz'
                p.parent.mkdir(parents=True, exist_ok=True)
                np.savez(
                    p, scores=scores[n], img_labels=np.array(img_labels[n]))
            run = dict(
                thr=v['thr'],
                miou_global=v['miou_global'],
                miou_classwise=v['miou_classwise'])
            # tools/test.py on val: seed 0 only, the +CRF row in its own
            # folder (not +Influence's)
            if seed in (0, None):
                vd = Path((spec.val_dir or spec.seed_dir).format(
                    seed=seed, **dirs))
                vd.mkdir(parents=True, exist_ok=True)
                val = 0.3 + 0.01 * i
                (vd / 'test_metrics.json').write_text(
                    json.dumps({'mIoU': 100 * val, 'aAcc': 90.0}))
                truth[str(vd / 'test_metrics.json')] = dict(val=val)
            # the baseline's CRF is this script's, of seed 0 only
            if spec.crf_dir and (spec.crf_by_driver or seed == 0):
                cd = Path(spec.crf_dir.format(seed=seed, **dirs))
                cd.mkdir(parents=True, exist_ok=True)
                (cd / 'crf_eval.json').write_text(
                    json.dumps(dict(miou=v['crf'])))
                truth[str(cd / 'crf_eval.json')] = v
                labs = {}
                for n in NAMES:
                    labs[n] = rng.integers(0, NCLS, (SIZE, SIZE))
                    _png(cd / spec.crf_labels / f'{n}.png', labs[n])
                crf_labels[str(cd / spec.crf_labels)] = labs
                if spec.crf_by_driver:
                    run['crf'] = v['crf']
            json_rows[spec.driver].setdefault(spec.name, []).append(run)
    # driver JSONs in the two drivers' formats; a stale IG-CAM run
    json_rows['igcam']['Base'].append(
        dict(thr=0.5, miou_global=0.77, miou_classwise=0.78))
    (root / 'cg' / 'camguide_ablation.json').write_text(
        json.dumps({
            k: dict(params_m=1.5, runs=v)
            for k, v in json_rows['camguide'].items()
        }))
    (root / 'ig' / 'igcam_ablation.json').write_text(
        json.dumps(json_rows['igcam']))
    # final model and upper bound of seed 0 only
    best0 = dict(method='camguide', row=CAMGUIDE_BEST, refinement='classwise')
    w0 = root / 'res' / 'seed0'
    (w0 / f'final_{tool.slug(best0)}').mkdir(parents=True)
    (w0 / f'final_{tool.slug(best0)}' / 'test_metrics.json').write_text(
        json.dumps({'mIoU': 41.5}))
    (w0 / 'upper_bound').mkdir()
    (w0 / 'upper_bound' / 'test_metrics.json').write_text(
        json.dumps({'mIoU': 55.3}))
    # labels actually written for seed 0's choice, re-scored
    (w0 / 'labels').mkdir()
    (w0 / 'labels' / f'{tool.slug(best0)}.json').write_text(
        json.dumps(dict(miou=0.595)))
    return dict(
        root=root,
        data=data,
        dirs=dirs,
        specs=specs,
        truth=truth,
        crf_labels=crf_labels,
        gts=gts,
        imgs=imgs,
        scores=scores,
        img_labels=img_labels)


@pytest.fixture(scope='module')
def report(fake):
    out = fake['root'] / 'out'
    argv = [
        '--report-only', '--seeds', '0', '1', '2', '--work-dir',
        fake['dirs']['res'], '--out-dir',
        str(out), '--camguide-dir', fake['dirs']['cg'], '--igcam-dir',
        fake['dirs']['ig'], '--data-root',
        str(fake['data']), '--grid-images', '4', '--grid-tile', '32'
    ]
    summary = tool.main(argv)
    return dict(out=out, summary=summary)


def _table_row(md: str, method: str, title: str) -> list:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if cells[:2] == [method, title]:
            return cells
    raise AssertionError(f'no row {method} | {title} in\n{md}')


def _ms(vals) -> str:
    vals = 100 * np.asarray(vals, dtype=np.float64)
    if len(vals) == 1:
        return f'{vals[0]:.1f}'
    return f'{vals.mean():.1f} ± {vals.std(ddof=1):.1f}'


def test_row_folders_match_the_drivers():
    """The folders the drivers write, spelled out from their source."""
    specs = {s.name: s for s in tool.row_specs()}
    assert specs['Lite0 classification only'].seed_dir == \
        '{cg}/seed{seed}/baseline'
    assert specs['Our* (stages 1+2)'].seed_dir == '{cg}/seed{seed}/stage2'
    assert specs[CAMGUIDE_BEST].seed_dir == '{cg}/seed{seed}/stage3_2'
    assert specs['Our + RW (AffinityNet)'].crf_dir == \
        '{cg}/seed{seed}/affinity'
    assert specs['Lite2 teacher, classification only'].seed_dir == \
        '{cg}/teacher'
    assert specs['+Inst +MS'].seed_dir == '{ig}/seed{seed}/row3'
    crf = specs[IGCAM_CRF]
    assert crf.seed_dir == '{ig}/seed{seed}/row4'
    assert crf.crf_dir == '{ig}/seed{seed}/row4/influence_crf'
    assert crf.crf_labels == 'labels' and not crf.seed_candidates


def test_tables_match_numpy(fake, report):
    md = (report['out'] / 'results.md').read_text()
    # the drivers' mean_std: sample std (ddof=1), 1 decimal, in percent
    assert tool.mean_std([0.2, 0.25]) == _ms([0.2, 0.25]) == '22.5 ± 3.5'
    for spec in fake['specs']:
        seeds = [None] if spec.shared else [0, 1]
        sweeps = [
            fake['truth'][spec.seed_dir.format(seed=s, **fake['dirs']) +
                          '/threshold_sweep.json'] for s in seeds
        ]
        method = tool.METHOD_TITLES[spec.method]
        title = spec.title + (' (shared by all seeds)' if spec.shared else '')
        cells = _table_row(md, method, title)
        assert cells[3] == str(len(seeds))
        assert cells[4] == _ms([v['miou_global'] for v in sweeps])
        assert cells[5] == _ms([v['miou_classwise'] for v in sweeps])
        val = fake['truth'][(spec.val_dir or spec.seed_dir).format(
            seed=None if spec.shared else 0, **fake['dirs']) +
                          '/test_metrics.json']['val']
        assert cells[7] == _ms([val]) + ('' if spec.shared else ' (n=1)')
        if spec.crf_dir is None:
            assert cells[6] == '-'
            continue
        crfs = [
            fake['truth'][p]
            for p in (spec.crf_dir.format(seed=s, **fake['dirs']) +
                      '/crf_eval.json' for s in seeds) if p in fake['truth']
        ]
        want = _ms([v['crf'] for v in crfs])
        if len(crfs) != len(seeds):
            want += f' (n={len(crfs)})'
        if spec.crf_name != '+dCRF':
            want += f' ({spec.crf_name})'
        assert cells[6] == want, spec.name
    # camguide params from its JSON; IG-CAM's JSON has none
    assert _table_row(md, 'CamGuide', 'Our* (stages 1+2)')[2] == '1.50'
    assert _table_row(md, 'IG-CAM', 'Base')[2] == '-'
    # per-method fragments hold the baseline and only their rows
    ig = (report['out'] / 'table_igcam.md').read_text()
    assert '| IG-CAM | Base |' in ig and 'CamGuide' not in ig
    assert '| Baseline |' in ig


def test_final_table_and_selection(fake, report):
    finals = {f['seed']: f for f in report['summary']['finals']}
    assert finals[0]['best']['row'] == CAMGUIDE_BEST
    assert finals[0]['best']['refinement'] == 'classwise'
    assert finals[1]['best']['row'] == IGCAM_CRF
    assert finals[1]['best']['refinement'] == 'crf'
    assert 'best' not in finals[2]
    # seed 0: the re-scored labels' mIoU, not the sweep's
    assert finals[0]['pseudo_miou'] == pytest.approx(0.595)
    assert finals[0]['gap'] == pytest.approx(0.553 - 0.415)
    assert finals[1]['pseudo_miou'] == pytest.approx(0.65)
    assert finals[1].get('final_miou') is None
    md = (report['out'] / 'table_final.md').read_text()
    row0 = _table_row(md, '0', f'CamGuide {CAMGUIDE_BEST}, seed, '
                      'class-wise thr')
    assert row0[2:] == ['59.5', '41.5', '55.3', '13.8']
    mean = [ln for ln in md.splitlines() if ln.startswith('| mean ± std')]
    assert mean and f'| {_ms([0.595, 0.65])} | 41.5 | 55.3 | 13.8 |' in \
        mean[0]


def test_selection_rules(fake):
    col = tool.collect(fake['specs'], fake['dirs'], [0, 1], {})
    rows = col['rows']
    c0 = tool.candidates(rows, 0)
    # the +CRF row repeats +Influence's seeds: only its CRF is a candidate
    assert [c['refinement'] for c in c0 if c['row'] == IGCAM_CRF] == ['crf']
    assert tool.select_best(c0)['row'] == CAMGUIDE_BEST
    # the shared teacher (0.91) wins only when allowed
    assert tool.select_best(tool.candidates(
        rows, 0, include_shared=True))['row'] == tool.TEACHER_ROW
    # restricted to CRF labels: the largest CRF mIoU of seed 0
    best = tool.select_best(tool.candidates(rows, 0, ['crf']))
    want = max(v['crf'] for p, v in fake['truth'].items()
               if p.endswith('crf_eval.json') and '/seed0/' in p)
    assert best['miou'] == pytest.approx(want)
    # ties go to the first candidate in table order
    tie = [dict(miou=0.5, row='a'), dict(miou=0.5, row='b')]
    assert tool.select_best(tie)['row'] == 'a'
    with pytest.raises(ValueError, match='cands'):
        tool.select_best([])
    with pytest.raises(ValueError, match='refinements'):
        tool.candidates(rows, 0, ['dcrf'])


def test_missing_seed_and_stale_json_are_reported(fake, report, capsys):
    notes = '\n'.join(report['summary']['notes'])
    for m in ('CamGuide', 'IG-CAM'):
        assert f'{m}: seed 2 missing' in notes
    assert 'seed 2: no pseudo-label candidate yet' in notes
    assert 'driver JSON run 2 matches no seed folder' in notes
    assert 'seed 1: final model not tested yet' in notes
    md = (report['out'] / 'results.md').read_text()
    assert '## Missing or stale results' in md
    # printed too, and a run with only missing seeds does not crash
    out = fake['root'] / 'out_missing'
    tool.main([
        '--report-only', '--seeds', '5', '--work-dir', fake['dirs']['res'],
        '--out-dir',
        str(out), '--camguide-dir', fake['dirs']['cg'], '--igcam-dir',
        fake['dirs']['ig'], '--data-root',
        str(fake['data'])
    ])
    printed = capsys.readouterr().out
    assert 'CamGuide: seed 5 missing' in printed
    assert (out / 'results.md').is_file()
    assert (out / 'ablation_bars.png').is_file()


def test_previous_results_fill_missing_seeds(fake, report, tmp_path):
    """Seeds whose folders are gone come back from results.json."""
    prev = report['out'] / 'results.json'
    empty = tmp_path / 'fresh'

    def run(out, dirs, *extra):
        return tool.main([
            '--report-only', '--seeds', '0', '1', '2', '--work-dir',
            str(dirs['res']), '--out-dir',
            str(out), '--camguide-dir',
            str(dirs['cg']), '--igcam-dir',
            str(dirs['ig']), '--data-root',
            str(fake['data']), '--grid-images', '2', '--grid-tile', '32',
            *extra
        ])

    gone = dict(cg=empty / 'cg', ig=empty / 'ig', res=empty / 'res')
    summary = run(tmp_path / 'out', gone, '--previous', str(prev))
    want = (report['out'] / 'table_ablation.md').read_text()
    assert (tmp_path / 'out' / 'table_ablation.md').read_text() == want
    notes = '\n'.join(summary['notes'])
    assert 'IG-CAM seed 0: numbers carried over' in notes
    assert 'CamGuide shared run: numbers carried over' in notes
    assert 'seed 1 missing' not in notes and 'seed 2 missing' in notes
    finals = {f['seed']: f for f in summary['finals']}
    assert finals[0]['source'] == 'previous'
    assert finals[0]['final_miou'] == pytest.approx(0.415)
    assert finals[0]['best']['row'] == CAMGUIDE_BEST
    # nothing to draw from carried numbers: no grid, and no crash
    assert summary['grid'] is None
    # the default previous is OUT_DIR/results.json; --no-previous ignores it
    s2 = run(tmp_path / 'out', gone)
    assert (tmp_path / 'out' / 'table_ablation.md').read_text() == want
    assert s2['rows'] == summary['rows']
    s3 = run(tmp_path / 'out', gone, '--no-previous')
    assert 'CamGuide: seed 0 missing' in '\n'.join(s3['notes'])
    # folders win over the previous numbers of the same seed
    doctored = json.loads(prev.read_text())
    for r in doctored['rows']:
        for x in r['runs']:
            x['miou_global'] = 0.99
    bad = tmp_path / 'doctored.json'
    bad.write_text(json.dumps(doctored))
    run(tmp_path / 'out4', fake['dirs'], '--previous', str(bad))
    assert (tmp_path / 'out4' / 'table_ablation.md').read_text() == want
    with pytest.raises(FileNotFoundError, match='nope.json'):
        run(tmp_path / 'out5', gone, '--previous', str(tmp_path / 'nope.json'))
    bad.write_text('{"rows": [{"method": "igcam"}]}')
    with pytest.raises(ValueError, match='doctored.json'):
        run(tmp_path / 'out5', gone, '--previous', str(bad))


def _colour(label):
    out = np.zeros(label.shape + (3, ), np.uint8)
    for y in range(label.shape[0]):
        for x in range(label.shape[1]):
            v = int(label[y, x])
            out[y, x] = 255 if v == 255 else PALETTE[v]
    return out


def _brute_seed(scores, labels, thr_vec):
    """Per-pixel loop: best labelled class if its CAM > its threshold."""
    lab = np.zeros(scores.shape[1:], np.int64)
    for y in range(scores.shape[1]):
        for x in range(scores.shape[2]):
            best = None
            for c in sorted(labels):
                if best is None or float(scores[c, y, x]) > float(
                        scores[best, y, x]):
                    best = c
            if float(scores[best, y, x]) > thr_vec[best]:
                lab[y, x] = best
    return lab


def test_pngs(fake, report):
    out = report['out']
    with Image.open(out / 'ablation_bars.png') as im:
        assert im.size == (int(tool.BAR_FIGSIZE[0] * tool.BAR_DPI),
                           int(tool.BAR_FIGSIZE[1] * tool.BAR_DPI))
    grid_path = out / 'grid.png'
    assert grid_path.stat().st_size < 400_000
    with Image.open(grid_path) as im:
        assert im.size == (5 * SIZE, tool.HEADER_H + 4 * SIZE + tool.LEGEND_H)
        grid = np.asarray(im.convert('RGB'))
    thr = [0.0 if t is None else t for t in THR_VEC]
    ig_dir = fake['dirs']['ig'] + '/seed0/row4/influence_crf/labels'
    for r, n in enumerate(NAMES):
        y = tool.HEADER_H + r * SIZE
        tiles = [grid[y:y + SIZE, j * SIZE:(j + 1) * SIZE] for j in range(5)]
        np.testing.assert_array_equal(tiles[0], fake['imgs'][n])
        assert not (tiles[1] == 128).all()  # a CAM overlay, not n/a
        # IG-CAM best of seed 0: the InfluenceCRF labels
        np.testing.assert_array_equal(tiles[2],
                                      _colour(fake['crf_labels'][ig_dir][n]))
        # CamGuide best of seed 0: seeds at the class-wise thresholds
        np.testing.assert_array_equal(
            tiles[3],
            _colour(
                _brute_seed(fake['scores'][n], fake['img_labels'][n], thr)))
        np.testing.assert_array_equal(tiles[4], _colour(fake['gts'][n]))


def test_write_seed_labels(tmp_path, fake):
    scores_dir = (fake['dirs']['cg'] + '/seed0/baseline/seeds/scores')
    out = tmp_path / 'labels'
    n = tool.write_seed_labels(scores_dir, NAMES[:2], 0.45, str(out), PALETTE)
    assert n == 2
    assert tool.write_seed_labels(scores_dir, NAMES[:2], 0.45, str(out),
                                  PALETTE) == 0  # resumed: kept
    for name in NAMES[:2]:
        with Image.open(out / f'{name}.png') as im:
            assert im.mode == 'P'
            got = np.asarray(im)
        want = _brute_seed(fake['scores'][name], fake['img_labels'][name],
                           [0.45] * NCLS)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match='scores_dir'):
        tool.write_seed_labels(scores_dir, ['nope'], 0.45, str(out), PALETTE)


def test_driver_json_formats(tmp_path):
    p = tmp_path / 'a.json'
    p.write_text(json.dumps({'x': [{'miou_global': 0.1}]}))
    assert tool.load_driver_json(str(p))['x']['params_m'] is None
    p.write_text(json.dumps({'x': {'params_m': 2.0, 'runs': []}}))
    assert tool.load_driver_json(str(p))['x']['params_m'] == 2.0
    p.write_text(json.dumps({'x': {'mean': 3}}))
    with pytest.raises(ValueError, match='a.json.*"x"'):
        tool.load_driver_json(str(p))
    p.write_text('[1, 2]')
    with pytest.raises(ValueError, match='a.json'):
        tool.load_driver_json(str(p))


def test_readme_markers_and_png_cap(tmp_path, monkeypatch):
    text = ('intro\n<!-- wsss_results:final -->\nold\n'
            '<!-- /wsss_results:final -->\nend\n')
    new, done = tool.replace_markers(text, {'final': '| a |', 'igcam': 'x'})
    assert done == ['final']
    assert new == ('intro\n<!-- wsss_results:final -->\n| a |\n'
                   '<!-- /wsss_results:final -->\nend\n')
    assert tool.replace_markers(new, {'final': '| a |'})[0] == new
    # over the size cap the grid falls back to a palette PNG
    monkeypatch.setattr(tool, 'MAX_PNG_BYTES', 100)
    noise = np.random.default_rng(1).integers(
        0, 256, (20, 20, 3), dtype=np.uint8)
    path = tmp_path / 'g.png'
    tool.write_grid(
        str(path), ['a'], [('t', lambda n: noise)], PALETTE, CLASSES, tile=20)
    with Image.open(path) as im:
        assert im.mode == 'P'
        assert im.size == (20, tool.HEADER_H + 20 + tool.LEGEND_H)
    with pytest.raises(ValueError, match='names and columns'):
        tool.write_grid(str(path), [], [], PALETTE, CLASSES)


class _StubDemo:
    """Records the commands instead of training (the real runner is
    ``tools/run_demo.py``'s ``Demo``, exercised by test_demo_e2e)."""

    def __init__(self):
        self.calls = []

    def make_data(self):
        self.calls.append(('make_data', ))

    def run(self, cmd, stage):
        self.calls.append(('run', stage, list(cmd)))

    def schedule_options(self, iters):
        return [f'train_cfg.max_iters={iters}'] if iters else []

    def train(self, config, work, stage, extra, loaders=()):
        self.calls.append(('train', config, work, list(extra)))
        return work + '/iter_2.pth'

    def test(self, config, ckpt, work, stage, extra):
        self.calls.append(('test', config, ckpt, work))
        Path(work).mkdir(parents=True, exist_ok=True)
        mi = 40.0 if 'upper' not in work else 50.0
        (Path(work) / 'test_metrics.json').write_text(json.dumps({'mIoU': mi}))
        return mi / 100


class _StubAblation:

    def __init__(self, names):
        self.demo = _StubDemo()
        self.names = names
        self.crf_calls = []

    def crf(self, cfg, ckpt, scores, thr, work, name):
        self.crf_calls.append((cfg, ckpt, scores, thr, work))
        lab = Path(work) / 'pseudo_labels_crf'
        lab.mkdir(parents=True)
        for n in self.names:
            _png(lab / f'{n}.png', np.zeros((SIZE, SIZE)))
        (Path(work) / 'crf_eval.json').write_text(json.dumps({'miou': .99}))
        return 0.99


def _tree_copy(fake, tmp_path, monkeypatch, drop=()):
    """A copy of the fake tree with baseline checkpoints named, paths
    ``drop`` (relative to the driver dirs, e.g. ``('cg', 'seed0/x')``)
    removed and a stub runner; returns ``(root, dirs, stub)``."""
    import shutil
    root = tmp_path / 'tree'
    shutil.copytree(fake['root'], root, ignore=shutil.ignore_patterns('out*'))
    dirs = {
        k: str(root / Path(v).relative_to(fake['root']))
        for k, v in fake['dirs'].items()
    }
    for key, rel in drop:
        path = Path(dirs[key]) / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for s in (0, 1):
        (Path(dirs['cg']) / f'seed{s}' / 'baseline' /
         'final.txt').write_text(f'/ckpt/base{s}.pth')
    stub = _StubAblation(NAMES)
    monkeypatch.setattr(tool.Results, 'runner', lambda self: stub)
    return root, dirs, stub


def test_pipeline_orchestration(fake, tmp_path, monkeypatch):
    # IG-CAM seed 1 lacks a row: its driver must run, CamGuide's not
    root, dirs, stub = _tree_copy(
        fake, tmp_path, monkeypatch,
        [('res', 'seed0/labels'), ('ig', 'seed1/row2/threshold_sweep.json')])
    out = tmp_path / 'out'
    summary = tool.main([
        '--seeds', '0', '1', '--work-dir', dirs['res'], '--out-dir',
        str(out), '--camguide-dir', dirs['cg'], '--igcam-dir', dirs['ig'],
        '--data-root',
        str(root / 'data'), '--grid-tile', '32', '--seg-iters', '7'
    ])
    calls = stub.demo.calls
    drivers = [c for c in calls if c[0] == 'run']
    assert len(drivers) == 1 and drivers[0][1] == 'IG-CAM ablation'
    cmd = drivers[0][2]
    assert cmd[0] == sys.executable
    assert cmd[1].endswith('igcam_ablation.py')
    assert cmd[cmd.index('--seeds') + 1:cmd.index('--seeds') + 3] == \
        ['0', '1']
    assert cmd[cmd.index('--work-dir') + 1] == dirs['ig']
    # baseline DenseCRF only for seed 1 (seed 0 has it), at its best thr
    assert len(stub.crf_calls) == 1
    cfg, ckpt, scores, thr, work = stub.crf_calls[0]
    assert ckpt == '/ckpt/base1.pth' and thr == 0.25
    assert work == dirs['res'] + '/seed1/baseline_crf'
    assert scores == dirs['cg'] + '/seed1/baseline/seeds/scores'
    # seed 0: class-wise seeds written and re-scored; seed 1: the new
    # baseline CRF labels (0.99) win
    trains = [c for c in calls if c[0] == 'train']
    assert [
        Path(c[1]).name for c in trains
    ] == [Path(tool.DEMO.SEG_CONFIG).name,
          Path(tool.DEMO.GT_CONFIG).name] * 2
    lab0 = Path(dirs['res']) / 'seed0' / 'labels' / tool.slug(
        dict(method='camguide', row=CAMGUIDE_BEST, refinement='classwise'))
    lab1 = Path(dirs['res']) / 'seed1' / 'baseline_crf' / 'pseudo_labels_crf'
    for (_, _, work, extra), seed, lab in ((trains[0], 0, lab0), (trains[2], 1,
                                                                  lab1)):
        assert f'randomness.seed={seed}' in extra
        assert 'train_cfg.max_iters=7' in extra
        assert f'model.backbone.init_cfg.checkpoint=/ckpt/base{seed}.pth' \
            in extra
        assert ('train_dataloader.dataset.data_prefix.seg_map_path='
                f'{lab}') in extra
    assert not any('seg_map_path' in e for e in trains[1][3])
    # the re-scored mIoU of the written labels (IoUMetric convention)
    thr = [0.0 if t is None else t for t in THR_VEC]
    inter = np.zeros(NCLS)
    union = np.zeros(NCLS)
    for n in NAMES:
        with Image.open(lab0 / f'{n}.png') as im:
            got = np.asarray(im)
        pred = _brute_seed(fake['scores'][n], fake['img_labels'][n], thr)
        np.testing.assert_array_equal(got, pred)
        gt = fake['gts'][n]
        valid = gt != 255
        for c in range(NCLS):
            p, g = (pred == c) & valid, (gt == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    miou = np.mean(inter[union > 0] / union[union > 0])
    finals = {f['seed']: f for f in summary['finals']}
    assert finals[0]['pseudo_miou'] == pytest.approx(miou)
    assert finals[1]['best']['method'] == 'baseline'
    assert finals[1]['pseudo_miou'] == pytest.approx(0.99)
    assert finals[0]['final_miou'] == pytest.approx(0.40)
    assert finals[1]['gap'] == pytest.approx(0.10)


def test_skip_drivers_selects_among_present_rows(fake, report, tmp_path,
                                                 monkeypatch):
    """``--skip-drivers`` runs no driver, and says when a carried row (no
    folder here, so no labels to train on) had scored higher."""
    # the previous best of seed 0 is gone from the folders; a missing IG-CAM
    # row would make the driver run without --skip-drivers
    root, dirs, stub = _tree_copy(
        fake, tmp_path, monkeypatch,
        [('cg', 'seed0/stage3_2'), ('ig', 'seed1/row2/threshold_sweep.json')])
    summary = tool.main([
        '--skip-drivers', '--seeds', '0', '1', '--work-dir', dirs['res'],
        '--out-dir',
        str(tmp_path / 'out'), '--previous',
        str(report['out'] / 'results.json'), '--camguide-dir', dirs['cg'],
        '--igcam-dir', dirs['ig'], '--data-root',
        str(root / 'data'), '--grid-tile', '32', '--seg-iters', '7'
    ])
    assert not [c for c in stub.demo.calls if c[0] == 'run']
    finals = {f['seed']: f for f in summary['finals']}
    assert finals[0]['best']['row'] != CAMGUIDE_BEST
    assert len([c for c in stub.demo.calls if c[0] == 'train']) == 4
    notes = '\n'.join(summary['notes'])
    assert 'seed 0: selected' in notes and CAMGUIDE_BEST in notes
    assert 'seed 1: selected' not in notes
