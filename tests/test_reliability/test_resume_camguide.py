# Copyright (c) mmwsss contributors.
"""Resume reproduces an uninterrupted CamGuide run (RNGStateHook).

A tiny CamGuide model trains 4 iterations in one go, and 2 iterations, then
resumes from the iteration-2 checkpoint to 4, with a real MMEngine Runner.
Stage 1 draws stochastic thresholds; stage 3 draws thresholds and dropout
masks and runs the heuristic targets. With a deterministic pipeline and
``num_workers=0`` the resumed weights equal the uninterrupted ones exactly;
without the RNG hook they do not.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from mmwsss.datasets.demo_scenes import generate_demo_dataset
from mmwsss.utils import register_all_modules

register_all_modules()


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    generate_demo_dataset(root, num_train=8, num_val=2, img_size=48)
    return root


def _backbone(out_indices):
    return dict(
        type='mmseg.ResNetV1c',
        depth=18,
        base_channels=8,
        stem_channels=8,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        out_indices=out_indices,
        init_cfg=None)


def _model(stage, teacher_ckpt):
    model = dict(
        type='CamGuideSegmentor',
        stage=stage,
        backbone=_backbone((0, 3)),
        cam_head=dict(
            type='CAMHead',
            in_channels=64,
            num_classes=8,
            loss_cls=dict(type='MultiLabelMarginLoss', loss_weight=0.35)),
        data_preprocessor=dict(
            type='mmseg.SegDataPreProcessor',
            mean=[127.] * 3,
            std=[128.] * 3,
            bgr_to_rgb=True,
            size=(48, 48)),
        test_cfg=dict(scales=(1.0, ), flip=False))
    if stage == 1:
        model.update(
            teacher=dict(
                type='CAMSegmentor',
                backbone=_backbone((3, )),
                cam_head=dict(
                    type='CAMHead', in_channels=64, num_classes=8,
                    init_cfg=None)),
            teacher_checkpoint=teacher_ckpt,
            loss_reg=dict(type='CAMDistillL1Loss', loss_weight=0.65))
    else:
        # stage 3 draws its dropout masks on the features before the
        # classifier (CamGuide sec. II.H, issue #19)
        model['cam_head']['dropout_ratio'] = 0.5
        model.update(
            refine_head=dict(
                type='CamGuideRefineHead',
                num_classes=8,
                stage1_channels=8,
                channels=16,
                gf_radius=2),
            loss_crf=dict(
                type='HeuristicTargetLoss', loss_weight=0.8,
                loss_name='loss_crf'),
            loss_rw=dict(
                type='HeuristicTargetLoss', loss_weight=0.4,
                loss_name='loss_rw'),
            loss_edge=dict(type='EdgeConsistencyLoss', loss_weight=0.7),
            loss_loc=dict(type='WindowLocalConsistencyLoss', loss_weight=0.45),
            heuristic_targets=dict(
                type='HeuristicTargets',
                crf=dict(n_iters=2, scale_factor=4.0),
                close_kernel=3,
                rw=dict(n_segments=20, n_iters=3)),
            train_cfg=dict(tau_range=(0.05, 0.3), crf_interval=2))
    return model


def _runner(work_dir, demo_root, stage, teacher_ckpt, max_iters,
            resume_from=None, rng_hook=True):
    pipeline = [
        dict(type='mmseg.LoadImageFromFile'),
        dict(type='mmseg.Resize', scale=(48, 48), keep_ratio=False),
        dict(type='PackWSSSInputs'),
    ]
    hooks = [dict(type='SafeCheckpointHook')]
    if rng_hook:
        hooks.append(dict(type='RNGStateHook'))
    cfg = dict(
        model=_model(stage, teacher_ckpt),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(
                type='WSSSDemoDataset',
                data_root=demo_root,
                ann_file='ImageSets/Segmentation/train.txt',
                data_prefix=dict(img_path='JPEGImages'),
                label_file='image_labels.json',
                pipeline=pipeline)),
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', by_epoch=False, interval=2),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks,
        default_scope='mmwsss',
        randomness=dict(seed=3),
        log_level='WARNING')
    if resume_from:
        cfg.update(load_from=resume_from, resume=True)
    return Runner.from_cfg(copy.deepcopy(cfg))


def _teacher(tmp_path):
    from mmwsss.registry import MODELS
    torch.manual_seed(0)
    t = MODELS.build(_model(1, None)['teacher'])
    path = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=t.state_dict()), path)
    return path


def _weights(runner):
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
        if not k.startswith('teacher.')
    }


@pytest.mark.parametrize('stage', [1, 3])
def test_resume_equals_uninterrupted(tmp_path, demo_root, stage):
    teacher = _teacher(tmp_path)
    full = _runner(str(tmp_path / 'full'), demo_root, stage, teacher, 4)
    full.train()
    ref = _weights(full)
    ckpt = osp.join(str(tmp_path / 'full'), 'iter_2.pth')
    assert 'rng_state' in torch.load(ckpt, weights_only=True)
    resumed = _runner(str(tmp_path / 'resumed'), demo_root, stage, teacher,
                      4, resume_from=ckpt)
    resumed.train()
    assert resumed.iter == 4
    got = _weights(resumed)
    for k, v in ref.items():
        assert torch.equal(got[k], v), k
    if stage == 3:
        # the check has teeth: without the RNG state the resumed run draws
        # other thresholds / dropout masks and ends elsewhere
        again = _runner(
            str(tmp_path / 'norng'),
            demo_root,
            stage,
            teacher,
            4,
            resume_from=ckpt,
            rng_hook=False)
        again.train()
        other = _weights(again)
        assert any(not torch.equal(other[k], v) for k, v in ref.items())
