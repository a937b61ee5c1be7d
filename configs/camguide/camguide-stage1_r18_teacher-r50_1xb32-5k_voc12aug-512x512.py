# CamGuide stage 1, the paper's recipe (Table I): ResNet-50 teacher ->
# ResNet-18 student, batch 32, 512 crops, 15 epochs of VOC train_aug
# (10,582 / 32 * 15 = 4,960 iterations; 5k), Adam lr 0.1 as printed in
# Table I (unverified: far above the usual Adam rates; lower it if the loss
# diverges), weight decay 1e-4, ReduceOnPlateau (patience 500 iterations,
# factor 0.5) on the training loss, lambda_cls 0.35, lambda_reg 0.65,
# tau ~ U(0.1, 0.45).
# The teacher is the spine's CAM classifier:
#   tools/train.py configs/cam/cam_r50-d16_1xb16-3k_voc12aug-512x512.py
_base_ = [
    '../_base_/models/camguide_r18.py',
    '../_base_/datasets/voc12aug_wsss.py', '../_base_/default_runtime.py'
]
teacher_checkpoint = \
    'work_dirs/cam_r50-d16_1xb16-3k_voc12aug-512x512/iter_3000.pth'
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    teacher_checkpoint=teacher_checkpoint)
train_dataloader = dict(batch_size=32)
max_iters = 5000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=0.1, weight_decay=1e-4))
param_scheduler = []
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='ReduceLROnLossPlateauHook', patience=500, factor=0.5)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=1000,
        max_keep_ckpts=2))
