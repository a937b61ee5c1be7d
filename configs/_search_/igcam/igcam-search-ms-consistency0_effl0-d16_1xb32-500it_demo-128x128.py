# IG-CAM item-7 search (dev seeds only; `--search`): the +MS row without
# the multi-scale consistency loss (lambda_2 0.5 -> 0): the learned-gamma
# fusion of the FPN levels alone. Does the fusion or the loss cost the seeds?
_base_ = ['../../igcam/igcam-ablation-ms_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(cam_head=dict(loss_consistency=dict(loss_weight=0.0)))
wsss_row = dict(
    table='igcam',
    name='+MS, consistency weight 0',
    parent='configs/igcam/igcam-ablation-ms_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.cam_head.loss_consistency.loss_weight'])
