# CAM baseline on the demo scenes: a from-scratch ResNet-18 at half width,
# output stride 8, trained on CPU in a few minutes.
_base_ = [
    '../_base_/models/cam_r18.py', '../_base_/datasets/demo_wsss.py',
    '../_base_/default_runtime.py'
]
num_classes = 8
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(
        stem_channels=32,
        base_channels=32,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4)),
    cam_head=dict(in_channels=256, num_classes=num_classes),
    test_cfg=dict(bg_thr=0.3))
max_iters = 600
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=30, by_epoch=False),
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=30,
        end=max_iters,
        by_epoch=False)
]
# No validation during training: seeds on the 1,000 training images with
# multi-scale inference are scored once by tools/test.py.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=max_iters,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmseg.SegVisualizationHook'))
randomness = dict(seed=0)
