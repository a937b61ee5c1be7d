# dataset settings: PASCAL VOC 2012 + SBD (train_aug) with image-level labels
#
# - train: the 10,582 ``train_aug`` images, labels from ``Annotations``
#   XML (SBD masks are not needed), IRN-like CAM-training augmentation.
# - val/test: the 1,464 VOC ``train`` images with ``SegmentationClass``
#   masks: the WSSS pseudo-label protocol evaluates CAM seeds on train.
#   No resize: CAMs are computed on the original image (batch size 1).
dataset_type = 'WSSSVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
crop_size = (512, 512)
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    # random rescale of the long side to 512 * [0.5, 1.5]
    dict(
        type='mmseg.RandomResize',
        scale=(512, 512),
        ratio_range=(0.5, 1.5),
        keep_ratio=True),
    # no cat_max_ratio: there is no mask to look at. Crops of images
    # smaller than crop_size are padded by the model's data_preprocessor
    # (set ``size=crop_size`` there for fixed-size batches).
    dict(type='mmseg.RandomCrop', crop_size=crop_size),
    dict(type='mmseg.RandomFlip', prob=0.5),
    # optional colour jitter (not used by IRN):
    # dict(type='mmseg.PhotoMetricDistortion'),
    dict(type='PackWSSSInputs'),
]
# Loading steps with ``_scope_`` rather than an ``mmseg.`` prefix:
# mmseg.apis.inference_model drops ``type='LoadAnnotations'`` and retypes
# the first step to ``LoadImageFromNDArray``; unlabelled images are packed
# for the model to predict their classes (mmwsss.apis.inference).
test_pipeline = [
    dict(type='LoadImageFromFile', _scope_='mmseg'),
    dict(type='LoadAnnotations', _scope_='mmseg'),
    dict(type='PackWSSSInputs', allow_missing_labels=True),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages'),
        ann_file='ImageSets/Segmentation/train_aug.txt',
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
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/train.txt',
        label_source='xml',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
