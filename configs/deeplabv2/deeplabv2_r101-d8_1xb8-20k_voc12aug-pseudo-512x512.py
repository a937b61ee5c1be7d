# Final WSSS stage on PASCAL VOC 2012 with DeepLab v2, the final model most
# WSSS papers report (IRN, SEAM, AMN, ...): ResNet-101 at output stride 8
# (dilated res4/res5) and the ASPP classifier of DeepLab v2 (four 3x3
# convolutions with dilations 6/12/18/24 straight to class logits, summed;
# no BatchNorm in the head, mmwsss.models.heads.ASPPSumHead). Trained on
# the train_aug pseudo-labels of `pseudo_label_dir`, scored on the official
# val masks. Data, pipelines, evaluation and the 20k-iteration poly
# schedule come from the DeepLabV3+ config of the same stage.
#
# Optimiser: DeepLab v2's recipe as in its widely used PyTorch port (SGD,
# momentum 0.9, weight decay 5e-4, lr 2.5e-4, 10x on the head's weights
# and 20x on its biases, poly 0.9) with the backbone's BatchNorm frozen
# (ImageNet statistics and affine parameters; MMEngine logs one "skipped"
# line per frozen parameter at start-up), batch 8 instead of the papers'
# 10. ImageNet-initialised (open-mmlab://resnet101_v1c); some papers start
# from COCO-pretrained DeepLab v2 weights, which give higher numbers: set
# `pretrained_ckpt` / `load_from`.
_base_ = [
    '../deeplabv3plus/deeplabv3plus_r101-d8_1xb8-20k_voc12aug-pseudo-512x512.py'
]
model = dict(
    backbone=dict(
        norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True),
    decode_head=dict(
        _delete_=True,
        type='ASPPSumHead',
        in_channels=2048,
        in_index=3,
        dilations=(6, 12, 18, 24),
        num_classes=21,
        align_corners=False,
        loss_decode=dict(
            type='mmseg.CrossEntropyLoss',
            use_sigmoid=False,
            avg_non_ignore=True,
            loss_weight=1.0)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4),
    # the longest matching key wins: 10x on the head, 20x and no weight
    # decay on its biases (DeepLab v2's lr_mult 10/20, decay_mult 1/0)
    paramwise_cfg=dict(
        custom_keys={
            'decode_head': dict(lr_mult=10.0),
            'decode_head.aspp.0.bias': dict(lr_mult=20.0, decay_mult=0.0),
            'decode_head.aspp.1.bias': dict(lr_mult=20.0, decay_mult=0.0),
            'decode_head.aspp.2.bias': dict(lr_mult=20.0, decay_mult=0.0),
            'decode_head.aspp.3.bias': dict(lr_mult=20.0, decay_mult=0.0),
        }),
    clip_grad=None)
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=20000,
        by_epoch=False)
]
