# CamGuide stage 2 on the demo scenes (Table II): the student sees only
# the masked view; L1 to the teacher's maps of the original image
# (lambda_reg 1, no classification loss). Starts from the stage-1
# checkpoint, which also carries the teacher's weights.
_base_ = ['./camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py']
stage1_work_dir = \
    'work_dirs/camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128'
load_from = stage1_work_dir + '/iter_300.pth'
model = dict(
    stage=2,
    teacher_checkpoint=None,
    cam_head=dict(loss_cls=dict(loss_weight=0.0)),
    loss_reg=dict(loss_weight=1.0))
max_iters = 200
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
