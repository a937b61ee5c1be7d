# Copyright (c) mmwsss contributors.
"""Tables: mean ± std, paired differences and the "helps" rule.

Expected cells are computed here with numpy from the numbers given.
"""
from collections import OrderedDict

import numpy as np
import pytest

from mmwsss.experiments.rows import RowSpec
from mmwsss.experiments.tables import (HELPS_RULE, ablation_table,
                                       final_table, fmt_diffs, helps,
                                       mean_std, paired_diffs, primary_key)

SEEDS = [100, 101, 102]


def _ms(vals):
    vals = 100 * np.asarray(vals, dtype=np.float64)
    if len(vals) == 1:
        return f'{vals[0]:.1f}'
    return f'{vals.mean():.1f} ± {vals.std(ddof=1):.1f}'


def _runs(g, crf=None, val=None):
    out = {}
    for i, s in enumerate(SEEDS):
        if g[i] is None:
            continue
        out[s] = dict(
            seed=s,
            miou_global=g[i],
            miou_classwise=g[i] + 0.01,
            crf=None if crf is None else crf[i],
            val_miou=None if val is None else val[i])
    return out


def _row(table, name, parent=None, refine=None, extra=0):
    return RowSpec(
        config=f'configs/{table}/{name}.py',
        table=table,
        name=name,
        parent=None if parent is None else f'configs/{parent}.py',
        refine=refine,
        extra_images=extra)


@pytest.fixture
def results():
    r = OrderedDict()
    base = _row('baseline', 'cam')
    r[base.ident] = dict(
        spec=base, runs=_runs([0.40, 0.42, 0.41], [0.45, 0.47, 0.46],
                              [0.3, 0.31, 0.32]), params_m=2.5)
    a = _row('igcam', 'a', 'baseline/cam')
    r[a.ident] = dict(spec=a, runs=_runs([0.43, 0.425, 0.415]))
    b = _row('igcam', 'b', 'igcam/a')
    r[b.ident] = dict(spec=b, runs=_runs([0.45, 0.41, 0.42]))
    c = _row('igcam', 'c', 'igcam/b', refine='influence_crf')
    r[c.ident] = dict(spec=c, runs=_runs([0.45, 0.41, 0.42],
                                         [0.50, 0.48, 0.47]))
    d = _row('camguide', 'd', 'baseline/cam', extra=16000)
    r[d.ident] = dict(spec=d, runs=_runs([0.5, None, 0.5]))
    return r


def test_mean_std_and_diffs():
    assert mean_std([0.2, 0.25]) == _ms([0.2, 0.25]) == '22.5 ± 3.5'
    assert mean_std([None, 0.3]) == '30.0' and mean_std([]) == '-'
    a = {1: dict(x=0.5), 2: dict(x=0.3), 3: dict(x=0.2)}
    b = {1: dict(x=0.4), 2: dict(x=0.35), 4: dict(x=0.1)}
    d = paired_diffs(a, b, 'x', [1, 2, 3])
    assert d[0] == pytest.approx(0.1) and d[1] == pytest.approx(-0.05)
    assert d[2] is None
    assert fmt_diffs(d) == '+10.0 / -5.0 / ?'
    assert fmt_diffs([None, None]) == '-'


@pytest.mark.parametrize('diffs, want', [
    ([0.01, 0.02, 0.001], True),
    ([0.01, -0.02, 0.03], False),
    ([0.01, 0.0, 0.03], False),  # zero is not positive
    ([0.01, None, 0.03], None),  # a seed missing: undecided
    ([0.01, None, -0.03], False),  # already negative on one seed
    ([0.01, 0.02], None),  # fewer than 3 seeds: cannot claim
])
def test_helps_rule(diffs, want):
    assert helps(diffs) is want


def _cells(md, row):
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if cells[1] == row:
            return cells
    raise AssertionError(f'no row {row} in\n{md}')


def test_ablation_table(results):
    md = ablation_table(results, ['igcam'], SEEDS)
    assert 'CamGuide' not in md and '| Baseline | cam |' in md
    base = _cells(md, 'cam')
    assert base[2:9] == [
        '2.50', '0', '3',
        _ms([0.40, 0.42, 0.41]),
        _ms([0.41, 0.43, 0.42]),
        _ms([0.45, 0.47, 0.46]),
        _ms([0.3, 0.31, 0.32])
    ]
    assert base[9:] == ['-', '-', '-']
    a = _cells(md, 'a')
    want = [100 * (x - y) for x, y in zip([0.43, 0.425, 0.415],
                                          [0.40, 0.42, 0.41])]
    assert a[9] == ' / '.join(f'{v:+.1f}' for v in want)
    assert a[10] == a[9]  # its parent is the baseline
    assert a[11] == '**yes**'
    b = _cells(md, 'b')
    assert b[9] == '+5.0 / -1.0 / +1.0' and b[11] == 'no'
    assert b[10] == '+2.0 / -1.5 / +0.5'  # against a, seed by seed
    # a refine row is judged on its refined labels vs the baseline's CRF
    c = _cells(md, 'c')
    assert primary_key(results[('igcam', 'c')]['spec']) == 'crf'
    assert c[7] == _ms([0.50, 0.48, 0.47]) + ' (influence_crf)'
    assert c[9] == '+5.0 / +1.0 / +1.0 (+ CRF)' and c[11] == '**yes**'
    assert c[10] == '-'  # its parent b has no CRF numbers
    md = ablation_table(results, ['camguide'], SEEDS)
    d = _cells(md, 'd')
    assert d[3] == '16,000' and d[4] == '2'
    assert d[9] == '+10.0 / ? / +9.0' and d[11] == '?'
    assert 'positive on every one' in HELPS_RULE


def test_final_table():
    finals = [
        dict(seed=100, best=dict(title='Baseline cam, +dCRF'),
             pseudo_miou=0.5, final_miou=0.48, upper_miou=0.7),
        dict(seed=101, best=dict(title='Baseline cam, +dCRF'),
             pseudo_miou=0.52, final_miou=0.5, upper_miou=0.72),
        dict(seed=102),
    ]
    md = final_table(finals)
    assert '| 100 | Baseline cam, +dCRF | 50.0 | 48.0 | 70.0 | 69% | -2.0 |' \
        in md
    assert '| 102 | - | - | - | - | - | - |' in md
    mean = [ln for ln in md.splitlines() if ln.startswith('| mean')][0]
    ratio = np.mean([0.48 / 0.7, 0.5 / 0.72])
    assert f'| {_ms([0.5, 0.52])} | {_ms([0.48, 0.5])} | ' \
        f'{_ms([0.7, 0.72])} | {100 * ratio:.0f}% | -2.0 |' in mean
    assert 'x2' in mean


def test_pipe_in_a_row_name_keeps_the_columns(results):
    """``+|CAM| map (control)``: a ``|`` in a name must not add cells."""
    ctrl = _row('igcam', '+|CAM| map (control)', 'igcam/a')
    results[ctrl.ident] = dict(spec=ctrl, runs=_runs([0.44, 0.42, 0.41]))
    lines = ablation_table(results, ['igcam'], SEEDS).splitlines()

    def cells(line):
        # split on unescaped pipes only
        return [c for c in
                line.replace('\\|', '\0').strip('|').split('|')]

    widths = {len(cells(line)) for line in lines}
    assert widths == {12}
    row = [line for line in lines if 'control' in line][0]
    assert '+\\|CAM\\| map (control)' in row
    assert 'a\\|b x2' in final_table([
        dict(seed=100, best=dict(title='a|b'), pseudo_miou=0.5,
             final_miou=0.48, upper_miou=0.7),
        dict(seed=101, best=dict(title='a|b'), pseudo_miou=0.5,
             final_miou=0.48, upper_miou=0.7)
    ])
