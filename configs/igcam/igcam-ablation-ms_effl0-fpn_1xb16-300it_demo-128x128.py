# IG-CAM ablation, Table 3 row "+MS" on the demo: the four FPN scales
# (1/4..1/32) with per-scale classifiers and the multi-scale consistency
# loss; no proposals (num_proposals=0) and no influence (influence_cfg=None,
# no influence-guided attention, no InfluenceHook). Otherwise the demo
# config (igcam_effl0-fpn_1xb16-300it_demo-128x128.py).
_base_ = ['./igcam_effl0-fpn_1xb16-300it_demo-128x128.py']
model = dict(
    attention=None,
    cam_head=dict(num_proposals=0),
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
