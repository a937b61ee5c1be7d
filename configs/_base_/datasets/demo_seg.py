# Fully/pseudo-supervised segmentation on the demo scenes: train on the train
# split with masks from ``train_dataloader.dataset.data_prefix.seg_map_path``
# (pseudo-labels by default, ``SegmentationClass`` for the upper bound),
# evaluate on the held-out val split with the real masks.
dataset_type = 'WSSSDemoDataset'
data_root = 'data/demo'
crop_size = (128, 128)
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations'),
    dict(
        type='mmseg.RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='mmseg.PackSegInputs'),
]
# Loading steps with ``_scope_`` rather than an ``mmseg.`` prefix:
# mmseg.apis.inference_model drops ``type='LoadAnnotations'`` and retypes
# the first step to ``LoadImageFromNDArray`` (mmwsss.apis.inference).
test_pipeline = [
    dict(type='LoadImageFromFile', _scope_='mmseg'),
    dict(type='LoadAnnotations', _scope_='mmseg'),
    dict(type='mmseg.PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='pseudo_labels/cam_r18-w32_crf'),
        label_file='image_labels.json',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        label_file='image_labels.json',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
