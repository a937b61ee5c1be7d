# IG-CAM ablation on the demo bed, row "+MS": the Base row plus multi-scale
# CAMs (IG-CAM sec. 4.1.1): the FPN's four levels (1/4, 1/8, 1/16, 1/16 at
# output stride 16), one classifier per level, the CAMs and logits fused
# with learned, softmax-normalised scale weights gamma_s (initialised
# uniform) and the multi-scale consistency loss (weight 0.5) tying them.
_base_ = ['./igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(
    neck=dict(start_level=0, num_outs=4),
    cam_head=dict(
        num_scales=4,
        scale_fusion='learned',
        loss_consistency=dict(
            type='MultiScaleConsistencyLoss', distance='l2', loss_weight=0.5)))
wsss_row = dict(
    table='igcam',
    name='+MS',
    parent=
    'configs/igcam/igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py',
    change=[
        'model.neck.start_level', 'model.neck.num_outs',
        'model.cam_head.num_scales', 'model.cam_head.scale_fusion',
        'model.cam_head.loss_consistency'
    ])
