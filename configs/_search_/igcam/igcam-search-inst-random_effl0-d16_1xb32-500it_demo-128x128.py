# IG-CAM item-7 search (dev seeds only; `--search`): the +Inst row with the
# 64 training proposals drawn uniformly at random from the up to 2000
# Selective Search boxes (the earlier rule) instead of the top 64 by rank;
# the test keeps the rank rule. Measures item 2's alternative rule.
_base_ = ['../../igcam/igcam-ablation-inst_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(cam_head=dict(train_select='random'))
wsss_row = dict(
    table='igcam',
    name='+Inst, random training proposals',
    parent='configs/igcam/igcam-ablation-inst_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.cam_head.train_select'])
