# The demo IG-CAM with the paper's adaptive schedule (IG-CAM sec. 3.6,
# suppl. 6.7.2), CPU-sized: every 25 iterations MultiLabelClsMetric
# computes the validation loss ``cls_loss`` (mean BCE of the image logits,
# L_cls without influence weights) plus mAP and F1; StageSwitchHook moves
# to the next stage when cls_loss has not improved for 2 validations (paper:
# 5) and EarlyStoppingHook stops after 4 (paper: 10). The checkpoint with
# the lowest cls_loss is kept.
#
# The demo has no third split: the plateau split is the first 64 images of
# the demo ``val`` split, the pool the 32 influence images are drawn from,
# so the plateau split and the influence images may overlap. Both are
# disjoint from ``train``, which the model trains on and the seeds are
# reported on (test_dataloader, unchanged). Only image labels are read.
_base_ = ['./igcam_effl0-fpn_1xb16-300it_demo-128x128.py']
demo_root = {{_base_.data_root}}
val_interval = 25
train_cfg = dict(val_interval=val_interval)
# the base sets val_cfg, val_dataloader and val_evaluator to None
val_cfg = dict(_delete_=True, type='ValLoop')
val_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='WSSSDemoDataset',
        data_root=demo_root,
        ann_file='ImageSets/Segmentation/val.txt',
        data_prefix=dict(img_path='JPEGImages'),
        label_file='image_labels.json',
        indices=64,
        test_mode=True,
        pipeline=[
            dict(type='mmseg.LoadImageFromFile'),
            dict(type='PackWSSSInputs'),
        ]))
val_evaluator = dict(_delete_=True, type='MultiLabelClsMetric')
# MMEngine's LogProcessor logs any key matching 'loss' as the mean over its
# window (up to 10 validations): log and store the current cls_loss instead
log_processor = dict(
    custom_cfg=[dict(data_src='cls_loss', method_name='mean', window_size=1)])
default_hooks = dict(
    logger=dict(interval=val_interval),
    checkpoint=dict(save_best='cls_loss', rule='less'))
custom_hooks = [
    dict(
        h,
        switch_at=None,
        plateau=dict(monitor='cls_loss', rule='less', patience=2))
    if h['type'] == 'StageSwitchHook' else h for h in _base_.custom_hooks
] + [
    # MMEngine's default min_delta (0.1) exceeds a typical BCE value
    dict(
        type='EarlyStoppingHook',
        monitor='cls_loss',
        rule='less',
        min_delta=0.0,
        patience=4)
]
