# CamGuide, the paper's networks: a ResNet-50 CAM teacher (the spine's
# IRN-style CAM classifier, frozen) and a ResNet-18 student, both at
# output stride 16 with ImageNet normalisation.
num_classes = 21
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='mmseg.SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
teacher_model = dict(
    type='CAMSegmentor',
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        norm_cfg=norm_cfg,
        style='pytorch',
        contract_dilation=True,
        init_cfg=None),
    cam_head=dict(
        type='CAMHead',
        in_channels=2048,
        num_classes=num_classes,
        init_cfg=None))
model = dict(
    type='CamGuideSegmentor',
    data_preprocessor=data_preprocessor,
    stage=1,
    teacher=teacher_model,
    teacher_checkpoint=None,
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        num_stages=4,
        # index 0: stride-4 features (64 channels) for the stage-3
        # refinement head; index 3: the CAM features (512 channels)
        out_indices=(0, 3),
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        init_cfg=dict(
            type='Pretrained', checkpoint='open-mmlab://resnet18_v1c')),
    cam_head=dict(
        type='CAMHead',
        in_channels=512,
        num_classes=num_classes,
        loss_cls=dict(type='MultiLabelMarginLoss', loss_weight=0.35)),
    stage1_index=0,
    loss_reg=dict(type='CAMDistillL1Loss', loss_weight=0.65),
    train_cfg=dict(tau_range=(0.1, 0.45)),
    test_cfg=dict(
        scales=(1.0, 0.5, 1.5, 2.0),
        flip=True,
        flip_fusion='sum',
        scale_fusion='sum',
        norm='max',
        bg_mode='const',
        bg_thr=0.15))
