# IG-CAM ablation on the demo bed, row "Base" (IG-CAM Table 3): the CAM
# baseline (cam/cam_effl0-d16_1xb32-500it_demo-128x128.py) run through the IG-CAM code path with every part
# off. Same budget as the baseline (backbone, 128 px input, output stride
# 16, 500 iterations x 32 images, AdamW + poly schedule, flips + crops,
# test scales 1/0.5/1.5/2 + flip, max normalisation, constant background).
# What changes (wsss_row.change): the segmentor and head types, the
# backbone exposing its four stages to the FPN, the FPN reduced to its top
# level (the stride-16 stage, as the baseline's CAM layer), one classifier
# without proposals, no influence and no attention. The FPN's lateral and
# output convolutions are the only new weights; they train at the head's
# learning rate.
_base_ = ['../cam/cam_effl0-d16_1xb32-500it_demo-128x128.py']
channels = 64
model = dict(
    type='IGCAMSegmentor',
    backbone=dict(out_indices=(1, 2, 4, 6)),
    neck=dict(
        type='mmseg.FPN',
        in_channels=[24, 40, 112, 320],
        out_channels=channels,
        start_level=3,
        num_outs=1),
    attention=None,
    cam_head=dict(
        _delete_=True,
        type='InstanceGuidedCAMHead',
        in_channels=channels,
        num_classes={{_base_.num_classes}},
        num_scales=1,
        bias=False,
        num_proposals=0,
        scale_fusion='mean',
        loss_cls=dict(type='InfluenceWeightedBCELoss', loss_weight=1.0)),
    influence_cfg=None,
    test_cfg=dict(use_influence=False))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(neck=dict(lr_mult=10.0))))
wsss_row = dict(
    table='igcam',
    name='Base',
    parent='configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py',
    change=[
        'model.type', 'model.backbone.out_indices', 'model.neck',
        'model.attention', 'model.cam_head', 'model.influence_cfg',
        'model.test_cfg.use_influence', 'channels',
        'optim_wrapper.paramwise_cfg.custom_keys.neck'
    ])
