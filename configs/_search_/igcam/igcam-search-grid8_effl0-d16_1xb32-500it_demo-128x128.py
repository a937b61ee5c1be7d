# IG-CAM item-7 search (dev seeds only; `--search`): the +Influence row with
# influence maps on an 8 x 8 grid: the paper's 32 x 32 on 512 px inputs is
# 1/16 of the side, i.e. 8 x 8 at the demo's 128 px (the row's 32 x 32 is
# the paper's grid in cells, four times finer relative to the image).
_base_ = [
    '../../igcam/igcam-ablation-influence_effl0-d16_1xb32-500it_demo-128x128.py'
]
model = dict(influence_cfg=dict(grid=8))
wsss_row = dict(
    table='igcam',
    name='+Influence, map grid 8',
    parent=
    'configs/igcam/igcam-ablation-influence_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.influence_cfg.grid'])
