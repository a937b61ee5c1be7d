# Copyright (c) mmwsss contributors.
"""Regenerate the demo results: every ablation row, final models, report.

``make results`` runs this. Rows are the configs that declare ``wsss_row``
metadata (``configs/**/*.py``: the CAM baseline, the IG-CAM and the CamGuide
ablation rows). For every *dataset* seed of ``--seeds`` (default: the
held-out seeds 100 101 102; the dev seeds 0 1 2 are for tuning) it makes the
demo scenes of that seed, checks every row against its declared change (a
row that differs from its parent in an undeclared key is refused), trains
and scores each row, trains the final model on the seed's best
pseudo-labels and the upper bound on the real masks, skipping every stage
whose output exists. Then it writes the tables (mean ± std, paired
differences to the baseline and to the parent row, the "helps" rule),
``results.json``, ``ablation_bars.png`` and ``grid.png`` to ``--out-dir``
(``docs/en/_static/results/v<generator version>``) and, with
``--update-readmes``, pastes the tables between the READMEs'
``<!-- wsss_results:NAME -->`` markers.

The logic is :mod:`mmwsss.experiments` (rows, runner, tables, plots,
report); this is its command line. Examples::

    python tools/analysis_tools/wsss_results.py --update-readmes
    python tools/analysis_tools/wsss_results.py --report-only
    # one seed on a fresh machine, then report all (numbers of seeds whose
    # folders are elsewhere come from the committed results.json)
    python tools/analysis_tools/wsss_results.py --seeds 102
"""
import argparse
from typing import Optional, Sequence

from mmwsss.experiments.cli import add_arguments, check_arguments, run

OUT_DIR = 'docs/en/_static/results/v{version}'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p, out_dir=OUT_DIR)
    return check_arguments(p, p.parse_args(argv))


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point; returns the summary written to ``results.json``."""
    return run(parse_args(argv))


if __name__ == '__main__':
    main()
