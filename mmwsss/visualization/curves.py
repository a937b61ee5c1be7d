# Copyright (c) mmwsss contributors.
"""Training curves from MMEngine's ``scalars.json``.

``LocalVisBackend`` appends one JSON object per logging step to
``<work_dir>/<timestamp>/vis_data/scalars.json``: the logged scalars
(``loss``, ``loss_cls``, ``lr``, ``mIoU`` after a validation, ...) and
``step``. :func:`read_scalars` reads such a file (or finds the newest one
under a work dir) and :func:`plot_curves` draws chosen keys of one or more
runs (``tools/analysis_tools/plot_curves.py``); mmseg's
``analyze_logs.py`` needs seaborn, this needs matplotlib only.
"""
import glob
import io
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

Series = Dict[str, Tuple[List[int], List[float]]]


def find_scalars(path: str) -> str:
    """The ``scalars.json`` of a path: the file, or the newest run's.

    Args:
        path (str): A ``scalars.json`` file, a ``vis_data`` folder, a run
            folder (``<work_dir>/<timestamp>``) or a work dir (its newest
            run, by timestamp folder name).

    Raises:
        FileNotFoundError: None found; the message names ``path``.
    """
    if osp.isfile(path):
        return path
    for pattern in ('scalars.json', 'vis_data/scalars.json',
                    '*/vis_data/scalars.json'):
        found = sorted(glob.glob(osp.join(path, pattern)))
        if found:
            return found[-1]
    raise FileNotFoundError(f'no scalars.json in {path} (is LocalVisBackend '
                            'in the config\'s vis_backends?)')


def read_scalars(path: str) -> Series:
    """Every scalar of a ``scalars.json`` as ``key -> (steps, values)``.

    Lines without ``step`` are skipped; a broken line (an interrupted
    write) raises a ``ValueError`` naming the file and line.
    """
    path = find_scalars(path)
    out: Series = {}
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path} line {n}: {e}') from None
            step = rec.get('step')
            if step is None:
                continue
            for key, value in rec.items():
                if key in ('step', 'iter', 'epoch') or not isinstance(
                        value, (int, float)) or isinstance(value, bool):
                    continue
                steps, values = out.setdefault(key, ([], []))
                steps.append(int(step))
                values.append(float(value))
    return out


def plot_curves(runs: Sequence[Tuple[str, Series]],
                keys: Optional[Sequence[str]] = None,
                title: Optional[str] = None,
                figsize: Tuple[float, float] = (8.0, 4.5),
                dpi: int = 100) -> bytes:
    """PNG bytes of the curves: one panel per key, one line per run.

    Args:
        runs (Sequence[tuple[str, Series]]): ``(label, scalars)`` pairs.
        keys (Sequence[str], optional): Scalars to plot; default every key
            starting with ``loss`` found in the first run.
        title (str, optional): Figure title.
        figsize (tuple): Figure size in inches.
        dpi (int): Resolution.

    Returns:
        bytes: The PNG file contents.

    Raises:
        KeyError: A key no run has (the message lists the known keys).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if not runs:
        raise ValueError('no run to plot')
    if not keys:
        keys = sorted(k for k in runs[0][1] if k.startswith('loss'))
    known = sorted({k for _, s in runs for k in s})
    missing = [k for k in keys if not any(k in s for _, s in runs)]
    if missing or not keys:
        raise KeyError(f'no scalar {missing or "loss*"} in the runs; known: '
                       f'{known}')
    fig, axes = plt.subplots(
        1, len(keys), figsize=figsize, dpi=dpi, squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, series in runs:
            if key in series:
                steps, values = series[key]
                marker = 'o' if len(steps) < 20 else None
                ax.plot(steps, values, label=label, marker=marker, linewidth=1)
        ax.set_xlabel('iteration')
        ax.set_title(key)
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    return buf.getvalue()
