# IG-CAM ablation on the demo bed, row "+MS": the Base row plus multi-scale
# CAMs (IG-CAM sec. 4.1.1): the FPN's four levels (1/4, 1/8, 1/16, 1/16 at
# output stride 16), one classifier per level, the CAMs and logits fused
# with learned, softmax-normalised scale weights gamma_s (initialised
# uniform) and the multi-scale consistency loss (weight 0.5) tying them.
_base_ = ['./igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py']
# The four levels come from an FPN (64 channels) over the backbone's stages
# at strides 4, 8, 16 and 16; its convolutions are new weights and train at
# the head's learning rate.
fpn_channels = 64
model = dict(
    backbone=dict(out_indices=(1, 2, 4, 6)),
    neck=dict(
        _delete_=True,
        type='mmseg.FPN',
        in_channels=[24, 40, 112, 320],
        out_channels=fpn_channels,
        num_outs=4),
    cam_head=dict(
        in_channels=fpn_channels,
        num_scales=4,
        scale_fusion='learned',
        loss_consistency=dict(
            type='MultiScaleConsistencyLoss', distance='l2', loss_weight=0.5)))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(neck=dict(lr_mult=10.0))))
wsss_row = dict(
    table='igcam',
    name='+MS',
    parent=
    'configs/igcam/igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py',
    change=[
        'model.backbone.out_indices', 'model.neck', 'fpn_channels',
        'model.cam_head.in_channels', 'model.cam_head.num_scales',
        'model.cam_head.scale_fusion', 'model.cam_head.loss_consistency',
        'optim_wrapper.paramwise_cfg.custom_keys.neck'
    ])
