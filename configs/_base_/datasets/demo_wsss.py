# Demo scenes made by tools/dataset_converters/make_demo_dataset.py.
dataset_type = 'WSSSDemoDataset'
data_root = 'data/demo'
crop_size = (128, 128)
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(
        type='mmseg.RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=crop_size),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
# CAMs are computed on the original image (multi-scale inside the model).
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
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(img_path='JPEGImages'),
        label_file='image_labels.json',
        pipeline=train_pipeline))
# Seeds are scored on the training images, as in the VOC protocol
# (pseudo-label mIoU on VOC train).
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        label_file='image_labels.json',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
