# Copyright (c) mmwsss contributors.
"""The results tools are parsers over ``mmwsss.experiments.cli``.

Their options (``--seeds``, ``--rows``/``--only``, ``--skip-rw``,
``--report-only``, ``--skip-drivers``, ``--iters-scale``/``--limit``) are
exercised on the fake repository with faked tools.
"""
import importlib.util
import json
import os.path as osp
import sys
from pathlib import Path

import pytest
from wsss_fakes import FakeStages

from mmwsss.experiments.cli import run
from mmwsss.experiments.runner import GT_CONFIG, SEG_CONFIG

REPO = Path(__file__).resolve().parents[2]


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        name, REPO / 'tools' / 'analysis_tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


RESULTS = _tool('wsss_results')
IGCAM = _tool('igcam_ablation')
CAMGUIDE = _tool('camguide_ablation')


def _args(tool, tmp_path, *argv):
    # never the repository's own docs/ or work_dirs/
    return tool.parse_args([
        '--work-dir',
        str(tmp_path / 'work'), '--data-root',
        str(tmp_path / 'data'), '--out-dir',
        str(tmp_path / 'out'), '--num-train', '4', '--num-val', '2',
        '--img-size', '16', '--workers', '1', '--no-params', '--grid-tile',
        '16', '--seg-config',
        str(REPO / SEG_CONFIG), '--gt-config',
        str(REPO / GT_CONFIG), *argv
    ])


def _run(tool, repo, tmp_path, *argv, table=None):
    args = _args(tool, tmp_path, *argv)
    stages = FakeStages(data_meta=args.data.meta)
    summary = run(args, [table] if table else None, 'cmd', repo, stages)
    return args, stages, summary


def _trained(stages):
    return [osp.basename(c[1][2])[:-3] for c in stages.commands('train.py')]


def test_defaults():
    args = RESULTS.parse_args([])
    version = args.data.resolved_version()
    assert args.seeds == [100, 101, 102]
    assert args.out_dir == str(REPO / f'docs/en/_static/results/v{version}')
    assert args.work_dir == str(REPO / f'work_dirs/results/v{version}')
    assert args.data_root == str(REPO / f'data/demo_results/v{version}')
    assert not args.skip_final
    ig = IGCAM.parse_args(['--generator-version', '1.0'])
    assert ig.skip_final and ig.out_dir == str(
        REPO / 'work_dirs/results/v1.0/report-igcam')
    assert not IGCAM.parse_args(['--final']).skip_final
    with pytest.raises(SystemExit):
        RESULTS.parse_args(['--seeds', '1', '1'])
    # a smoke run never writes into the documented results
    with pytest.raises(SystemExit):
        RESULTS.parse_args(['--limit', '4'])
    assert RESULTS.parse_args(['--limit', '4', '--out-dir', '/tmp/x']).limit
    assert IGCAM.parse_args(['--iters-scale', '0.1']).iters_scale == 0.1


def test_camguide_only_and_skip_rw(fake_repo, tmp_path):
    args, stages, summary = _run(
        CAMGUIDE, fake_repo, tmp_path, '--seeds', '100', '--only',
        'teacher', table='camguide')
    assert _trained(stages) == ['base', 'teacher']
    assert not stages.commands('generate_proposals.py')  # no IG-CAM row
    tables = (Path(args.out_dir) / 'table_camguide.md').read_text()
    assert '| CamGuide | Teacher |' in tables
    assert 'IG-CAM' not in (Path(args.out_dir) / 'results.md').read_text()
    args, stages, _ = _run(CAMGUIDE, fake_repo, tmp_path, '--seeds', '100',
                           '--skip-rw', table='camguide')
    # the teacher is kept; stages 1 and 2 of Our* are trained, no walk
    assert _trained(stages) == ['s1', 's2']
    assert not stages.commands('make_affinity_labels.py')


def test_igcam_smoke_then_report_only(fake_repo, tmp_path):
    args, stages, summary = _run(
        IGCAM, fake_repo, tmp_path, '--seeds', '100', '--rows', '+Inst',
        '--iters-scale', '0.5', '--limit', '2', table='igcam')
    assert _trained(stages) == ['base', 'inst']
    for c in stages.commands('train.py'):
        assert 'train_cfg.max_iters=5' in c[1]
    # every IG-CAM row is reported, the ones not run without runs
    assert [(r['row'], len(r['runs'])) for r in summary['rows']] == [
        ('CAM baseline', 1), ('+Inst', 1), ('+Inst +MS', 0),
        ('+CRF (InfluenceCRF)', 0)
    ]
    assert 'seed 100: SMOKE numbers' in '\n'.join(summary['notes'])
    # --report-only runs nothing and reads the same numbers
    args2, stages2, summary2 = _run(
        IGCAM, fake_repo, tmp_path, '--seeds', '100', '--rows', '+Inst',
        '--report-only', table='igcam')
    assert stages2.calls == []
    assert summary2['rows'] == summary['rows']


def test_results_skip_drivers(fake_repo, tmp_path):
    _run(RESULTS, fake_repo, tmp_path, '--seeds', '100', '--rows', 'inst',
         '--skip-final')
    args, stages, summary = _run(RESULTS, fake_repo, tmp_path, '--seeds',
                                 '100', '--skip-drivers')
    # no row trained; the final models on the best of the finished rows
    assert _trained(stages) == [
        'deeplabv3plus_effl0-d16_1xb16-800it_demo-pseudo-128x128',
        'deeplabv3plus_effl0-d16_1xb16-800it_demo-gt-128x128'
    ]
    final = json.loads(
        (tmp_path / 'work' / 'seed100' / 'final.json').read_text())
    assert final['best']['table'] in ('baseline', 'igcam')
    notes = '\n'.join(summary['notes'])
    assert 'seed 100: no result yet for' in notes and 'CamGuide' in notes


def test_search_rows_need_dev_seeds(tmp_path, capsys):
    """--search loads the _search_ rows, and only with dev seeds."""
    with pytest.raises(SystemExit):
        _args(IGCAM, tmp_path, '--search', '--seeds', '0', '100')
    assert '--search tunes hyper-parameters' in capsys.readouterr().err
    args = _args(IGCAM, tmp_path, '--search', '--seeds', '0', '1')
    assert args.search
    from mmwsss.experiments.rows import load_rows
    plain = {r.config for r in load_rows(str(REPO))}
    both = {r.config for r in load_rows(str(REPO), search=True)}
    assert plain < both
    assert all('/_search_/' in c for c in both - plain)
