# Copyright (c) mmwsss contributors.
"""Experiment bookkeeping of the demo bed: budgets, rows, runs, reports."""
from .budget import check_row, find_rows, row_images_seen, row_meta

__all__ = ['check_row', 'find_rows', 'row_images_seen', 'row_meta']
