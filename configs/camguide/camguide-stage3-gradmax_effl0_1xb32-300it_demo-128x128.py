# Ablation of #19 D3 (not a paper row): the full stage 3 ("Our") with the
# per-class maximum of the CAM normalisation (eq. (3)) inside the gradient
# of the heuristic losses L_crf and L_rw, as a literal reading of eqs.
# (28)-(29) gives. The default detaches it (``train_cfg.detach_norm=True``):
# with the maximum in the graph, the step on each class map's max pixel is
# 59-102x the mean pixel's on the dev-seed CAMs, which rewards spikes. This
# row measures what detaching buys on the bed.
_base_ = ['./camguide-stage3_effl0_1xb32-300it_demo-128x128.py']
model = dict(train_cfg=dict(detach_norm=False))
wsss_row = dict(
    table='camguide',
    name='Our, max of eq. (3) in the gradient',
    parent='configs/camguide/camguide-stage3_effl0_1xb32-300it_demo-128x128.py',
    change=['model.train_cfg.detach_norm'],
    stages=[
        'configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py',
        'configs/camguide/camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py',
        'configs/camguide/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py',
        'configs/camguide/camguide-stage3-gradmax_effl0_1xb32-300it_demo-128x128.py'
    ],
    extra_images=16000 + 9600)
