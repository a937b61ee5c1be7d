# IG-CAM (Torabi et al., sec. 3.2-3.5): ResNet + FPN (4 scales, 1/4..1/32,
# 256 channels), influence-guided attention, instance-guided multi-scale
# CAM head and the influence-weighted losses of eq. (13) with
# lambda = 1.0 / 0.5 / 0.3. The influence state (per-scale classifier
# curvature and validation solve) lives in the segmentor and is refreshed
# by a hook calling ``model.refresh_influence(val_batch)``; until the first
# refresh the influence maps are uniform and the sample weights are 1.
#
# Issue #18 defaults: learned scale weights gamma_s in the fused CAM and
# logit (scale_fusion='learned'; 'mean' / 'max' turn them off), the same
# proposal rule in training and test (top 64 by rank), the classifier
# curvature taken in eval mode like the validation gradients (one no-grad
# eval forward every curvature_interval=10 iterations, EMA memory kept at
# about 100 iterations), the boundary loss at >= 1/8 resolution on the
# unpadded area, and the influence map as the map source ('cam_magnitude'
# is the |CAM| saliency control).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='mmseg.SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='IGCAMSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 2, 2),
        dilations=(1, 1, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    neck=dict(
        type='mmseg.FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=4),
    attention=dict(
        type='InfluenceGuidedAttention',
        in_channels=256,
        num_scales=4,
        mode='channel',
        alpha_init=0.0),
    cam_head=dict(
        type='InstanceGuidedCAMHead',
        in_channels=256,
        num_classes=21,
        num_scales=4,
        bias=False,
        num_proposals=64,
        train_select='rank',
        test_select='rank',
        add_whole_image=True,
        alpha_mode='feature',
        use_beta=True,
        cam_mode='coverage',
        scale_fusion='learned',
        fused_loss='gamma',
        loss_cls=dict(
            type='InfluenceWeightedBCELoss',
            eps=0.01,
            clamp=(0.25, 4.0),
            loss_weight=1.0),
        loss_consistency=dict(
            type='MultiScaleConsistencyLoss', distance='l2',
            loss_weight=0.5),
        loss_boundary=dict(
            type='BoundaryAlignmentLoss',
            mode='l1',
            max_stride=8,
            loss_weight=0.3)),
    influence_cfg=dict(
        momentum=0.01,
        damping=1e-3,
        weight_decay=0.0,
        grid=32,
        curvature_mode='eval',
        curvature_interval=10,
        map_source='influence'),
    test_cfg=dict(
        scales=(1.0, ),
        flip=False,
        flip_fusion='mean',
        scale_fusion='mean',
        norm='max',
        bg_mode='const',
        bg_thr=0.15,
        use_influence=True))
