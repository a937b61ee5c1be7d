# CamGuide stage 2, the paper's recipe (Table II): as stage 1 but the
# student sees only the masked view, lambda_cls 0, lambda_reg 1. Starts
# from the stage-1 checkpoint (which carries the teacher).
_base_ = ['./camguide-stage1_r18_teacher-r50_1xb32-5k_voc12aug-512x512.py']
load_from = ('work_dirs/camguide-stage1_r18_teacher-r50_1xb32-5k_'
             'voc12aug-512x512/iter_5000.pth')
model = dict(
    stage=2,
    teacher_checkpoint=None,
    cam_head=dict(loss_cls=dict(loss_weight=0.0)),
    loss_reg=dict(loss_weight=1.0))
