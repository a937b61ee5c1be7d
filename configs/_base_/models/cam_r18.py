# IRN-style CAM classifier on a ResNet-18 (output stride 16).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='mmseg.SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='CAMSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    cam_head=dict(
        type='CAMHead',
        in_channels=512,
        num_classes=21,
        loss_cls=dict(type='MultiLabelSoftMarginLoss', loss_weight=1.0)),
    test_cfg=dict(
        scales=(1.0, 0.5, 1.5, 2.0),
        flip=True,
        flip_fusion='sum',
        scale_fusion='sum',
        norm='max',
        bg_mode='const',
        bg_thr=0.15))
