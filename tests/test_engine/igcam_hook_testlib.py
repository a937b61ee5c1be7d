# Copyright (c) mmwsss contributors.
"""Tiny IG-CAM runs on the demo scenes for the hook tests.

A ResNetV1c-18 with 8 base channels + FPN (8 channels) + attention +
instance-guided head on 32-48 px inputs, 8 training images of 64 px, batch
2: a real MMEngine ``Runner`` trains 8 iterations in a second or two.
"""
import logging
import uuid
from typing import List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

NUM_CLASSES = 8  # demo: background + 7 shapes


def model_cfg() -> dict:
    return dict(
        type='IGCAMSegmentor',
        data_preprocessor=dict(
            type='mmseg.SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            size_divisor=8),
        backbone=dict(
            type='mmseg.ResNetV1c',
            depth=18,
            stem_channels=8,
            base_channels=8,
            out_indices=(0, 1, 2, 3),
            strides=(1, 2, 2, 2),
            dilations=(1, 1, 1, 1)),
        neck=dict(
            type='mmseg.FPN',
            in_channels=[8, 16, 32, 64],
            out_channels=8,
            num_outs=4),
        attention=dict(type='InfluenceGuidedAttention', in_channels=8),
        cam_head=dict(
            type='InstanceGuidedCAMHead',
            in_channels=8,
            num_classes=NUM_CLASSES,
            num_proposals=3,
            loss_consistency=dict(
                type='MultiScaleConsistencyLoss', loss_weight=0.5),
            loss_boundary=dict(type='BoundaryAlignmentLoss', loss_weight=0.3)),
        influence_cfg=dict(momentum=0.1),
        test_cfg=dict(scales=(1.0, ), flip=False))


def pipeline(size: int, flip: bool = False, extra=()) -> list:
    out = [
        dict(type='mmseg.LoadImageFromFile'),
        dict(type='mmseg.Resize', scale=(size, size), keep_ratio=False)
    ]
    if flip:
        out.append(dict(type='mmseg.RandomFlip', prob=0.5))
    out += list(extra)
    out.append(dict(type='PackWSSSInputs'))
    return out


def dataset_cfg(root: str, split: str, pipe: list) -> dict:
    return dict(
        type='WSSSDemoDataset',
        data_root=root,
        ann_file=f'ImageSets/Segmentation/{split}.txt',
        data_prefix=dict(img_path='JPEGImages'),
        label_file='image_labels.json',
        pipeline=pipe)


def influence_hook_cfg(root: str, **kw) -> dict:
    cfg = dict(
        type='InfluenceHook',
        val_dataset=dataset_cfg(root, 'val', pipeline(32)),
        num_samples=4,
        seed=0,
        interval=3,
        begin=2,
        report_split=f'{root}/ImageSets/Segmentation/train.txt')
    cfg.update(kw)
    return cfg


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


class Probe(Hook):
    """Record what every training iteration sees (after the other hooks'
    ``before_train_iter``) and which iterations call
    ``refresh_influence``."""
    priority = 'LOWEST'

    def __init__(self, record_influence: bool = False) -> None:
        self.iters: List[dict] = []
        self.refresh_iters: List[int] = []
        self.record_influence = record_influence

    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        original = model.refresh_influence

        def spy(*args, **kwargs):
            self.refresh_iters.append(runner.iter)
            return original(*args, **kwargs)

        model.refresh_influence = spy

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = unwrap(runner.model)
        head = model.cam_head
        samples = data_batch['data_samples']
        rec = dict(
            iter=runner.iter,
            paths=[s.metainfo['img_path'] for s in samples],
            shapes=[tuple(s.metainfo['img_shape'][:2]) for s in samples],
            flips=[bool(s.metainfo.get('flip', False)) for s in samples],
            rng=(torch.get_rng_state().clone(),
                 np.random.get_state()[1].copy(), np.random.get_state()[2]),
            mix=None
            if model.influence_cfg is None else model.influence_cfg['mix'],
            weights=(head.loss_cls.loss_weight,
                     head.loss_consistency.loss_weight,
                     head.loss_boundary.loss_weight),
            augments=model.data_preprocessor.batch_augments,
            pipeline=runner.train_loop.dataloader.dataset.pipeline)
        if self.record_influence:
            rec['influence'] = {
                k: v.clone()
                for k, v in model.influence_state_dict().items()
            }
        self.iters.append(rec)


def close_workers(runner) -> None:
    """Stop the dataloader workers now.

    Left to the garbage collector, the iterator's ``__del__`` waits
    ``MP_STATUS_CHECK_INTERVAL`` (5 s) per persistent worker in this
    process (torch 2.x); an explicit shutdown takes milliseconds.
    """
    it = getattr(runner.train_loop.dataloader_iterator, '_iterator', None)
    shutdown = getattr(it, '_shutdown_workers', None)
    if callable(shutdown):
        shutdown()


def make_runner(work_dir,
                root: str,
                hooks: list,
                max_iters: int = 8,
                train_pipeline: Optional[list] = None,
                num_workers: int = 0,
                resume_from: Optional[str] = None,
                ckpt_interval: int = 4,
                seed: int = 0) -> Runner:
    persistent = num_workers > 0
    return Runner(
        model=model_cfg(),
        work_dir=str(work_dir),
        experiment_name=f'igcam_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=dataset_cfg(root, 'train', train_pipeline or pipeline(32)),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2,
            num_workers=num_workers,
            persistent_workers=persistent),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=100),
            checkpoint=dict(
                type='CheckpointHook', interval=ckpt_interval,
                by_epoch=False)),
        custom_hooks=[dict(type='SafeCheckpointHook')] + list(hooks),
        default_scope='mmwsss',
        log_level=logging.WARNING,
        resume=resume_from is not None,
        load_from=resume_from,
        randomness=dict(seed=seed))
