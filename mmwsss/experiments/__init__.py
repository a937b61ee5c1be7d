# Copyright (c) mmwsss contributors.
"""Experiment bookkeeping of the demo bed: budgets, rows, runs, reports."""
from .budget import check_row, find_rows, row_images_seen, row_meta
from .report import ReportSettings, write_report
from .rows import RowSpec, load_rows, select_rows
from .runner import (DataSpec, ExperimentRunner, Layout, RowRejected,
                     RunSettings, StageFailed, StageRunner)
from .tables import (DEV_SEEDS, HELD_OUT_SEEDS, HELPS_RULE, ablation_table,
                     helps, paired_diffs)

__all__ = [
    'check_row', 'find_rows', 'row_images_seen', 'row_meta', 'RowSpec',
    'load_rows', 'select_rows', 'DataSpec', 'ExperimentRunner', 'Layout',
    'RowRejected', 'RunSettings', 'StageFailed', 'StageRunner',
    'ReportSettings', 'write_report', 'DEV_SEEDS', 'HELD_OUT_SEEDS',
    'HELPS_RULE', 'ablation_table', 'helps', 'paired_diffs'
]
