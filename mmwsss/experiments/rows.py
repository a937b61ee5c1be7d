# Copyright (c) mmwsss contributors.
"""Ablation rows discovered from the configs' ``wsss_row`` metadata.

Every demo ablation row config (and the CAM baseline config) carries a
``wsss_row`` dict (see :mod:`mmwsss.experiments.budget`, which reads it).
This module turns those configs into :class:`RowSpec` objects in table
order and checks that they form one tree rooted at the baseline:

* exactly one row has no parent, and it is the ``'baseline'`` table's
  (other ``'baseline'`` rows are variants of it, e.g. a retrain);
* every parent is itself a row config;
* a post-processing row (``refine``) has a parent whose model it reuses;
* the last of a staged row's ``stages`` is the row's own config.

Table order: the tables of :data:`TABLES` (baseline, IG-CAM, CamGuide),
then any other table alphabetically; inside a table, rows by their depth
below the baseline (a row after the row it modifies), then by config path.
"""
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .budget import TABLES, find_rows, load_config, row_meta

#: Display names of the tables.
TABLE_TITLES = {
    'baseline': 'Baseline',
    'igcam': 'IG-CAM',
    'camguide': 'CamGuide',
}
#: The ``refine`` kind that trains an AffinityNet on confident labels of the
#: parent's scores and walks them (CamGuide "+RW"). Every other ``refine``
#: value names a label assignment defined by the row config's own
#: ``model.test_cfg.refine`` (IG-CAM "+CRF (InfluenceCRF)") applied to the
#: parent's saved scores with ``tools/make_pseudo_labels.py --refine
#: config``.
RANDOM_WALK = 'random_walk'


def slug(text: str) -> str:
    """A folder-safe lower-case name, e.g. ``'+Inst +MS'`` -> ``inst-ms``."""
    return re.sub(r'[^a-z0-9]+', '-', str(text).lower()).strip('-') or 'row'


def table_title(table: str) -> str:
    """Display name of a table (``'igcam'`` -> ``'IG-CAM'``)."""
    return TABLE_TITLES.get(table, table)


def row_label(table: str, name: str) -> str:
    """A row named with its method, once: ``('igcam', 'Base')`` ->
    ``'IG-CAM Base'``, ``('baseline', 'Baseline (CAM)')`` ->
    ``'Baseline (CAM)'``."""
    method = table_title(table)
    return name if name.startswith(method) else f'{method} {name}'


@dataclass(frozen=True)
class RowSpec:
    """One ablation row, as declared by its config.

    Args:
        config (str): Repo-relative path of the row config.
        table (str): ``'baseline'``, ``'igcam'``, ``'camguide'``.
        name (str): Row name in the table.
        parent (str, optional): Config of the row this row modifies (None
            for the CAM baseline).
        change (tuple[str]): Dotted key prefixes allowed to differ from the
            parent's effective config.
        stages (tuple[str], optional): Configs trained in this order, each
            initialised from the previous stage's checkpoint; the last one
            is ``config``.
        refine (str, optional): A post-processing row that reuses the
            parent's model (:data:`RANDOM_WALK`, or a refinement of the
            row config's ``model.test_cfg.refine``).
        extra_images (int): Images seen outside the shared budget.
        depth (int): Parent links up to the baseline (baseline 0).
    """
    config: str
    table: str
    name: str
    parent: Optional[str] = None
    change: Tuple[str, ...] = ()
    stages: Optional[Tuple[str, ...]] = None
    refine: Optional[str] = None
    extra_images: int = 0
    depth: int = 0
    key: str = field(default='', compare=False)

    @property
    def is_baseline(self) -> bool:
        return self.parent is None

    @property
    def title(self) -> str:
        return self.name

    @property
    def method(self) -> str:
        """Alias of ``table`` (the method a row belongs to)."""
        return self.table

    @property
    def train_configs(self) -> Tuple[str, ...]:
        """The configs trained for this row, in order (not for refine
        rows, which reuse their parent's model)."""
        return self.stages or (self.config, )

    @property
    def ident(self) -> Tuple[str, str]:
        """``(table, name)``: how results files name the row."""
        return (self.table, self.name)

    def to_dict(self) -> dict:
        return dict(
            config=self.config,
            table=self.table,
            name=self.name,
            parent=self.parent,
            change=list(self.change),
            stages=None if self.stages is None else list(self.stages),
            refine=self.refine,
            extra_images=self.extra_images,
            key=self.key)


def _norm(path: str, root: str) -> str:
    """Repo-relative POSIX form of a config path."""
    full = path if osp.isabs(path) else osp.join(root, path)
    rel = osp.relpath(osp.normpath(full), root)
    return rel.replace(osp.sep, '/')


def _table_rank(table: str) -> Tuple[int, str]:
    return (TABLES.index(table), '') if table in TABLES else (len(TABLES),
                                                              table)


def load_rows(root: Optional[str] = None,
              paths: Optional[Sequence[str]] = None,
              search: bool = False) -> List[RowSpec]:
    """Row specs of the configs that declare ``wsss_row``, in table order.

    Args:
        root (str, optional): Repository folder (default: this package's).
        paths (Sequence[str], optional): Row configs to read instead of
            searching ``configs/**/*.py``.
        search (bool): Also the dev-seed search rows
            (:data:`~.budget.SEARCH_DIR`) when searching.

    Returns:
        list[RowSpec]: Baseline first, then each table's rows.

    Raises:
        ValueError: Naming the file when the rows do not form one tree
            rooted at a single baseline, or a row's metadata is malformed.
    """
    from .budget import repo_root
    root = root or repo_root()
    found = list(paths) if paths is not None else find_rows(
        root, search=search)
    metas: Dict[str, dict] = {}
    for path in found:
        rel = _norm(path, root)
        meta = row_meta(load_config(rel, root), rel)
        for key in ('parent', ):
            if meta[key] is not None:
                meta[key] = _norm(meta[key], root)
        if meta['stages'] is not None:
            meta['stages'] = [_norm(p, root) for p in meta['stages']]
        metas[rel] = meta
    if not metas:
        raise ValueError(f'no row config (wsss_row) under {root}/configs')
    bases = [p for p, m in metas.items() if m['parent'] is None]
    if len(bases) != 1:
        raise ValueError('exactly one row config must have parent=None (the '
                         f'CAM baseline); found {len(bases)}: {bases}')
    for path, meta in metas.items():
        _check_meta(path, meta, metas, root)
    depth = {p: _depth(p, metas) for p in metas}
    specs = []
    for path, meta in metas.items():
        specs.append(
            RowSpec(
                config=path,
                table=meta['table'],
                name=str(meta['name']),
                parent=meta['parent'],
                change=tuple(meta['change']),
                stages=None
                if meta['stages'] is None else tuple(meta['stages']),
                refine=meta['refine'],
                extra_images=int(meta['extra_images'] or 0),
                depth=depth[path],
                key=slug(meta['name'])))
    specs.sort(key=lambda s: (_table_rank(s.table), s.depth, s.config))
    seen: Dict[Tuple[str, str], str] = {}
    for s in specs:
        for ident in ((s.table, s.name), (s.table, s.key)):
            if ident in seen and seen[ident] != s.config:
                raise ValueError(f'{s.config}: row name {s.name!r} collides '
                                 f'with {seen[ident]} in table {s.table!r} '
                                 '(names and their slugs must be unique)')
            seen[ident] = s.config
    return specs


def _check_meta(path: str, meta: dict, metas: Dict[str, dict],
                root: str) -> None:
    parent = meta['parent']
    if parent is not None and parent not in metas:
        raise ValueError(f'{path}: wsss_row.parent {parent} is not a row '
                         'config (no wsss_row there, or not found)')
    if meta['refine'] is not None:
        if not isinstance(meta['refine'], str) or not meta['refine']:
            raise ValueError(f'{path}: wsss_row.refine must be a non-empty '
                             f'string or None, got {meta["refine"]!r}')
        if parent is None:
            raise ValueError(f'{path}: a refine row needs a parent whose '
                             'model it reuses')
        if meta['stages']:
            raise ValueError(f'{path}: a refine row reuses its parent\'s '
                             'model and trains no stages')
    if meta['stages'] is not None:
        if not meta['stages']:
            raise ValueError(f'{path}: wsss_row.stages is empty (use None)')
        for p in meta['stages']:
            if not osp.isfile(osp.join(root, p)):
                raise FileNotFoundError(f'{path}: stage config {p} not found')
        if meta['stages'][-1] != path:
            raise ValueError(f'{path}: the last of wsss_row.stages must be '
                             f'the row config itself, got '
                             f'{meta["stages"][-1]}')
    if not isinstance(meta['extra_images'] or 0, int):
        raise ValueError(f'{path}: wsss_row.extra_images must be an int, got '
                         f'{meta["extra_images"]!r}')


def _depth(path: str, metas: Dict[str, dict]) -> int:
    d, seen = 0, {path}
    parent = metas[path]['parent']
    while parent is not None:
        if parent in seen:
            raise ValueError(f'{path}: wsss_row.parent cycle at {parent}')
        seen.add(parent)
        d += 1
        parent = metas[parent]['parent']
    return d


def baseline_of(rows: Sequence[RowSpec]) -> RowSpec:
    """The CAM baseline row (parent None)."""
    for r in rows:
        if r.is_baseline:
            return r
    raise ValueError('no baseline row (parent=None) among the rows')


def by_config(rows: Iterable[RowSpec]) -> Dict[str, RowSpec]:
    """``{config path: row}``."""
    return {r.config: r for r in rows}


def select_rows(rows: Sequence[RowSpec],
                wanted: Optional[Sequence[str]] = None,
                tables: Optional[Sequence[str]] = None) -> List[RowSpec]:
    """The rows to run, with what they need, in table order.

    A row is named by its name, its slug (``key``), its config path or the
    config's file stem. The baseline is always included (every row is
    compared with it and the final models start from it); a refine row
    brings its parent (whose model and scores it reuses), and so on up.

    Args:
        rows (Sequence[RowSpec]): From :func:`load_rows`.
        wanted (Sequence[str], optional): Rows to run (default: all of
            ``tables``).
        tables (Sequence[str], optional): Restrict to these tables.

    Returns:
        list[RowSpec]: The selection plus prerequisites.

    Raises:
        ValueError: Naming the unknown rows.
    """
    pool = [r for r in rows if tables is None or r.table in tables or
            r.is_baseline]
    if tables is not None:
        bad = set(tables) - {r.table for r in rows}
        if bad:
            raise ValueError(f'no rows of table(s) {sorted(bad)}; tables: '
                             f'{sorted({r.table for r in rows})}')
    if wanted:
        chosen, unknown = set(), []
        for w in wanted:
            hits = [
                r for r in pool if w in (r.name, r.key, r.config) or
                osp.splitext(osp.basename(r.config))[0] == w
            ]
            if not hits:
                unknown.append(w)
            chosen.update(r.config for r in hits)
        if unknown:
            names = ', '.join(repr(r.name) for r in pool)
            raise ValueError(f'unknown row(s) {unknown}; rows: {names} (or '
                             'their slugs / config stems)')
    else:
        chosen = {r.config for r in pool}
    index = by_config(rows)
    for conf in list(chosen):
        r = index[conf]
        while r.refine is not None and r.parent is not None:
            chosen.add(r.parent)
            r = index[r.parent]
    chosen.add(baseline_of(rows).config)
    return [r for r in rows if r.config in chosen]
