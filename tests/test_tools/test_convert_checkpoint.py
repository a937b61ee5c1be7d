# Copyright (c) mmwsss contributors.
"""Tests of ``tools/misc/convert_checkpoint.py``."""
import collections
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import mmwsss  # noqa: F401
from mmwsss.utils.checkpoint import (SAFE_MARK, UnsafeCheckpointError,
                                     safe_torch_load)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'misc', 'convert_checkpoint.py')
PAYLOAD_RAN = {'flag': False}


def load_tool():
    spec = importlib.util.spec_from_file_location('convert_checkpoint', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = load_tool()


class Opaque:
    """A harmless object that weights-only loading cannot restore."""

    def __init__(self, v):
        self.v = v


def _payload():
    PAYLOAD_RAN['flag'] = True
    return 'pwned'


class Malicious:

    def __reduce__(self):
        return (_payload, ())


Pair = collections.namedtuple('Pair', 'a b')


def legacy_checkpoint():
    """What stock MMEngine writes, plus a few unsafe extras."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    hb = HistoryBuffer(max_length=10)
    hb.update(1.5)
    hb.update(2.5, count=2)
    return model, {
        'meta': {
            'iter': np.int64(4),
            'best': np.float64(0.25),
            'palette': np.array([[1, 2, 3]], dtype=np.uint8),
            'cfg_dict': ConfigDict(a=1, b=dict(c=(1, 2))),
            'hooks': [Opaque(1), 'x', Pair(np.float32(0.5), 2)],
            Opaque(2): 'unsafe key',
        },
        'message_hub': {
            'log_scalars': collections.OrderedDict(loss=hb),
            'runtime_info': {
                'iter': 3,
                'extra': Opaque(3)
            },
            'resumed_keys': {
                'loss': True
            },
        },
        'state_dict':
        model.state_dict(),
        'param_schedulers': [{
            'milestones': collections.Counter([3, 5]),
            'last_step': 3
        }],
        'frozen':
        frozenset([1]),
        'whole_model':
        nn.Linear(1, 1),
    }


@pytest.fixture
def legacy(tmp_path):
    model, ckpt = legacy_checkpoint()
    path = tmp_path / 'legacy.pth'
    torch.save(ckpt, str(path))
    return model, ckpt, str(path)


def test_legacy_file_is_unsafe(legacy):
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(legacy[2])


def test_refuses_without_trust(tmp_path, capsys):
    PAYLOAD_RAN['flag'] = False
    src = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Malicious()}, str(src))
    dst = tmp_path / 'out.pth'
    assert tool.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'refusing' in err and '--trust' in err and str(src) in err
    assert not dst.exists()
    assert PAYLOAD_RAN['flag'] is False


def test_convert_trusted(legacy, tmp_path, capsys):
    model, ckpt, src = legacy
    dst = str(tmp_path / 'out' / 'safe.pth')
    assert tool.main([src, dst, '--trust']) == 0
    out = capsys.readouterr().out
    # loads with no allow-list at all
    safe = torch.load(dst, weights_only=True)
    meta = safe['meta']
    assert type(meta['iter']) is int and meta['iter'] == 4
    assert type(meta['best']) is float and meta['best'] == 0.25
    assert meta['palette'] == [[1, 2, 3]]
    assert type(meta['cfg_dict']) is dict
    assert meta['cfg_dict'] == {'a': 1, 'b': {'c': (1, 2)}}
    assert meta['hooks'] == [None, 'x', (0.5, 2)]
    assert len(meta) == 5  # the entry with the unsafe key is gone
    hub = safe['message_hub']
    assert hub['log_scalars']['loss'] == {
        SAFE_MARK: 'HistoryBuffer',
        'log_history': [1.5, 2.5],
        'count_history': [1, 2],
        'max_length': 10
    }
    assert hub['runtime_info'] == {'iter': 3}
    assert hub['resumed_keys'] == {'loss': True}
    sched = safe['param_schedulers'][0]
    assert type(sched['milestones']) is collections.Counter
    assert sched['milestones'] == {3: 1, 5: 1}
    assert safe['frozen'] == {1}
    assert torch.equal(safe['whole_model']['weight'],
                       ckpt['whole_model'].weight)
    # state dict: same tensors and version metadata
    ref = model.state_dict()
    assert list(safe['state_dict']) == list(ref)
    for k in ref:
        assert torch.equal(safe['state_dict'][k], ref[k])
    assert safe['state_dict']._metadata == ref._metadata
    # the report lists every dropped value with its place
    dropped = [ln for ln in out.splitlines() if 'dropped:' in ln]
    assert len(dropped) == 3
    assert any('meta.hooks[0]' in ln and 'Opaque' in ln for ln in dropped)
    assert any('message_hub.runtime_info.extra' in ln for ln in dropped)
    assert any('unsafe key' in ln for ln in dropped)
    assert 'message_hub.log_scalars.loss (HistoryBuffer)' in out
    # the mmwsss loader restores the history buffer
    loaded = CheckpointLoader.load_checkpoint(dst)
    hb = loaded['message_hub']['log_scalars']['loss']
    assert isinstance(hb, HistoryBuffer)
    assert hb.data[0].tolist() == [1.5, 2.5]
    assert hb.mean() == pytest.approx(4 / 3)  # sum(logs) / sum(counts)
    assert os.listdir(osp.dirname(dst)) == ['safe.pth']


def test_convert_in_place_and_safe_input(legacy, capsys):
    _, _, src = legacy
    assert tool.main([src, src, '--trust']) == 0
    safe_torch_load(src)
    # an already safe file needs no --trust
    assert tool.main([src, src]) == 0
    assert 'already loads' in capsys.readouterr().out


def test_failed_verification_keeps_target(legacy, tmp_path, monkeypatch):
    _, _, src = legacy
    dst = tmp_path / 'dst.pth'
    dst.write_bytes(b'previous')

    def refuse(*args, **kwargs):
        raise UnsafeCheckpointError('nope')

    monkeypatch.setattr(tool, 'safe_torch_load', refuse)
    with pytest.raises(UnsafeCheckpointError):
        tool.write_verified({'w': torch.ones(1)}, str(dst))
    assert dst.read_bytes() == b'previous'
    assert sorted(os.listdir(tmp_path)) == ['dst.pth', 'legacy.pth']


def test_missing_input(tmp_path, capsys):
    assert tool.main(
        [str(tmp_path / 'no.pth'),
         str(tmp_path / 'o.pth'), '--trust']) == 1
    assert 'does not exist' in capsys.readouterr().err


def test_command_line(tmp_path):
    """The script runs on its own (a stock-like message hub)."""
    hb = HistoryBuffer()
    hb.update(3.0)
    src = tmp_path / 'stock.pth'
    torch.save(
        {
            'message_hub': {
                'log_scalars': {
                    'loss': hb
                }
            },
            'state_dict': {
                'w': torch.arange(3.)
            }
        }, str(src))
    dst = tmp_path / 'safe.pth'
    cmd = [sys.executable, TOOL, str(src), str(dst), '--trust']
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert 'verified' in res.stdout
    safe = torch.load(str(dst), weights_only=True)
    assert safe['message_hub']['log_scalars']['loss']['log_history'] == [3.]
    assert torch.equal(safe['state_dict']['w'], torch.arange(3.))
