# IG-CAM ablation, Table 3 row "+Influence" on the demo: the full model,
# i.e. four FPN scales, Selective Search proposals (top 64), influence maps
# and influence-weighted losses, influence-guided attention, InfluenceHook.
# It is the demo config (igcam_effl0-fpn_1xb16-300it_demo-128x128.py) with
# proposals switched on; CRF off (Table 3 is without CRF unless '+CRF').
_base_ = ['./igcam_effl0-fpn_1xb16-300it_demo-128x128.py']
# Proposals (Selective Search, "fast" mode, <= 2000 per image, area >= 100
# px, aspect <= 4), precomputed for the train split (and the val split,
# whose images form the influence pool of the full model) by
#   python tools/generate_proposals.py data/demo/JPEGImages \
#       --out data/demo/proposals/ss-fast --workers 2
# The head keeps the top 64 (rank) at test time, 64 random in training,
# plus the whole image.
proposal_dir = 'data/demo/proposals/ss-fast'
train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    dict(
        type='mmseg.RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True,
        resize_type='mmseg.Resize'),  # also resizes the proposal tracker
    dict(type='mmseg.RandomCrop', crop_size=(128, 128)),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs'),
]
# Loading steps with ``_scope_`` rather than an ``mmseg.`` prefix:
# mmseg.apis.inference_model drops ``type='LoadAnnotations'`` and retypes
# the first step to ``LoadImageFromNDArray``; unlabelled images are packed
# for the model to predict their classes (mmwsss.apis.inference).
test_pipeline = [
    dict(type='LoadImageFromFile', _scope_='mmseg'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    dict(type='LoadAnnotations', _scope_='mmseg'),
    dict(type='PackWSSSInputs', allow_missing_labels=True),
]
stage3_pipeline = train_pipeline[:-1] + [
    # after the axis-aligned transforms, so that the proposals follow it
    dict(type='RandomGeometricWarp', prob=0.5),
    dict(type='mmpretrain.RandomErasing', erase_prob=0.25, mode='rand'),
    dict(type='PackWSSSInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
influence_val_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='LoadProposals', proposal_dir=proposal_dir, max_num=2000),
    # deterministic and one size: the 32 images form one eval batch
    dict(type='mmseg.Resize', scale=(128, 128), keep_ratio=False),
    dict(type='PackWSSSInputs'),
]
# The demo's hooks with the proposal pipelines.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(
        type='InfluenceHook',
        val_dataset=dict(
            type='WSSSDemoDataset',
            data_root={{_base_.demo_root}},
            ann_file='ImageSets/Segmentation/val.txt',
            data_prefix=dict(img_path='JPEGImages'),
            label_file='image_labels.json',
            pipeline=influence_val_pipeline),
        num_samples=32,
        seed=0,
        interval=50,
        begin=50,
        mix_warmup=25),
    dict(
        type='StageSwitchHook',
        switch_at=[100, 200],
        stages=[
            dict(
                name='coarse localisation',
                losses={
                    'cam_head.loss_consistency.loss_weight': 0.0,
                    'cam_head.loss_boundary.loss_weight': 0.0
                }),
            dict(
                name='refinement',
                batch_augments=dict(
                    type='RandomBatchAugment',
                    augments=[
                        dict(type='MultiLabelMixUp', alpha=1.0),
                        dict(type='MultiLabelCutMix', alpha=1.0)
                    ],
                    probs=[0.5, 0.5])),
            dict(
                name='boundary optimisation',
                pipeline=stage3_pipeline,
                batch_augments=None),
        ]),
]
