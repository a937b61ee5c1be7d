# IG-CAM schedule (sec. 4.1, suppl. Table 5): Adam (0.9, 0.999), lr 1e-4,
# weight decay 5e-4 (coupled L2, as torch.optim.Adam), cosine decay.
# fused=True: torch's one-kernel Adam (CPU and CUDA), the same update as
# the per-parameter loop; for ResNet-101's 44.5 M parameters it takes
# 0.05 s per step on one CPU thread instead of 0.15-0.2 s (about 10 % of
# a reduced VOC IG-CAM step in benchmarks/bench_igcam_iter.py).
# Drop it on a device without a fused Adam.
max_iters = 20000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='Adam',
        lr=1e-4,
        betas=(0.9, 0.999),
        weight_decay=5e-4,
        fused=True))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters,
        eta_min=0.0,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=2000,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmseg.SegVisualizationHook'))
