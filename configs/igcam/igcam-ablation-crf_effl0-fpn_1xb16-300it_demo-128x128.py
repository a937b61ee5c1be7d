# IG-CAM ablation, Table 3 row "+CRF" on the demo: the full model of the
# "+Influence" row with the influence-aware refinement of suppl. sec. 6.7.3
# (mmwsss.refine.InfluenceCRF) as the label assignment of predict: seeds
# boosted by influence, DenseCRF with the paper's constants (10 iterations,
# w=3, (3, 50); IRN's label-unary CRF) with influence-damped unaries, then
# influence-guided clean-up. beta / gamma / min_area / hole_area /
# influence_thr are not given by the paper (guesses, see the class).
# IGCAMSegmentor.predict passes the multi-scale influence map (one extra
# forward at scale 1.0) once InfluenceHook has refreshed the influence;
# before that (or with influence off) the map is uniform and the refiner is
# DenseCRF + the area / hole clean-up.
_base_ = ['./igcam-ablation-influence_effl0-fpn_1xb16-300it_demo-128x128.py']
model = dict(
    test_cfg=dict(
        refine=dict(
            type='InfluenceCRF',
            beta=1.0,
            gamma=0.5,
            min_area=16,
            influence_thr=0.5,
            hole_area=16)))
