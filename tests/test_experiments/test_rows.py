# Copyright (c) mmwsss contributors.
"""Row specs discovered from ``wsss_row`` metadata (fake repository)."""
import os.path as osp

import pytest

from mmwsss.experiments.rows import (load_rows, row_label, select_rows,
                                     slug, table_title)


def test_rows_in_table_order(fake_repo):
    rows = load_rows(fake_repo)
    assert [(r.table, r.name) for r in rows] == [
        ('baseline', 'CAM baseline'),
        ('igcam', '+Inst'),
        ('igcam', '+Inst +MS'),
        ('igcam', '+CRF (InfluenceCRF)'),
        ('camguide', 'Our*'),  # depth 1, path camguide/s2.py
        ('camguide', 'Teacher'),  # depth 1, path camguide/teacher.py
        ('camguide', 'Our* + RW'),  # depth 2
    ]
    by = {r.name: r for r in rows}
    assert by['CAM baseline'].is_baseline and by['CAM baseline'].depth == 0
    assert by['+CRF (InfluenceCRF)'].depth == 3
    assert by['+CRF (InfluenceCRF)'].refine == 'influence_crf'
    assert by['+CRF (InfluenceCRF)'].key == 'crf-influencecrf'
    assert by['Our*'].train_configs == (
        'configs/camguide/teacher.py', 'configs/camguide/s1.py',
        'configs/camguide/s2.py')
    assert by['Our*'].extra_images == 40
    assert by['+Inst'].train_configs == ('configs/igcam/inst.py', )
    assert by['+Inst +MS'].parent == 'configs/igcam/inst.py'
    assert by['+Inst +MS'].change == ('model.neck.num_outs',
                                      'train_dataloader.dataset')
    assert slug('+Inst +MS') == 'inst-ms' and table_title('igcam') == \
        'IG-CAM'


def test_select_rows(fake_repo):
    rows = load_rows(fake_repo)

    def names(sel):
        return [r.name for r in sel]

    # a refine row brings its parent chain of refine rows, and the baseline
    assert names(select_rows(rows, ['+CRF (InfluenceCRF)'])) == [
        'CAM baseline', '+Inst +MS', '+CRF (InfluenceCRF)'
    ]
    # by slug and by config stem
    assert names(select_rows(rows, ['inst', 'teacher'])) == [
        'CAM baseline', '+Inst', 'Teacher'
    ]
    assert names(select_rows(rows, None, ['camguide'])) == [
        'CAM baseline', 'Our*', 'Teacher', 'Our* + RW'
    ]
    with pytest.raises(ValueError, match=r"unknown row\(s\) \['nope'\]"):
        select_rows(rows, ['nope'])
    with pytest.raises(ValueError, match='no rows of table'):
        select_rows(rows, None, ['seam'])


def _add(root, rel, text):
    with open(osp.join(root, rel), 'w') as f:
        f.write(text)


@pytest.mark.parametrize('rel, text, match', [
    ('configs/b2.py', "_base_ = ['./_base_/data.py']\n"
     "wsss_row = dict(table='baseline', name='Other')\n",
     'exactly one row config must have parent=None'),
    ('configs/igcam/x.py', "_base_ = ['../base.py']\n"
     "wsss_row = dict(table='igcam', name='x', "
     "parent='configs/camguide/s1.py', change=['model'])\n",
     r'x.py: wsss_row.parent configs/camguide/s1.py is not a row'),
    ('configs/igcam/y.py', "_base_ = ['../base.py']\n"
     "wsss_row = dict(table='igcam', name='+Inst', "
     "parent='configs/base.py')\n", "row name '\\+Inst' collides"),
    ('configs/igcam/z.py', "_base_ = ['../base.py']\n"
     "wsss_row = dict(table='igcam', name='z', parent='configs/base.py', "
     "stages=['configs/base.py'])\n",
     'z.py: the last of wsss_row.stages must be the row config'),
    ('configs/igcam/w.py', "_base_ = ['../base.py']\n"
     "wsss_row = dict(table='igcam', name='w', parent='configs/base.py', "
     "refine='influence_crf', stages=['configs/igcam/w.py'])\n",
     'w.py: a refine row reuses'),
])
def test_malformed_rows_name_the_file(fake_repo, rel, text, match):
    _add(fake_repo, rel, text)
    with pytest.raises(ValueError, match=match):
        load_rows(fake_repo)


def test_row_label_names_the_method_once():
    assert row_label('igcam', 'Base') == 'IG-CAM Base'
    assert row_label('baseline', 'Baseline (CAM)') == 'Baseline (CAM)'
    assert row_label('camguide', 'Our*') == 'CamGuide Our*'
