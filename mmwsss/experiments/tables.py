# Copyright (c) mmwsss contributors.
"""Tables of the demo results: mean ± std, paired differences, "helps".

The unit of a seed is the *dataset* seed (different scenes; the training
``randomness.seed`` equals it). Every figure of a row is reported as the
mean ± sample std (``ddof=1``) over the seeds, and the row is compared with
the CAM baseline and with its parent row **seed by seed** (paired
differences: the same scenes for both rows).

The "helps" rule (:data:`HELPS_RULE`): a row helps only when its paired
difference to the baseline is positive on every reported seed, and at least
:data:`MIN_HELPS_SEEDS` seeds are reported. The difference is taken on the
row's *primary* figure (:func:`primary_key`): the seed mIoU at the best
global background threshold for a row that makes its own CAMs, and the
refined labels' mIoU (compared with the baseline + DenseCRF) for a
post-processing row whose seeds are its parent's.

Numbers are fractions in ``[0, 1]`` in the data and percent in the tables.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .rows import RANDOM_WALK, RowSpec, table_title

#: Dataset seeds used to choose thresholds and hyper-parameters.
DEV_SEEDS = (0, 1, 2)
#: Dataset seeds that nothing is tuned on: every reported table.
HELD_OUT_SEEDS = (100, 101, 102)
#: Fewest seeds on which "helps" can be claimed.
MIN_HELPS_SEEDS = 3
#: The per-run figures of a row (fractions).
KEYS = ('miou_global', 'miou_classwise', 'crf', 'val_miou')
KEY_TITLES = {
    'miou_global': 'seed, global thr',
    'miou_classwise': 'seed, class-wise thr',
    'crf': '+ CRF',
    'val_miou': 'val, tools/test.py',
}
HELPS_MARK = '**yes**'

HELPS_RULE = (
    'A row **helps** only when its paired difference to the CAM baseline '
    'is positive on every one of the (at least 3) held-out dataset seeds, '
    'seed by seed on the same scenes; the difference is on the seed mIoU at '
    'the best global threshold, or, for a post-processing row that reuses '
    'its parent\'s seeds, on its refined labels against the baseline + '
    'DenseCRF. Differences are listed seed by seed in percentage points '
    '(first seed first); "?" marks a seed without both numbers. Thresholds '
    'and hyper-parameters were chosen on the dev seeds '
    f'{" ".join(map(str, DEV_SEEDS))}; the background threshold of every '
    'seed is still swept on its own train split (the VOC protocol).')


def mean_std(vals: Sequence[Optional[float]]) -> str:
    """``'m ± s'`` in percent over the runs (sample std), ``'-'`` if none.

    Args:
        vals (Sequence[float | None]): Fractions; None is skipped.

    Returns:
        str: One decimal; a single value is shown alone.
    """
    vals = [100 * float(v) for v in vals if v is not None]
    if not vals:
        return '-'
    if len(vals) == 1:
        return f'{vals[0]:.1f}'
    return f'{np.mean(vals):.1f} ± {np.std(vals, ddof=1):.1f}'


def pct(x: Optional[float]) -> str:
    """A fraction in percent with one decimal (``'-'`` for None)."""
    return '-' if x is None else f'{100 * x:.1f}'


def signed(x: Optional[float]) -> str:
    """A difference of fractions in signed percentage points."""
    return '?' if x is None else f'{100 * x:+.1f}'


def primary_key(spec: RowSpec) -> str:
    """The figure a row is judged on (see the module docstring)."""
    if spec.refine is not None and spec.refine != RANDOM_WALK:
        return 'crf'
    return 'miou_global'


def paired_diffs(runs: Dict, ref_runs: Dict, key: str,
                 seeds: Sequence[int]) -> List[Optional[float]]:
    """``run[key] - ref[key]`` seed by seed (None where one is missing).

    Args:
        runs (dict): ``{seed: run}`` of the row.
        ref_runs (dict): ``{seed: run}`` of the reference row.
        key (str): One of :data:`KEYS`.
        seeds (Sequence[int]): The seeds, in report order.

    Returns:
        list: One difference (fraction) or None per seed.
    """
    out: List[Optional[float]] = []
    for s in seeds:
        a = (runs.get(s) or {}).get(key)
        b = (ref_runs.get(s) or {}).get(key)
        out.append(None if a is None or b is None else float(a) - float(b))
    return out


def helps(diffs: Sequence[Optional[float]]) -> Optional[bool]:
    """The "helps" rule on paired differences.

    Args:
        diffs (Sequence[float | None]): From :func:`paired_diffs`, one per
            reported seed.

    Returns:
        bool | None: True when every difference is known and positive and
        there are at least :data:`MIN_HELPS_SEEDS`; None when that cannot
        be decided (too few seeds, a seed missing) without a negative one;
        False otherwise.
    """
    known = [d for d in diffs if d is not None]
    if known and any(d <= 0 for d in known):
        return False
    if len(diffs) < MIN_HELPS_SEEDS or len(known) < len(diffs):
        return None
    return True


def fmt_diffs(diffs: Sequence[Optional[float]]) -> str:
    """``'+2.1 / +0.4 / -0.3'`` (percentage points), ``'-'`` if none."""
    if not diffs or all(d is None for d in diffs):
        return '-'
    return ' / '.join(signed(d) for d in diffs)


def row_stats(runs: Dict) -> dict:
    """Values and mean / sample std (fractions) of one row's figures.

    Args:
        runs (dict): ``{seed: run}``.

    Returns:
        dict: ``n``, ``seeds`` and, per key of :data:`KEYS`, ``values``,
        ``mean`` and ``std`` (None with fewer than 2 values).
    """
    seeds = sorted(runs)
    out: dict = dict(n=len(seeds), seeds=list(seeds))
    for key in KEYS:
        vals = [
            float(runs[s][key]) for s in seeds
            if runs[s].get(key) is not None
        ]
        out[key] = dict(
            values=vals,
            mean=float(np.mean(vals)) if vals else None,
            std=float(np.std(vals, ddof=1)) if len(vals) > 1 else None)
    return out


def _cell(runs: Dict, key: str, n: int) -> str:
    vals = [r.get(key) for r in runs.values()]
    have = [v for v in vals if v is not None]
    text = mean_std(have)
    if have and len(have) != n:
        text += f' (n={len(have)})'
    return text


def compare(results: Dict[Tuple[str, str], dict],
            seeds: Sequence[int]) -> Dict[Tuple[str, str], dict]:
    """Paired differences and the "helps" verdict of every row.

    Args:
        results (dict): ``{(table, name): {'spec': RowSpec, 'runs':
            {seed: run}}}`` in table order.
        seeds (Sequence[int]): The reported seeds.

    Returns:
        dict: Per row ``key`` (the primary figure), ``vs_baseline`` and
        ``vs_parent`` (differences per seed, None for the baseline or a
        missing parent) and ``helps``.
    """
    base = next((r for r in results.values() if r['spec'].is_baseline),
                None)
    by_cfg = {r['spec'].config: r for r in results.values()}
    out = {}
    for ident, row in results.items():
        spec = row['spec']
        key = primary_key(spec)
        res: dict = dict(key=key, vs_baseline=None, vs_parent=None,
                         helps=None)
        if not spec.is_baseline and base is not None:
            res['vs_baseline'] = paired_diffs(row['runs'], base['runs'], key,
                                              seeds)
            res['helps'] = helps(res['vs_baseline'])
            parent = by_cfg.get(spec.parent)
            if parent is not None:
                res['vs_parent'] = paired_diffs(row['runs'], parent['runs'],
                                                key, seeds)
        out[ident] = res
    return out


def ablation_table(results: Dict[Tuple[str, str], dict],
                   tables: Sequence[str], seeds: Sequence[int]) -> str:
    """Markdown table of the rows of ``tables`` (the baseline included).

    Columns: method, row, parameters, images seen beyond the shared
    budget, n, the four figures as mean ± std, the paired differences of
    the primary figure to the baseline and to the parent row (seed by seed)
    and the "helps" verdict.

    Args:
        results (dict): See :func:`compare`; rows may carry ``params_m``.
        tables (Sequence[str]): Tables to show.
        seeds (Sequence[int]): The reported seeds, in order.

    Returns:
        str: The table.
    """
    cmp = compare(results, seeds)
    lines = [
        '| method | row | params (M) | extra images | n | '
        + ' | '.join(KEY_TITLES[k] for k in KEYS) +
        ' | Δ vs baseline (per seed) | Δ vs parent (per seed) | helps |',
        '|' + '---|' * 12
    ]
    for ident, row in results.items():
        spec = row['spec']
        if spec.table not in tables and not spec.is_baseline:
            continue
        runs = row['runs']
        n = len(runs)
        cells = [_cell(runs, k, n) for k in KEYS]
        if primary_key(spec) == 'crf' and cells[2] != '-':
            cells[2] += f' ({spec.refine})'
        c = cmp[ident]
        if spec.is_baseline:
            vs_b = vs_p = verdict = '-'
        else:
            what = '' if c['key'] == 'miou_global' else ' (+ CRF)'
            vs_b = fmt_diffs(c['vs_baseline']) + (
                what if c['vs_baseline'] and any(
                    d is not None for d in c['vs_baseline']) else '')
            vs_p = fmt_diffs(c['vs_parent'] or [])
            verdict = {True: HELPS_MARK, False: 'no', None: '?'}[c['helps']]
        params = row.get('params_m')
        params = '-' if params is None else f'{params:.2f}'
        extra = f'{spec.extra_images:,}' if spec.extra_images else '0'
        lines.append(f'| {table_title(spec.table)} | {md_cell(spec.title)} | '
                     f'{params} | {extra} | {n} | ' + ' | '.join(cells) +
                     f' | {vs_b} | {vs_p} | {verdict} |')
    return '\n'.join(lines)


def md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (``|`` escaped, e.g. in
    the row name ``+|CAM| map (control)``)."""
    return str(text).replace('\\|', '|').replace('|', '\\|')


def final_table(finals: Sequence[dict]) -> str:
    """Markdown table of the final model and the upper bound per seed.

    Args:
        finals (Sequence[dict]): ``seed``, ``best`` (``title`` of the chosen
            pseudo-labels), ``pseudo_miou``, ``final_miou``, ``upper_miou``.

    Returns:
        str: One line per seed, then mean ± std and what was chosen.
    """
    lines = [
        '| seed | best pseudo-labels | pseudo-mask (train) | '
        'final model (val) | upper bound (val) | final / upper bound | '
        'final - pseudo-mask |', '|---|---|---|---|---|---|---|'
    ]

    def ratio(f):
        if f.get('final_miou') is None or not f.get('upper_miou'):
            return None
        return f['final_miou'] / f['upper_miou']

    def learned(f):
        if f.get('final_miou') is None or f.get('pseudo_miou') is None:
            return None
        return f['final_miou'] - f['pseudo_miou']

    for f in finals:
        best = md_cell(f['best']['title']) if f.get('best') else '-'
        r, d = ratio(f), learned(f)
        lines.append(f'| {f["seed"]} | {best} | {pct(f.get("pseudo_miou"))}'
                     f' | {pct(f.get("final_miou"))} | '
                     f'{pct(f.get("upper_miou"))} | '
                     f'{"-" if r is None else f"{100 * r:.0f}%"} | '
                     f'{"-" if d is None else signed(d)} |')
    if len(finals) > 1:
        counts: Dict[str, int] = {}
        for f in finals:
            if f.get('best'):
                k = f['best']['title']
                counts[k] = counts.get(k, 0) + 1
        chosen = '; '.join(f'{md_cell(k)} x{v}'
                           for k, v in counts.items()) or '-'
        cols = [
            mean_std([f.get(k) for f in finals])
            for k in ('pseudo_miou', 'final_miou', 'upper_miou')
        ]
        ratios = [ratio(f) for f in finals if ratio(f) is not None]
        diffs = [learned(f) for f in finals if learned(f) is not None]
        lines.append(
            f'| mean ± std | {chosen} | ' + ' | '.join(cols) + ' | ' +
            (f'{100 * np.mean(ratios):.0f}%' if ratios else '-') + ' | ' +
            (signed(float(np.mean(diffs))) if diffs else '-') + ' |')
    return '\n'.join(lines)
