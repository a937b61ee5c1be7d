# Copyright (c) mmwsss contributors.
"""The demo results report: tables, ``results.json``, figures, READMEs.

Reads what :class:`~.runner.ExperimentRunner` left in the work dir (each
row's ``run.json`` and each seed's ``final.json``) and writes to the output
folder (one per scene generator version, e.g.
``docs/en/_static/results/v2.0``):

* ``results.md`` (all tables and figures) and ``results.json`` (every
  number, the rows' metadata and the figures' manifests);
* ``table_{ablation,igcam,camguide,final}.md``: the same tables as README
  fragments (``<!-- wsss_results:NAME -->`` markers, see
  :mod:`~.readme`; ``figures`` holds the pictures);
* ``ablation_bars.png`` and ``grid.png`` (:mod:`~.plots`).

The run folders live in ``work_dirs`` and do not outlive the machine, but
``results.json`` is committed with the tables: a seed of a row found in no
folder is filled from the previous ``results.json`` (numbers only, never
pictures or pseudo-label candidates) and the notes name every carried
seed. Seeds trained in separate sessions can so be reported together.
No figure names a method without a result (:func:`~.plots.check_figures`).
"""
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .calibration import bed_runs, bed_table
from .plots import (check_figures, grid_columns, read_target_quality,
                    visualizer, write_bars, write_grid, write_target_quality)
from .readme import update_readmes
from .rows import RowSpec, row_label, table_title
from .runner import (REFINEMENTS, DataSpec, Layout, candidate_slug,
                     candidates, palette, class_names, read_json,
                     select_best, split_names, write_json)
from .tables import (DEV_SEEDS, HELD_OUT_SEEDS, HELPS_RULE, ablation_table,
                     compare, final_table, row_stats)

#: Run fields that are local paths (not written to ``results.json``).
LOCAL_KEYS = ('scores_dir', 'crf_labels_dir', 'checkpoint',
              'checkpoint_stamp', 'source')


@dataclass
class ReportSettings:
    """What the report shows and where it goes.

    Args:
        out_dir (str): Output folder.
        seeds (Sequence[int]): Reported dataset seeds.
        data (DataSpec): The scenes' settings (for the legend).
        command (str): The command that regenerates the report.
        select_from (Sequence[str]): Refinements eligible as pseudo-labels.
        previous (str, optional): An earlier ``results.json`` (default:
            ``out_dir/results.json``).
        use_previous (bool): Fill missing seeds from it.
        grid_images (int): Images (rows) of the grid.
        grid_seed (int, optional): Seed drawn in the grid (default: the
            first seed with pictures of the most methods).
        grid_tile (int): Tile side of the grid.
        readmes (Sequence[str]): READMEs to update (absolute paths).
        tables (Sequence[str]): Tables of the report.
    """
    out_dir: str
    seeds: Sequence[int] = HELD_OUT_SEEDS
    data: DataSpec = field(default_factory=DataSpec)
    command: str = ''
    select_from: Sequence[str] = REFINEMENTS
    previous: Optional[str] = None
    use_previous: bool = True
    grid_images: int = 6
    grid_seed: Optional[int] = None
    grid_tile: int = 128
    readmes: Sequence[str] = ()
    tables: Sequence[str] = ('igcam', 'camguide')


def load_previous(path: str) -> dict:
    """Per-seed runs, finals and figures of an earlier ``results.json``.

    Args:
        path (str): A ``results.json`` of this report.

    Returns:
        dict: ``rows`` (``{(table, name): {seed: run}}``), ``params``,
        ``finals`` (``{seed: final}``) and ``figures``.

    Raises:
        ValueError: Naming the file when it is not such a file.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('rows'), list):
        raise ValueError(f'{path}: not a results.json of the report (no '
                         '"rows" list)')
    rows: Dict[Tuple[str, str], Dict[int, dict]] = {}
    params: Dict[Tuple[str, str], Optional[float]] = {}
    for i, r in enumerate(data['rows']):
        try:
            key = (r['table'], r['row'])
            runs = r['runs']
        except (KeyError, TypeError) as e:
            raise ValueError(f'{path}: row {i} lacks table/row/runs '
                             f'({e!r})') from e
        params[key] = r.get('params_m')
        for run in runs:
            if 'seed' not in run or 'miou_global' not in run:
                raise ValueError(f'{path}: row "{r["row"]}" has a run '
                                 'without seed or miou_global')
            carried = {k: v for k, v in run.items() if k not in LOCAL_KEYS}
            rows.setdefault(key, {})[run['seed']] = dict(
                carried, source='previous')
    finals = {
        f['seed']: f
        for f in data.get('finals', [])
        if isinstance(f, dict) and 'seed' in f
    }
    return dict(
        rows=rows,
        params=params,
        finals=finals,
        figures=data.get('figures') or {})


def collect(rows: Sequence[RowSpec],
            seeds: Sequence[int],
            layout: Layout,
            previous: Optional[dict] = None
            ) -> Tuple['OrderedDict[Tuple[str, str], dict]', List[str]]:
    """Every row's runs on the seeds, from the folders or ``previous``.

    Args:
        rows (Sequence[RowSpec]): The rows, in table order.
        seeds (Sequence[int]): The seeds.
        layout (Layout): Where the runner wrote them.
        previous (dict, optional): From :func:`load_previous`.

    Returns:
        tuple: ``{(table, name): {'spec', 'runs': {seed: run},
        'params_m'}}`` and the notes (missing or carried results).
    """
    notes: List[str] = []
    results: 'OrderedDict[Tuple[str, str], dict]' = OrderedDict()
    carried: Dict[int, List[str]] = {}
    missing: Dict[int, List[str]] = {}
    smoke: Dict[int, List[str]] = {}
    for spec in rows:
        runs: Dict[int, dict] = {}
        params = None
        for seed in seeds:
            path = layout.run_json(seed, spec)
            if osp.isfile(path):
                run = dict(read_json(path), source='dirs')
                if run.get('table') != spec.table or \
                        run.get('name') != spec.name:
                    raise ValueError(f'{path}: belongs to {run.get("table")}'
                                     f' / {run.get("name")!r}, not '
                                     f'{spec.table} / {spec.name!r}')
                runs[seed] = run
                params = run.get('params_m', params)
                if run.get('limit') or run.get('iters_scale', 1.0) != 1.0:
                    smoke.setdefault(seed, []).append(spec.name)
                continue
            prev = (previous or {}).get('rows', {}).get(spec.ident, {})
            if seed in prev:
                runs[seed] = dict(prev[seed])
                carried.setdefault(seed, []).append(spec.name)
            else:
                missing.setdefault(seed, []).append(
                    f'{table_title(spec.table)} {spec.name!r}')
        if params is None and previous:
            params = previous['params'].get(spec.ident)
        results[spec.ident] = dict(spec=spec, runs=runs, params_m=params)
    for seed in seeds:
        if seed in carried:
            notes.append(f'seed {seed}: numbers of {len(carried[seed])} '
                         'row(s) carried over from the previous results.json'
                         ' (their run folders are not here): ' +
                         ', '.join(carried[seed]))
        if seed in smoke:
            notes.append(f'seed {seed}: SMOKE numbers (--limit / '
                         '--iters-scale) of ' + ', '.join(smoke[seed]))
        if seed in missing:
            notes.append(f'seed {seed}: no result yet for ' +
                         ', '.join(missing[seed]) +
                         ' (run without --report-only)')
    return results, notes


def seed_runs(results: Dict[Tuple[str, str], dict],
              seed: int) -> 'OrderedDict[Tuple[str, str], dict]':
    """``{(table, name): run}`` of one seed (rows without it left out)."""
    return OrderedDict((ident, r['runs'][seed])
                       for ident, r in results.items() if seed in r['runs'])


def load_finals(seeds: Sequence[int], layout: Layout,
                results: Dict[Tuple[str, str], dict],
                previous: Optional[dict], select_from: Sequence[str],
                notes: List[str]) -> List[dict]:
    """Final model and upper bound of each seed (``seedS/final.json``)."""
    out = []
    for seed in seeds:
        path = layout.final_json(seed)
        f: dict = dict(seed=seed)
        if osp.isfile(path):
            f.update(read_json(path))
            f['source'] = 'dirs'
            cands = candidates(seed_runs(results, seed), select_from)
            if cands:
                best = select_best(cands)
                if candidate_slug(best) != f.get('best', {}).get('slug'):
                    notes.append(
                        f'seed {seed}: the final model was trained on '
                        f'{f["best"]["title"]}; the best pseudo-labels are '
                        f'now {best["title"]} ({100 * best["miou"]:.1f}): '
                        'run without --report-only to retrain it')
        elif (previous or {}).get('finals', {}).get(seed, {}).get('best'):
            f.update(previous['finals'][seed])
            f['source'] = 'previous'
            notes.append(f'seed {seed}: final model numbers carried over '
                         'from the previous results.json')
        else:
            notes.append(f'seed {seed}: no final model yet')
        out.append(f)
    return out


def _seed_kind(seeds: Sequence[int]) -> str:
    dev = sorted(set(seeds) & set(DEV_SEEDS))
    if not dev:
        held = set(seeds) <= set(HELD_OUT_SEEDS)
        return ('held-out dataset seeds ' + ' '.join(map(str, seeds)) +
                (' (nothing was tuned on them)' if held else ''))
    return ('dataset seeds ' + ' '.join(map(str, seeds)) +
            f' (**{" ".join(map(str, dev))} are dev seeds**, on which '
            'thresholds and hyper-parameters are tuned: not a held-out '
            'report)')


def legend(settings: ReportSettings) -> str:
    """The legend under which every table is read."""
    d = settings.data
    return (
        f'Demo scenes of generator {d.resolved_version()} ({d.num_train:,} '
        f'train / {d.num_val:,} val images at {d.img_size}x{d.img_size}), '
        f'CPU; {_seed_kind(settings.seeds)}. A seed is a dataset seed '
        '(different scenes) and the training seed (`randomness.seed`) '
        'equals it. Train-split mIoU (%) of the seeds at the best global '
        'and at class-wise background thresholds (both swept on that '
        "seed's own train split), and after CRF (DenseCRF with the IRN "
        'label unary at the best global threshold; the row\'s own '
        'refinement where named); val = `tools/test.py` on the val split '
        'at the train-swept threshold (nothing tuned on val). Mean ± sample'
        ' std (ddof=1) over the n seeds, `(n=k)` marks a column with fewer '
        'runs. Every row is the baseline plus exactly the change that '
        'names it (one budget, checked by '
        '`tests/test_experiments/test_demo_rows.py`); '
        '"extra images" are images seen outside that budget (e.g. the '
        'CamGuide teacher\'s).')


FINAL_LEGEND = (
    'Best pseudo-labels per seed = the row and refinement with the highest '
    'train mIoU (selection on the train masks, as WSSS papers pick their '
    'pseudo-labels; the val split is touched by no selection); final model '
    '= the demo DeepLabV3+ trained on them, upper bound = the same model on '
    'the real masks, both scored on val. "final - pseudo-mask" shows whether '
    'the final model learned what it was given.')

BED_LEGEND = (
    'The demo bed against its targets (issue #17, '
    '`docs/en/notes/demo_calibration.md`): upper bound = the final-model '
    'config on the real masks; CAM seeds = the baseline row at its best '
    'global threshold; + dCRF = its IRN-preset DenseCRF labels (spatial '
    'stds scaled to the image); final = the final-model config trained on '
    'those baseline labels, scored on val.')


def target_quality_curves(results: Dict[Tuple[str, str], dict],
                          seeds: Sequence[int],
                          layout: Layout) -> Dict[Tuple[str, str], dict]:
    """``{(table, row): {seed: curves}}`` of the rows whose training logged
    ``TargetQualityHook`` scalars (CamGuide stage 3), from the run folders
    of the seeds that have the row (rows without curves left out)."""
    out: Dict[Tuple[str, str], dict] = {}
    for ident, r in results.items():
        for seed in seeds:
            if seed not in r['runs']:
                continue
            c = read_target_quality(layout.model(seed, r['spec'].config))
            if c:
                out.setdefault(ident, {})[seed] = c
    return out


def _figures_fragment(rel: str, manifest: dict, notes: Sequence[str]) -> str:
    figs = [f'![ablation bar chart]({rel}/ablation_bars.png)']
    if manifest.get('grid'):
        figs.append('![images, baseline CAM, each method\'s best labels, '
                    f'ground truth]({rel}/grid.png)')
    if manifest.get('target_quality'):
        figs.append('![CamGuide stage 3: mIoU of the CAM and of each '
                    'heuristic target against the train masks during '
                    f'training]({rel}/target_quality.png)')
    figs += [f'_{n}_' for n in notes]
    return '\n\n'.join(figs)


def write_report(rows: Sequence[RowSpec], settings: ReportSettings,
                 layout: Layout,
                 log=print) -> dict:
    """Write the report; return the summary written to ``results.json``.

    Args:
        rows (Sequence[RowSpec]): Rows to report, in table order.
        settings (ReportSettings): What and where.
        layout (Layout): The runner's folders.
        log (callable): Printer.

    Returns:
        dict: The summary.

    Raises:
        RuntimeError: When a figure would name a method without results.
    """
    out = settings.out_dir
    os.makedirs(out, exist_ok=True)
    seeds = list(settings.seeds)
    prev_path = settings.previous or osp.join(out, 'results.json')
    if settings.previous and not osp.isfile(settings.previous):
        raise FileNotFoundError(f'previous results {settings.previous} not '
                                'found')
    previous = None
    if settings.use_previous and osp.isfile(prev_path):
        previous = load_previous(prev_path)
        log(f'[report] numbers missing here are carried from {prev_path}')
    results, notes = collect(rows, seeds, layout, previous)
    finals = load_finals(seeds, layout, results, previous,
                         settings.select_from, notes)
    verdicts = compare(results, seeds)

    figures: dict = {}
    figures['bars'] = write_bars(
        osp.join(out, 'ablation_bars.png'), results, seeds)
    figures['bars']['path'] = 'ablation_bars.png'
    curves = target_quality_curves(results, seeds, layout)
    figures['target_quality'] = None
    tq_path = osp.join(out, 'target_quality.png')
    prev_tq = ((previous or {}).get('figures') or {}).get('target_quality')
    if curves:
        figures['target_quality'] = write_target_quality(
            tq_path, curves,
            {i: row_label(*i) for i in curves})
        figures['target_quality']['path'] = 'target_quality.png'
    elif prev_tq and osp.isfile(tq_path) and all(
            results.get(tuple(i), {}).get('runs')
            for i in prev_tq.get('rows', [])):
        # the training logs are not on this machine: keep the curves
        figures['target_quality'] = prev_tq
        notes.append('target quality: kept the previous '
                     'target_quality.png (the training logs are not on '
                     'this machine)')
    grid_notes: List[str] = []
    figures['grid'] = _grid(results, seeds, settings, layout, previous,
                            grid_notes)
    notes += grid_notes

    tables = [t for t in settings.tables
              if any(r['spec'].table == t for r in results.values())]
    frags = OrderedDict()
    frags['ablation'] = ablation_table(results, tables, seeds)
    for t in tables:
        frags[t] = ablation_table(results, [t], seeds)
    frags['final'] = final_table(finals)
    base = next((r for r in results.values() if r['spec'].is_baseline),
                None)
    bed = bed_runs(finals, base['runs'] if base else {})
    frags['bed'] = bed_table(bed)
    leg = legend(settings)
    md = [
        '# WSSS results on the demo scenes (CPU)', '',
        f'Generated by `{settings.command}`; do not edit by hand.', '', leg,
        '', HELPS_RULE, '', '## Ablation: seeds and pseudo-masks (train)',
        '', frags['ablation'], '', '## Final model (val)', '', FINAL_LEGEND,
        '', frags['final'], '', '## Demo bed (baseline chain)', '',
        BED_LEGEND, '', frags['bed'], '', '## Figures', '',
        _figures_fragment('.', figures, grid_notes), ''
    ]
    if notes:
        md += ['## Missing or carried results', '']
        md += [f'- {n}' for n in notes] + ['']
    from mmwsss.utils.io import atomic_write_bytes
    atomic_write_bytes(osp.join(out, 'results.md'), '\n'.join(md).encode())
    for name, frag in frags.items():
        atomic_write_bytes(
            osp.join(out, f'table_{name}.md'), (frag + '\n').encode())
    summary = dict(
        generator_version=settings.data.resolved_version(),
        data=dict(
            num_train=settings.data.num_train,
            num_val=settings.data.num_val,
            img_size=settings.data.img_size,
            difficulty=settings.data.difficulty),
        seeds=seeds,
        dev_seeds=list(DEV_SEEDS),
        command=settings.command,
        rows=[
            dict(
                table=spec.table,
                row=spec.name,
                meta=spec.to_dict(),
                params_m=r['params_m'],
                stats=row_stats(r['runs']),
                compare=verdicts[ident],
                runs=[{k: v
                       for k, v in run.items() if k not in LOCAL_KEYS}
                      for _, run in sorted(r['runs'].items())])
            for ident, r in results.items() for spec in [r['spec']]
        ],
        finals=[{k: v
                 for k, v in f.items() if k != 'source'} for f in finals],
        bed={str(k): v for k, v in bed.items()},
        notes=notes,
        figures=figures)
    problems = check_figures(summary)
    if problems:
        raise RuntimeError('a figure names a method without results:\n  ' +
                           '\n  '.join(problems))
    write_json(osp.join(out, 'results.json'), summary)
    log('\n' + frags['ablation'] + '\n\n' + frags['final'] + '\n')
    for n in notes:
        log('[report] note: ' + n)
    if settings.readmes:

        def fragments(readme):
            rel = osp.relpath(out, osp.dirname(osp.abspath(readme)))
            f = {
                k: (FINAL_LEGEND if k == 'final' else BED_LEGEND
                    if k == 'bed' else leg + '\n\n' + HELPS_RULE) +
                '\n\n' + v
                for k, v in frags.items()
            }
            f['figures'] = _figures_fragment(rel, figures, grid_notes)
            return f

        update_readmes(settings.readmes, fragments,
                       lambda m: log('[report] ' + m))
    log(f'[report] wrote {out}/results.md, results.json, ablation_bars.png'
        + (', grid.png' if figures.get('grid') else ''))
    return summary


def _grid(results: Dict[Tuple[str, str], dict], seeds: Sequence[int],
          settings: ReportSettings, layout: Layout, previous: Optional[dict],
          notes: List[str]) -> Optional[dict]:
    """Draw ``grid.png`` for one seed; return its manifest.

    The seed is ``settings.grid_seed`` or the first seed on which the most
    methods have pictures. A method whose numbers exist but whose pictures
    are not on this machine (carried numbers) gets no column and a note; if
    the previous grid showed more methods, it is kept as it is.
    """
    with_results = [
        t for t in dict.fromkeys(r['spec'].table for r in results.values())
        if any(r['runs'] for r in results.values() if r['spec'].table == t)
    ]
    order = [settings.grid_seed] if settings.grid_seed is not None else seeds
    best_seed, best_cover, best_cands = None, -1, []
    for seed in order:
        cands = candidates(seed_runs(results, seed), settings.select_from)
        cover = len({c['table'] for c in cands})
        if cover > best_cover:
            best_seed, best_cover, best_cands = seed, cover, cands
    path = osp.join(settings.out_dir, 'grid.png')
    if not best_cands:
        notes.append('grid: no seed has pictures on this machine (numbers '
                     'only); grid.png not drawn')
        return _keep_previous_grid(path, previous, results, None, notes)
    seed = best_seed
    drawn = {c['table'] for c in best_cands}
    left_out = [t for t in with_results if t not in drawn]
    prev = _keep_previous_grid(path, previous, results, drawn, notes)
    if prev is not None:
        return prev
    for t in left_out:
        notes.append(f'grid: {table_title(t)} has results but no pictures '
                     f'of seed {seed} on this machine (numbers carried from'
                     ' results.json); its column is left out')
    data = layout.data(seed)
    try:
        names = split_names(data)[:settings.grid_images]
    except FileNotFoundError as e:
        notes.append(f'grid: {e}; grid.png not drawn')
        return None
    vis = visualizer(palette(data), class_names(data))
    columns, manifest = grid_columns(results, seed, best_cands, data, vis)
    write_grid(path, names, columns, vis, settings.grid_tile)
    return dict(path='grid.png', seed=seed, columns=manifest)


def _keep_previous_grid(path: str, previous: Optional[dict],
                        results: Dict[Tuple[str, str], dict],
                        drawn: Optional[set],
                        notes: List[str]) -> Optional[dict]:
    """The previous grid's manifest when it shows more methods than can be
    drawn here and its columns still have results; else None."""
    grid = ((previous or {}).get('figures') or {}).get('grid')
    if not grid or not osp.isfile(path):
        return None
    tables = {c['table'] for c in grid.get('columns', [])
              if c.get('kind') == 'labels'}
    if drawn is not None and len(tables) <= len(drawn):
        return None
    for c in grid.get('columns', []):
        if 'table' in c and grid.get('seed') not in results.get(
                (c['table'], c['row']), {}).get('runs', {}):
            return None
    notes.append(f'grid: kept the previous grid.png (seed {grid["seed"]}; '
                 'it shows methods whose pictures are not on this machine)')
    return grid
