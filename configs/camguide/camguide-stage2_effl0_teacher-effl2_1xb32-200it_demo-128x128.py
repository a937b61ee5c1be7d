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
wsss_row = dict(
    table='camguide',
    name='Our* (stages 1+2)',
    parent='configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py',
    # CamGuide stages 1 and 2: the student (same Lite0 backbone, also
    # exposing its stride-4 stage) learns from the Lite2 teacher's CAMs
    change=[
        'model.type', 'model.stage', 'model.stage1_index', 'model.teacher',
        'model.teacher_checkpoint', 'model.loss_reg', 'model.train_cfg',
        'model.cam_head.loss_cls', 'model.cam_head.bias',
        'model.backbone.out_indices', 'teacher_model', 'teacher_checkpoint',
        'stage1_work_dir', 'load_from',
        'optim_wrapper.paramwise_cfg.custom_keys.refine_head',
        # the baseline's 500 iterations split 300 + 200 over the stages
        'max_iters', 'train_cfg.max_iters', 'param_scheduler'
    ],
    stages=[
        'configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py',
        'configs/camguide/camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py',
        'configs/camguide/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py'
    ],
    extra_images=16000)
