# IG-CAM item-7 search (dev seeds only; `--search`): the +Inst row with one
# selection rule, the top 64 proposals by rank in training as at test,
# instead of the row's 64 drawn at random in training. Item 2's one-rule
# alternative: 33.9 / 33.1 seed mIoU on dev seeds 0 / 1 against the row's
# 35.4 / 34.0 (measured when it was the row; work_dirs/results_dev).
_base_ = ['../../igcam/igcam-ablation-inst_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(cam_head=dict(train_select='rank'))
wsss_row = dict(
    table='igcam',
    name='+Inst, rank training proposals',
    parent='configs/igcam/igcam-ablation-inst_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.cam_head.train_select'])
