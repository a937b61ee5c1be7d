# IG-CAM item-7 search (dev seeds only; `--search`): the +Influence row with
# the damping lambda of (H + lambda I)^-1 ten times the paper's 1e-3.
_base_ = [
    '../../igcam/igcam-ablation-influence_effl0-d16_1xb32-500it_demo-128x128.py'
]
model = dict(influence_cfg=dict(damping=1e-2))
wsss_row = dict(
    table='igcam',
    name='+Influence, damping 1e-2',
    parent=
    'configs/igcam/igcam-ablation-influence_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.influence_cfg.damping'])
