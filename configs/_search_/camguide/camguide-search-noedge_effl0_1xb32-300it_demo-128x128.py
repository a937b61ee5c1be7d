# CamGuide stage-3 search (dev seeds only; `--search`): the full stage 3
# ("Our") without the edge-consistency term L_edge (eqs. (30)-(34)). In
# 60-iteration probes on dev seed 1 (TargetQualityHook, 64 train images,
# tau 0.575) the CAM fell from 32.0 to 18.2 mIoU with every term, to 29.7
# without L_edge and to 29.1 with L_crf + L_rw alone; detaching the
# normalisers (eq. (3) in every term, and the CAM-edge maximum) did not
# stop the fall (14.7, 21.7).
_base_ = ['../../camguide/camguide-stage3_effl0_1xb32-300it_demo-128x128.py']
model = dict(loss_edge=None)
wsss_row = dict(
    table='camguide',
    name='Our, without L_edge',
    parent='configs/camguide/camguide-stage3_effl0_1xb32-300it_demo-128x128.py',
    change=['model.loss_edge'],
    stages=[
        'configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py',
        'configs/camguide/camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py',
        'configs/camguide/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py',
        'configs/_search_/camguide/camguide-search-noedge_effl0_1xb32-300it_demo-128x128.py'
    ],
    extra_images=16000 + 9600)
