# IG-CAM with the paper's adaptive schedule (sec. 3.6, suppl. 6.7.2): the
# stages switch when the validation loss plateaus for 5 validations and
# training stops early with patience 10. Everything else is the base
# config (fixed switches at 8k / 14k there).
#
# The validation loss is MultiLabelClsMetric's ``cls_loss`` (mean BCE of
# the image logits, L_cls without influence weights) on a HELD-OUT
# image-level split that is disjoint from
#   - the training images (it is removed from train_aug; otherwise the
#     "validation" loss is a training loss and hardly plateaus),
#   - the split seeds are reported on (VOC ``train``, test_dataloader
#     below, still scored with mmseg.IoUMetric by tools/test.py),
#   - the influence validation images (drawn from the new training split
#     minus VOC train),
#   - VOC ``val``, the split the final segmentation is reported on.
# Only image labels (XML) of the held-out images are read, never masks.
# Make the two split files once (500 of the SBD-only train_aug images,
# seed 0):
#   python - <<'EOF'
#   import random
#   d = 'data/VOCdevkit/VOC2012/ImageSets/Segmentation/'
#   aug = open(d + 'train_aug.txt').read().split()
#   train = set(open(d + 'train.txt').read().split())
#   pool = sorted(set(aug) - train)
#   hold = set(random.Random(0).sample(pool, 500))
#   open(d + 'train_aug_holdout500.txt', 'w').write(
#       '\n'.join(sorted(hold)) + '\n')
#   open(d + 'train_aug_minus_holdout500.txt', 'w').write(
#       '\n'.join(x for x in aug if x not in hold) + '\n')
#   EOF
# The model trains on 10,082 instead of 10,582 images.
#
# One validation per epoch (10,082 / 16 = 630 iterations; the paper counts
# epochs). The image logits are those of ``predict``: single scale, no
# flip with this model's test_cfg, influence maps from the image labels as
# in training (see MultiLabelClsMetric). ``stage_caps`` keeps the base
# switches as the latest switch points, so that all three stages fit in the
# 20k cosine schedule; set it to None for the pure plateau rule (and raise
# max_iters: the paper trains at most 50 epochs, about 31.5k iterations).
# The checkpoint with the lowest validation loss is kept (best_cls_loss_*),
# the natural choice after early stopping.
_base_ = ['./igcam_r101-fpn_1xb16-20k_voc12aug-512x512.py']
voc_root = 'data/VOCdevkit/VOC2012'
train_split = 'ImageSets/Segmentation/train_aug_minus_holdout500.txt'
holdout_split = 'ImageSets/Segmentation/train_aug_holdout500.txt'
proposal_dir = 'data/VOCdevkit/VOC2012/proposals/ss-fast'
stage_caps = [8000, 14000]
plateau_patience = 5
early_stop_patience = 10

train_dataloader = dict(dataset=dict(ann_file=train_split))
holdout_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    dict(type='PackWSSSInputs'),
]
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        _delete_=True,
        type='WSSSVOCDataset',
        data_root=voc_root,
        data_prefix=dict(img_path='JPEGImages'),
        ann_file=holdout_split,
        label_source='xml',
        test_mode=True,
        pipeline=holdout_pipeline))
val_evaluator = dict(_delete_=True, type='MultiLabelClsMetric')
# MMEngine's LogProcessor logs any key matching 'loss' as the mean over its
# window (up to 10 validations): log and store the current cls_loss instead
log_processor = dict(
    custom_cfg=[dict(data_src='cls_loss', method_name='mean', window_size=1)])
train_cfg = dict(val_interval=630)
default_hooks = dict(checkpoint=dict(save_best='cls_loss', rule='less'))
custom_hooks = [
    # the influence pool follows the training split (so it never holds a
    # held-out image); ``exclude`` still removes VOC train
    dict(h, val_dataset=dict(h['val_dataset'], ann_file=train_split))
    if h['type'] == 'InfluenceHook' else dict(
        h,
        switch_at=stage_caps,
        plateau=dict(
            monitor='cls_loss', rule='less', patience=plateau_patience),
        # a switch restarts early stopping's patience and keeps its best
        # held-out cls_loss (the same quantity in every stage); 'best'
        # would judge each stage on its own
        reset_early_stopping='wait')
    if h['type'] == 'StageSwitchHook' else h for h in _base_.custom_hooks
] + [
    # MMEngine's default min_delta (0.1) exceeds a typical BCE value
    dict(
        type='EarlyStoppingHook',
        monitor='cls_loss',
        rule='less',
        min_delta=0.0,
        patience=early_stop_patience)
]
