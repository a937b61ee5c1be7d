# IG-CAM item-7 search (dev seeds only; `--search`): the +Inst row with the
# top 16 proposals by rank instead of 64: fewer, larger boxes (the ranking
# favours late merges), closer to the demo's one or two objects per image.
_base_ = ['../../igcam/igcam-ablation-inst_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(cam_head=dict(num_proposals=16))
wsss_row = dict(
    table='igcam',
    name='+Inst, 16 proposals',
    parent='configs/igcam/igcam-ablation-inst_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.cam_head.num_proposals'])
