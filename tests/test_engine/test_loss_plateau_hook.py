# Copyright (c) mmwsss contributors.
from types import SimpleNamespace

import pytest
import torch

from mmwsss.engine.hooks import ReduceLROnLossPlateauHook


def _runner(lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    return SimpleNamespace(optim_wrapper=SimpleNamespace(optimizer=opt))


def _lr(runner):
    return runner.optim_wrapper.optimizer.param_groups[0]['lr']


def test_reduces_after_patience_iterations():
    runner = _runner()
    hook = ReduceLROnLossPlateauHook(patience=3, factor=0.5)
    hook.before_train(runner)
    # iteration 1 sets the best loss; iterations 2..5 do not improve: the
    # 4th non-improving iteration (> patience) halves the rate
    for i in range(1, 5):
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(1.)))
        assert _lr(runner) == pytest.approx(0.1), i
    hook.after_train_iter(runner, 5, outputs=dict(loss=torch.tensor(1.)))
    assert _lr(runner) == pytest.approx(0.05)
    # an improving loss resets the counter
    for i in range(3):
        hook.after_train_iter(runner, 6 + i,
                              outputs=dict(loss=torch.tensor(0.5 - 0.1 * i)))
    assert _lr(runner) == pytest.approx(0.05)


def test_state_survives_checkpoint():
    runner = _runner()
    hook = ReduceLROnLossPlateauHook(patience=3, factor=0.5)
    hook.before_train(runner)
    for i in range(3):
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(1.)))
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    # resume: new hook and optimiser, state loaded before train starts
    runner2 = _runner()
    hook2 = ReduceLROnLossPlateauHook(patience=3, factor=0.5)
    hook2.after_load_checkpoint(runner2, ckpt)
    hook2.before_train(runner2)
    for i in range(2):
        hook2.after_train_iter(runner2, i,
                               outputs=dict(loss=torch.tensor(1.)))
    # 3 + 2 = 5 iterations without improvement after the first: reduced
    assert _lr(runner2) == pytest.approx(0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match='factor'):
        ReduceLROnLossPlateauHook(factor=1.5)
    hook = ReduceLROnLossPlateauHook()
    runner = _runner()
    with pytest.raises(KeyError, match='loss_key'):
        hook.after_train_iter(runner, 0, outputs=dict(other=1.0))
