# Copyright (c) mmwsss contributors.
"""The out-of-tree example project: its loss, its refiner and a real run.

The components are checked against hand-computed values; the last test
trains the project's config for 2 iterations through ``tools/train.py``
(``custom_imports`` loads the project) and scores the checkpoint with
``tools/test.py`` with the project's refiner in ``test_cfg.refine``.
"""
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmwsss.datasets.demo_scenes import generate_demo_dataset
from mmwsss.models.losses import MultiLabelSoftMarginLoss
from mmwsss.registry import MODELS, TASK_UTILS
from projects.example_project.example_project import (ExampleAsymmetricLoss,
                                                      ExampleMorphRefiner)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = ('projects/example_project/configs/'
          'cam-asl-morph_r18-w32_1xb32-600it_demo-128x128.py')
LN2 = math.log(2.0)


def test_registered():
    loss = MODELS.build(dict(type='ExampleAsymmetricLoss'))
    refiner = TASK_UTILS.build(dict(type='ExampleMorphRefiner'))
    assert isinstance(loss, ExampleAsymmetricLoss)
    assert isinstance(refiner, ExampleMorphRefiner)


def test_asl_hand_computed():
    # image 0: p = (1/2, 3/4), y = (1, 0). Positive: -(1 - 1/2) log(1/2);
    # negative: p_m = 3/4 - 1/4 = 1/2, -(1/2)^2 log(1 - 1/2).
    # image 1: p = (3/4, 1/4), y = (0, 0). p_m = (1/2, 0): the second
    # negative is below the margin and discarded.
    logits = torch.tensor([[0.0, math.log(3.0)],
                           [math.log(3.0), -math.log(3.0)]])
    targets = torch.tensor([[1, 0], [0, 0]])
    per_img = torch.tensor([(0.5 + 0.25) * LN2 / 2, 0.25 * LN2 / 2])
    kw = dict(gamma_pos=1.0, gamma_neg=2.0, clip=0.25)
    loss = ExampleAsymmetricLoss(reduction='none', **kw)
    torch.testing.assert_close(loss(logits, targets), per_img)
    loss = ExampleAsymmetricLoss(loss_weight=2.0, **kw)
    torch.testing.assert_close(loss(logits, targets), per_img.mean() * 2)
    loss = ExampleAsymmetricLoss(reduction='sum', **kw)
    weight = torch.tensor([1.0, 3.0])
    torch.testing.assert_close(
        loss(logits, targets, weight), (per_img * weight).sum())
    assert loss.loss_name == 'loss_cls'


def test_asl_discards_easy_negatives():
    logits = torch.tensor([[-3.0, -1.0, 2.0]], requires_grad=True)
    targets = torch.zeros(1, 3)
    # sigmoid(-3) = 0.047 and sigmoid(-1) = 0.269 are below / above 0.1
    ExampleAsymmetricLoss(clip=0.1)(logits, targets).backward()
    assert logits.grad[0, 0] == 0
    assert logits.grad[0, 1] > 0 and logits.grad[0, 2] > 0


def test_asl_reduces_to_soft_margin():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, generator=gen) * 5
    logits[0, 0], logits[1, 1] = 40.0, -40.0
    targets = (torch.rand(4, 7, generator=gen) > 0.5).float()
    targets[0, 0], targets[1, 1] = 0, 1
    asl = ExampleAsymmetricLoss(gamma_pos=0, gamma_neg=0, clip=0)
    x1 = logits.clone().requires_grad_()
    x2 = logits.clone().requires_grad_()
    out1 = asl(x1, targets)
    out2 = MultiLabelSoftMarginLoss()(x2, targets)
    torch.testing.assert_close(out1, out2)
    torch.testing.assert_close(out1,
                               F.multilabel_soft_margin_loss(logits, targets))
    out1.backward()
    out2.backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_asl_finite_gradients_on_extreme_logits():
    logits = torch.tensor([[60.0, -60.0, 0.0, 200.0]], requires_grad=True)
    targets = torch.tensor([[1, 0, 1, 0]])
    out = ExampleAsymmetricLoss(gamma_pos=1, gamma_neg=4)(logits, targets)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()


def test_asl_invalid():
    with pytest.raises(ValueError, match='differ in shape'):
        ExampleAsymmetricLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='clip'):
        ExampleAsymmetricLoss(clip=1.0)
    with pytest.raises(ValueError, match='gamma'):
        ExampleAsymmetricLoss(gamma_neg=-1)
    with pytest.raises(ValueError, match='reduction'):
        ExampleAsymmetricLoss(reduction='avg')


def _scores() -> np.ndarray:
    """12x12 scores: a 5x5 class-1 square with a one-pixel hole at (4, 4),
    a one-pixel class-2 speck at (9, 9), a 2x2 class-2 blob in the
    bottom-left corner and a strong class-3 row 0."""
    scores = np.zeros((4, 12, 12), np.float32)
    scores[0] = 0.5
    scores[1, 2:7, 2:7] = 1.0
    scores[1, 4, 4] = 0.0
    scores[2, 9, 9] = 1.0
    scores[2, 10:, :2] = 1.0
    scores[3, 0] = 2.0
    return scores


def test_refiner_hand_computed():
    img = np.zeros((12, 12, 3), np.uint8)
    scores = _scores()
    # arg-max over classes {0, 1, 2}; closing fills the hole, opening
    # removes the speck and the corner blob (outside is background);
    # class 3 is not an image label
    expected = np.zeros((12, 12), np.int64)
    expected[2:7, 2:7] = 1
    out = ExampleMorphRefiner(close_size=3, open_size=3)(img, scores, [2, 1])
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)

    # without closing the hole is within reach of every interior pixel,
    # so the 3x3 opening erases the whole square
    out = ExampleMorphRefiner(close_size=1, open_size=3)(img, scores, [1, 2])
    np.testing.assert_array_equal(out, np.zeros((12, 12)))

    # no morphology: plain arg-max; all nonzero channels without labels
    raw = ExampleMorphRefiner(close_size=1, open_size=1)
    expected = np.zeros((12, 12), np.int64)
    expected[2:7, 2:7] = 1
    expected[4, 4] = 0
    expected[9, 9] = 2
    expected[10:, :2] = 2
    np.testing.assert_array_equal(raw(img, scores, [1, 2]), expected)
    expected[0] = 3
    np.testing.assert_array_equal(raw(img, scores, None), expected)


def test_refiner_invalid():
    img = np.zeros((12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match='img_labels'):
        ExampleMorphRefiner()(img, _scores(), [4])
    with pytest.raises(ValueError, match='kernel_shape'):
        ExampleMorphRefiner(kernel_shape='cross')


# tiny model and schedule for the 8-image, 64-pixel demo set
TINY = [
    'model.backbone.stem_channels=8', 'model.backbone.base_channels=8',
    'model.cam_head.in_channels=64', 'model.test_cfg.scales=(1.0,)',
    'train_dataloader.batch_size=4', 'train_cfg.max_iters=2',
    'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
    'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
    'param_scheduler.1.end=2'
]


def _data_options(data_root: str) -> list:
    opts = []
    for loader in ('train_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False'
        ]
    return opts


def _run(cmd: list, env: dict) -> str:
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_train_and_test_through_tools(tmp_path):
    data = str(tmp_path / 'data')
    generate_demo_dataset(data, num_train=8, num_val=0, img_size=64)
    work = str(tmp_path / 'work')
    # custom_imports finds ``projects`` through PYTHONPATH, as documented
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([ROOT,
                                    os.environ.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1')
    opts = TINY + _data_options(data)
    out = _run([
        sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
        '--cfg-options'
    ] + opts, env)
    assert "type='ExampleAsymmetricLoss'" in out
    assert 'Iter(train) [2/2]' in out
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)

    # (tools/test.py with malloc left alone; run_demo's tests use the
    # default heap reuse)
    out = _run([
        sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir', work,
        '--no-reuse-heap', '--cfg-options'
    ] + opts, env)
    assert "type='ExampleMorphRefiner'" in out
    assert 'Iter(test) [8/8]' in out and 'mIoU: ' in out
