# Copyright (c) mmwsss contributors.
"""Split files and held-out splits (``mmwsss.datasets.splits``) and the
``hold_out_split.py`` command line."""
import importlib.util
from pathlib import Path

import pytest

from mmwsss.datasets.splits import hold_out_split, read_split, write_split

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location(
        'hold_out_split',
        ROOT / 'tools' / 'dataset_converters' / 'hold_out_split.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hold_out_split_partitions_in_order():
    ids = [f'img{i:03d}' for i in range(50)]
    held, rest = hold_out_split(ids, 12, seed=3)
    assert len(held) == 12 and len(rest) == 38
    assert not set(held) & set(rest)
    assert sorted(held + rest) == ids
    assert held == sorted(held) and rest == sorted(rest)  # input order
    assert hold_out_split(ids, 12, seed=3) == (held, rest)
    assert hold_out_split(ids, 12, seed=4)[0] != held
    for bad in (0, 50):
        with pytest.raises(ValueError, match='num must be'):
            hold_out_split(ids, bad)


def test_read_write_split(tmp_path):
    path = tmp_path / 'a.txt'
    write_split(str(path), ['x', 'y'])
    assert path.read_text() == 'x\ny\n'
    path.write_text('x\n\n y \n')
    assert read_split(str(path)) == ['x', 'y']
    path.write_text('x\ny\nx\n')
    with pytest.raises(ValueError, match=r'a\.txt.*twice.*line 3'):
        read_split(str(path))
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        read_split(str(tmp_path / 'nope.txt'))


def test_hold_out_split_tool(tmp_path, capsys):
    tool = _tool()
    src = tmp_path / 'val.txt'
    write_split(str(src), [f'v{i}' for i in range(20)])
    held, rest = tmp_path / 'influence.txt', tmp_path / 'rest.txt'
    args = [str(src), '--num', '5', '--held', str(held), '--rest', str(rest)]
    assert tool.main(args) == 0
    h, r = read_split(str(held)), read_split(str(rest))
    assert (h, r) == hold_out_split(read_split(str(src)), 5, 0)
    # existing outputs are kept without --force
    assert tool.main(args + ['--seed', '1']) == 2
    assert read_split(str(held)) == h
    assert tool.main(args + ['--seed', '1', '--force']) == 0
    assert read_split(str(held)) != h
    assert tool.main([str(src), '--num', '5', '--held', str(src), '--rest',
                      str(rest), '--force']) == 2
    assert tool.main([str(src), '--num', '20', '--held', str(held),
                      '--rest', str(rest), '--force']) == 2
    assert 'num must be' in capsys.readouterr().err
    assert not list(tmp_path.glob('.*.tmp'))  # no temporary file left
