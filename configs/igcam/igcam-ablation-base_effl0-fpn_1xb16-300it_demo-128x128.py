# IG-CAM ablation, Table 3 row "Base" on the demo: single-scale CAM, no
# proposals, no influence. Differences from the demo config
# (igcam_effl0-fpn_1xb16-300it_demo-128x128.py):
# - single scale: the FPN keeps only its top level (start_level=3,
#   num_outs=1: the 1/32 stage, a vanilla CAM on the last backbone stage),
#   one classifier in the head (the consistency loss is 0 with one scale);
# - no proposals: num_proposals=0, the whole image is the only proposal;
# - no influence: influence_cfg=None (uniform maps, unit sample weights),
#   no influence-guided attention and no InfluenceHook.
# Training schedule, losses and progressive stages are the demo's.
_base_ = ['./igcam_effl0-fpn_1xb16-300it_demo-128x128.py']
model = dict(
    neck=dict(start_level=3, num_outs=1),
    attention=None,
    cam_head=dict(num_scales=1, num_proposals=0),
    influence_cfg=None,
    test_cfg=dict(use_influence=False))
# Same stages as the demo, without the InfluenceHook.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(
        type='StageSwitchHook',
        switch_at=[100, 200],
        stages=[
            dict(
                name='coarse localisation',
                losses={
                    'cam_head.loss_consistency.loss_weight': 0.0,
                    'cam_head.loss_boundary.loss_weight': 0.0
                }),
            dict(
                name='refinement',
                batch_augments=dict(
                    type='RandomBatchAugment',
                    augments=[
                        dict(type='MultiLabelMixUp', alpha=1.0),
                        dict(type='MultiLabelCutMix', alpha=1.0)
                    ],
                    probs=[0.5, 0.5])),
            dict(
                name='boundary optimisation',
                pipeline={{_base_.stage3_pipeline}},
                batch_augments=None),
        ]),
]
