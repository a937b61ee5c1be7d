# IRN's CAM classifier (resnet50_cam.Net, train_cam.py) on VOC 2012 train_aug:
# ResNet-50 at output stride 16, 1x1-conv CAM head without bias, multi-label
# soft-margin loss, SGD lr 0.1 (head x10), wd 1e-4, poly, batch 16, 512 crops,
# 5 epochs (10,582 / 16 * 5 = 3,307 iterations; 3k here). IRN freezes the stem
# and keeps BN statistics fixed (FixedBatchNorm): frozen_stages=0 and
# norm_eval=True.
#
# ImageNet init: set ``pretrained_ckpt`` to a local file or leave MMSeg's
# ``open-mmlab://resnet50_v1c`` (downloaded by MMEngine on first use; the
# tests never initialise weights).
_base_ = [
    '../_base_/models/cam_r18.py', '../_base_/datasets/voc12aug_wsss.py',
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
    cam_head=dict(in_channels=2048, num_classes=21),
    test_cfg=dict(bg_thr=0.15))
