# Copyright (c) mmwsss contributors.
"""Figures of the demo results: the ablation bar chart and picture grids.

Every figure returns a *manifest*: the tables (methods) and rows it names.
:func:`check_figures` compares the manifests with the results, so that no
figure names a method without a result (the README grid once showed
"no results" columns for methods whose tables had three seeds: their
numbers were carried from an earlier ``results.json`` and their label
folders were not on the machine that drew the grid).

Pictures are drawn with :mod:`mmwsss.visualization` (the project's CAM
overlay, label colouring and grid layout).
"""
import io
import os.path as osp
import textwrap
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .rows import table_title
from .tables import compare, pct, row_stats

#: Above this size a grid PNG is saved with a 256-colour palette.
MAX_PNG_BYTES = 400_000
#: Bar chart size (inches) and resolution.
BAR_FIGSIZE = (13.0, 5.0)
BAR_DPI = 100


def write_bars(path: str, results: Dict[Tuple[str, str], dict],
               seeds: Sequence[int], title: str = '') -> dict:
    """Bar chart of the ablation, one panel per method with results.

    Bars are the mean seed mIoU (global threshold) and the mean after CRF
    of each row that has results, error bars the sample std, dots the
    individual seeds; the CAM baseline is the first bar of each panel and a
    dotted line; a star marks the rows that help (see
    :data:`~.tables.HELPS_RULE`). A method without any result gets no
    panel; without any method, the baseline gets one; without any result,
    the figure says so and names no panel.

    Args:
        path (str): Output PNG (written atomically).
        results (dict): ``{(table, name): {'spec', 'runs'}}``.
        seeds (Sequence[int]): Reported seeds.
        title (str): Figure title.

    Returns:
        dict: Manifest ``{'path', 'panels': [{'table', 'rows': [[table,
        name], ...]}]}``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmwsss.utils.io import atomic_write_bytes

    verdicts = compare(results, seeds)
    base = [(i, r) for i, r in results.items()
            if r['spec'].is_baseline and r['runs']]
    tables: List[str] = []
    for r in results.values():
        t = r['spec'].table
        if not r['spec'].is_baseline and r['runs'] and t not in tables:
            tables.append(t)
    panels = [(t, base + [(i, r) for i, r in results.items()
                          if r['spec'].table == t and r['runs']])
              for t in tables]
    if not panels and base:
        panels = [('baseline', base)]
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=BAR_FIGSIZE, dpi=BAR_DPI,
        squeeze=False)
    axes = axes[0]
    width = 0.38
    manifest = dict(path=path, panels=[])
    if not panels:
        # nothing has run yet: a figure that names no method
        axes[0].text(0.5, 0.5, 'no results yet', ha='center',
                     transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, (table, panel) in zip(axes, panels):
        ax.set_title(table_title(table))
        manifest['panels'].append(
            dict(table=table, rows=[list(ident) for ident, _ in panel]))
        for i, (ident, row) in enumerate(panel):
            st = row_stats(row['runs'])
            for key, dx, colour, lab in (('miou_global', -width / 2, 'C0',
                                          'seed (best global thr)'),
                                         ('crf', width / 2, 'C1',
                                          '+ CRF / refined labels')):
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
                    label=lab)
                vals = 100 * np.asarray(s['values'])
                jitter = np.linspace(-width / 4, width / 4, len(vals))
                ax.scatter(
                    i + dx + jitter if len(vals) > 1 else [i + dx],
                    vals,
                    s=10,
                    color='k',
                    zorder=3,
                    label='individual seeds')
            if verdicts[ident]['helps']:
                top = max(
                    100 * ((st[k]['mean'] or 0) + (st[k]['std'] or 0))
                    for k in ('miou_global', 'crf'))
                ax.plot([i], [top + 2], marker='*', color='C2', ms=10,
                        linestyle='none',
                        label='helps: better than the baseline on every '
                        'seed')
            if row['spec'].is_baseline and st['miou_global']['mean'] \
                    is not None:
                ax.axhline(
                    100 * st['miou_global']['mean'],
                    color='0.4',
                    linestyle=':',
                    linewidth=1,
                    label='CAM baseline, seed (mean)')
        ax.set_xticks(range(len(panel)))
        ax.set_xticklabels(
            ['\n'.join(textwrap.wrap(r['spec'].title, 16)) for _, r in panel],
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
    fig.suptitle(title or 'Seed and pseudo-mask mIoU per ablation row, mean '
                 f'± std over dataset seeds {", ".join(map(str, seeds))}')
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=BAR_DPI)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return manifest


# ----------------------------------------------------------------------
# target quality curves (CamGuide stage 3, issue #19 item 6)
#: Prefix of :class:`~mmwsss.engine.hooks.TargetQualityHook`'s scalars.
TQ_PREFIX = 'target_quality/'


def read_target_quality(work: str) -> Dict[str, List[Tuple[int, float]]]:
    """``{name: [(step, value %), ...]}`` logged by ``TargetQualityHook``.

    Reads every ``work/*/vis_data/scalars.json`` (a resumed run has one per
    start); a step logged twice keeps the later run's value.

    Args:
        work (str): A training work dir.

    Returns:
        dict: Map name -> points by step: the mIoU of a label map (``cam``,
        ``crf``, ``rw``) or the foreground AUC of a continuous map
        (``influence_auc``, ``cam_magnitude_auc``); empty when nothing
        was logged.
    """
    import glob
    import json
    points: Dict[str, Dict[int, float]] = {}
    for path in sorted(glob.glob(osp.join(work, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                for key, val in rec.items():
                    if not key.startswith(TQ_PREFIX):
                        continue
                    name = key[len(TQ_PREFIX):]
                    if name.endswith('_miou'):
                        name = name[:-len('_miou')]
                    elif not name.endswith('_auc'):
                        continue
                    points.setdefault(name, {})[int(rec['step'])] = \
                        float(val)
    return {n: sorted(p.items()) for n, p in points.items()}


def write_target_quality(path: str, curves: Dict[Tuple[str, str], dict],
                         titles: Dict[Tuple[str, str], str]) -> dict:
    """Curves of the targets' and maps' quality during training.

    One panel per row; per map (CAM threshold mask, CRF, SLIC walk: mIoU;
    IG-CAM's influence and |CAM| maps: foreground AUC, dashed) a line per
    seed (thin) and their mean over the seeds that logged every step
    (thick).

    Args:
        path (str): Output PNG (written atomically).
        curves (dict): ``{(table, row): {seed: read_target_quality(..)}}``.
        titles (dict): ``{(table, row): title}``.

    Returns:
        dict: Manifest ``{'path', 'rows': [[table, name], ...], 'seeds'}``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmwsss.utils.io import atomic_write_bytes
    idents = [i for i in curves if curves[i]]
    fig, axes = plt.subplots(
        1, max(1, len(idents)), figsize=(4.5 * max(1, len(idents)), 3.6),
        dpi=BAR_DPI, squeeze=False, sharey=True)
    axes = axes[0]
    colours = {'cam': 'C0', 'crf': 'C1', 'rw': 'C2', 'influence_auc': 'C3',
               'cam_magnitude_auc': 'C4'}
    labels = {'cam': 'CAM at tau', 'crf': 'CRF + closing target',
              'rw': 'SLIC walk target',
              'influence_auc': 'influence map, fg AUC',
              'cam_magnitude_auc': '|CAM| map, fg AUC'}
    seeds_used = set()
    for ax, ident in zip(axes, idents):
        ax.set_title('\n'.join(textwrap.wrap(titles.get(ident, ident[1]),
                                             40)), fontsize=9)
        names = sorted({n for c in curves[ident].values() for n in c},
                       key=lambda n: (n not in colours, n))
        for name in names:
            per_seed = {s: dict(c[name]) for s, c in curves[ident].items()
                        if name in c}
            seeds_used.update(per_seed)
            col = colours.get(name)
            style = '--' if name.endswith('_auc') else '-'
            for pts in per_seed.values():
                ax.plot(list(pts), list(pts.values()), color=col, alpha=0.3,
                        linewidth=0.8, linestyle=style)
            steps = sorted(set.intersection(
                *[set(p) for p in per_seed.values()]))
            if steps:
                mean = [np.mean([p[t] for p in per_seed.values()])
                        for t in steps]
                ax.plot(steps, mean, color=col, linewidth=2,
                        linestyle=style, label=labels.get(name, name))
        ax.set_xlabel('training iteration')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('mIoU / AUC vs masks (%)')
    if not idents:
        axes[0].text(0.5, 0.5, 'no target quality logged', ha='center',
                     transform=axes[0].transAxes)
        axes[0].set_axis_off()
    else:
        axes[0].legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return dict(path=path, rows=[list(i) for i in idents],
                seeds=sorted(seeds_used))


# ----------------------------------------------------------------------
# picture grids
def read_rgb(path: str) -> Optional[np.ndarray]:
    """An image file as RGB uint8 (None when missing)."""
    from PIL import Image
    if not osp.isfile(path):
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert('RGB'))


def read_label(path: str) -> Optional[np.ndarray]:
    """A label PNG as its index map (None when missing)."""
    from PIL import Image
    if not osp.isfile(path):
        return None
    with Image.open(path) as im:
        return np.asarray(im)


def visualizer(pal: Sequence[Sequence[int]], classes: Sequence[str],
               name: str = 'wsss_results'):
    """The project's :class:`~mmwsss.visualization.WSSSVisualizer`."""
    from mmwsss.visualization import WSSSVisualizer
    return WSSSVisualizer(
        name=name, classes=list(classes), palette=[list(c) for c in pal])


def cam_tile(vis, img: Optional[np.ndarray],
             scores_path: str) -> Optional[np.ndarray]:
    """The strongest foreground CAM of saved scores over the image."""
    if img is None or not osp.isfile(scores_path):
        return None
    with np.load(scores_path) as d:
        scores = d['scores'].astype(np.float32)
    return vis.draw_cam(img, scores[1:].max(0))


def label_tile(vis, label: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """A label map in the palette (None stays None: an "n/a" tile)."""
    return None if label is None else vis.draw_label(label)


def candidate_tile(vis, cand: dict, name: str) -> Optional[np.ndarray]:
    """The pseudo-label of one image from a candidate (see
    :func:`~.runner.candidates`): refined labels, or seeds thresholded."""
    from .runner import seed_labels
    if cand['refinement'] == 'crf':
        return label_tile(
            vis, read_label(osp.join(cand['labels_dir'], name + '.png')))
    p = osp.join(cand['scores_dir'], name + '.npz')
    return label_tile(vis, seed_labels(p, cand['thr'])) \
        if osp.isfile(p) else None


def write_grid(path: str,
               names: Sequence[str],
               columns: Sequence[Tuple[str, Callable[[str],
                                                     Optional[np.ndarray]]]],
               vis,
               tile: int = 128) -> Tuple[int, int]:
    """Picture grid: one row per image, one titled column per source.

    Args:
        path (str): Output PNG (atomic; a palette PNG above
            :data:`MAX_PNG_BYTES`).
        names (Sequence[str]): Image stems, one per row.
        columns (Sequence): ``(title, fn)``; ``fn(name)`` gives an RGB tile
            or None (grey "n/a").
        vis (WSSSVisualizer): Draws the grid and the class legend.
        tile (int): Tile side.

    Returns:
        tuple: ``(height, width)``.
    """
    from mmwsss.visualization import save_png
    if not names or not columns:
        raise ValueError('names and columns must not be empty')
    rows = [[fn(n) for _, fn in columns] for n in names]
    grid = vis.make_grid(rows, [t for t, _ in columns], tile)
    save_png(path, grid, MAX_PNG_BYTES)
    return grid.shape[:2]


def best_per_table(results: Dict[Tuple[str, str], dict],
                   cands: Sequence[dict]) -> Dict[str, dict]:
    """Each table's best row and refinement among ``cands``.

    A candidate's score is the mean over the reported seeds of its row's
    figure for that refinement (seed at the global threshold, at
    class-wise thresholds, or refined labels), so the grid shows each
    method's best row of the table, drawn on one seed.

    Args:
        results (dict): ``{(table, name): {'spec', 'runs'}}``.
        cands (Sequence[dict]): Candidates of the grid seed.

    Returns:
        dict: ``{table: candidate + 'mean', 'n'}`` in table order.
    """
    key_of = dict(
        [('global', 'miou_global'), ('classwise', 'miou_classwise'),
         ('crf', 'crf')])
    out: Dict[str, dict] = {}
    for c in cands:
        runs = results[(c['table'], c['row'])]['runs']
        key = key_of[c['refinement']]
        vals = [r[key] for r in runs.values() if r.get(key) is not None]
        if not vals:
            continue
        mean = float(np.mean(vals))
        cur = out.get(c['table'])
        if cur is None or mean > cur['mean']:
            out[c['table']] = dict(c, mean=mean, n=len(vals))
    return out


def grid_columns(results: Dict[Tuple[str, str], dict], seed: int,
                 cands: Sequence[dict], data_root: str,
                 vis) -> Tuple[list, list]:
    """Columns of the results grid for one seed, and their manifest.

    Columns: the image, the baseline CAM, the best labels of every table
    that has pictures on this seed (the baseline's too), the ground truth.
    """
    base = next((r for r in results.values() if r['spec'].is_baseline),
                None)
    base_run = (base or {}).get('runs', {}).get(seed) or {}
    scores_dir = base_run.get('scores_dir')

    def image(name):
        return read_rgb(osp.join(data_root, 'JPEGImages', name + '.jpg'))

    def gt(name):
        return label_tile(
            vis,
            read_label(
                osp.join(data_root, 'SegmentationClass', name + '.png')))

    columns = [('image', image)]
    manifest = [dict(kind='image')]
    if scores_dir and osp.isdir(scores_dir):
        columns.append((f'CAM baseline (dataset seed {seed})',
                        lambda n: cam_tile(vis, image(n),
                                           osp.join(scores_dir, n + '.npz'))))
        manifest.append(
            dict(kind='cam', table=base['spec'].table,
                 row=base['spec'].name))
    for table, c in best_per_table(results, cands).items():
        columns.append(
            (f'{table_title(table)} best: {c["row"]}, {c["ref_title"]} '
             f'({pct(c["miou"])}; mean {pct(c["mean"])})',
             lambda n, c=c: candidate_tile(vis, c, n)))
        manifest.append(
            dict(kind='labels', table=table, row=c['row'],
                 refinement=c['refinement']))
    columns.append(('ground truth', gt))
    manifest.append(dict(kind='gt'))
    return columns, manifest


def check_figures(summary: dict) -> List[str]:
    """Problems of a report: figures that name a method without results.

    Args:
        summary (dict): A ``results.json`` of the report: ``rows`` (with
            ``table``, ``row``, ``runs``) and ``figures`` (manifests of
            :func:`write_bars` and the grid: ``seed`` and ``columns``).

    Returns:
        list[str]: One message per problem (empty when every named table
        and row has results, and each grid column has a run on the
        grid's seed).
    """
    have: Dict[Tuple[str, str], set] = {}
    for r in summary.get('rows', []):
        have[(r['table'], r['row'])] = {
            run.get('seed') for run in r.get('runs', [])
        }
    tables = {t for (t, _), seeds in have.items() if seeds}
    problems = []
    figs = summary.get('figures') or {}
    for panel in (figs.get('bars') or {}).get('panels', []):
        if panel['table'] not in tables:
            problems.append(f'bar chart: panel {panel["table"]!r} has no '
                            'result')
        for table, name in panel['rows']:
            if not have.get((table, name)):
                problems.append(f'bar chart: row {table} {name!r} has no '
                                'result')
    grid = figs.get('grid') or {}
    for col in grid.get('columns', []):
        if 'table' not in col:
            continue
        seeds = have.get((col['table'], col['row']), set())
        if grid.get('seed') not in seeds:
            problems.append(f'grid: column {col["table"]} {col["row"]!r} '
                            f'has no result on seed {grid.get("seed")}')
    tq = figs.get('target_quality') or {}
    for table, name in tq.get('rows', []):
        if not have.get((table, name)):
            problems.append(f'target quality: row {table} {name!r} has no '
                            'result')
    return problems
