# IG-CAM ablation on the demo bed, row "Full + InfluenceCRF": the Full
# row's model (not retrained) with InfluenceCRF (IG-CAM sec. 3.5) as the
# test-time refinement of its CAMs instead of DenseCRF.
_base_ = ['./igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(
    test_cfg=dict(
        refine=dict(
            type='InfluenceCRF',
            beta=1.0,
            gamma=0.5,
            min_area=16,
            influence_thr=0.5,
            hole_area=16,
            # spatial stds scaled to the 128-pixel scenes (512 / 128), as
            # the baseline's dCRF (mmwsss.experiments.runner.CRF_REF_SIDE)
            scale_factor=4.0)))
wsss_row = dict(
    table='igcam',
    name='Full + InfluenceCRF',
    parent=
    'configs/igcam/igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.test_cfg.refine'],
    refine='influence_crf')
