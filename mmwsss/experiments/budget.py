# Copyright (c) mmwsss contributors.
"""One budget for every ablation row (issue #17).

Every demo ablation row config carries a ``wsss_row`` dict::

    wsss_row = dict(
        table='igcam',       # 'baseline' | 'igcam' | 'camguide'
        name='+Inst',        # row name in the table
        parent='configs/igcam/igcam-ablation-base_...py',  # or None
        change=['model.cam_head.num_proposals'],  # keys that may differ
                             # (['*'] for a refine row that trains a
                             # network of its own, e.g. AffinityNet)
        stages=None,         # or the configs trained in order (staged)
        refine=None,         # or a post-processing that reuses the parent
        extra_images=0)      # images seen beyond the shared budget

A row is its parent plus exactly the change that names it: every key of
the row's effective (fully inherited) config that differs from the parent's
must lie under one of the declared ``change`` prefixes. Following the
parents up to the CAM baseline (``parent=None``), every row therefore
shares the baseline's backbone, input, stride, images seen, schedule,
augmentation and test settings unless a row declares one of them as its
change. A staged row (CamGuide stage 1 -> 2 -> 3) splits the baseline's
images seen across its stages: the sum of ``max_iters * batch_size`` over
``stages`` must equal the baseline's, plus ``extra_images`` where a row
declares that it sees more (a stage added on top of a row that already
used the budget); the table states those images. A model trained
separately and used by a row (the CamGuide teacher) is a row of its own.

Nothing here trains or builds a model: configs are read with
:class:`mmengine.config.Config` and compared as flat key -> value maps, so
the check runs in the test suite in well under a second per row.
"""
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Sequence

from mmengine.config import Config

#: Top-level keys that never count as a change: the metadata itself and
#: where outputs go.
IGNORED_KEYS = ('wsss_row', 'work_dir', 'filename', 'launcher')

#: Keys of a row's metadata and their defaults.
ROW_DEFAULTS = dict(
    table=None,
    name=None,
    parent=None,
    change=(),
    stages=None,
    refine=None,
    extra_images=0)

TABLES = ('baseline', 'igcam', 'camguide')

#: Post-processing rows that train a network of their own (the AffinityNet
#: of a random walk): their images seen are added to the parent's.
TRAINED_REFINES = ('random_walk', )


def repo_root() -> str:
    """The repository folder (two levels above this package)."""
    return osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _abs(path: str, root: Optional[str]) -> str:
    return path if osp.isabs(path) else osp.join(root or repo_root(), path)


def load_config(path: str, root: Optional[str] = None) -> Config:
    """Read a config file (repo-relative or absolute).

    Raises:
        FileNotFoundError: Naming the file when it does not exist.
    """
    full = _abs(path, root)
    if not osp.isfile(full):
        raise FileNotFoundError(f'config {path} not found ({full})')
    return Config.fromfile(full)


def flatten(obj: Any, prefix: str = '') -> Dict[str, Any]:
    """Flatten nested dicts and lists into ``{'a.b.0.c': leaf}``.

    Lists and tuples are indexed by position, so one changed pipeline step
    is one key (``train_dataloader.dataset.pipeline.1.scale``). An empty
    container is a leaf of its own, so ``[]`` and a missing key differ.

    Args:
        obj: A config value.
        prefix (str): Key of ``obj``.

    Returns:
        dict: Flat key -> leaf value.
    """
    out: Dict[str, Any] = {}
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix] = {}
        for key, value in obj.items():
            sub = f'{prefix}.{key}' if prefix else str(key)
            out.update(flatten(value, sub))
    elif isinstance(obj, (list, tuple)):
        if not obj and prefix:
            out[prefix] = ()
        for i, value in enumerate(obj):
            out.update(flatten(value, f'{prefix}.{i}'))
    else:
        out[prefix] = obj
    return out


def config_items(cfg: Config) -> Dict[str, Any]:
    """Flat items of a config without :data:`IGNORED_KEYS`."""
    data = cfg.to_dict()
    for key in IGNORED_KEYS:
        data.pop(key, None)
    return flatten(data)


def diff_keys(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """Keys whose values differ between two flat configs (or exist in one).

    Use :func:`flatten` first: it indexes tuples and lists alike, so a
    setting written ``(1, 2)`` in one file and ``[1, 2]`` in another is the
    same.
    """
    keys = set(a) | set(b)
    missing = object()
    out = []
    for key in sorted(keys):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va is missing or vb is missing:
            out.append(key)
        elif va != vb and not (_both_empty(va, vb)):
            out.append(key)
    return out


def _both_empty(va: Any, vb: Any) -> bool:
    return (isinstance(va, (list, tuple, dict))
            and isinstance(vb, (list, tuple, dict)) and not va and not vb)


def covered(key: str, prefixes: Iterable[str]) -> bool:
    """Whether ``key`` lies under one of the dotted ``prefixes``."""
    return any(key == p or key.startswith(p + '.') for p in prefixes)


def row_meta(cfg: Config, path: str = '<config>') -> dict:
    """The ``wsss_row`` metadata of a config, with defaults filled in.

    Raises:
        KeyError: Naming the file when the config has no ``wsss_row``.
        ValueError: Naming the file and the key on malformed metadata.
    """
    if 'wsss_row' not in cfg:
        raise KeyError(f'{path}: no wsss_row metadata (not an ablation '
                       'row config)')
    meta = dict(ROW_DEFAULTS)
    raw = cfg['wsss_row']
    unknown = set(raw) - set(ROW_DEFAULTS)
    if unknown:
        raise ValueError(f'{path}: unknown wsss_row keys {sorted(unknown)}; '
                         f'known: {sorted(ROW_DEFAULTS)}')
    meta.update(raw)
    if meta['table'] not in TABLES:
        raise ValueError(f'{path}: wsss_row.table must be one of {TABLES}, '
                         f'got {meta["table"]!r}')
    if not meta['name']:
        raise ValueError(f'{path}: wsss_row.name is empty')
    # only the baseline has no parent; a 'baseline'-table row with a parent
    # is a variant of it (a retrain with another random stream)
    if meta['parent'] is None and meta['table'] != 'baseline':
        raise ValueError(f'{path}: exactly the baseline row has no parent '
                         f'(table {meta["table"]!r}, parent '
                         f'{meta["parent"]!r})')
    meta['change'] = list(meta['change'] or ())
    if meta['stages'] is not None:
        meta['stages'] = list(meta['stages'])
    return meta


def images_seen(cfg: Config) -> int:
    """``train_cfg.max_iters * train_dataloader.batch_size`` of a config."""
    try:
        return int(cfg.train_cfg.max_iters) * int(
            cfg.train_dataloader.batch_size)
    except (AttributeError, KeyError, TypeError) as e:
        raise ValueError(f'{cfg.filename}: cannot read train_cfg.max_iters '
                         f'and train_dataloader.batch_size ({e})') from e


def row_images_seen(path: str, root: Optional[str] = None) -> int:
    """Images seen by a row within the shared budget (stages summed).

    A post-processing row (``refine``) sees what its parent saw, plus what
    its own network sees when it trains one (:data:`TRAINED_REFINES`).
    """
    cfg = load_config(path, root)
    meta = row_meta(cfg, path)
    if meta['refine']:
        own = images_seen(cfg) if meta['refine'] in TRAINED_REFINES else 0
        return row_images_seen(meta['parent'], root) + own
    if meta['stages']:
        return sum(
            images_seen(load_config(p, root)) for p in meta['stages'])
    return images_seen(cfg)


def chain(path: str, root: Optional[str] = None) -> List[str]:
    """The row and its parents up to the baseline, row first.

    Raises:
        ValueError: On a parent cycle.
    """
    out = [path]
    seen = {osp.normpath(path)}
    cfg = load_config(path, root)
    parent = row_meta(cfg, path)['parent']
    while parent is not None:
        if osp.normpath(parent) in seen:
            raise ValueError(f'{path}: wsss_row.parent cycle at {parent}')
        seen.add(osp.normpath(parent))
        out.append(parent)
        parent = row_meta(load_config(parent, root), parent)['parent']
    return out


def check_row(path: str, root: Optional[str] = None) -> List[str]:
    """Budget violations of one row config (empty when it is clean).

    Checks that the row differs from its parent only under its declared
    ``change`` prefixes, that its parent chain ends at a baseline row, that
    a declared prefix really changes something (a stale declaration would
    hide a later, undeclared change), and that its images seen equal the
    baseline's.

    Args:
        path (str): Row config, repo-relative or absolute.
        root (str, optional): Folder that relative paths start from.
            Defaults to the repository.

    Returns:
        list[str]: One message per violation, each naming the file and key.
    """
    cfg = load_config(path, root)
    meta = row_meta(cfg, path)
    problems = []
    if meta['parent'] is None:
        if meta['change']:
            problems.append(f'{path}: the baseline row declares changes '
                            f'{meta["change"]}')
        return problems
    names = chain(path, root)
    base_path = names[-1]
    parent = load_config(meta['parent'], root)
    row_meta(parent, meta['parent'])
    mine, theirs = config_items(cfg), config_items(parent)
    changed = diff_keys(mine, theirs)
    if meta['change'] == ['*']:
        # a network of its own that post-processes the parent's seeds: not
        # comparable key by key, only its images seen are checked
        if meta['refine'] not in TRAINED_REFINES:
            problems.append(f'{path}: wsss_row.change [\'*\'] is only for '
                            f'rows with refine in {TRAINED_REFINES}')
        changed = []
    for key in changed:
        if not covered(key, meta['change']):
            problems.append(
                f'{path}: key {key!r} differs from the parent row '
                f'{meta["parent"]} ({_short(theirs.get(key))} -> '
                f'{_short(mine.get(key))}) but is not declared in '
                'wsss_row.change')
    for prefix in meta['change']:
        if prefix != '*' and not any(covered(k, [prefix]) for k in changed):
            problems.append(f'{path}: wsss_row.change declares {prefix!r} '
                            'but nothing under it differs from the parent '
                            f'{meta["parent"]}')
    base_seen = images_seen(load_config(base_path, root))
    seen = row_images_seen(path, root)
    if seen != base_seen + int(meta['extra_images']):
        problems.append(f'{path}: sees {seen} images in training, the '
                        f'baseline {base_path} {base_seen} and the row '
                        f'declares {meta["extra_images"]} extra (one '
                        'budget: a staged row splits the baseline\'s images '
                        'seen across its stages)')
    if meta['stages'] and osp.normpath(meta['stages'][-1]) != \
            osp.normpath(path):
        problems.append(f'{path}: the last of wsss_row.stages must be the '
                        'row config itself')
    return problems


def _short(value: Any, width: int = 60) -> str:
    text = '<missing>' if value is None else repr(value)
    return text if len(text) <= width else text[:width - 3] + '...'


#: Folder name of the dev-seed search rows (hyper-parameter variants of a
#: table row, e.g. ``configs/_search_/igcam/*.py``): rows like any other,
#: budget-checked like any other, but found only on request (``search=True``,
#: the results tools' ``--search``), so they never enter the held-out
#: tables.
SEARCH_DIR = '_search_'


def find_rows(root: Optional[str] = None,
              pattern: Sequence[str] = ('configs/**/*.py', ),
              search: bool = False) -> List[str]:
    """Repo-relative paths of every config that declares ``wsss_row``.

    Configs are searched textually for ``wsss_row`` first so that only
    candidate files are parsed.

    Args:
        root (str, optional): Repository folder (default: this one).
        pattern (Sequence[str]): Globs relative to ``root``.
        search (bool): Also the rows under a :data:`SEARCH_DIR` folder.
    """
    import glob
    root = root or repo_root()
    out = []
    for pat in pattern:
        for full in sorted(glob.glob(osp.join(root, pat), recursive=True)):
            parts = osp.relpath(full, root).replace(osp.sep, '/').split('/')
            if not search and SEARCH_DIR in parts:
                continue
            with open(full, encoding='utf-8') as f:
                if '\nwsss_row' not in '\n' + f.read():
                    continue
            out.append(osp.relpath(full, root))
    return out
