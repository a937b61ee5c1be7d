# Final WSSS stage on PASCAL VOC 2012: MMSeg's DeepLabV3+ R-101-D8 trained on
# the train_aug pseudo-labels written by
#   python tools/make_pseudo_labels.py \
#       configs/cam/cam_r50-d16_1xb16-3k_voc12aug-512x512.py CKPT \
#       --split train --refine irn_label \
#       --out data/VOCdevkit/VOC2012/pseudo_labels/cam_r50-d16_crf
# and evaluated on the official val masks. Schedule as MMSeg's
# deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512 (SGD 0.01, poly, 20k).
_base_ = [
    '../_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/default_runtime.py'
]
pretrained_ckpt = 'open-mmlab://resnet101_v1c'
pseudo_label_dir = 'pseudo_labels/cam_r50-d16_crf'
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_ckpt)),
    decode_head=dict(num_classes=21))
dataset_type = 'WSSSVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations'),
    dict(
        type='mmseg.RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='mmseg.PhotoMetricDistortion'),
    dict(type='mmseg.PackSegInputs')
]
# Loading steps with ``_scope_`` rather than an ``mmseg.`` prefix:
# mmseg.apis.inference_model drops ``type='LoadAnnotations'`` and retypes
# the first step to ``LoadImageFromNDArray`` (mmwsss.apis.inference).
test_pipeline = [
    dict(type='LoadImageFromFile', _scope_='mmseg'),
    dict(type='mmseg.Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', _scope_='mmseg'),
    dict(type='mmseg.PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path=pseudo_label_dir),
        label_source='xml',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        label_source='xml',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005),
    clip_grad=None)
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=20000,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=20000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmseg.SegVisualizationHook'))
