# Copyright (c) mmwsss contributors.
"""IG-CAM ablation (Table 3 shape) on the demo scenes.

The IG-CAM rows are the configs whose ``wsss_row`` says ``table='igcam'``
(each the CAM baseline plus exactly the change that names it; the
"+CRF (InfluenceCRF)" row reuses its parent's model). For every dataset
seed this runs the baseline and those rows (Selective Search proposals
where a row reads them, training, saved multi-scale seeds, threshold
sweep, DenseCRF, ``tools/test.py`` on val) and writes the IG-CAM table to
``--out-dir``, skipping every finished stage. It shares its run folders
with ``tools/analysis_tools/wsss_results.py`` (``make results``), which
skips what this tool finished. ``--rows`` runs some rows only; the smoke
options ``--iters-scale`` and ``--limit`` shorten training and scoring.

Example::

    python tools/analysis_tools/igcam_ablation.py --seeds 100 101 102
"""
import argparse
from typing import Optional, Sequence

from mmwsss.experiments.cli import add_arguments, check_arguments, run

TABLE = 'igcam'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p, out_dir='{work_dir}/report-' + TABLE)
    p.set_defaults(skip_final=True)
    p.add_argument('--final', dest='skip_final', action='store_false',
                   help='also the final model and the upper bound')
    return check_arguments(p, p.parse_args(argv))


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the ablation; return the report's summary."""
    return run(parse_args(argv), tables=[TABLE])


if __name__ == '__main__':
    main()
