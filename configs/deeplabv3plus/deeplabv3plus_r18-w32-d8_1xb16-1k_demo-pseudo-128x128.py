# Final WSSS stage on the demo scenes: a from-scratch DeepLabV3+ (ResNet-18
# at half width, output stride 8) trained on the CRF-refined CAM
# pseudo-labels written by tools/make_pseudo_labels.py, evaluated on the
# real val masks.
_base_ = [
    '../_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/demo_seg.py', '../_base_/default_runtime.py'
]
num_classes = 8
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(depth=18, stem_channels=32, base_channels=32),
    decode_head=dict(
        in_channels=256,
        channels=64,
        dilations=(1, 2, 4, 6),
        c1_in_channels=32,
        c1_channels=16,
        num_classes=num_classes))
max_iters = 1000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=50, by_epoch=False),
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=50,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
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
