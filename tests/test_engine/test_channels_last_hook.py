# Copyright (c) mmwsss contributors.
""":class:`ChannelsLastHook` with an MMEngine Runner.

A tiny convolutional regression is trained for 4 iterations with the hook
and without it (the same seed): the weights are channels-last during and
after training with the hook, the optimiser updates the converted
parameters (the step changes them exactly as in the contiguous run, up to
float rounding), and a test run loads the checkpoint into a converted
model.
"""
import uuid
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmwsss.engine.hooks import ChannelsLastHook, enable_channels_last


class ImageSet(Dataset):
    """4 fixed 3 x 8 x 8 images with a scalar target each."""
    metainfo = dict(classes=('a', ))

    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.rand(3, 8, 8, generator=g)
        return dict(inputs=x, target=x.mean()[None])


class ConvNet(BaseModel):

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 1)

    def forward(self, inputs, target=None, mode='tensor'):
        feat = self.conv(inputs)
        out = self.head(feat.mean((2, 3)))
        if mode == 'loss':
            return dict(loss=((out - target)**2).mean())
        if mode == 'predict':
            return [o for o in out]
        return out


class Record(Hook):
    """Memory format of the conv weight at each iteration."""

    def __init__(self):
        self.formats = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        w = runner.model.conv.weight
        self.formats.append(
            w.is_contiguous(memory_format=torch.channels_last))


def _train(tmp_path, hooks):
    rec = Record()
    runner = Runner(
        model=ConvNet(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=ImageSet(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05,
                                          momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=4,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=hooks + [rec],
        experiment_name=f'cl_{uuid.uuid4().hex[:8]}',
        default_scope='mmwsss')
    runner.train()
    return runner, rec


def test_hook_trains_channels_last(tmp_path):
    plain, rec0 = _train(tmp_path / 'plain', [])
    conv, rec1 = _train(tmp_path / 'cl', [dict(type='ChannelsLastHook')])
    assert rec0.formats == [False] * 4
    assert rec1.formats == [True] * 4
    w0, w1 = plain.model.conv.weight, conv.model.conv.weight
    assert w1.is_contiguous(memory_format=torch.channels_last)
    # the optimiser kept the converted parameters: they moved as in the
    # contiguous run
    start = ConvNet().conv.weight
    assert not torch.allclose(w1, start)
    torch.testing.assert_close(w1, w0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        conv.model.head.weight, plain.model.head.weight, rtol=1e-5,
        atol=1e-6)
    assert w1.abs().max() < 10  # a sane run, not a diverged one
    # a checkpoint loads into a converted model (test run)
    model = ConvNet()
    r = SimpleNamespace(model=model)  # what before_run reads of a runner
    ChannelsLastHook().before_run(r)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    state = torch.load(
        str(tmp_path / 'cl' / 'iter_4.pth'), weights_only=False)['state_dict']
    model.load_state_dict(state)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model.conv.weight, w1)
    # switched off from the config
    model = ConvNet()
    r.model = model
    ChannelsLastHook(enabled=False).before_run(r)
    assert model.conv.weight.is_contiguous()


def test_enable_channels_last():
    cfg = Config(dict(custom_hooks=[dict(type='SafeCheckpointHook')]))
    assert enable_channels_last(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == [
        'SafeCheckpointHook', 'ChannelsLastHook'
    ]
    assert not enable_channels_last(cfg)  # once
    assert len(cfg.custom_hooks) == 2
    empty = Config(dict())
    enable_channels_last(empty)
    assert empty.custom_hooks == [dict(type='ChannelsLastHook')]


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_tools_have_the_flag(tool):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, f'tools/{tool}.py', '-h'],
                         capture_output=True,
                         text=True,
                         cwd=__file__.rsplit('/tests/', 1)[0])
    assert out.returncode == 0 and '--channels-last' in out.stdout
