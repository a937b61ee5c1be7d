# Copyright (c) mmwsss contributors.
"""End-to-end test of :class:`SafeCheckpointHook` with an MMEngine Runner.

A toy linear regression (SGD with momentum, a MultiStepLR scheduler) is
trained for 6 iterations in one go, and with the same config interrupted
after iteration 4 and resumed from ``iter_4.pth``; both must end with the
same parameters, optimizer state, learning rate and logged loss history.
The checkpoints must load with plain ``torch.load(weights_only=True)`` (no
allow-list at all).
"""
import importlib.util
import logging
import os.path as osp
import uuid

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmwsss  # noqa: F401  (registers the safe checkpoint loader)
from mmwsss.utils.checkpoint import SAFE_MARK, UnsafeCheckpointError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class ToyDataset(Dataset):
    """8 fixed samples ``y = 2 x0 - x1 + 0.5``."""
    metainfo = dict(classes=('a', ))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([i / 8., 1. - i / 4.])
        y = 2 * x[0] - x[1] + 0.5
        return dict(inputs=x, target=y[None])


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[0.3, -0.2]]))
            self.linear.bias.fill_(0.1)

    def forward(self, inputs, target=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - target)**2).mean())
        return out


class Interrupt(Exception):
    pass


class StopAfter(Hook):
    """Simulate a crash right after iteration ``n`` (and its checkpoint)."""
    priority = 'LOWEST'

    def __init__(self, n):
        self.n = n

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.n:
            raise Interrupt


def make_runner(work_dir,
                max_iters,
                hooks=True,
                resume=False,
                load_from=None,
                stop_after=None):
    custom_hooks = [dict(type='SafeCheckpointHook')] if hooks else []
    if stop_after:
        custom_hooks.append(StopAfter(stop_after))
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'toy_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(
            type='MultiStepLR', milestones=[3, 5], gamma=0.5, by_epoch=False),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        custom_hooks=custom_hooks,
        default_scope='mmwsss',
        log_level=logging.WARNING,
        resume=resume,
        load_from=load_from,
        randomness=dict(seed=0))


def history(runner, key):
    logs, counts = runner.message_hub.get_scalar(key).data
    return logs.tolist(), counts.tolist()


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    full = make_runner(tmp_path_factory.mktemp('full'), 6)
    full.train()
    part_dir = tmp_path_factory.mktemp('part')
    first = make_runner(part_dir, 6, stop_after=4)
    with pytest.raises(Interrupt):
        first.train()
    assert not osp.exists(osp.join(part_dir, 'iter_6.pth'))
    resumed = make_runner(
        part_dir, 6, resume=True, load_from=osp.join(part_dir, 'iter_4.pth'))
    resumed.train()
    return full, first, resumed, part_dir


def test_checkpoints_load_weights_only(runs):
    _, _, _, part_dir = runs
    for it in (2, 4, 6):  # 2 and 4 from the first run, 6 after resuming
        ckpt = torch.load(
            osp.join(part_dir, f'iter_{it}.pth'), weights_only=True)
        assert ckpt['meta']['iter'] == it
        buf = ckpt['message_hub']['log_scalars']['train/loss']
        assert buf[SAFE_MARK] == 'HistoryBuffer'
        assert len(buf['log_history']) == it
        assert set(ckpt) >= {'state_dict', 'optimizer', 'param_schedulers'}


def test_resume_matches_uninterrupted(runs):
    full, first, resumed, _ = runs
    assert resumed.iter == full.iter == 6
    for (k, a), (k2, b) in zip(full.model.state_dict().items(),
                               resumed.model.state_dict().items()):
        assert k == k2
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the resume really continued: parameters moved after iteration 4
    assert not torch.equal(first.model.linear.weight,
                           resumed.model.linear.weight)
    # momentum buffers
    sa = full.optim_wrapper.state_dict()['state']
    sb = resumed.optim_wrapper.state_dict()['state']
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(
            sa[k]['momentum_buffer'], sb[k]['momentum_buffer'], rtol=0, atol=0)
    # learning rate after milestones 3 and 5: 0.1 * 0.5 * 0.5
    for r in (full, resumed):
        assert r.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.025)]
    # the message hub history was restored and extended
    assert history(resumed, 'train/loss') == history(full, 'train/loss')
    assert history(resumed, 'train/lr') == history(full, 'train/lr')
    assert len(history(resumed, 'train/loss')[0]) == 6


def test_stock_checkpoint_refused_then_converted(tmp_path, capsys):
    """Without the hook MMEngine pickles HistoryBuffers, which need
    ``getattr``; resuming from such a file is refused. After
    ``tools/misc/convert_checkpoint.py --trust`` it resumes."""
    stock = make_runner(tmp_path / 'stock', 4, hooks=False, stop_after=2)
    with pytest.raises(Interrupt):
        stock.train()
    path = osp.join(tmp_path, 'stock', 'iter_2.pth')
    again = make_runner(tmp_path / 'again', 4, resume=True, load_from=path)
    with pytest.raises(UnsafeCheckpointError, match='iter_2.pth'):
        again.train()

    spec = importlib.util.spec_from_file_location(
        'convert_checkpoint',
        osp.join(REPO, 'tools', 'misc', 'convert_checkpoint.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    safe = osp.join(tmp_path, 'safe_iter_2.pth')
    assert tool.main([path, safe, '--trust']) == 0
    assert 'dropped' not in capsys.readouterr().out  # nothing was lost
    resumed = make_runner(tmp_path / 'again2', 4, resume=True, load_from=safe)
    resumed.train()
    assert resumed.iter == 4
    full = make_runner(tmp_path / 'full', 4)
    full.train()
    torch.testing.assert_close(
        resumed.model.linear.weight, full.model.linear.weight, rtol=0, atol=0)
    assert history(resumed, 'train/loss') == history(full, 'train/loss')
