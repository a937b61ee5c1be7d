# Final model on your own images (docs/en/user_guides/own_data.md): the
# images of labels.csv with the pseudo-labels of tools/make_pseudo_labels.py
# (``<stem>.png``) as masks; scored on the hand-labelled images
# (masks/<stem>.png) when there are any. The leaf config declares the
# classes and the data root and passes them to the dataloaders below.
dataset_type = 'WSSSFolderDataset'
data_root = 'data/shapes'
classes = ('background', 'circle', 'square', 'triangle')
metainfo = dict(classes=classes)
crop_size = (128, 128)
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations'),
    dict(
        type='mmseg.RandomResize',
        scale=crop_size,
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
        # set to the pseudo-label folder (absolute, or relative to
        # data_root) with --cfg-options
        # train_dataloader.dataset.data_prefix.seg_map_path=DIR
        data_prefix=dict(img_path='images', seg_map_path='pseudo_labels'),
        label_file='labels.csv',
        metainfo=metainfo,
        pipeline=train_pipeline))
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
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
