# IRN-style CAM classifier on MS-COCO 2014 (81 classes): as the VOC config,
# 5 epochs of train2014 (82,081 / 16 * 5 = 25,650 iterations; 25k here).
# Seeds are scored on val2014 masks (tools/dataset_converters/coco_wsss.py).
_base_ = [
    '../_base_/models/cam_r18.py', '../_base_/datasets/coco14_wsss.py',
    '../_base_/default_runtime.py', '../_base_/schedules/irn_cam_sgd_3k.py'
]
pretrained_ckpt = 'open-mmlab://resnet50_v1c'
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    backbone=dict(
        depth=50,
        frozen_stages=0,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_ckpt)),
    cam_head=dict(in_channels=2048, num_classes=81),
    test_cfg=dict(bg_thr=0.15))
max_iters = 25000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=5000))
