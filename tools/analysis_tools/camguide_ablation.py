# Copyright (c) mmwsss contributors.
"""CamGuide ablation (Tables V/VI shape) on the demo scenes.

The CamGuide rows are the configs whose ``wsss_row`` says
``table='camguide'``. A staged row trains its ``stages`` in order (the
teacher, stage 1, stage 2, stage 3), each initialised from the previous
stage's checkpoint as its config says (``model.teacher_checkpoint`` or
``load_from``); a stage shared by several rows is trained once per seed.
The "+RW" row (``refine='random_walk'``) trains an AffinityNet on confident
labels of its parent's seeds and walks them. For every dataset seed this
runs the baseline (CamGuide's classification-only student) and those rows
and writes the CamGuide table to ``--out-dir``, skipping every finished
stage; the run folders are shared with
``tools/analysis_tools/wsss_results.py`` (``make results``).

``--only`` / ``--rows`` runs some rows (and what they need), e.g. to finish
one seed's missing rows on a fresh machine; ``--skip-rw`` leaves the random
walk out.

Example::

    python tools/analysis_tools/camguide_ablation.py --seeds 100 101 102
"""
import argparse
from typing import Optional, Sequence

from mmwsss.experiments.cli import add_arguments, check_arguments, run

TABLE = 'camguide'


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
