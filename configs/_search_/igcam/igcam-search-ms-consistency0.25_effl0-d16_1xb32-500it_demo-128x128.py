# IG-CAM item-7 search (dev seeds only; `--search`): the +MS row with the
# multi-scale consistency weight lambda_2 halved (0.5 -> 0.25; the paper
# "adjusts the weights dynamically" without saying how).
_base_ = ['../../igcam/igcam-ablation-ms_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(cam_head=dict(loss_consistency=dict(loss_weight=0.25)))
wsss_row = dict(
    table='igcam',
    name='+MS, consistency weight 0.25',
    parent='configs/igcam/igcam-ablation-ms_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.cam_head.loss_consistency.loss_weight'])
