# Copyright (c) mmwsss contributors.
"""One budget for every demo ablation row (issue #17), on the real configs.

Every config that declares ``wsss_row`` must be its parent plus exactly the
declared change, and must see the baseline's images (or declare how many
more). ``tests/test_experiments/test_budget.py`` shows on toy configs that
the check fails on an undeclared change.
"""
import pytest

from mmwsss.experiments.budget import (check_row, find_rows, load_config,
                                       row_meta)

ROWS = find_rows(search=True)


def _meta(path):
    return row_meta(load_config(path), path)


def test_search_rows_only_on_request():
    """Dev-seed search rows never enter the held-out tables."""
    plain = set(find_rows())
    search = set(ROWS) - plain
    assert plain < set(ROWS) and search
    assert all('/_search_/' in p for p in search)
    assert not any('/_search_/' in p for p in plain)


def test_rows_found():
    metas = {p: _meta(p) for p in find_rows()}
    baselines = [p for p, m in metas.items() if m['table'] == 'baseline']
    assert baselines == [
        'configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py'
    ]
    igcam = {m['name'] for m in metas.values() if m['table'] == 'igcam'}
    assert {
        'Base', '+Inst', '+MS', '+Influence', '+|CAM| map (control)', 'Full',
        'Full + InfluenceCRF'
    } <= igcam
    camguide = {m['name'] for m in metas.values() if m['table'] == 'camguide'}
    assert {
        'Lite2 teacher (classification only)', 'Our* (stages 1+2)',
        'Our** (stage 3, no morphology)', 'Our+ (stage 3, morphology)',
        'Our (stage 3, morphology + local consistency)',
        'Our + RW (AffinityNet)'
    } <= camguide


@pytest.mark.parametrize('path', ROWS)
def test_row_is_parent_plus_declared_change(path):
    assert check_row(path) == []
