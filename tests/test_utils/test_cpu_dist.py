# Copyright (c) mmwsss contributors.
import socket

import pytest
import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel

from mmwsss.registry import MODEL_WRAPPERS
from mmwsss.utils import setup_cpu_distributed


def _cfg(launcher: str, backend: str, **kwargs) -> Config:
    return Config(
        dict(
            launcher=launcher,
            env_cfg=dict(dist_cfg=dict(backend=backend, timeout=60)),
            **kwargs))


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


@pytest.fixture
def single_rank(monkeypatch, no_cuda):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    for key, value in dict(
            RANK='0',
            LOCAL_RANK='0',
            WORLD_SIZE='1',
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(port)).items():
        monkeypatch.setenv(key, value)
    yield
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def test_noop_without_pytorch_launcher(no_cuda):
    cfg = _cfg('none', 'nccl')
    assert setup_cpu_distributed(cfg) is False
    assert 'model_wrapper_cfg' not in cfg
    assert not torch_dist.is_initialized()


def test_nccl_on_cpu_is_refused(no_cuda):
    with pytest.raises(ValueError, match='env_cfg.dist_cfg.backend=gloo'):
        setup_cpu_distributed(_cfg('pytorch', 'nccl'))
    assert not torch_dist.is_initialized()


@pytest.mark.skipif(
    not torch_dist.is_gloo_available(), reason='needs the gloo backend')
def test_gloo_group_and_cpu_wrapper(single_rank):
    cfg = _cfg('pytorch', 'gloo', find_unused_parameters=True)
    assert setup_cpu_distributed(cfg) is True
    assert torch_dist.is_initialized()
    assert torch_dist.get_backend() == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    # built as Runner.wrap_model does, whose GPU index is overridden
    model = MODEL_WRAPPERS.build(
        cfg.model_wrapper_cfg,
        default_args=dict(module=nn.Linear(2, 2), device_ids=[0]))
    assert isinstance(model, MMDistributedDataParallel)
    assert model.device_ids is None
    # a second call finds the group and does nothing
    assert setup_cpu_distributed(_cfg('pytorch', 'gloo')) is False


@pytest.mark.skipif(
    not torch_dist.is_gloo_available(), reason='needs the gloo backend')
def test_gloo_keeps_a_custom_ddp_wrapper(single_rank):
    cfg = _cfg(
        'pytorch',
        'gloo',
        model_wrapper_cfg=dict(
            type='MMDistributedDataParallel', broadcast_buffers=True))
    assert setup_cpu_distributed(cfg) is True
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=True,
        device_ids=None)
