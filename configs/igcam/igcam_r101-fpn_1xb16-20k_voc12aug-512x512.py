# IG-CAM paper recipe on PASCAL VOC 2012 train_aug (sec. 4.1, suppl. Table
# 5): ImageNet-pretrained ResNet-101 + FPN, 512 x 512 crops, batch 16,
# Adam lr 1e-4 cosine, weight decay 5e-4, Selective Search proposals (top 64
# of at most 2000 per image in the head), influence damping 1e-3, eps 0.01,
# loss weights 1.0 / 0.5 / 0.3. The paper trains 50 epochs with early
# stopping (patience 10); 20k iterations are about 30 epochs of train_aug.
#
# Before training, precompute the proposals:
#   python tools/generate_proposals.py data/VOCdevkit/VOC2012/JPEGImages \
#       --out data/VOCdevkit/VOC2012/proposals/ss-fast --workers 8
# Influence refreshes (every 100 iterations, 32 validation images disjoint
# from the reported split) and the three-stage schedule are driven by hooks
# (issue #3 items 6 and 8); without them the maps stay uniform and all
# three losses are on from the start.
#
# Seeds are scored single-scale (paper default). The 5-scale test of sec.
# 4.1: --cfg-options model.test_cfg.scales="(0.5,0.75,1.0,1.25,1.5)"
#
# ImageNet init: set ``pretrained_ckpt`` to a local file or leave MMSeg's
# ``open-mmlab://resnet101_v1c`` (downloaded by MMEngine on first use; the
# tests never initialise weights).
_base_ = [
    '../_base_/models/igcam_r50-fpn.py', '../_base_/datasets/voc12aug_wsss.py',
    '../_base_/default_runtime.py', '../_base_/schedules/igcam_adam_20k.py'
]
pretrained_ckpt = 'open-mmlab://resnet101_v1c'
proposal_dir = 'data/VOCdevkit/VOC2012/proposals/ss-fast'
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_ckpt)),
    # Adam's coupled weight decay adds 5e-4 I to the classifier Hessian
    influence_cfg=dict(weight_decay=5e-4),
    test_cfg=dict(bg_thr=0.15))
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    dict(
        type='mmseg.RandomResize',
        scale=(512, 512),
        ratio_range=(0.5, 1.5),
        keep_ratio=True,
        resize_type='mmseg.Resize'),  # also resizes the proposal tracker
    dict(type='mmseg.RandomCrop', crop_size=crop_size),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
test_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
