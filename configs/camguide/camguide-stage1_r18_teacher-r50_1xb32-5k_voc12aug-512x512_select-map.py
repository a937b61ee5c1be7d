# CamGuide stage 1 with the paper's model selection (sec. III "Model
# Selection": stages 1 and 2 are selected "by classification metrics on
# train"): every 500 iterations MultiLabelClsMetric scores the student's
# image logits (those of predict, i.e. this model's multi-scale + flip
# test_cfg) and CheckpointHook keeps the checkpoint with the best mAP
# (best_mAP_iter_<N>.pth; give it to stage 2 as load_from).
#
# Only image labels are read (XML, no masks). They are the training
# supervision of WSSS, so selecting on them uses no annotation the method
# does not train with; the scores measure fit, not generalisation, as in
# the paper. The split is VOC ``train`` (1,464 images, a subset of the
# 10,582 train_aug images the paper calls its train split); set
# ``select_split`` to train_aug.txt for the full split (7x slower).
# The same block applies to stage 2 (its lambda_cls is 0, so its logits
# come only from the distilled maps).
_base_ = ['./camguide-stage1_r18_teacher-r50_1xb32-5k_voc12aug-512x512.py']
voc_root = 'data/VOCdevkit/VOC2012'
select_split = 'ImageSets/Segmentation/train.txt'
val_interval = 500
train_cfg = dict(val_interval=val_interval)
# the base sets val_cfg, val_dataloader and val_evaluator to None
val_cfg = dict(_delete_=True, type='ValLoop')
val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='WSSSVOCDataset',
        data_root=voc_root,
        data_prefix=dict(img_path='JPEGImages'),
        ann_file=select_split,
        label_source='xml',
        test_mode=True,
        pipeline=[
            dict(type='mmseg.LoadImageFromFile'),
            dict(type='PackWSSSInputs'),
        ]))
val_evaluator = dict(_delete_=True, type='MultiLabelClsMetric')
# MMEngine's LogProcessor logs any key matching 'loss' as the mean over its
# window (up to 10 validations): log and store the current cls_loss instead
log_processor = dict(
    custom_cfg=[dict(data_src='cls_loss', method_name='mean', window_size=1)])
default_hooks = dict(checkpoint=dict(save_best='mAP', rule='greater'))
