# CamGuide stage 1 on the demo scenes (Table I on CPU scale): the student
# (EfficientNet-Lite0) sees [x, x * Mask_T]; classification on the masked
# view (lambda_cls 0.35), L1 to the frozen teacher on the original view
# (lambda_reg 0.65); stochastic thresholds tau ~ U(0.1, 0.45).
# The teacher is the Lite2 CAM classifier trained with
#   tools/train.py configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py \
#       --work-dir work_dirs/camguide_demo/teacher
# (override model.teacher_checkpoint to use another one).
# Optimiser: the paper's Adam at lr 0.1 with ReduceOnPlateau is meant for
# 15 VOC epochs; on 300 CPU iterations we use the CAM baseline's AdamW
# (lr 5e-4, 10x on the classifier) with poly decay.
_base_ = [
    '../_base_/models/camguide_effl0.py', '../_base_/datasets/demo_wsss.py',
    '../_base_/default_runtime.py'
]
num_classes = 8
teacher_checkpoint = 'work_dirs/camguide_demo/teacher/iter_500.pth'
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    teacher=dict(cam_head=dict(num_classes=num_classes)),
    teacher_checkpoint=teacher_checkpoint,
    cam_head=dict(num_classes=num_classes),
    # background threshold of the seeds: the CAM baseline's swept value;
    # re-sweep with tools/analysis_tools/sweep_thresholds.py
    test_cfg=dict(bg_thr=0.55))
max_iters = 300
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={
        'cam_head': dict(lr_mult=10.0),
        'refine_head': dict(lr_mult=10.0)
    }),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=20, by_epoch=False),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=20,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='TestLoop')
# the CAM baseline's hooks (one budget, issue #17)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=100,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmseg.SegVisualizationHook'))
randomness = dict(seed=0)
