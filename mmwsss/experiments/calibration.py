# Copyright (c) mmwsss contributors.
"""Calibration of the demo bed (issue #17): knob sets against the targets.

A calibration run is ``tools/run_demo.py`` with one set of generator knobs
(``--generator-version``, ``--difficulty``) and schedule options on one
dataset seed; it writes ``demo_results.json``. This module gathers those
files from ``ROOT/<setting>/s<seed>/demo_results.json`` (and the
``calibration.json`` that ``tools/analysis_tools/demo_calibration.py``
writes next to each setting, holding its knobs), and checks the six
figures of the issue against their targets:

- fully supervised upper bound (val) >= 70 mIoU;
- CAM seeds (train, best global threshold) in [35, 60] and at most 75% of
  the upper bound;
- DenseCRF adds +2 to +10 over the seeds;
- the final model on the CRF pseudo-labels (val) >= their train mIoU - 3;
- the std over seeds of each figure <= 1.5;
- ``make demo`` wall time <= 30 min.
"""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

#: figure key -> (title, key in demo_results.json)
FIGURES = {
    'upper': ('upper bound (val)', 'upper_bound_miou'),
    'seeds': ('CAM seeds (train, best global thr)', 'seed_miou_best_global'),
    'crf': ('+ DenseCRF (train)', 'crf_miou'),
    'final': ('final on CRF labels (val)', 'final_miou'),
}

TARGETS = {
    'upper_min': 70.0,
    'seeds_range': (35.0, 60.0),
    'seeds_over_upper_max': 0.75,
    'crf_gain_range': (2.0, 10.0),
    'final_minus_crf_min': -3.0,
    'std_max': 1.5,
    'minutes_max': 30.0,
}


def read_runs(root: str) -> Dict[str, Dict[int, dict]]:
    """``{setting: {seed: demo_results}}`` of every finished run under root.

    Figures are converted to percent.
    """
    out: Dict[str, Dict[int, dict]] = {}
    for path in sorted(glob.glob(osp.join(root, '*', 's*',
                                          'demo_results.json'))):
        setting = osp.basename(osp.dirname(osp.dirname(path)))
        seed_dir = osp.basename(osp.dirname(path))
        try:
            seed = int(seed_dir[1:])
        except ValueError:
            continue
        with open(path, encoding='utf-8') as f:
            res = json.load(f)
        row = {}
        for key, (_, name) in FIGURES.items():
            val = res.get(name)
            row[key] = None if val is None else 100.0 * float(val)
        row['thr'] = res.get('best_global_thr')
        row['minutes'] = float(res.get('total_seconds', 0.0)) / 60.0
        row['stage_seconds'] = res.get('stage_seconds', {})
        out.setdefault(setting, {})[seed] = row
    return out


def summarise(runs: Dict[int, dict]) -> dict:
    """Mean and sample std of every figure over a setting's seeds, and the
    pass/fail of each target (None where a figure is missing)."""

    def stat(key):
        vals = [r[key] for r in runs.values() if r.get(key) is not None]
        if not vals:
            return None, None, 0
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        return float(np.mean(vals)), std, len(vals)

    s = {k: stat(k) for k in (*FIGURES, 'minutes')}
    gains = [
        r['crf'] - r['seeds'] for r in runs.values()
        if r.get('crf') is not None and r.get('seeds') is not None
    ]
    fin = [
        r['final'] - r['crf'] for r in runs.values()
        if r.get('final') is not None and r.get('crf') is not None
    ]
    ratio = [
        r['seeds'] / r['upper'] for r in runs.values()
        if r.get('upper') and r.get('seeds') is not None
    ]
    t = TARGETS
    checks = {}
    up = s['upper'][0]
    checks['upper'] = None if up is None else up >= t['upper_min']
    sd = s['seeds'][0]
    checks['seeds'] = None if sd is None else (
        t['seeds_range'][0] <= sd <= t['seeds_range'][1])
    checks['seeds/upper'] = None if not ratio else max(
        ratio) <= t['seeds_over_upper_max']
    checks['crf gain'] = None if not gains else all(
        t['crf_gain_range'][0] <= g <= t['crf_gain_range'][1] for g in gains)
    checks['final - crf'] = None if not fin else min(
        fin) >= t['final_minus_crf_min']
    stds = [v[1] for k, v in s.items() if k != 'minutes' and v[1] is not None]
    checks['std'] = None if not stds else max(stds) <= t['std_max']
    checks['minutes'] = None if s['minutes'][0] is None else (
        s['minutes'][0] <= t['minutes_max'])
    return dict(
        stats=s,
        crf_gain=(float(np.mean(gains)) if gains else None),
        final_minus_crf=(float(np.mean(fin)) if fin else None),
        seeds_over_upper=(float(np.mean(ratio)) if ratio else None),
        checks=checks,
        seeds=sorted(runs))


def _fmt(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return '-'
    return f'{mean:.1f}' + ('' if std is None else f' ± {std:.1f}')


def _summary_cells(s: dict) -> List[str]:
    """Mean ± std cells of a :func:`summarise` result: upper bound, seeds,
    + CRF (gain), final (- CRF) and seeds / upper."""
    st = s['stats']
    gain = '' if s['crf_gain'] is None else f' ({s["crf_gain"]:+.1f})'
    fin = ('' if s['final_minus_crf'] is None else
           f' ({s["final_minus_crf"]:+.1f})')
    ratio = ('-' if s['seeds_over_upper'] is None else
             f'{100 * s["seeds_over_upper"]:.0f}%')
    return [
        _fmt(*st['upper'][:2]),
        _fmt(*st['seeds'][:2]),
        _fmt(*st['crf'][:2]) + gain,
        _fmt(*st['final'][:2]) + fin, ratio
    ]


def _met_failed(checks: Dict[str, Optional[bool]]):
    """Names of the targets met and of those failed (unknown left out)."""
    return ([k for k, v in checks.items() if v],
            [k for k, v in checks.items() if v is False])


def table(root: str,
          knobs: Optional[Dict[str, str]] = None,
          order: Optional[Sequence[str]] = None) -> str:
    """Markdown table: one line per setting with its figures and checks.

    Args:
        root (str): Folder holding ``<setting>/s<seed>/demo_results.json``.
        knobs (dict, optional): ``{setting: description of its knobs}``;
            read from ``ROOT/<setting>/calibration.json`` when missing.
        order (Sequence[str], optional): Settings in this order (others
            after them).
    """
    runs = read_runs(root)
    knobs = dict(knobs or {})
    names = list(order or []) + sorted(set(runs) - set(order or []))
    lines = [
        '| setting | knobs | seeds | upper bound | CAM seeds | + CRF '
        '(gain) | final (- CRF) | seeds / upper | min | targets met |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for name in names:
        if name not in runs:
            continue
        if name not in knobs:
            meta = osp.join(root, name, 'calibration.json')
            if osp.isfile(meta):
                with open(meta, encoding='utf-8') as f:
                    knobs[name] = json.load(f).get('description', '')
        s = summarise(runs[name])
        met, failed = _met_failed(s['checks'])
        verdict = ', '.join(['ok: ' + ' '.join(met)] if met else []) + (
            ('; failed: ' + ' '.join(failed)) if failed else '')
        lines.append(
            f'| {name} | {knobs.get(name, "")} | '
            f'{" ".join(map(str, s["seeds"]))} | ' +
            ' | '.join(_summary_cells(s)) +
            f' | {_fmt(*s["stats"]["minutes"][:2])} | {verdict} |')
    return '\n'.join(lines) + '\n'


def bed_runs(finals: Sequence[dict],
             baseline_runs: Dict[int, dict]) -> Dict[int, dict]:
    """The bed's figures per seed from a results run (percent).

    ``tools/analysis_tools/wsss_results.py`` trains the baseline row and,
    per seed, a final model on the baseline + dCRF labels and the upper
    bound (:meth:`~.runner.ExperimentRunner.final_models`): the same four
    figures as a calibration run, on the reported seeds.

    Args:
        finals (Sequence[dict]): ``final.json`` of each seed (``seed``,
            ``upper_miou``, ``baseline_final``).
        baseline_runs (dict): ``{seed: run}`` of the baseline row
            (``miou_global``, ``crf``).

    Returns:
        dict: ``{seed: row}`` for :func:`summarise` (no ``minutes``).
    """

    def pct(v):
        return None if v is None else 100.0 * float(v)

    out = {}
    for f in finals:
        seed = f['seed']
        run = baseline_runs.get(seed) or {}
        base = f.get('baseline_final') or {}
        out[seed] = dict(
            upper=pct(f.get('upper_miou')),
            seeds=pct(run.get('miou_global')),
            crf=pct(run.get('crf')),
            final=pct(base.get('final_miou')),
            thr=run.get('thr'),
            minutes=None)
    return out


def bed_table(runs: Dict[int, dict]) -> str:
    """Markdown table of the bed's figures per seed, their mean ± std and
    the targets met (:func:`summarise`; wall time is not checked here).

    Args:
        runs (dict): ``{seed: row}`` from :func:`bed_runs`.
    """

    def f1(v):
        return '-' if v is None else f'{v:.1f}'

    def diff(a, b):
        return '' if a is None or b is None else f' ({a - b:+.1f})'

    lines = [
        '| seed | upper bound (val) | CAM seeds (train) | + dCRF (gain) | '
        'final on dCRF labels, val (- labels) | seeds / upper |',
        '|---|---|---|---|---|---|'
    ]
    for seed, r in sorted(runs.items()):
        ratio = '-' if not r.get('upper') or r.get('seeds') is None else \
            f'{100 * r["seeds"] / r["upper"]:.0f}%'
        lines.append(
            f'| {seed} | {f1(r["upper"])} | {f1(r["seeds"])} | '
            f'{f1(r["crf"])}{diff(r["crf"], r["seeds"])} | '
            f'{f1(r["final"])}{diff(r["final"], r["crf"])} | {ratio} |')
    s = summarise(runs)
    lines.append('| mean ± std | ' + ' | '.join(_summary_cells(s)) + ' |')
    met, failed = _met_failed(
        {k: v for k, v in s['checks'].items() if k != 'minutes'})
    lines.append('')
    lines.append('Targets (`mmwsss.experiments.calibration.TARGETS`) met: ' +
                 (', '.join(met) or 'none') +
                 ('; failed: ' + ', '.join(failed) if failed else '') + '.')
    return '\n'.join(lines)


def settings_with_all(root: str, seeds: Sequence[int]) -> List[str]:
    """Settings that have finished every one of ``seeds``."""
    runs = read_runs(root)
    return [k for k, v in sorted(runs.items()) if set(seeds) <= set(v)]
