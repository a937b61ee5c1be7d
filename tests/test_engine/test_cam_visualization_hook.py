# Copyright (c) mmwsss contributors.
"""CAMVisualizationHook: a Mock runner, then real Runners with backends."""
import copy
import glob
import os.path as osp
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmwsss.datasets.shapes_folder import write_shapes_folder
from mmwsss.engine.hooks import CAMVisualizationHook

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CAM_CFG = osp.join(ROOT,
                   'configs/cam/cam_effl0-d16_1xb16-500it_folder-128x128.py')


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('hook') / 'shapes'
    write_shapes_folder(
        str(root), num_images=4, img_size=32, num_masks=0, num_new=0)
    return str(root)


def config(root, work_dir, **hook):
    cfg = Config.fromfile(CAM_CFG)
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_cfg.max_iters': 3,
        'default_hooks.checkpoint.interval': 1000,
        'default_hooks.logger.interval': 1,
    })
    # no pretrained download-free weights needed for the mechanics
    cfg.model.backbone.init_cfg = None
    cfg.custom_hooks = [
        dict(type='CAMVisualizationHook', split='train', **hook)
    ]
    cfg.work_dir = str(work_dir)
    return cfg


def test_hook_checks_arguments():
    with pytest.raises(ValueError, match='interval'):
        CAMVisualizationHook(interval=0)
    with pytest.raises(ValueError, match='split'):
        CAMVisualizationHook(split='aux')
    with pytest.raises(ValueError, match='refine'):
        CAMVisualizationHook(refine='crf')
    with pytest.raises(ValueError, match='num_images'):
        CAMVisualizationHook(num_images=0)


def test_mock_runner_steps_names_and_rng(folder, tmp_path):
    from mmwsss.registry import MODELS
    init_default_scope('mmwsss')
    cfg = config(folder, tmp_path, interval=2, num_images=2)
    runner = Mock()
    runner.cfg = cfg
    runner.max_iters = 5
    runner.model = MODELS.build(copy.deepcopy(cfg.model)).train()
    runner.visualizer = Mock()  # not a WSSSVisualizer: a private drawer
    hook = CAMVisualizationHook(interval=2, num_images=2, split='train')
    hook.before_train(runner)
    assert hook.image_indices == [0, 1]
    for it in range(5):
        runner.iter = it
        state = torch.random.get_rng_state()
        hook.after_train_iter(runner, it)
        # drawing leaves the random stream and the train mode as they were
        assert torch.equal(state, torch.random.get_rng_state())
        assert runner.model.training
    runner.iter = 5
    hook.after_train(runner)
    calls = runner.visualizer.add_image.call_args_list
    got = [(c.args[0], c.kwargs['step']) for c in calls]
    assert got == [('cam_shape_000', 2), ('cam_shape_001', 2),
                   ('cam_shape_000', 4), ('cam_shape_001', 4),
                   ('cam_shape_000', 5), ('cam_shape_001', 5)]
    picture = calls[0].args[1]
    assert picture.dtype == np.uint8 and picture.ndim == 3
    # the same step is never drawn twice (after_train after the last iter)
    runner.iter = 4
    hook.after_train_iter(runner, 4)
    hook.after_train(runner)
    assert len(runner.visualizer.add_image.call_args_list) == 6


def _train(cfg):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test_real_runner_local_backend(folder, tmp_path):
    cfg = config(folder, tmp_path / 'work', interval=2, num_images=2)
    _train(cfg)
    files = sorted(
        osp.basename(p) for p in glob.glob(
            str(tmp_path / 'work' / '*' / 'vis_data' / 'vis_image' /
                'cam_*.png')))
    assert files == [
        'cam_shape_000_2.png', 'cam_shape_000_3.png', 'cam_shape_001_2.png',
        'cam_shape_001_3.png'
    ]


def test_real_runner_tensorboard_backend(folder, tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    cfg = config(folder, tmp_path / 'work', interval=1, num_images=1)
    cfg.visualizer.vis_backends = [dict(type='TensorboardVisBackend')]
    # MMEngine keeps one visualizer per name, and a runner names it after
    # its start time: another runner started in the same second would hand
    # this test its local-backend visualizer
    cfg.visualizer.name = 'cam_vis_hook_tensorboard_test'
    _train(cfg)
    events = glob.glob(
        str(tmp_path / 'work' / '*' / 'vis_data' / 'events.out.*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0], size_guidance={'images': 0})
    acc.Reload()
    assert 'cam_shape_000' in acc.Tags()['images']
    steps = [e.step for e in acc.Images('cam_shape_000')]
    assert steps == [1, 2, 3]
    assert 'loss' in acc.Tags()['scalars']
