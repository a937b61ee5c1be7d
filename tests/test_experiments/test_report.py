# Copyright (c) mmwsss contributors.
"""The results report on the outputs of a (faked) run of every row.

Expected cells are computed here with numpy from ``wsss_fakes.VALUES``;
expected label tiles by explicit per-pixel loops.
"""
import glob
import os
import json
import os.path as osp
import shutil

import numpy as np
import pytest
from PIL import Image
from wsss_fakes import (NAMES, PALETTE, SIZE, VALUES, FakeStages,
                        write_configs)

from mmwsss.experiments.plots import check_figures
from mmwsss.experiments.readme import replace_markers
from mmwsss.experiments.report import ReportSettings, write_report
from mmwsss.experiments.rows import load_rows
from mmwsss.experiments.runner import (GT_CONFIG, ROOT, SEG_CONFIG,
                                       DataSpec, ExperimentRunner, Layout,
                                       RunSettings)
from mmwsss.visualization.drawing import HEADER_H, LEGEND_H

SEEDS = [100, 101, 102]
DATA = DataSpec(num_train=4, num_val=2, img_size=16)
README = """# x
<!-- wsss_results:ablation -->
STALE
<!-- /wsss_results:ablation -->
keep me
<!-- wsss_results:figures -->
STALE
<!-- /wsss_results:figures -->
"""


@pytest.fixture(scope='module')
def ran(tmp_path_factory):
    """Every fake row run on 3 seeds, and the report written."""
    tmp = tmp_path_factory.mktemp('report')
    root = write_configs(tmp / 'repo')
    rows = load_rows(root)
    settings = RunSettings(
        work_dir=str(tmp / 'work'),
        data_root=str(tmp / 'data'),
        data=DATA,
        workers=1,
        params=False,
        seg_config=osp.join(ROOT, SEG_CONFIG),
        gt_config=osp.join(ROOT, GT_CONFIG))
    runner = ExperimentRunner(
        rows, rows, settings, FakeStages(data_meta=DATA.meta), root=root)
    runner.run(SEEDS)
    (tmp / 'docs').mkdir()
    readme = tmp / 'docs' / 'README.md'
    readme.write_text(README)
    out = tmp / 'docs' / 'results' / 'v2.0'
    summary = write_report(
        rows,
        ReportSettings(
            out_dir=str(out),
            seeds=SEEDS,
            data=DATA,
            command='make results',
            grid_images=3,
            grid_tile=SIZE,
            readmes=[str(readme)]),
        runner.layout,
        log=lambda m: None)
    return dict(
        tmp=tmp, rows=rows, layout=runner.layout, out=out, summary=summary,
        readme=readme)


def _ms(vals):
    vals = 100 * np.asarray(vals, dtype=np.float64)
    return f'{vals.mean():.1f} ± {vals.std(ddof=1):.1f}'


def _cells(md, title):
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) > 1 and cells[1] == title:
            return cells
    raise AssertionError(f'no row {title} in\n{md}')


def test_tables_match_numpy(ran):
    md = (ran['out'] / 'results.md').read_text()
    base = VALUES['cam-baseline']
    for spec in ran['rows']:
        vals = VALUES[spec.key]
        src = VALUES['inst-ms'] if spec.key == 'crf-influencecrf' else vals
        cells = _cells(md, spec.name)
        assert cells[4] == '3'
        assert cells[5] == _ms([src[s][0] for s in SEEDS])
        assert cells[6] == _ms([src[s][1] for s in SEEDS])
        crf = _ms([vals[s][2] for s in SEEDS])
        assert cells[7] == crf + (' (influence_crf)' if spec.refine ==
                                  'influence_crf' else ''), spec.name
        # val: tools/test.py (faked 30.0) except the random walk rows
        assert cells[8] == ('-' if spec.refine == 'random_walk' else
                            '30.0 ± 0.0')
        if spec.is_baseline:
            assert cells[9:] == ['-', '-', '-']
            continue
        k = 2 if spec.refine == 'influence_crf' else 0
        diffs = [vals[s][k] - base[s][k] for s in SEEDS]
        want = ' / '.join(f'{100 * d:+.1f}' for d in diffs)
        assert cells[9] == want + (' (+ CRF)' if k == 2 else '')
        assert cells[11] == ('**yes**' if all(d > 0 for d in diffs) else
                             'no'), spec.name
    assert _cells(md, 'Our*')[3] == '40'  # extra images, stated
    # per-table fragments hold the baseline and their own rows
    ig = (ran['out'] / 'table_igcam.md').read_text()
    assert '| Baseline | CAM baseline |' in ig and 'CamGuide' not in ig
    assert 'held-out dataset seeds 100 101 102' in md
    assert 'positive on every one' in md


def test_bed_table(ran):
    md = (ran['out'] / 'results.md').read_text()
    bed = md.split('## Demo bed (baseline chain)')[1].split('## Figures')[0]
    base = VALUES['cam-baseline']
    for s in SEEDS:
        seeds, crf = 100 * base[s][0], 100 * base[s][2]
        # faked tools/test.py: upper bound 60.0, final models 40.0
        assert f'| {s} | 60.0 | {seeds:.1f} | {crf:.1f} ' \
            f'({crf - seeds:+.1f}) | 40.0 ({40.0 - crf:+.1f}) | ' \
            f'{100 * seeds / 60:.0f}% |' in bed
    gains = [100 * (base[s][2] - base[s][0]) for s in SEEDS]
    mean = _cells(bed, '60.0 ± 0.0')  # the mean ± std line
    assert mean[2] == _ms([base[s][0] for s in SEEDS])
    assert mean[3] == _ms([base[s][2] for s in SEEDS]) + \
        f' ({np.mean(gains):+.1f})'
    # upper bound 60 < 70 and final - labels < -3 fail; CRF +5 passes
    verdict = bed.strip().splitlines()[-1]
    assert 'failed: upper, final - crf' in verdict, verdict
    assert 'crf gain' in verdict.split('; failed')[0]
    summary = json.loads((ran['out'] / 'results.json').read_text())
    assert summary['bed']['100']['crf'] == pytest.approx(100 * base[100][2])
    assert (ran['out'] / 'table_bed.md').is_file()


def test_results_json_and_figure_manifests(ran):
    summary = json.loads((ran['out'] / 'results.json').read_text())
    assert summary['generator_version'] == DATA.resolved_version()
    assert summary['seeds'] == SEEDS
    assert check_figures(summary) == []
    bars = summary['figures']['bars']
    assert [p['table'] for p in bars['panels']] == ['igcam', 'camguide']
    assert bars['panels'][0]['rows'][0] == ['baseline', 'CAM baseline']
    grid = summary['figures']['grid']
    assert grid['seed'] == 100
    assert [(c['kind'], c.get('table'), c.get('row'), c.get('refinement'))
            for c in grid['columns']] == [
                ('image', None, None, None),
                ('cam', 'baseline', 'CAM baseline', None),
                ('labels', 'baseline', 'CAM baseline', 'crf'),
                ('labels', 'igcam', '+CRF (InfluenceCRF)', 'crf'),
                ('labels', 'camguide', 'Our*', 'classwise'),
                ('gt', None, None, None),
            ]
    # no local paths in the committed file
    text = (ran['out'] / 'results.json').read_text()
    assert str(ran['tmp']) not in text
    # a figure naming a method without results is caught
    bad = json.loads(text)
    bad['rows'] = [r for r in bad['rows'] if r['table'] != 'igcam']
    problems = check_figures(bad)
    assert any('bar chart: panel' in p and 'igcam' in p for p in problems)
    assert any('grid: column igcam' in p for p in problems)


def _colour(label):
    out = np.zeros(label.shape + (3, ), np.uint8)
    for y in range(label.shape[0]):
        for x in range(label.shape[1]):
            out[y, x] = PALETTE[int(label[y, x])]
    return out


def _brute_seed(scores, labels, thr_vec):
    """Per pixel: the best labelled class if its CAM > its threshold."""
    lab = np.zeros(scores.shape[1:], np.int64)
    for y in range(scores.shape[1]):
        for x in range(scores.shape[2]):
            best = None
            for c in sorted(labels):
                if best is None or scores[c, y, x] > scores[best, y, x]:
                    best = c
            if scores[best, y, x] > thr_vec[best]:
                lab[y, x] = best
    return lab


def test_grid_pixels(ran):
    with Image.open(ran['out'] / 'grid.png') as im:
        assert im.size == (6 * SIZE, HEADER_H + 3 * SIZE + LEGEND_H)
        grid = np.asarray(im.convert('RGB'))
    work = ran['tmp'] / 'work' / 'seed100' / 'rows'
    data = ran['tmp'] / 'data' / 'seed100'
    for r, n in enumerate(NAMES[:3]):
        y = HEADER_H + r * SIZE
        tiles = [grid[y:y + SIZE, j * SIZE:(j + 1) * SIZE] for j in range(6)]
        with Image.open(data / 'JPEGImages' / f'{n}.jpg') as im:
            np.testing.assert_array_equal(tiles[0], np.asarray(im))
        assert not (tiles[1] == 128).all()  # a CAM overlay, not n/a
        for j, d in ((2, 'baseline/cam-baseline'),
                     (3, 'igcam/crf-influencecrf')):
            with Image.open(work / d / 'pseudo_labels_crf' / f'{n}.png') \
                    as im:
                np.testing.assert_array_equal(tiles[j],
                                              _colour(np.asarray(im)))
        with np.load(work / 'camguide' / 'our' / 'seeds' / 'scores' /
                     f'{n}.npz') as z:
            want = _brute_seed(z['scores'], [1, 3], [0.0, 0.2, 0.3, 0.4])
        np.testing.assert_array_equal(tiles[4], _colour(want))
        with Image.open(data / 'SegmentationClass' / f'{n}.png') as im:
            np.testing.assert_array_equal(tiles[5], _colour(np.asarray(im)))


def test_readme_markers(ran):
    text = ran['readme'].read_text()
    assert 'keep me' in text and 'STALE' not in text
    assert '| Baseline | CAM baseline |' in text
    assert '](results/v2.0/grid.png)' in text
    assert '](results/v2.0/ablation_bars.png)' in text
    new, done = replace_markers('a\n<!-- wsss_results:x -->\nq\n'
                                '<!-- /wsss_results:x -->\n', {
                                    'x': 'y',
                                    'z': 'w'
                                })
    assert done == ['x'] and new == ('a\n<!-- wsss_results:x -->\ny\n'
                                     '<!-- /wsss_results:x -->\n')


def _report(ran, out, layout, **kw):
    return write_report(
        ran['rows'],
        ReportSettings(
            out_dir=str(out),
            seeds=SEEDS,
            data=DATA,
            command='make results',
            grid_images=2,
            grid_tile=SIZE,
            **kw),
        layout,
        log=lambda m: None)


def test_carried_numbers_and_the_grid(ran, tmp_path):
    """Numbers come back from results.json; pictures never do."""
    prev = str(ran['out'] / 'results.json')
    gone = Layout(str(tmp_path / 'gone'), str(tmp_path / 'nodata'))
    s = _report(ran, tmp_path / 'a', gone, previous=prev)
    want = (ran['out'] / 'table_ablation.md').read_text()
    assert (tmp_path / 'a' / 'table_ablation.md').read_text() == want
    notes = '\n'.join(s['notes'])
    assert 'seed 100: numbers of 7 row(s) carried over' in notes
    assert s['figures']['grid'] is None and 'grid.png not drawn' in notes
    assert check_figures(s) == []
    # the same out dir: its own results.json is the default previous, and
    # its grid (which this machine cannot redraw) is kept
    shutil.copytree(ran['out'], tmp_path / 'b')
    s = _report(ran, tmp_path / 'b', gone)
    assert s['figures']['grid'] == ran['summary']['figures']['grid']
    assert 'kept the previous grid.png' in '\n'.join(s['notes'])
    # the bug of the first results grid: a method whose numbers were
    # carried got a "no results" column. Now it gets none, and a note
    work = tmp_path / 'half'
    shutil.copytree(ran['tmp'] / 'work', work)
    for seed in SEEDS:
        shutil.rmtree(work / f'seed{seed}' / 'rows' / 'igcam')
    half = Layout(str(work), ran['layout'].data_root)
    s = _report(ran, tmp_path / 'c', half, previous=prev)
    cols = [c.get('table') for c in s['figures']['grid']['columns']]
    assert 'igcam' not in cols and 'camguide' in cols
    assert 'IG-CAM has results but no pictures' in '\n'.join(s['notes'])
    assert check_figures(s) == []
    assert [p['table'] for p in s['figures']['bars']['panels']] == [
        'igcam', 'camguide'
    ]
    # without the previous numbers IG-CAM has no result and no panel
    s = _report(ran, tmp_path / 'd', half, use_previous=False)
    assert [p['table'] for p in s['figures']['bars']['panels']] == [
        'camguide'
    ]
    assert 'no result yet for IG-CAM' in '\n'.join(s['notes'])
    with pytest.raises(FileNotFoundError, match='nope.json'):
        _report(ran, tmp_path / 'e', half,
                previous=str(tmp_path / 'nope.json'))
    # before anything ran (e.g. data prepared only): a report naming no
    # method, not an error
    s = _report(ran, tmp_path / 'f', gone, use_previous=False)
    assert s['figures']['bars']['panels'] == [] and check_figures(s) == []
    assert (tmp_path / 'f' / 'ablation_bars.png').is_file()
    assert 'seed 100: no final model yet' in '\n'.join(s['notes'])


def _committed():
    root = osp.join(ROOT, 'docs', 'en', '_static', 'results')
    out = []
    for d in sorted(glob.glob(osp.join(root, 'v*', 'results.json'))):
        with open(d) as f:
            data = json.load(f)
        if 'figures' in data:  # written by this report (v1.0 predates it)
            out.append(d)
    return out


@pytest.mark.parametrize('path', _committed() or [None])
def test_committed_figures_name_only_methods_with_results(path):
    """The committed report's figures name only methods with results."""
    if path is None:
        pytest.skip('no committed results.json of this report yet (make '
                    'results writes docs/en/_static/results/v2.0)')
    with open(path) as f:
        summary = json.load(f)
    assert check_figures(summary) == []
    grid = summary['figures'].get('grid')
    with_results = {r['table'] for r in summary['rows'] if r['runs']}
    if grid:
        drawn = {c['table'] for c in grid['columns'] if 'table' in c}
        assert drawn == with_results, 'the grid lacks a method with results'


def test_target_quality_curves(ran, tmp_path):
    """TargetQualityHook scalars of a row's training become a figure; a
    resumed run's later value wins; carried numbers keep the old PNG."""
    from mmwsss.experiments.plots import read_target_quality
    work = tmp_path / 'work'
    shutil.copytree(ran['tmp'] / 'work', work)
    layout = Layout(str(work), ran['layout'].data_root)
    spec = [r for r in ran['rows'] if r.name == 'Our*'][0]
    for seed, shift in ((100, 0.0), (101, 2.0)):
        model = layout.model(seed, spec.config)
        for stamp, steps in (('20260101_000000', (0, 50)),
                             ('20260102_000000', (50, 100))):
            d = osp.join(model, stamp, 'vis_data')
            os.makedirs(d, exist_ok=True)
            with open(osp.join(d, 'scalars.json'), 'w') as f:
                f.write(json.dumps(dict(lr=0.1, step=steps[0])) + '\n')
                for t in steps:
                    # the second (resumed) run logs step 50 as 31 + shift
                    cam = 30.0 + t / 50 + (1.0 if stamp.endswith('2_000000')
                                           and t == 50 else 0.0) + shift
                    f.write(json.dumps({
                        'target_quality/cam_miou': cam,
                        'target_quality/crf_miou': cam + 5,
                        'target_quality/rw_miou': cam - 5,
                        'target_quality/influence_auc': 70.0 + t / 10,
                        'target_quality/other_scalar': 1.0,
                        'step': t}) + '\n')
    c = read_target_quality(layout.model(100, spec.config))
    assert c['cam'] == [(0, 30.0), (50, 32.0), (100, 32.0)]
    assert c['crf'][1] == (50, 37.0) and c['rw'][2] == (100, 27.0)
    # AUCs keep their suffix; other target_quality scalars are not curves
    assert c['influence_auc'] == [(0, 70.0), (50, 75.0), (100, 80.0)]
    assert set(c) == {'cam', 'crf', 'rw', 'influence_auc'}
    s = _report(ran, tmp_path / 'out', layout, use_previous=False)
    tq = s['figures']['target_quality']
    assert tq['rows'] == [['camguide', 'Our*']] and tq['seeds'] == [100, 101]
    assert (tmp_path / 'out' / 'target_quality.png').is_file()
    assert check_figures(s) == []
    md = (tmp_path / 'out' / 'results.md').read_text()
    assert 'target_quality.png' in md
    # numbers carried, logs gone: the previous curves stay
    gone = Layout(str(tmp_path / 'gone'), str(tmp_path / 'nodata'))
    s2 = _report(ran, tmp_path / 'out', gone)
    assert s2['figures']['target_quality'] == tq
    assert 'kept the previous target_quality.png' in '\n'.join(s2['notes'])
    # a manifest naming a row without results is a problem
    bad = dict(s, figures=dict(s['figures'], target_quality=dict(
        rows=[['camguide', 'nope']])))
    assert check_figures(bad) == [
        "target quality: row camguide 'nope' has no result"]


def test_report_names_files_that_exist():
    """Every repository path the report's prose names exists."""
    import re

    import mmwsss.experiments.report as report
    with open(report.__file__) as f:
        text = f.read()
    paths = set(re.findall(r'`((?:tests|tools|configs|mmwsss)/[^`\s]+)`',
                           text))
    assert paths, 'the report names no file'
    missing = [p for p in sorted(paths) if not osp.exists(osp.join(ROOT, p))]
    assert not missing, f'the report names missing files: {missing}'
