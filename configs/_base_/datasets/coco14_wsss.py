# dataset settings: MS-COCO 2014 with image-level labels (81 classes)
#
# Layout under ``data_root``: ``train2014/``, ``val2014/``,
# ``annotations/instances_{train,val}2014.json`` and the masks
# ``SegmentationClass/{train,val}2014/`` written by
#   python tools/dataset_converters/coco_wsss.py --coco-root data/coco \
#       --split val2014
# Image labels come from the instances JSON (parsing the train JSON takes
# ~20 s at start-up); ``label_source='file', label_file='cls_labels.json'``
# (also written by the converter) is faster. Images without annotations
# are dropped (train2014: 82,081 kept; val2014: 40,137 kept).
# - train: train2014, IRN-like CAM-training augmentation.
# - val/test: val2014 with masks, original size, batch size 1.
dataset_type = 'WSSSCOCODataset'
data_root = 'data/coco'
crop_size = (512, 512)
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    # random rescale of the long side to 512 * [0.5, 1.5]
    dict(
        type='mmseg.RandomResize',
        scale=(512, 512),
        ratio_range=(0.5, 1.5),
        keep_ratio=True),
    # smaller crops are padded by the model's data_preprocessor
    dict(type='mmseg.RandomCrop', crop_size=crop_size),
    dict(type='mmseg.RandomFlip', prob=0.5),
    # optional colour jitter:
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
        data_prefix=dict(img_path='train2014'),
        label_source='coco_json',
        ann_json='annotations/instances_train2014.json',
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
            img_path='val2014', seg_map_path='SegmentationClass/val2014'),
        label_source='coco_json',
        ann_json='annotations/instances_val2014.json',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
