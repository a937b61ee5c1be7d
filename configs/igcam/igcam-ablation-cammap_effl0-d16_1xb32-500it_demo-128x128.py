# IG-CAM ablation on the demo bed, control row "+|CAM| map": the
# +Influence row with the influence map replaced by the normalised CAM
# magnitude of the labelled classes (same features, same hook, same
# weighting and attention). It says what influence adds beyond saliency:
# the influence map correlated 0.55-0.73 with |CAM| at initialisation.
_base_ = ['./igcam-ablation-influence_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(influence_cfg=dict(map_source='cam_magnitude'))
wsss_row = dict(
    table='igcam',
    name='+|CAM| map (control)',
    parent=
    'configs/igcam/igcam-ablation-influence_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.influence_cfg.map_source'])
