# IG-CAM item-7 search (dev seeds only; `--search`): the Full row with one
# selection rule, the top 64 proposals by rank in training as at test,
# instead of the row's 64 drawn at random in training (the +Inst row's
# choice). Full with the rank rule scored 36.4 seed mIoU on dev seed 0.
_base_ = ['../../igcam/igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(cam_head=dict(train_select='rank'))
wsss_row = dict(
    table='igcam',
    name='Full, rank training proposals',
    parent='configs/igcam/igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py',
    change=['model.cam_head.train_select'])
