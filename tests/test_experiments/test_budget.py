# Copyright (c) mmwsss contributors.
"""One budget for every ablation row: the check itself, on toy configs."""
import os.path as osp

import pytest

from mmwsss.experiments.budget import (check_row, chain, diff_keys, flatten,
                                       row_images_seen)

BASE = """
wsss_row = dict(table='baseline', name='Baseline')
model = dict(type='CAMSegmentor', backbone=dict(output_stride=16),
             test_cfg=dict(scales=(1.0, 0.5, 1.5, 2.0), flip=True))
train_pipeline = [dict(type='Load'), dict(type='Flip', prob=0.5)]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_iters=500)
work_dir = 'a'
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def rows(tmp_path):
    base = _write(tmp_path, 'base.py', BASE)
    row = _write(
        tmp_path, 'row.py', f"""
_base_ = ['./base.py']
wsss_row = dict(table='igcam', name='+Inst', parent={base!r},
                change=['model.type', 'model.head'])
model = dict(type='IGCAMSegmentor', head=dict(num_proposals=64))
work_dir = 'b'
""")
    return tmp_path, base, row


def test_flatten_and_diff():
    flat = flatten(dict(a=dict(b=[1, dict(c=2)]), d=[], e={}))
    assert flat == {'a.b.0': 1, 'a.b.1.c': 2, 'd': (), 'e': {}}
    # a tuple in one file and a list in another are the same setting
    assert diff_keys(
        flatten({'x': (1, 2), 'y': 1}), flatten({'x': [1, 2], 'z': 1})) == \
        ['y', 'z']


def test_clean_row_passes(rows):
    tmp, base, row = rows
    assert check_row(row, str(tmp)) == []
    assert check_row(base, str(tmp)) == []
    assert chain(row, str(tmp)) == [row, base]
    assert row_images_seen(row, str(tmp)) == 16000


@pytest.mark.parametrize(
    'edit, key',
    [("train_cfg = dict(max_iters=400)", 'train_cfg.max_iters'),
     ("model = dict(backbone=dict(output_stride=32))",
      'model.backbone.output_stride'),
     ("model = dict(test_cfg=dict(scales=(1.0, 0.5, 1.5)))",
      'model.test_cfg.scales.3'),
     ("train_pipeline = [dict(type='Load'), dict(type='Flip', prob=0.3)]\n"
      "train_dataloader = dict(dataset=dict(pipeline=train_pipeline))",
      'train_dataloader.dataset.pipeline.1.prob')])
def test_undeclared_change_fails(rows, edit, key):
    """A row that also changes a budget key it does not declare fails."""
    tmp, _, row = rows
    with open(row, 'a') as f:
        f.write(edit + '\n')
    problems = check_row(row, str(tmp))
    assert any(repr(key) in p and 'not declared' in p for p in problems), \
        problems
    assert all(osp.basename(row) in p for p in problems)


def test_stale_declaration_and_images_seen(rows):
    tmp, base, row = rows
    stale = _write(
        tmp, 'stale.py', f"""
_base_ = ['./row.py']
wsss_row = dict(table='igcam', name='+MS', parent={row!r},
                change=['model.neck'])
""")
    problems = check_row(stale, str(tmp))
    assert len(problems) == 1 and 'nothing under it differs' in problems[0]
    # a staged row must split the baseline's images seen across its stages
    s1 = _write(tmp, 's1.py', f"""
_base_ = ['./base.py']
wsss_row = dict(table='camguide', name='stage 1', parent={base!r},
                change=['train_cfg.max_iters'])
train_cfg = dict(max_iters=250)
""")
    s2 = str(tmp / 's2.py')
    _write(tmp, 's2.py', f"""
_base_ = ['./base.py']
wsss_row = dict(table='camguide', name='Our*', parent={base!r},
                change=['train_cfg.max_iters'], stages=[{s1!r}, {s2!r}])
train_cfg = dict(max_iters=250)
""")
    assert check_row(s2, str(tmp)) == []
    assert row_images_seen(s2, str(tmp)) == 16000
    problems = check_row(s1, str(tmp))
    assert any('sees 8000 images' in p for p in problems)
    # a row that declares the images it sees beyond the budget passes
    with open(s1, 'a') as f:
        f.write("wsss_row = dict(extra_images=-8000)\n")
    assert check_row(s1, str(tmp)) == []


def test_bad_metadata(rows):
    tmp, base, _ = rows
    bad = _write(tmp, 'bad.py', """
_base_ = ['./base.py']
wsss_row = dict(table='igcam', name='x', parnt=None)
""")
    with pytest.raises(ValueError, match='bad.py: unknown wsss_row keys'):
        check_row(bad, str(tmp))
    orphan = _write(tmp, 'orphan.py', """
_base_ = ['./base.py']
wsss_row = dict(table='igcam', name='x')
""")
    with pytest.raises(ValueError, match='orphan.py: exactly the baseline'):
        check_row(orphan, str(tmp))
    # a baseline-table row with a parent is a variant of the baseline (a
    # retrain): allowed, and checked against its parent like any row
    retrain = _write(tmp, 'retrain.py', f"""
_base_ = ['./base.py']
randomness = dict(seed=1)
wsss_row = dict(table='baseline', name='retrain', parent={base!r},
                change=['randomness.seed'])
""")
    assert check_row(retrain, str(tmp)) == []
    undeclared = _write(tmp, 'undeclared.py', f"""
_base_ = ['./base.py']
randomness = dict(seed=1)
wsss_row = dict(table='baseline', name='retrain2', parent={base!r})
""")
    assert any('randomness.seed' in p
               for p in check_row(undeclared, str(tmp)))


def test_trained_refine_row(rows):
    """A refine row that trains its own network (AffinityNet) adds its
    images and may differ everywhere only with change=['*']."""
    tmp, base, row = rows
    aff = _write(
        tmp, 'aff.py', f"""
model = dict(type='AffinityNet')
train_dataloader = dict(batch_size=16)
train_cfg = dict(max_iters=300)
wsss_row = dict(table='igcam', name='+RW', parent={row!r},
                refine='random_walk', change=['*'], extra_images=4800)
""")
    assert check_row(aff, str(tmp)) == []
    assert row_images_seen(aff, str(tmp)) == 16000 + 4800
    wild = _write(tmp, 'wild.py', f"""
_base_ = ['./row.py']
wsss_row = dict(table='igcam', name='x', parent={row!r}, change=['*'])
""")
    assert any("only for rows with refine" in p
               for p in check_row(wild, str(tmp)))
