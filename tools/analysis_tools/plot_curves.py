# Copyright (c) mmwsss contributors.
"""Plot training curves (loss, lr, mIoU, ...) from MMEngine's scalars.json.

Examples::

    # the newest run of a work dir, every loss* scalar
    python tools/analysis_tools/plot_curves.py work_dirs/folder_cam \\
        --out work_dirs/folder_cam/loss.png
    # two runs, chosen keys
    python tools/analysis_tools/plot_curves.py work_dirs/a work_dirs/b \\
        --keys loss lr --legend baseline new --out curves.png

A RUN is a ``scalars.json``, its ``vis_data`` or run folder, or a work dir
(its newest run). ``LocalVisBackend`` (the default ``vis_backends``)
writes the file. See :mod:`mmwsss.visualization.curves`.
"""
import argparse
import sys
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('runs', nargs='+', help='work dirs or scalars.json files')
    p.add_argument(
        '--keys',
        nargs='+',
        default=None,
        help='scalars to plot (default: every loss*)')
    p.add_argument(
        '--legend',
        nargs='+',
        default=None,
        help='one label per run (default: the paths)')
    p.add_argument('--title', default=None)
    p.add_argument('--out', required=True, help='output PNG')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Entry point; returns the PNG path."""
    from mmwsss.utils.io import atomic_write_bytes
    from mmwsss.visualization.curves import plot_curves, read_scalars
    a = parse_args(argv)
    if a.legend is not None and len(a.legend) != len(a.runs):
        raise SystemExit(f'--legend has {len(a.legend)} labels for '
                         f'{len(a.runs)} runs')
    labels = a.legend or a.runs
    try:
        runs = [(lab, read_scalars(r)) for lab, r in zip(labels, a.runs)]
        png = plot_curves(runs, a.keys, a.title)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise SystemExit(f'plot_curves: {e}') from None
    atomic_write_bytes(a.out, png)
    print(f'wrote {a.out}', file=sys.stderr)
    return a.out


if __name__ == '__main__':
    main()
