# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.utils.checkpoint` (weights-only loading)."""
import collections
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import mmwsss  # noqa: F401  (registers the safe loader)
from mmwsss.utils.checkpoint import (SAFE_MARK, UnsafeCheckpointError,
                                     from_safe, safe_load_from_local,
                                     safe_torch_load, to_safe)

PAYLOAD_RAN = {'flag': False}


def _payload():
    """What a malicious pickle would run; here it only sets a flag."""
    PAYLOAD_RAN['flag'] = True
    return 'pwned'


class Malicious:

    def __reduce__(self):
        return (_payload, ())


@pytest.fixture
def evil_ckpt(tmp_path):
    PAYLOAD_RAN['flag'] = False
    path = tmp_path / 'evil.pth'
    torch.save({
        'state_dict': {
            'w': torch.ones(2)
        },
        'meta': Malicious()
    }, str(path))
    yield str(path)
    PAYLOAD_RAN['flag'] = False


def test_payload_is_refused(evil_ckpt):
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(evil_ckpt)
    msg = str(info.value)
    assert evil_ckpt in msg
    assert '_payload' in msg  # names the offending global
    assert 'convert_checkpoint.py' in msg
    assert isinstance(info.value, pickle.UnpicklingError)
    assert PAYLOAD_RAN['flag'] is False


@pytest.mark.parametrize('how', ['scheme', 'load_checkpoint', 'private'])
def test_mmengine_loading_goes_through_the_safe_loader(evil_ckpt, how):
    assert CheckpointLoader._schemes[''] is safe_load_from_local
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        if how == 'scheme':
            CheckpointLoader.load_checkpoint(evil_ckpt, map_location='cpu')
        elif how == 'load_checkpoint':
            load_checkpoint(nn.Linear(2, 1), evil_ckpt, map_location='cpu')
        else:
            _load_checkpoint(evil_ckpt, map_location='cpu')
    assert PAYLOAD_RAN['flag'] is False


def test_control_full_unpickler_runs_payload(evil_ckpt):
    """The payload is live: the full unpickler executes it."""
    ckpt = torch.load(evil_ckpt, weights_only=False)
    assert ckpt['meta'] == 'pwned'
    assert PAYLOAD_RAN['flag'] is True


def test_stock_history_buffer_is_refused(tmp_path):
    """MMEngine pickles HistoryBuffer statistics with ``getattr``."""
    hb = HistoryBuffer()
    hb.update(1.0)
    path = tmp_path / 'stock.pth'
    torch.save({'message_hub': {'log_scalars': {'loss': hb}}}, str(path))
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_torch_load(str(path))
    path = tmp_path / 'np_scalar.pth'
    torch.save({'meta': {'best': np.float64(0.5)}}, str(path))
    with pytest.raises(UnsafeCheckpointError, match='stock|np_scalar'):
        safe_torch_load(str(path))


def test_weights_and_numpy_arrays_load(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    path = tmp_path / 'w.pth'
    arr = np.array([[1.5, 2.0]], dtype=np.float32)
    torch.save(
        {
            'state_dict': model.state_dict(),
            'meta': {
                'palette': arr,
                'idx': np.arange(3),
                'classes': ('a', 'b')
            }
        }, str(path))
    ckpt = safe_torch_load(str(path))
    np.testing.assert_array_equal(ckpt['meta']['palette'], arr)
    assert ckpt['meta']['palette'].dtype == np.float32
    assert ckpt['meta']['idx'].tolist() == [0, 1, 2]
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt['state_dict'][k], v)
    # and through MMEngine into a fresh model
    other = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    load_checkpoint(other, str(path), map_location='cpu')
    assert torch.equal(other[0].weight, model[0].weight)


def test_missing_and_truncated(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_torch_load(str(tmp_path / 'nope.pth'))
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.zeros(100)}, str(good))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='bad.pth'):
        safe_torch_load(str(bad))


def test_to_safe_by_hand():
    hb = HistoryBuffer(max_length=5)
    hb.update(1.5)
    hb.update(2.25, count=3)
    obj = collections.OrderedDict(
        loss=hb,
        lr=np.float64(0.1),
        it=np.int64(7),
        arr=np.array([[1, 2], [3, 4]]),
        nested=[(np.int32(1), 'a'), {
            'b': np.bool_(True)
        }],
        t=torch.tensor([1., 2.]))
    out = to_safe(obj)
    assert type(out) is collections.OrderedDict
    assert out['loss'] == {
        SAFE_MARK: 'HistoryBuffer',
        'log_history': [1.5, 2.25],
        'count_history': [1, 3],
        'max_length': 5
    }
    assert type(out['lr']) is float and out['lr'] == 0.1
    assert type(out['it']) is int and out['it'] == 7
    assert out['arr'] == [[1, 2], [3, 4]]
    assert out['nested'] == [(1, 'a'), {'b': True}]
    assert type(out['nested'][0][0]) is int
    assert type(out['nested'][1]['b']) is bool
    assert out['t'] is obj['t']
    # the input is not modified
    assert isinstance(obj['loss'], HistoryBuffer)


def test_to_safe_from_safe_round_trip(tmp_path):
    hb = HistoryBuffer(max_length=4)
    for v, c in [(1., 1), (2., 2), (4., 1), (8., 1), (16., 1)]:
        hb.update(v, c)  # 5 updates: the first one falls out
    state = {
        'log_scalars': {
            'train/loss': hb
        },
        'runtime_info': {
            'iter': np.int64(5)
        },
        'pair': (hb, 1)
    }
    path = tmp_path / 'hub.pth'
    torch.save(to_safe(state), str(path))
    # no allow-list needed at all
    raw = torch.load(str(path), weights_only=True)
    back = from_safe(raw)
    for restored in (back['log_scalars']['train/loss'], back['pair'][0]):
        assert isinstance(restored, HistoryBuffer)
        logs, counts = restored.data
        assert logs.tolist() == [2., 4., 8., 16.]
        assert counts.tolist() == [2, 1, 1, 1]
        assert restored.max_length == 4
        # statistics work: mean of the last 2 = (8 + 16) / (1 + 1)
        assert restored.mean(2) == 12.
    assert back['runtime_info']['iter'] == 5
    assert back['pair'][1] == 1
    # the registered loader does the same
    via_mmengine = CheckpointLoader.load_checkpoint(str(path))
    assert isinstance(via_mmengine['log_scalars']['train/loss'], HistoryBuffer)
