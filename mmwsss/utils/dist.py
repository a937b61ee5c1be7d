# Copyright (c) mmwsss contributors.
"""Distributed launch on machines without CUDA.

MMEngine 0.10.7 assumes one GPU per process for ``--launcher pytorch``:
``mmengine.dist.utils._init_dist_pytorch`` calls
``torch.cuda.set_device(LOCAL_RANK)`` before ``init_process_group`` and
``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to
``DistributedDataParallel``. On a CPU-only machine the first raises
``RuntimeError: Found no NVIDIA driver`` and the second is rejected by DDP
for a CPU module, so ``tools/dist_train.sh`` cannot run there at all.

:func:`setup_cpu_distributed` works around both without patching MMEngine:
it initialises the process group itself (``Runner.setup_env`` then skips
``init_dist``) and asks for a CPU DDP wrapper (``device_ids=None``).
"""
import datetime
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import is_distributed
from torch.nn.parallel import DistributedDataParallel

from mmwsss.registry import MODEL_WRAPPERS

#: Backends that run on CPU tensors.
CPU_BACKENDS = ('gloo', 'mpi')


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare a ``--launcher pytorch`` run for CPU-only processes.

    Does nothing (and returns False) unless ``cfg.launcher`` is
    ``'pytorch'``, CUDA is unavailable and no process group exists yet. The
    environment variables set by ``torchrun`` (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``) are used for the rendezvous.

    Args:
        cfg (Config): The merged run config (``launcher``, ``env_cfg``,
            ``model_wrapper_cfg``, ``find_unused_parameters`` are read;
            ``model_wrapper_cfg`` is written).

    Returns:
        bool: Whether the process group was initialised here.

    Raises:
        ValueError: If the configured backend needs GPUs (``nccl``); pass
            ``--cfg-options env_cfg.dist_cfg.backend=gloo`` on CPU.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or \
            torch.cuda.is_available() or is_distributed():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'nccl')
    init_backend = dist_cfg.pop('init_backend', 'torch')
    if backend not in CPU_BACKENDS:
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r} needs GPUs, but CUDA is '
            'not available; for CPU processes pass --cfg-options '
            'env_cfg.dist_cfg.backend=gloo')
    if init_backend != 'torch':
        raise ValueError('only init_backend="torch" is supported on CPU, '
                         f'got {init_backend!r}')
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **dist_cfg)

    wrapper = cfg.get('model_wrapper_cfg', None)
    if wrapper is None:
        # what Runner.wrap_model builds by default, minus the GPU index
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        wrapper_type = MODEL_WRAPPERS.get(
            wrapper.get('type', 'MMDistributedDataParallel'))
        if isinstance(wrapper_type, type) and issubclass(
                wrapper_type, DistributedDataParallel):
            wrapper['device_ids'] = None
    return True


def teardown_distributed() -> None:
    """Destroy the default process group at the end of a tool.

    Without it, gloo's worker threads are still joinable when the
    interpreter exits and a rank can die with ``terminate called without
    an active exception`` (SIGABRT) after its work is done, which makes
    ``torchrun`` report the whole job as failed. All ranks meet at a
    barrier first so that no rank tears down while another still talks.
    """
    import torch.distributed as torch_dist
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
