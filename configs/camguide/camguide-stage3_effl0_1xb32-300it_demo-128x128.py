# CamGuide stage 3 on the demo scenes (Table III): refinement head on the
# student (dropout 0.5, fusion-upscale with the stride-4 features, guided
# filter radius 4, gated residual), heuristic targets from the student's
# own CAMs with tau ~ U(0.05, 0.30): DenseCRF (5 iterations, every 4th
# iteration) + closing, SLIC random walk (12 iterations), edge and window
# local consistency losses. No teacher. Starts from the stage-2 checkpoint.
# This is the paper's full row (morphology + local consistency).
# Scale (issue #19): every size is relative to the refined map (stride 4,
# 32 x 32 here against 128 x 128 at the paper's 512 crops) or the crop,
# from the recipe shared with the VOC config
# (../_base_/models/camguide_stage3_sizes.py): guided filter radius 1,
# window 3, closing 3, SLIC 69 segments, CRF stds 0.19 / 3.1, CAM blur off,
# image blur 3x3 / sigma 0.75 on this grid / crop.
_base_ = [
    '../_base_/models/camguide_effl0.py', '../_base_/datasets/demo_wsss.py',
    '../_base_/default_runtime.py',
    '../_base_/models/camguide_stage3_sizes.py'
]
sizes = _base_.camguide_stage3_sizes
num_classes = 8
stage2_work_dir = \
    'work_dirs/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128'
load_from = stage2_work_dir + '/iter_200.pth'
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    stage=3,
    teacher=None,
    teacher_checkpoint=None,
    cam_head=dict(
        num_classes=num_classes,
        loss_cls=dict(type='MultiLabelMarginLoss', loss_weight=1.0)),
    refine_head=dict(
        type='CamGuideRefineHead',
        num_classes=num_classes,
        stage1_channels=24,
        dropout_ratio=0.5,
        gf_radius=sizes.gf_radius),
    loss_reg=None,
    loss_crf=dict(
        type='HeuristicTargetLoss', loss_weight=0.8, loss_name='loss_crf'),
    loss_rw=dict(
        type='HeuristicTargetLoss', loss_weight=0.4, loss_name='loss_rw'),
    loss_edge=dict(
        type='EdgeConsistencyLoss',
        loss_weight=0.7,
        img_blur_kernel=sizes.img_blur_kernel,
        img_blur_sigma=sizes.img_blur_sigma,
        dilate_kernel=sizes.dilate_kernel,
        cam_blur_kernel=sizes.cam_blur_kernel,
        cam_blur_sigma=sizes.cam_blur_sigma),
    loss_loc=dict(
        type='WindowLocalConsistencyLoss',
        window=sizes.window,
        loss_weight=0.45),
    heuristic_targets=dict(
        type='HeuristicTargets',
        crf=dict(
            preset='irn_label',
            n_iters=5,
            gauss_sxy=sizes.crf_gauss_sxy,
            bi_sxy=sizes.crf_bi_sxy),
        close_kernel=sizes.close_kernel,
        # sigma_color (eq. (14); the paper gives none) 1.0 CIELab, not the
        # walk's default 2.5, which spreads the walked foreground to ~2x
        # the threshold's: SLIC-walk target mIoU at tau 0.55 on the dev
        # seeds 0 / 1 (baseline CAMs, 100 train images) 38.9 / 41.9 with
        # 1.0 against 29.0 / 29.1 with 2.5 (0.75: 38.7 / 40.7).
        rw=dict(
            n_segments=sizes.n_segments,
            n_iters=12,
            renorm='class',
            sigma_color=1.0),
        num_workers=0),
    # Table III's tau ~ U(0.05, 0.30) brackets the background threshold of
    # VOC CAMs (0.15-0.25): a range 0.25 wide around it. The demo CAMs are
    # broad, and with the VOC range every target is foreground almost
    # everywhere (generator 1.0, seed 0: stage-3 seeds fell from 25.2 to
    # 17.5 mIoU). The range is therefore the same width around the best
    # global threshold of the CAMs stage 3 starts from (Our*, dev seeds 0 /
    # 1: 0.60 / 0.55): [0.575 - 0.125, 0.575 + 0.125] = (0.45, 0.70). The
    # targets there are the best ones: CRF / SLIC-walk target mIoU on
    # Our*'s CAMs (150 train images, dev seeds 0 / 1) at tau 0.45: 38.2 /
    # 41.6 and 35.0 / 35.7, at 0.55: 42.3 / 46.3 and 38.2 / 40.7, at 0.65:
    # 43.4 / 46.2 and 40.3 / 43.8, at 0.75: 39.6 / 38.1 and 41.0 / 42.4;
    # the CAM itself 34.2-37.8 (tools/analysis_tools/
    # camguide_target_quality.py --scores-dir).
    train_cfg=dict(tau_range=(0.45, 0.70), crf_interval=4),
    test_cfg=dict(bg_thr=0.55))
max_iters = 300
# Table III: SGD + Nesterov 0.9, lr 0.009, wd 1e-4, poly; the new head
# (zero-initialised residual branches) gets 10x the rate to move within
# the 300 CPU iterations.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='SGD', lr=0.009, momentum=0.9, nesterov=True,
        weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'refine_head': dict(lr_mult=10.0)}),
    clip_grad=dict(max_norm=10.0))
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
# Issue #19 item 6: the mIoU of the CAM and of each heuristic target
# against the masks of the first 64 train images, every 50 iterations
# (target_quality/{cam,crf,rw}_miou in scalars.json; the results report
# plots the curves). A monitor: it draws no training randomness and leaves
# the model's state as it was.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(
        type='TargetQualityHook',
        dataset=dict(
            type='WSSSDemoDataset',
            data_root='data/demo',
            ann_file='ImageSets/Segmentation/train.txt',
            data_prefix=dict(
                img_path='JPEGImages', seg_map_path='SegmentationClass'),
            label_file='image_labels.json',
            pipeline=[
                dict(type='mmseg.LoadImageFromFile'),
                dict(type='mmseg.LoadAnnotations'),
                dict(type='PackWSSSInputs'),
            ]),
        interval=50,
        max_images=64)
]
randomness = dict(seed=0)
wsss_row = dict(
    table='camguide',
    name='Our (stage 3, morphology + local consistency)',
    parent='configs/camguide/camguide-stage3-noloc_effl0_1xb32-300it_demo-128x128.py',
    change=['model.loss_loc'],
    stages=[
        'configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py',
        'configs/camguide/camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py',
        'configs/camguide/camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py',
        'configs/camguide/camguide-stage3_effl0_1xb32-300it_demo-128x128.py'
    ],
    extra_images=16000 + 9600)
