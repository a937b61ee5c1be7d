# Your own images (docs/en/user_guides/own_data.md): a folder of images and
# a CSV (or JSON) of image-level labels by class name, read by
# WSSSFolderDataset. The leaf config declares the classes and the data root
# and passes them to the dataloaders below (see
# configs/cam/cam_effl0-d16_1xb16-500it_folder-128x128.py):
#   data/<name>/images/        any of .jpg .jpeg .png .bmp .tif .webp
#   data/<name>/labels.csv     image,labels   e.g.  cat_01.jpg,cat;dog
#   data/<name>/masks/         optional: <stem>.png for a few images
dataset_type = 'WSSSFolderDataset'
data_root = 'data/shapes'
classes = ('background', 'circle', 'square', 'triangle')
metainfo = dict(classes=classes)
crop_size = (128, 128)
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(
        type='mmseg.RandomResize',
        scale=crop_size,
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
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images'),
        label_file='labels.csv',
        metainfo=metainfo,
        pipeline=train_pipeline))
# The hand-labelled images (masks/<stem>.png, a few are enough): seed mIoU
# by tools/test.py and, with make_pseudo_labels.py --split test
# --save-scores, the background-threshold sweep. Without masks, skip both
# and keep the label-free background threshold of the model config.
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        only_with_masks=True,
        label_file='labels.csv',
        metainfo=metainfo,
        pipeline=test_pipeline))
test_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
