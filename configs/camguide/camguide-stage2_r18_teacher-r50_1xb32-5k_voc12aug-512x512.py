# CamGuide stage 2, the paper's recipe (Table II): as stage 1 but the
# student sees only the masked view, lambda_cls 0, lambda_reg 1. Starts
# from the stage-1 checkpoint (which carries the teacher).
# The paper selects the stage-1 and stage-2 checkpoints by classification
# metrics on train: see the ``_select-map`` stage-1 variant (a val loop of
# MultiLabelClsMetric on train image labels and CheckpointHook(
# save_best='mAP', rule='greater')); load_from its best_mAP_iter_*.pth and
# add the same val_cfg / val_dataloader / val_evaluator / default_hooks
# block here (this config inherits val_cfg=None from stage 1).
_base_ = ['./camguide-stage1_r18_teacher-r50_1xb32-5k_voc12aug-512x512.py']
load_from = ('work_dirs/camguide-stage1_r18_teacher-r50_1xb32-5k_'
             'voc12aug-512x512/iter_5000.pth')
model = dict(
    stage=2,
    teacher_checkpoint=None,
    cam_head=dict(loss_cls=dict(loss_weight=0.0)),
    loss_reg=dict(loss_weight=1.0))
