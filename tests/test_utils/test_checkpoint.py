# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.utils.checkpoint` (weights-only loading)."""
import collections
import functools
import logging
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


# ------------------------------------------------- older torch (simulated)
# torch < 2.5 cannot be installed next to the torch 2.14 of this venv (the
# prebuilt mmcv is tied to it), so the older-torch paths are tested by
# SIMULATING the missing API on the real torch: ``monkeypatch`` removes
# ``torch.serialization.safe_globals`` (torch 2.4), also
# ``add_safe_globals`` (torch 2.1 - 2.3), and replaces ``torch.load`` by a
# wrapper without the ``weights_only`` argument (torch < 1.13).


@pytest.fixture(params=['add_safe_globals', 'weights_only', 'restricted'])
def old_torch(request, monkeypatch):
    """Make the real torch look like an older one; yields the mode name.

    Also records the fallback log lines and every ``torch.load`` call, and
    restores torch's process-wide allow-list afterwards (torch 2.4's
    ``add_safe_globals`` changes it for the whole process).
    """
    import mmwsss.utils.checkpoint as ckpt_mod
    mode = request.param
    ser = torch.serialization
    saved_globals = list(ser.get_safe_globals())
    clear_globals, add_globals = ser.clear_safe_globals, ser.add_safe_globals
    monkeypatch.delattr(ser, 'safe_globals')
    if mode != 'add_safe_globals':
        monkeypatch.delattr(ser, 'add_safe_globals')
    calls = []
    real_load = torch.load
    if mode == 'restricted':

        def load_without_weights_only(f,
                                      map_location=None,
                                      pickle_module=pickle,
                                      **pickle_load_args):
            """``torch.load`` as in torch < 1.13."""
            calls.append(pickle_module)
            return real_load(
                f,
                map_location=map_location,
                pickle_module=pickle_module,
                weights_only=False,
                **pickle_load_args)

        monkeypatch.setattr(torch, 'load', load_without_weights_only)
    else:

        @functools.wraps(real_load)  # keeps the weights_only signature
        def recording_load(f, *args, **kwargs):
            calls.append(kwargs.get('pickle_module', 'weights_only'))
            assert kwargs.get('weights_only', None) is not None
            return real_load(f, *args, **kwargs)

        monkeypatch.setattr(torch, 'load', recording_load)
    logged = []
    monkeypatch.setattr(ckpt_mod, '_LOGGED_MODES', set())
    monkeypatch.setattr(ckpt_mod, 'print_log', lambda msg, **kw: logged.append(
        (msg, kw)))
    yield dict(mode=mode, calls=calls, logged=logged)
    clear_globals()
    add_globals(saved_globals)


def test_real_torch_uses_safe_globals():
    from mmwsss.utils.checkpoint import weights_only_mode
    assert weights_only_mode() == 'safe_globals'


def test_old_torch_refuses_payload_and_stock_buffers(old_torch, evil_ckpt,
                                                     tmp_path):
    from mmwsss.utils.checkpoint import weights_only_mode
    assert weights_only_mode() == old_torch['mode']
    with pytest.raises(UnsafeCheckpointError, match='_payload') as info:
        safe_torch_load(evil_ckpt)
    assert evil_ckpt in str(info.value)
    assert PAYLOAD_RAN['flag'] is False
    hb = HistoryBuffer()
    hb.update(1.0)
    path = tmp_path / 'stock.pth'
    torch.save({'message_hub': {'log_scalars': {'loss': hb}}}, str(path))
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_torch_load(str(path))
    assert PAYLOAD_RAN['flag'] is False
    # no call ever used the full (stdlib) unpickler
    assert pickle not in old_torch['calls']


def test_old_torch_loads_weights_numpy_and_safe_hub(old_torch, tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    arr = np.array([[1.5, 2.0]], dtype=np.float32)
    hb = HistoryBuffer(max_length=3)
    hb.update(2.0, count=2)
    path = tmp_path / 'w.pth'
    torch.save(
        {
            'state_dict': model.state_dict(),
            'meta': {
                'palette': arr,
                'idx': np.arange(3)
            },
            'message_hub': to_safe({'loss': hb}),
        }, str(path))
    ckpt = safe_torch_load(str(path))
    np.testing.assert_array_equal(ckpt['meta']['palette'], arr)
    assert ckpt['meta']['palette'].dtype == np.float32
    assert ckpt['meta']['idx'].tolist() == [0, 1, 2]
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt['state_dict'][k], v)
    restored = safe_load_from_local(str(path))['message_hub']['loss']
    assert isinstance(restored, HistoryBuffer)
    assert restored.data[0].tolist() == [2.0]
    other = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    load_checkpoint(other, str(path), map_location='cpu')
    assert torch.equal(other[0].weight, model[0].weight)
    # the fallback is logged once, naming the torch version and the mode
    safe_torch_load(str(path))
    assert len(old_torch['logged']) == 1
    msg, kw = old_torch['logged'][0]
    assert torch.__version__ in msg
    assert kw['level'] == logging.WARNING
    if old_torch['mode'] == 'add_safe_globals':
        assert 'add_safe_globals' in msg
        # torch 2.4's allow-list grew by data-only types, nothing else
        added = set(torch.serialization.get_safe_globals())
        assert HistoryBuffer in added
        assert getattr not in added
    else:
        assert 'restricted unpickler' in msg


def test_old_torch_bad_files_are_named(old_torch, tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('these are not weights\n')
    with pytest.raises(RuntimeError, match='notes.pth'):
        safe_torch_load(str(text))
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.zeros(100)}, str(good))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='bad.pth'):
        safe_torch_load(str(bad))


def test_old_torch_check_stays_on_process_wide(old_torch, evil_ckpt):
    """After a fallback load, plain weights-only loading still refuses."""
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(evil_ckpt)
    with pytest.raises(pickle.UnpicklingError):
        torch.serialization.load(evil_ckpt, weights_only=True)
    assert PAYLOAD_RAN['flag'] is False
