# Copyright (c) mmwsss contributors.
"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (gloo).

The demo CAM config (tiny widths, 8 images of 64 pixels) is trained for 2
iterations by two torchrun workers and the checkpoint is then scored by two
workers; each scores half of the images and the metric gathers them.
``CUDA_VISIBLE_DEVICES`` is emptied so that the CPU path
(:func:`mmwsss.utils.setup_cpu_distributed`) is taken on GPU machines too.
"""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest
import torch.distributed as torch_dist

from mmwsss.datasets.demo_scenes import generate_demo_dataset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/cam/cam_r18-w32_1xb32-600it_demo-128x128.py'
TINY = [
    'model.backbone.stem_channels=8', 'model.backbone.base_channels=8',
    'model.cam_head.in_channels=64', 'model.test_cfg.scales=(1.0,)',
    'train_dataloader.batch_size=4', 'train_cfg.max_iters=2',
    'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
    'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
    'param_scheduler.1.end=2', 'env_cfg.dist_cfg.backend=gloo'
]

pytestmark = pytest.mark.skipif(
    shutil.which('bash') is None or not torch_dist.is_gloo_available(),
    reason='needs bash and the gloo backend')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd: list) -> str:
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash'] + cmd,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_dist_train_and_test(tmp_path):
    data = str(tmp_path / 'data')
    generate_demo_dataset(data, num_train=8, num_val=0, img_size=64)
    opts = list(TINY)
    for loader in ('train_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={data}', f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False'
        ]
    work = str(tmp_path / 'work')
    out = _run([
        'tools/dist_train.sh', CONFIG, '2', '--work-dir', work, '--cfg-options'
    ] + opts)
    assert 'Distributed training: True' in out
    assert 'Iter(train) [2/2]' in out
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)

    out = _run([
        'tools/dist_test.sh', CONFIG, ckpt, '2', '--work-dir', work,
        '--cfg-options'
    ] + opts)
    # 8 images over 2 processes: 4 test iterations each
    assert 'Iter(test) [4/4]' in out and 'Iter(test) [5/' not in out
    assert 'mIoU: ' in out


def test_slurm_scripts_forward_arguments(tmp_path):
    # a stand-in srun that prints the command line it was given
    srun = tmp_path / 'srun'
    srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    srun.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}',
        GPUS='4',
        GPUS_PER_NODE='2')
    cases = [('tools/slurm_train.sh', 'tools/train.py', ['CFG']),
             ('tools/slurm_test.sh', 'tools/test.py', ['CFG', 'CKPT'])]
    for script, tool, pos in cases:
        proc = subprocess.run(
            ['bash', script, 'part', 'job'] + pos +
            ['--cfg-options', 'a=1', 'b=x y'],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60)
        assert proc.returncode == 0, proc.stderr
        args = proc.stdout.splitlines()
        assert args[:2] == ['-p', 'part'] and '--job-name=job' in args
        assert '--ntasks=4' in args and '--ntasks-per-node=2' in args
        i = args.index('-u')
        assert osp.normpath(args[i + 1]) == tool
        assert args[i + 2:] == pos + [
            '--launcher=slurm', '--cfg-options', 'a=1', 'b=x y'
        ]
