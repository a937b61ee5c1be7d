# Copyright (c) mmwsss contributors.
"""Regenerate the demo results: tables, an ablation bar chart, a grid.

One command for issue #6. For every seed of ``--seeds`` it gathers the CAM
baseline, every IG-CAM ablation row and every CamGuide ablation row (seed
mIoU on the train split at the best global and at class-wise background
thresholds, and after CRF), picks the best pseudo-labels, trains the final
DeepLabV3+ on them and the same model on the real masks (upper bound), and
writes to ``--out-dir``:

* ``results.md`` (all tables and figures), ``results.json`` (every number);
* ``table_ablation.md``, ``table_igcam.md``, ``table_camguide.md`` and
  ``table_final.md``: the same tables as fragments for the READMEs
  (``--update-readmes`` pastes them between ``<!-- wsss_results:NAME -->``
  and ``<!-- /wsss_results:NAME -->`` markers, NAME one of ``ablation``,
  ``igcam``, ``camguide``, ``final``, ``figures``);
* ``ablation_bars.png``: one panel per method, bars = rows (mean seed mIoU
  and mean after CRF), error bars = sample std, dots = the seeds;
* ``grid.png``: train images, the baseline CAM, the best IG-CAM and the
  best CamGuide labels of one seed, and the ground truth.

Stages (each skipped when its output exists, so an interrupted run
continues; ``--report-only`` runs none of them and only reads):

1. ``tools/analysis_tools/camguide_ablation.py --seeds ...`` and
   ``tools/analysis_tools/igcam_ablation.py --seeds ...`` as subprocesses
   with this Python (they skip their own finished stages);
2. per seed, DenseCRF (IRN label unary, best global threshold) on the
   baseline CAM seeds, which the CamGuide driver does not refine; the
   baseline CAM is that driver's "Lite0 classification only" row (the
   spine demo's ``cam_effl0-d16`` config trained with
   ``randomness.seed``);
3. per seed, the best pseudo-labels: the row and refinement (seed at the
   global threshold, seed at class-wise thresholds, or CRF) with the
   highest pseudo-mask mIoU on the train split, over the baseline and both
   methods (the shared CamGuide teacher only with ``--include-shared``).
   Selecting on the train-mask mIoU uses the train ground truth, as WSSS
   papers do when they pick their pseudo-labels (and their thresholds);
   the final model is evaluated on the val split, which no selection step
   touches. Seed labels are written from the saved scores and re-scored
   (``mmwsss.evaluation.evaluate_label_dirs``); the table reports the
   mIoU of the labels actually trained on;
4. per seed, ``tools/train.py`` / ``tools/test.py`` of the demo
   DeepLabV3+ on those labels and on the real masks (``randomness.seed``
   = the seed; both initialised from that seed's baseline CAM backbone
   with ``--seg-init cam``, as ``tools/run_demo.py`` does), scored on val.

Per-seed numbers are read from the files the drivers read them from
(``seed<k>/<row>/threshold_sweep.json`` and ``crf_eval.json``): the
drivers' JSON lists its runs in the order of their ``--seeds`` without the
seed, so it is used for the parameter counts and as a cross-check (a run
with a ``seed`` key fills a seed whose folder is gone; a run without one
that no seed folder reproduces is reported as stale). Mean and std are the
drivers' ``mean_std`` (sample std, ``ddof=1``). Missing seeds or rows are
listed in the output, never fatal in ``--report-only``.

The run folders live in ``work_dirs`` and do not outlive the machine, but
``results.json`` is committed with the tables: a seed found in no folder
and no driver JSON is filled from the previous ``results.json`` (``OUT_DIR/
results.json`` or ``--previous``; ``--no-previous`` turns this off), and the
notes name every carried seed. Seeds can so be trained in separate
sessions: e.g. ``igcam_ablation.py --seeds 2`` on a fresh machine, then
``--report-only --seeds 0 1 2``. Carried runs are numbers only (no
pictures, never pseudo-label candidates).

Example::

    python tools/analysis_tools/wsss_results.py --seeds 0 1 2
    python tools/analysis_tools/wsss_results.py --seeds 0 1 2 --report-only
"""
import argparse
import importlib.util
import io
import json
import os
import os.path as osp
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# grid layout of the pictures (header / legend heights in pixels)
from mmwsss.visualization.drawing import HEADER_H, LEGEND_H  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(name: str, rel: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CG = _load('mmwsss_camguide_ablation',
           'tools/analysis_tools/camguide_ablation.py')
IG = _load('mmwsss_igcam_ablation', 'tools/analysis_tools/igcam_ablation.py')
DEMO = _load('mmwsss_run_demo', 'tools/run_demo.py')
mean_std = CG.mean_std

METHODS = ('baseline', 'igcam', 'camguide')
METHOD_TITLES = {
    'baseline': 'Baseline',
    'igcam': 'IG-CAM',
    'camguide': 'CamGuide'
}
REFINEMENTS = ('global', 'classwise', 'crf')
REF_TITLES = {
    'global': 'seed, global thr',
    'classwise': 'seed, class-wise thr'
}
BASELINE_ROW = 'Lite0 classification only'
TEACHER_ROW = 'Lite2 teacher, classification only'
STAGE2_ROW = 'Our* (stages 1+2)'
RW_ROW = 'Our + RW (AffinityNet)'

# above this size the grid is saved with a 256-colour palette
MAX_PNG_BYTES = 400_000
# bar chart size
BAR_FIGSIZE = (13.0, 5.0)
BAR_DPI = 100


@dataclass(frozen=True)
class RowSpec:
    """Where one ablation row keeps its per-seed results.

    Paths are templates with ``{seed}`` and the folders ``{cg}`` (CamGuide
    driver), ``{ig}`` (IG-CAM driver) and ``{res}`` (this script).

    Args:
        method (str): ``'baseline'``, ``'igcam'`` or ``'camguide'``.
        name (str): Row name as in the driver's JSON.
        driver (str): The driver whose JSON holds the row.
        seed_dir (str): Folder with ``threshold_sweep.json`` and
            ``seeds/scores``.
        crf_dir (str, optional): Folder with ``crf_eval.json``.
        crf_labels (str): Label folder inside ``crf_dir``.
        crf_name (str): Name of the refinement in the tables.
        crf_by_driver (bool): The driver writes ``crf_dir`` (else this
            script does).
        seed_candidates (bool): The seed columns are this row's own (False
            where they repeat another row's, e.g. IG-CAM's +CRF).
        shared (bool): One run for all seeds (the CamGuide teacher).
        label (str, optional): Display name (default ``name``).
        val_dir (str, optional): Folder with the ``tools/test.py`` metrics
            of the val split, ``test_metrics.json`` (default ``seed_dir``).
    """
    method: str
    name: str
    driver: str
    seed_dir: str
    crf_dir: Optional[str] = None
    crf_labels: str = 'pseudo_labels_crf'
    crf_name: str = '+dCRF'
    crf_by_driver: bool = True
    seed_candidates: bool = True
    shared: bool = False
    label: Optional[str] = None
    val_dir: Optional[str] = None

    @property
    def title(self) -> str:
        return self.label or self.name


def row_specs() -> List[RowSpec]:
    """Every row, in table order; names and folders as the drivers use.

    Returns:
        list[RowSpec]: Baseline, IG-CAM rows, CamGuide rows.
    """
    specs = [
        RowSpec(
            'baseline',
            BASELINE_ROW,
            'camguide',
            '{cg}/seed{seed}/baseline',
            crf_dir='{res}/seed{seed}/baseline_crf',
            crf_by_driver=False,
            label='CAM (Lite0, classification only)')
    ]
    for i, name in enumerate(IG.ROWS):
        d = f'{{ig}}/seed{{seed}}/row{i}'
        specs.append(RowSpec('igcam', name, 'igcam', d, crf_dir=d))
    infl = f'{{ig}}/seed{{seed}}/row{list(IG.ROWS).index("+Influence")}'
    specs.append(
        RowSpec(
            'igcam',
            IG.CRF_ROW[0],
            'igcam',
            infl,
            crf_dir=infl + '/influence_crf',
            crf_labels='labels',
            crf_name='+InfluenceCRF',
            seed_candidates=False,
            val_dir=infl + '/influence_crf'))
    specs.append(
        RowSpec(
            'camguide', TEACHER_ROW, 'camguide', '{cg}/teacher', shared=True))
    specs.append(
        RowSpec('camguide', STAGE2_ROW, 'camguide', '{cg}/seed{seed}/stage2'))
    for i, name in enumerate(CG.STAGE3_CFGS):
        d = f'{{cg}}/seed{{seed}}/stage3_{i}'
        specs.append(RowSpec('camguide', name, 'camguide', d, crf_dir=d))
    d = '{cg}/seed{seed}/affinity'
    specs.append(RowSpec('camguide', RW_ROW, 'camguide', d, crf_dir=d))
    return specs


def _abs(path: str) -> str:
    """Paths relative to the repository root, as the drivers use them."""
    return path if osp.isabs(path) else osp.join(ROOT, path)


def _fmt(template: str, dirs: Dict[str, str], seed: Optional[int]) -> str:
    return template.format(seed=seed, **dirs)


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f'{path} is not valid JSON: {e}') from e


def read_run(spec: RowSpec, dirs: Dict[str, str],
             seed: Optional[int]) -> Tuple[Optional[dict], List[str]]:
    """Read one row's results of one seed from its folders.

    Args:
        spec (RowSpec): The row.
        dirs (dict): ``cg``, ``ig`` and ``res`` folders.
        seed (int, optional): The seed (ignored for shared rows).

    Returns:
        tuple: The run (``thr``, ``miou_global``, ``miou_classwise``,
        ``thr_vector``, ``scores_dir``, ``crf`` / ``crf_labels_dir`` when
        scored, ``val_miou`` when ``tools/test.py`` ran on the val split)
        or None, and the missing files.
    """
    sd = _fmt(spec.seed_dir, dirs, seed)
    sweep_path = osp.join(sd, 'threshold_sweep.json')
    if not osp.isfile(sweep_path):
        return None, [sweep_path]
    sw = _read_json(sweep_path)
    try:
        run = dict(
            seed=seed,
            thr=float(sw['best_global']['thr']),
            miou_global=float(sw['best_global']['miou']),
            miou_classwise=float(sw['classwise']['miou']),
            thr_vector=sw['classwise'].get('thr_vector'),
            scores_dir=osp.join(sd, 'seeds', 'scores'),
            source='dirs')
    except (KeyError, TypeError) as e:
        raise ValueError(f'{sweep_path} lacks best_global/classwise results '
                         f'({e!r})') from e
    val_path = osp.join(_fmt(spec.val_dir or spec.seed_dir, dirs, seed),
                        'test_metrics.json')
    if osp.isfile(val_path):
        try:
            run['val_miou'] = float(_read_json(val_path)['mIoU']) / 100.0
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f'{val_path} lacks a numeric mIoU ({e!r})') \
                from e
    missing = []
    if spec.crf_dir:
        cd = _fmt(spec.crf_dir, dirs, seed)
        crf_path = osp.join(cd, 'crf_eval.json')
        if osp.isfile(crf_path):
            run['crf'] = float(_read_json(crf_path)['miou'])
            run['crf_labels_dir'] = osp.join(cd, spec.crf_labels)
        else:
            missing.append(crf_path)
    return run, missing


def load_driver_json(path: str) -> Dict[str, dict]:
    """Read a driver's ``*_ablation.json`` in either driver's format.

    The CamGuide driver writes ``{row: {'params_m': p, 'runs': [...]}}``,
    the IG-CAM driver ``{row: [...]}``.

    Args:
        path (str): The JSON file.

    Returns:
        dict: ``{row: {'params_m': float | None, 'runs': list[dict]}}``.
    """
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a JSON object of rows, got '
                         f'{type(data).__name__}')
    out = {}
    for name, val in data.items():
        if isinstance(val, list):
            out[name] = dict(params_m=None, runs=val)
        elif isinstance(val, dict) and isinstance(val.get('runs'), list):
            out[name] = dict(params_m=val.get('params_m'), runs=val['runs'])
        else:
            raise ValueError(f'{path}: row "{name}" is neither a list of '
                             'runs nor an object with "runs"')
        for r in out[name]['runs']:
            if not isinstance(r, dict) or 'miou_global' not in r:
                raise ValueError(f'{path}: row "{name}" has a run without '
                                 'miou_global')
    return out


def _same(a: dict, b: dict) -> bool:
    return all(
        np.isclose(float(a[k]), float(b[k]), rtol=0, atol=1e-9)
        for k in ('miou_global', 'miou_classwise') if k in a and k in b)


def load_previous(path: str) -> dict:
    """Per-seed runs and finals of an earlier ``results.json``.

    The run folders live under ``work_dirs`` and do not survive a fresh
    checkout, while ``results.json`` is committed with the tables; reading
    it back lets seeds trained at different times (or on different
    machines) be reported together. Only the numbers come back: a carried
    run has no score or label folder, so it is never a pseudo-label
    candidate and never drawn in the grid.

    Args:
        path (str): A ``results.json`` written by this script.

    Returns:
        dict: ``rows`` (``{(method, row): {seed: run}}``, the shared rows
        under seed None), ``params`` (``{(method, row): params_m}``) and
        ``finals`` (``{seed: final}``).
    """
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('rows'), list):
        raise ValueError(f'{path}: not a results.json of this script '
                         '(no "rows" list)')
    rows: Dict[Tuple[str, str], Dict[Optional[int], dict]] = {}
    params: Dict[Tuple[str, str], Optional[float]] = {}
    for r in data['rows']:
        try:
            key = (r['method'], r['row'])
            runs = r['runs']
        except (KeyError, TypeError) as e:
            raise ValueError(f'{path}: a row lacks method/row/runs '
                             f'({e!r})') from e
        params[key] = r.get('params_m')
        for run in runs:
            if 'seed' not in run or 'miou_global' not in run:
                raise ValueError(f'{path}: row "{r["row"]}" has a run '
                                 'without seed or miou_global')
            carried = {
                k: v
                for k, v in run.items()
                if k not in ('scores_dir', 'crf_labels_dir', 'source')
            }
            rows.setdefault(key, {})[run['seed']] = dict(
                carried, source='previous')
    finals = {
        f['seed']: f
        for f in data.get('finals', [])
        if isinstance(f, dict) and 'seed' in f
    }
    return dict(rows=rows, params=params, finals=finals)


def collect(specs: Sequence[RowSpec],
            dirs: Dict[str, str],
            seeds: Sequence[int],
            driver_json: Dict[str, Optional[str]],
            previous: Optional[dict] = None) -> dict:
    """Per-seed runs of every row, cross-checked with the drivers' JSON.

    A seed found neither in the folders nor in the drivers' JSON is taken
    from ``previous`` (an earlier ``results.json``, see
    :func:`load_previous`) and said so in the notes.

    Args:
        specs (Sequence[RowSpec]): The rows.
        dirs (dict): ``cg``, ``ig`` and ``res`` folders.
        seeds (Sequence[int]): The seeds.
        driver_json (dict): ``{'camguide': path, 'igcam': path}``.
        previous (dict, optional): From :func:`load_previous`.

    Returns:
        dict: ``rows`` (``{(method, name): {'spec', 'params_m', 'runs':
        {seed: run}}}``, the shared teacher's run under seed None) and
        ``notes`` (human-readable messages about missing or stale data).
    """
    notes: List[str] = []
    jsons: Dict[str, Dict[str, dict]] = {}
    for drv, path in driver_json.items():
        if path and osp.isfile(path):
            jsons[drv] = load_driver_json(path)
        else:
            notes.append(f'{METHOD_TITLES[drv]}: no driver JSON {path} yet '
                         '(numbers read from the seed folders)')
    rows = {}
    carried: set = set()
    missing: List[Tuple[RowSpec, Optional[int], str]] = []
    for spec in specs:
        runs: Dict[Optional[int], dict] = {}
        want = [None] if spec.shared else list(seeds)
        for seed in want:
            run, miss = read_run(spec, dirs, seed)
            if run is not None:
                runs[seed] = run
            missing += [(spec, seed, path) for path in miss]
        jrow = jsons.get(spec.driver, {}).get(spec.name)
        params = jrow['params_m'] if jrow else None
        for i, jr in enumerate(jrow['runs'] if jrow else []):
            if 'seed' in jr and jr['seed'] in want and jr['seed'] not in runs:
                runs[jr['seed']] = dict(jr, source='json')
                continue
            if 'seed' in jr or any(_same(jr, r) for r in runs.values()):
                continue
            notes.append(f'{METHOD_TITLES[spec.method]} "{spec.name}": '
                         f'driver JSON run {i} matches no seed folder of '
                         f'seeds {list(seeds)} (stale or another seed); '
                         'not used')
        if previous:
            key = (spec.method, spec.name)
            for seed, run in previous['rows'].get(key, {}).items():
                if seed in want and seed not in runs:
                    runs[seed] = dict(run)
                    carried.add((spec.driver, seed))
            if params is None:
                params = previous['params'].get(key)
        rows[(spec.method, spec.name)] = dict(
            spec=spec, params_m=params, runs=runs)
    for drv, seed in sorted(carried, key=lambda t: (t[0], -1 if t[1] is None
                                                    else t[1])):
        what = 'shared run' if seed is None else f'seed {seed}'
        notes.append(f'{METHOD_TITLES[drv]} {what}: numbers carried over '
                     'from the previous results.json (its run folders are '
                     'not here)')
    missing = [(spec, seed, path) for spec, seed, path in missing
               if seed not in rows[(spec.method, spec.name)]['runs']
               or rows[(spec.method, spec.name)]['runs'][seed].get(
                   'source') != 'previous']
    absent = set()
    for seed in seeds:
        for drv, key in (('camguide', 'cg'), ('igcam', 'ig')):
            if not any(seed in r['runs'] for r in rows.values()
                       if r['spec'].driver == drv and not r['spec'].shared):
                absent.add((drv, seed))
                notes.append(
                    f'{METHOD_TITLES[drv]}: seed {seed} missing (no scored '
                    f'row under {dirs[key]}/seed{seed}); run without '
                    f'--report-only, or the driver with --seeds {seed}')
    for spec, seed, path in missing:
        if (spec.driver, seed) in absent:
            continue
        what = 'shared run' if seed is None else f'seed {seed}'
        notes.append(f'{METHOD_TITLES[spec.method]} "{spec.name}" {what}: '
                     f'missing {path}')
    return dict(rows=rows, notes=notes)


# ----------------------------------------------------------------------
# best pseudo-labels
def candidates(rows: dict,
               seed: int,
               refinements: Sequence[str] = REFINEMENTS,
               include_shared: bool = False) -> List[dict]:
    """Pseudo-label candidates of one seed.

    Args:
        rows (dict): ``collect(...)['rows']``.
        seed (int): The seed.
        refinements (Sequence[str]): Subset of ``global``, ``classwise``,
            ``crf``.
        include_shared (bool): Also the shared (seed-independent) rows.

    Returns:
        list[dict]: ``method``, ``row``, ``refinement``, ``title``,
        ``miou`` and the label source (``labels_dir`` for CRF labels, else
        ``scores_dir`` + ``thr``), in table order.
    """
    bad = set(refinements) - set(REFINEMENTS)
    if bad:
        raise ValueError(f'refinements must be among {REFINEMENTS}, got '
                         f'{sorted(bad)}')
    out = []
    for (method, name), row in rows.items():
        spec = row['spec']
        if spec.shared and not include_shared:
            continue
        run = row['runs'].get(None if spec.shared else seed)
        if run is None:
            continue
        base = dict(method=method, row=name, seed=seed)
        if spec.seed_candidates and run.get('scores_dir'):
            if 'global' in refinements:
                out.append(
                    dict(
                        base,
                        refinement='global',
                        title=REF_TITLES['global'],
                        miou=run['miou_global'],
                        scores_dir=run['scores_dir'],
                        thr=run['thr']))
            if 'classwise' in refinements and run.get('thr_vector'):
                vec = [
                    0.0 if t is None else float(t) for t in run['thr_vector']
                ]
                out.append(
                    dict(
                        base,
                        refinement='classwise',
                        title=REF_TITLES['classwise'],
                        miou=run['miou_classwise'],
                        scores_dir=run['scores_dir'],
                        thr=vec))
        if 'crf' in refinements and run.get('crf') is not None and \
                run.get('crf_labels_dir'):
            out.append(
                dict(
                    base,
                    refinement='crf',
                    title=spec.crf_name,
                    miou=run['crf'],
                    labels_dir=run['crf_labels_dir']))
    return out


def select_best(cands: Sequence[dict]) -> dict:
    """The candidate with the highest train mIoU (first one on ties).

    Args:
        cands (Sequence[dict]): From :func:`candidates`.

    Returns:
        dict: The chosen candidate.
    """
    if not cands:
        raise ValueError('cands is empty: no pseudo-label candidate with a '
                         'train mIoU (no finished row for this seed)')
    best = cands[0]
    for c in cands[1:]:
        if c['miou'] > best['miou']:
            best = c
    return best


def slug(cand: dict) -> str:
    """A folder name for a candidate, e.g. ``camguide-our-...-crf``."""
    text = f'{cand["method"]}-{cand["row"]}-{cand["refinement"]}'.lower()
    return re.sub(r'[^a-z0-9]+', '-', text).strip('-')


def describe(cand: dict) -> str:
    return (f'{METHOD_TITLES[cand["method"]]} {cand["row"]}, '
            f'{cand["title"]}')


def seed_labels(scores_path: str, thr: Any) -> np.ndarray:
    """Label map of one saved score file at background threshold(s).

    Args:
        scores_path (str): ``.npz`` with ``scores`` (C, H, W) and
            ``img_labels``.
        thr (float | Sequence[float]): Global or per-class (length C)
            thresholds.

    Returns:
        np.ndarray: int64 label map (H, W).
    """
    from mmwsss.cams.thresholds import apply_thresholds
    with np.load(scores_path) as d:
        scores = d['scores'].astype(np.float32)
        labels = [int(x) for x in np.ravel(d['img_labels'])]
    return apply_thresholds(scores, labels, thr)


def write_seed_labels(scores_dir: str, names: Sequence[str], thr: Any,
                      out_dir: str, palette: Sequence[Sequence[int]]) -> int:
    """Write thresholded seed labels as palette PNGs (resumable).

    Args:
        scores_dir (str): Folder of ``<name>.npz`` scores.
        names (Sequence[str]): Image stems.
        thr (float | Sequence[float]): Threshold(s), see
            :func:`seed_labels`.
        out_dir (str): Output folder.
        palette (Sequence): Colours of the classes.

    Returns:
        int: The number of PNGs written (existing ones are kept).
    """
    from mmwsss.utils.io import atomic_save_label_png
    missing = [
        n for n in names if not osp.isfile(osp.join(scores_dir, n + '.npz'))
    ]
    if missing:
        raise ValueError(f'scores_dir {scores_dir} lacks {len(missing)} of '
                         f'{len(names)} score files (first: {missing[0]})')
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    for name in names:
        out = osp.join(out_dir, name + '.png')
        if osp.isfile(out):
            continue
        atomic_save_label_png(
            out, seed_labels(osp.join(scores_dir, name + '.npz'), thr),
            palette)
        n += 1
    return n


# ----------------------------------------------------------------------
# tables
def _pct(x: Optional[float]) -> str:
    return '-' if x is None else f'{100 * x:.1f}'


def _cell(vals: List[Optional[float]], n: int) -> str:
    have = [v for v in vals if v is not None]
    text = mean_std(have)
    if have and len(have) != n:
        text += f' (n={len(have)})'
    return text


def row_stats(row: dict) -> dict:
    """Values and mean / sample std (fractions) of one row's columns."""
    runs = [
        row['runs'][k]
        for k in sorted(row['runs'], key=lambda s: -1 if s is None else s)
    ]
    out = dict(n=len(runs), seeds=[r.get('seed') for r in runs])
    for key in ('miou_global', 'miou_classwise', 'crf', 'val_miou'):
        vals = [r.get(key) for r in runs if r.get(key) is not None]
        out[key] = dict(
            values=vals,
            mean=float(np.mean(vals)) if vals else None,
            std=float(np.std(vals, ddof=1)) if len(vals) > 1 else None)
    return out


def ablation_table(rows: dict, methods: Sequence[str]) -> str:
    """Markdown table of the seed / CRF mIoU of the rows of ``methods``."""
    lines = [
        '| method | row | params (M) | n | seed, global thr | '
        'seed, class-wise thr | + CRF | val, tools/test.py |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for (method, name), row in rows.items():
        if method not in methods:
            continue
        spec = row['spec']
        runs = list(row['runs'].values())
        n = len(runs)
        crf = _cell([r.get('crf') for r in runs], n)
        if spec.crf_dir and crf != '-':
            crf += '' if spec.crf_name == '+dCRF' else f' ({spec.crf_name})'
        title = spec.title + (' (shared by all seeds)' if spec.shared else '')
        params = '-' if row['params_m'] is None else f'{row["params_m"]:.2f}'
        lines.append(
            f'| {METHOD_TITLES[method]} | {title} | {params} | {n} | '
            f'{_cell([r["miou_global"] for r in runs], n)} | '
            f'{_cell([r["miou_classwise"] for r in runs], n)} | {crf} | '
            f'{_cell([r.get("val_miou") for r in runs], n)} |')
    return '\n'.join(lines)


def final_table(finals: Sequence[dict]) -> str:
    """Markdown table of the final model and the upper bound per seed."""
    lines = [
        '| seed | best pseudo-labels | pseudo-mask (train) | '
        'final model (val) | upper bound (val) | gap |',
        '|---|---|---|---|---|---|'
    ]
    for f in finals:
        best = describe(f['best']) if f.get('best') else '-'
        lines.append(f'| {f["seed"]} | {best} | {_pct(f.get("pseudo_miou"))}'
                     f' | {_pct(f.get("final_miou"))} | '
                     f'{_pct(f.get("upper_miou"))} | {_pct(f.get("gap"))} |')
    if len(finals) > 1:
        counts: Dict[str, int] = {}
        for f in finals:
            if f.get('best'):
                k = describe(f['best'])
                counts[k] = counts.get(k, 0) + 1
        chosen = '; '.join(f'{k} x{v}' for k, v in counts.items()) or '-'
        cols = [
            mean_std([f.get(k) for f in finals])
            for k in ('pseudo_miou', 'final_miou', 'upper_miou', 'gap')
        ]
        lines.append(f'| mean ± std | {chosen} | ' + ' | '.join(cols) + ' |')
    return '\n'.join(lines)


# ----------------------------------------------------------------------
# figures
def write_grid(path: str,
               names: Sequence[str],
               columns: Sequence[Tuple[str, Callable[[str],
                                                     Optional[np.ndarray]]]],
               palette: Sequence[Sequence[int]],
               class_names: Sequence[str],
               tile: int = 128) -> Tuple[int, int]:
    """Picture grid: one row per image, one column per source.

    Drawn by :class:`mmwsss.visualization.WSSSVisualizer` (``make_grid``:
    title header, tiles resized to ``tile``, class legend) and saved as a
    PNG, a palette PNG above ``MAX_PNG_BYTES``.

    Args:
        path (str): Output PNG (written atomically).
        names (Sequence[str]): Image stems, one per row.
        columns (Sequence): ``(title, fn)``; ``fn(name)`` returns an RGB
            uint8 tile (any size, resized to ``tile``) or None (grey).
        palette (Sequence): Class colours.
        class_names (Sequence[str]): Class names for the legend.
        tile (int): Tile side in pixels.

    Returns:
        tuple: ``(height, width)`` of the grid.
    """
    from mmwsss.visualization import WSSSVisualizer, save_png
    if not names or not columns:
        raise ValueError('names and columns must not be empty')
    vis = WSSSVisualizer(
        name='wsss_results', classes=list(class_names), palette=palette)
    rows = [[fn(name) for _, fn in columns] for name in names]
    grid = vis.make_grid(rows, [t for t, _ in columns], tile)
    save_png(path, grid, MAX_PNG_BYTES)
    return grid.shape[:2]


def write_bars(path: str, rows: dict, seeds: Sequence[int]) -> None:
    """Bar chart of the ablation, one panel per method (PNG, atomic).

    Bars are the mean seed mIoU (global threshold) and the mean after CRF
    of each row, error bars the sample std, dots the individual seeds. The
    CAM baseline is the first bar of each panel and a dotted line.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmwsss.utils.io import atomic_write_bytes

    base = [r for (m, _), r in rows.items() if m == 'baseline']
    fig, axes = plt.subplots(1, 2, figsize=BAR_FIGSIZE, dpi=BAR_DPI)
    width = 0.38
    for ax, method in zip(axes, ('igcam', 'camguide')):
        panel = base + [r for (m, _), r in rows.items() if m == method]
        ax.set_title(METHOD_TITLES[method])
        if not any(r['runs'] for r in panel):
            ax.text(
                0.5,
                0.5,
                'no results yet',
                ha='center',
                transform=ax.transAxes)
        for i, row in enumerate(panel):
            st = row_stats(row)
            for key, dx, colour, lab in (('miou_global', -width / 2, 'C0',
                                          'seed (best global thr)'),
                                         ('crf', width / 2, 'C1',
                                          '+ CRF (dCRF / InfluenceCRF)')):
                s = st[key]
                if s['mean'] is None:
                    continue
                ax.bar(
                    i + dx,
                    100 * s['mean'],
                    width,
                    yerr=None if s['std'] is None else 100 * s['std'],
                    color=colour,
                    capsize=3,
                    label=lab if i == 0 or key == 'crf' else None)
                vals = 100 * np.asarray(s['values'])
                jitter = np.linspace(-width / 4, width / 4, len(vals))
                ax.scatter(
                    i + dx + jitter if len(vals) > 1 else [i + dx],
                    vals,
                    s=10,
                    color='k',
                    zorder=3,
                    label='individual seeds'
                    if i == 0 and key == 'miou_global' else None)
            if i == 0 and st['miou_global']['mean'] is not None:
                ax.axhline(
                    100 * st['miou_global']['mean'],
                    color='0.4',
                    linestyle=':',
                    linewidth=1,
                    label='CAM baseline, seed (mean)')
        ax.set_xticks(range(len(panel)))
        ax.set_xticklabels(
            ['\n'.join(textwrap.wrap(r['spec'].title, 16)) for r in panel],
            fontsize=7)
        ax.set_ylabel('mIoU on the train split (%)')
        ax.grid(axis='y', alpha=0.3)
        ax.set_axisbelow(True)
    uniq: Dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            uniq.setdefault(lab, h)
    if uniq:
        fig.legend(
            uniq.values(),
            uniq.keys(),
            loc='lower center',
            ncol=len(uniq),
            fontsize=8,
            frameon=False)
    fig.suptitle('Seed and pseudo-mask mIoU per ablation row, mean ± std '
                 f'over seeds {", ".join(map(str, seeds))} '
                 '(demo data, CPU)')
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=BAR_DPI)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------
def replace_markers(text: str, fragments: Dict[str,
                                               str]) -> Tuple[str, List[str]]:
    """Paste fragments between ``<!-- wsss_results:NAME -->`` markers.

    Args:
        text (str): A README.
        fragments (dict): ``{NAME: markdown}``.

    Returns:
        tuple: The new text and the names replaced.
    """
    done = []
    for name, frag in fragments.items():
        pat = re.compile(
            rf'(<!-- wsss_results:{re.escape(name)} -->\n).*?'
            rf'(<!-- /wsss_results:{re.escape(name)} -->)', re.S)
        text, n = pat.subn(
            lambda m, f=frag: m.group(1) + f.rstrip('\n') + '\n' + m.group(2),
            text)
        if n:
            done.append(name)
    return text, done


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument(
        '--work-dir',
        default='work_dirs/results',
        help='baseline CRF labels, chosen labels, final models')
    p.add_argument(
        '--out-dir',
        default='docs/en/_static/results',
        help='tables (results.md, fragments) and PNGs')
    p.add_argument('--camguide-dir', default='work_dirs/camguide_demo')
    p.add_argument('--igcam-dir', default='work_dirs/igcam_demo')
    p.add_argument('--data-root', default='data/demo')
    p.add_argument(
        '--data-seed', type=int, default=0, help='demo dataset generator seed')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument(
        '--report-only',
        action='store_true',
        help='run nothing; read existing results and write the '
        'tables and PNGs')
    p.add_argument(
        '--select-from',
        nargs='+',
        choices=REFINEMENTS,
        default=list(REFINEMENTS),
        help='refinements eligible as pseudo-labels')
    p.add_argument(
        '--include-shared',
        action='store_true',
        help='let the shared CamGuide teacher be selected')
    p.add_argument(
        '--seg-init',
        choices=['cam', 'imagenet'],
        default='cam',
        help='final models\' backbone init: the seed\'s baseline '
        'CAM classifier (as tools/run_demo.py) or the config\'s '
        'ImageNet weights')
    p.add_argument(
        '--seg-iters',
        type=int,
        default=None,
        help='override the final models\' schedule (smoke)')
    p.add_argument('--skip-upper-bound', action='store_true')
    p.add_argument(
        '--skip-drivers',
        action='store_true',
        help='do not run the ablation drivers: select among the rows whose '
        'folders exist (a note flags a carried row that scored higher)')
    p.add_argument(
        '--previous',
        default=None,
        help='an earlier results.json whose numbers fill the seeds whose '
        'run folders are gone (default: OUT_DIR/results.json if present)')
    p.add_argument(
        '--no-previous',
        action='store_true',
        help='report only what the run folders hold')
    p.add_argument('--grid-images', type=int, default=6)
    p.add_argument(
        '--grid-seed',
        type=int,
        default=None,
        help='seed shown in the grid (default: first with '
        'results)')
    p.add_argument('--grid-tile', type=int, default=128)
    p.add_argument(
        '--update-readmes',
        action='store_true',
        help='paste the tables between wsss_results markers')
    p.add_argument(
        '--readmes',
        nargs='+',
        default=[
            'README.md', 'configs/igcam/README.md',
            'configs/camguide/README.md'
        ])
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        p.error(f'--seeds must be distinct non-negative ints, got '
                f'{args.seeds}')
    if args.grid_images < 1 or args.grid_tile < 16:
        p.error('--grid-images must be >= 1 and --grid-tile >= 16')
    return args


class Results:
    """Runs the missing stages and writes the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dirs = dict(
            cg=_abs(args.camguide_dir),
            ig=_abs(args.igcam_dir),
            res=_abs(args.work_dir))
        self.data = _abs(args.data_root)
        self.out = _abs(args.out_dir)
        self.specs = row_specs()
        self.driver_json = dict(
            camguide=osp.join(self.dirs['cg'], 'camguide_ablation.json'),
            igcam=osp.join(self.dirs['ig'], 'igcam_ablation.json'))
        self.ablation = None
        self.previous = None
        prev = args.previous or osp.join(self.out, 'results.json')
        if args.previous and not osp.isfile(_abs(args.previous)):
            raise FileNotFoundError(f'--previous {args.previous} not found')
        if not args.no_previous and osp.isfile(_abs(prev)):
            self.previous = load_previous(_abs(prev))
            self.log(f'carrying over seeds missing here from {prev}')

    # ------------------------------------------------------------------
    def log(self, msg: str) -> None:
        print(f'[results] {msg}', flush=True)

    def collect(self) -> dict:
        return collect(self.specs, self.dirs, self.args.seeds,
                       self.driver_json, self.previous)

    def palette(self) -> Tuple[List[List[int]], List[str]]:
        """Palette and class names from the dataset's ``meta.json``."""
        meta = osp.join(self.data, 'meta.json')
        if osp.isfile(meta):
            m = _read_json(meta)
            if 'palette' in m and 'classes' in m:
                return [list(c) for c in m['palette']], list(m['classes'])
        from mmwsss.datasets.demo_scenes import DEMO_CLASSES, DEMO_PALETTE
        return [list(c) for c in DEMO_PALETTE], list(DEMO_CLASSES)

    def train_names(self) -> List[str]:
        split = osp.join(self.data, 'ImageSets', 'Segmentation', 'train.txt')
        if not osp.isfile(split):
            raise FileNotFoundError(f'train split not found: {split}')
        with open(split) as f:
            return [ln.strip() for ln in f if ln.strip()]

    def seed_work(self, seed: int) -> str:
        return osp.join(self.dirs['res'], f'seed{seed}')

    # ------------------------------------------------------------------
    def runner(self):
        """The CamGuide driver's runner (data, train/test, DenseCRF)."""
        if self.ablation is None:
            a = self.args
            self.ablation = CG.Ablation(
                argparse.Namespace(
                    work_dir=self.dirs['res'],
                    data_root=self.data,
                    seeds=a.seeds,
                    data_seed=a.data_seed,
                    workers=a.workers,
                    skip_rw=False,
                    iters_scale=1.0,
                    limit=None,
                    force=False))
        return self.ablation

    def driver_complete(self, driver: str) -> bool:
        """Every row of every seed scored and the driver's JSON written."""
        if not osp.isfile(self.driver_json[driver]):
            return False
        rows = load_driver_json(self.driver_json[driver])
        for spec in self.specs:
            if spec.driver != driver:
                continue
            for seed in ([None] if spec.shared else self.args.seeds):
                run, missing = read_run(spec, self.dirs, seed)
                if run is None or (missing and spec.crf_by_driver):
                    return False
            if not spec.shared and len(
                    rows.get(spec.name, {}).get('runs', [])) < len(
                        self.args.seeds):
                return False
        return True

    def run_drivers(self) -> None:
        a = self.args
        demo = self.runner().demo
        for drv, script, d in (('camguide',
                                'tools/analysis_tools/camguide_ablation.py',
                                self.dirs['cg']),
                               ('igcam',
                                'tools/analysis_tools/igcam_ablation.py',
                                self.dirs['ig'])):
            if self.driver_complete(drv):
                self.log(f'{METHOD_TITLES[drv]} ablation: every seed done, '
                         'kept')
                continue
            demo.run([
                sys.executable, script, '--seeds', *map(str, a.seeds),
                '--work-dir', d, '--data-root', self.data, '--data-seed',
                str(a.data_seed), '--workers',
                str(a.workers)
            ], f'{METHOD_TITLES[drv]} ablation')

    def baseline_crf(self, seed: int) -> None:
        """DenseCRF on the baseline CAM seeds of one seed (if missing)."""
        spec = self.specs[0]
        run, missing = read_run(spec, self.dirs, seed)
        if run is None or not missing:
            return
        sd = _fmt(spec.seed_dir, self.dirs, seed)
        with open(osp.join(sd, 'final.txt')) as f:
            ckpt = f.read().strip()
        self.runner().crf(CG.BASELINE_CFG, ckpt, run['scores_dir'], run['thr'],
                          _fmt(spec.crf_dir, self.dirs, seed),
                          f'[{seed}] baseline')

    def prepare_labels(self, best: dict) -> Tuple[str, float]:
        """Folder and train mIoU of the chosen pseudo-labels."""
        if best['refinement'] == 'crf':
            return best['labels_dir'], best['miou']
        from mmwsss.evaluation import evaluate_label_dirs
        from mmwsss.utils.io import atomic_write_bytes
        lab_dir = osp.join(self.seed_work(best['seed']), 'labels', slug(best))
        names = self.train_names()
        pal, classes = self.palette()
        res_path = lab_dir + '.json'
        if not osp.isfile(res_path):
            n = write_seed_labels(best['scores_dir'], names, best['thr'],
                                  lab_dir, pal)
            self.log(f'wrote {n} seed labels to {lab_dir}')
            res = evaluate_label_dirs(
                lab_dir,
                osp.join(self.data, 'SegmentationClass'),
                len(classes),
                names,
                progress=False)
            atomic_write_bytes(
                res_path,
                json.dumps(dict(miou=res['miou'], thr=best['thr'])).encode())
        return lab_dir, float(_read_json(res_path)['miou'])

    def final_paths(self, seed: int, best: dict) -> Tuple[str, str]:
        w = self.seed_work(seed)
        return (osp.join(w, f'final_{slug(best)}'), osp.join(w, 'upper_bound'))

    def seg_options(self, seed: int) -> List[str]:
        a = self.args
        demo = self.runner().demo
        opts = [f'randomness.seed={seed}'] + demo.schedule_options(a.seg_iters)
        if a.seg_init == 'cam':
            final = osp.join(
                _fmt(self.specs[0].seed_dir, self.dirs, seed), 'final.txt')
            with open(final) as f:
                ckpt = f.read().strip()
            opts += [
                f'model.backbone.init_cfg.checkpoint={ckpt}',
                'model.backbone.init_cfg.prefix=backbone.'
            ]
        return opts

    def train_final(self, seed: int, best: dict, labels_dir: str) -> None:
        demo = self.runner().demo
        n_lab = len([f for f in os.listdir(labels_dir) if f.endswith('.png')])
        n_img = len(self.train_names())
        if n_lab < n_img:
            raise SystemExit(f'[results] {labels_dir} holds {n_lab} label '
                             f'PNGs for {n_img} train images (a --limit '
                             'run?); cannot train the final model on it')
        opts = self.seg_options(seed)
        w_final, w_gt = self.final_paths(seed, best)
        ckpt = demo.train(
            DEMO.SEG_CONFIG, w_final, f'[{seed}] train final model '
            f'({describe(best)})', opts + [
                'train_dataloader.dataset.data_prefix.seg_map_path='
                f'{labels_dir}'
            ])
        demo.test(DEMO.SEG_CONFIG, ckpt, w_final, f'[{seed}] test final model',
                  [])
        if not self.args.skip_upper_bound:
            ckpt = demo.train(DEMO.GT_CONFIG, w_gt,
                              f'[{seed}] train upper bound (real masks)', opts)
            demo.test(DEMO.GT_CONFIG, ckpt, w_gt, f'[{seed}] test upper bound',
                      [])

    # ------------------------------------------------------------------
    def finals(self, rows: dict, notes: List[str]) -> List[dict]:
        """Per seed: best candidate, pseudo-mask / final / upper mIoU."""
        a = self.args
        out = []
        for seed in a.seeds:
            cands = candidates(rows, seed, a.select_from, a.include_shared)
            f: Dict[str, Any] = dict(seed=seed)
            out.append(f)
            prev = (self.previous or {}).get('finals', {}).get(seed)
            if not cands:
                if prev and prev.get('best'):
                    f.update({
                        k: prev[k]
                        for k in ('best', 'pseudo_miou', 'final_miou',
                                  'upper_miou', 'gap') if k in prev
                    })
                    f['source'] = 'previous'
                    notes.append(f'seed {seed}: final model numbers carried '
                                 'over from the previous results.json')
                else:
                    notes.append(f'seed {seed}: no pseudo-label candidate '
                                 'yet, no final model')
                continue
            best = select_best(cands)
            pbest = (prev or {}).get('best')
            if pbest and slug(pbest) != slug(best) and \
                    pbest['miou'] > best['miou']:
                notes.append(
                    f'seed {seed}: selected {describe(best)} among the rows '
                    f'run here; the previous results.json had '
                    f'{describe(pbest)} higher ({_pct(pbest["miou"])})')
            f['best'] = {
                k: v
                for k, v in best.items()
                if k in ('method', 'row', 'refinement', 'title', 'miou')
            }
            f['pseudo_miou'] = best['miou']
            if best['refinement'] != 'crf':
                res_path = osp.join(
                    self.seed_work(seed), 'labels',
                    slug(best) + '.json')
                if osp.isfile(res_path):
                    f['pseudo_miou'] = float(_read_json(res_path)['miou'])
                else:
                    notes.append(f'seed {seed}: labels of {describe(best)} '
                                 'not written yet; pseudo-mask mIoU is the '
                                 'sweep\'s')
            for key, work in zip(('final_miou', 'upper_miou'),
                                 self.final_paths(seed, best)):
                path = osp.join(work, 'test_metrics.json')
                if osp.isfile(path):
                    f[key] = float(_read_json(path)['mIoU']) / 100.0
                else:
                    what = 'final model' if key == 'final_miou' else \
                        'upper bound'
                    notes.append(f'seed {seed}: {what} not tested yet '
                                 f'({path} missing)')
            if f.get('final_miou') is not None and \
                    f.get('upper_miou') is not None:
                f['gap'] = f['upper_miou'] - f['final_miou']
        return out

    def grid(self, rows: dict, notes: List[str]) -> Optional[str]:
        """Write ``grid.png`` for one seed; None if no seed has results."""
        from PIL import Image
        a = self.args
        seeds = [a.grid_seed] if a.grid_seed is not None else a.seeds
        seed = next((s for s in seeds if any(
            s in r['runs'] and r['runs'][s].get('source') != 'previous'
            for r in rows.values())), None)
        if seed is None:
            notes.append('grid: no seed with results, grid.png not written')
            return None
        from mmwsss.visualization import WSSSVisualizer
        pal, classes = self.palette()
        vis = WSSSVisualizer(name='wsss_results', classes=classes,
                             palette=pal)
        colourise = vis.draw_label
        base = rows[('baseline', BASELINE_ROW)]['runs'].get(seed)

        def image(name):
            p = osp.join(self.data, 'JPEGImages', name + '.jpg')
            return np.asarray(Image.open(p).convert('RGB')) \
                if osp.isfile(p) else None

        def gt(name):
            p = osp.join(self.data, 'SegmentationClass', name + '.png')
            return colourise(np.asarray(Image.open(p))) \
                if osp.isfile(p) else None

        def cam(name):
            img = image(name)
            p = osp.join(base['scores_dir'], name + '.npz') \
                if base and base.get('scores_dir') else ''
            if img is None or not osp.isfile(p):
                return None
            with np.load(p) as d:
                # the strongest foreground CAM of every pixel
                return vis.draw_cam(img, d['scores'][1:].max(0))

        def labels_of(c):

            def fn(name):
                if c is None:
                    return None
                if c['refinement'] == 'crf':
                    p = osp.join(c['labels_dir'], name + '.png')
                    return colourise(np.asarray(Image.open(p))) \
                        if osp.isfile(p) else None
                p = osp.join(c['scores_dir'], name + '.npz')
                return colourise(seed_labels(p, c['thr'])) \
                    if osp.isfile(p) else None

            return fn

        columns = [('image', image),
                   (f'baseline CAM (seed {seed})', cam if base else
                    (lambda n: None))]
        for method in ('igcam', 'camguide'):
            cands = [
                c for c in candidates(rows, seed, a.select_from)
                if c['method'] == method
            ]
            best = select_best(cands) if cands else None
            title = (f'{METHOD_TITLES[method]} best: {best["row"]} '
                     f'{best["title"]} {_pct(best["miou"])}'
                     if best else f'{METHOD_TITLES[method]}: no results')
            columns.append((title, labels_of(best)))
        columns.append(('ground truth', gt))
        try:
            names = self.train_names()[:a.grid_images]
        except FileNotFoundError as e:
            notes.append(f'grid: {e}; grid.png not written')
            return None
        path = osp.join(self.out, 'grid.png')
        write_grid(path, names, columns, pal, classes, a.grid_tile)
        return path

    def report(self) -> dict:
        """Write tables, results.json, bar chart and grid."""
        from mmwsss.utils.io import atomic_write_bytes
        a = self.args
        os.makedirs(self.out, exist_ok=True)
        col = self.collect()
        rows, notes = col['rows'], col['notes']
        finals = self.finals(rows, notes)
        bars = osp.join(self.out, 'ablation_bars.png')
        write_bars(bars, rows, a.seeds)
        grid = self.grid(rows, notes)

        seeds_txt = ' '.join(map(str, a.seeds))
        legend = (
            f'Demo data (1,000 train / 200 val images at 128x128), 2 CPU '
            f'cores; seeds {seeds_txt} (`randomness.seed`). Train-split '
            'mIoU (%) of the seeds at the best global and at class-wise '
            'background thresholds, and after CRF (DenseCRF with the IRN '
            'label unary at the best global threshold; InfluenceCRF where '
            'named); val = `tools/test.py` of the model on the 200 held-out '
            'val images with the config\'s test setting at the background '
            'threshold swept on train (nothing tuned on val); mean ± '
            'sample std (ddof=1) over the n seeds, a single run shows its '
            'value, `(n=k)` marks a column with fewer '
            'runs.')
        fragments = {
            'ablation': ablation_table(rows, METHODS),
            'igcam': ablation_table(rows, ('baseline', 'igcam')),
            'camguide': ablation_table(rows, ('baseline', 'camguide')),
            'final': final_table(finals),
        }
        final_legend = (
            'Best pseudo-labels per seed = the row and refinement with the '
            'highest train mIoU (selection on train masks, as WSSS papers '
            'pick pseudo-labels); final model = demo DeepLabV3+ trained on '
            'them, upper bound = the same model on the real masks, both '
            'scored on the val split; gap = upper bound - final.')
        cmd = ('python tools/analysis_tools/wsss_results.py --seeds '
               f'{seeds_txt}')
        md = [
            '# WSSS results on the demo data (CPU)', '',
            f'Generated by `{cmd}`; do not edit by hand.', '', legend, '',
            '## Ablation: seeds and pseudo-masks (train)', '',
            fragments['ablation'], '', '## Final model (val)', '',
            final_legend, '', fragments['final'], '', '## Figures', '',
            '![ablation bar chart](ablation_bars.png)', ''
        ]
        if grid:
            md += ['![CAMs, refined masks and ground truth](grid.png)', '']
        if notes:
            md += ['## Missing or stale results', '']
            md += [f'- {n}' for n in notes] + ['']
        text = '\n'.join(md)
        atomic_write_bytes(osp.join(self.out, 'results.md'), text.encode())
        for name, frag in fragments.items():
            atomic_write_bytes(
                osp.join(self.out, f'table_{name}.md'), (frag + '\n').encode())
        summary = dict(
            seeds=list(a.seeds),
            rows=[
                dict(
                    method=m,
                    row=name,
                    title=r['spec'].title,
                    params_m=r['params_m'],
                    stats=row_stats(r),
                    runs=[{
                        k: v
                        for k, v in run.items()
                        if k not in ('scores_dir', 'crf_labels_dir')
                    } for run in r['runs'].values()])
                for (m, name), r in rows.items()
            ],
            finals=finals,
            notes=notes,
            bars=bars,
            grid=grid)
        atomic_write_bytes(
            osp.join(self.out, 'results.json'),
            json.dumps(summary, indent=2).encode())
        print(
            '\n' + fragments['ablation'] + '\n\n' + fragments['final'] + '\n',
            flush=True)
        for n in notes:
            self.log('note: ' + n)
        if a.update_readmes:
            self.update_readmes(fragments, legend, final_legend, grid)
        self.log(f'wrote {self.out}/results.md, ablation_bars.png' +
                 (', grid.png' if grid else ''))
        return summary

    def update_readmes(self, fragments: Dict[str, str], legend: str,
                       final_legend: str, grid: Optional[str]) -> None:
        from mmwsss.utils.io import atomic_write_bytes
        for readme in self.args.readmes:
            path = osp.join(ROOT, readme) if not osp.isabs(readme) else readme
            if not osp.isfile(path):
                self.log(f'README {readme} not found, skipped')
                continue
            rel = osp.relpath(self.out, osp.dirname(path))
            frags = {
                k: (final_legend if k == 'final' else legend) + '\n\n' + v
                for k, v in fragments.items()
            }
            figs = [f'![ablation bar chart]({rel}/ablation_bars.png)']
            if grid:
                figs.append(f'![CAMs, refined masks and ground truth]'
                            f'({rel}/grid.png)')
            frags['figures'] = '\n\n'.join(figs)
            with open(path, encoding='utf-8') as f:
                old = f.read()
            new, done = replace_markers(old, frags)
            if new != old:
                atomic_write_bytes(path, new.encode())
            self.log(f'{readme}: ' +
                     ('updated ' + ', '.join(done) if done else
                      'no <!-- wsss_results:NAME --> markers, left unchanged'))

    # ------------------------------------------------------------------
    def main(self) -> dict:
        a = self.args
        if not a.report_only:
            self.runner().demo.make_data()
            if not a.skip_drivers:
                self.run_drivers()
            for seed in a.seeds:
                self.baseline_crf(seed)
                rows = self.collect()['rows']
                cands = candidates(rows, seed, a.select_from, a.include_shared)
                best = select_best(cands)
                self.log(f'seed {seed}: best pseudo-labels {describe(best)} '
                         f'({_pct(best["miou"])} on train)')
                labels_dir, miou = self.prepare_labels(best)
                self.train_final(seed, best, labels_dir)
        return self.report()


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point; returns the summary written to ``results.json``.

    Relative paths are relative to the repository root, as in the drivers.
    """
    return Results(parse_args(argv)).main()


if __name__ == '__main__':
    main()
