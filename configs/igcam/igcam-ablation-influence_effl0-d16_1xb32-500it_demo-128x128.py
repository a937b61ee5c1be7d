# IG-CAM ablation on the demo bed, row "+Influence": the Base row plus the
# influence machinery (IG-CAM sec. 3.2-3.3): per-sample loss weights and
# spatial influence maps from the classifier's closed-form curvature (eval
# mode, every 10 iterations) and a validation solve refreshed by
# InfluenceHook every 50 iterations on 32 images of the demo's "aux" split,
# which is disjoint from the train split (seeds) and the val split (final
# model); the hook refuses to start when they overlap. Influence-guided
# attention re-weights the features, and the test-time CAM uses the maps.
# TargetQualityHook scores the maps against the masks during training.
_base_ = ['./igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py']
model = dict(
    attention=dict(
        _delete_=True,
        type='InfluenceGuidedAttention',
        in_channels={{_base_.channels}},
        num_scales=1,
        mode='channel',
        alpha_init=0.0),
    influence_cfg=dict(_delete_=True, weight_decay=1e-4),
    test_cfg=dict(use_influence=True))
influence_val_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    # deterministic and one size: the 32 images form one eval batch
    dict(type='mmseg.Resize', scale=(128, 128), keep_ratio=False),
    dict(type='PackWSSSInputs'),
]
influence_hook = dict(
    type='InfluenceHook',
    val_dataset=dict(
        type={{_base_.dataset_type}},
        data_root={{_base_.data_root}},
        ann_file='ImageSets/Segmentation/aux.txt',
        data_prefix=dict(img_path='JPEGImages'),
        label_file='image_labels.json',
        pipeline=influence_val_pipeline),
    num_samples=32,
    seed=0,
    interval=50,
    begin=50,
    reported_splits=['ImageSets/Segmentation/val.txt'],
    mix_warmup=25)
# Diagnosis with the demo's masks (no effect on training: eval mode, no
# gradient, RNG streams kept): every 100 iterations, on the first 64 train
# images, the CAM's mIoU at the test threshold and the foreground AUC of
# the influence map and of the |CAM| map (IGCAMSegmentor.quality_maps).
quality_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]
quality_hook = dict(
    type='TargetQualityHook',
    dataset=dict(
        type={{_base_.dataset_type}},
        data_root={{_base_.data_root}},
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        label_file='image_labels.json',
        pipeline=quality_pipeline),
    interval=100,
    max_images=64)
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='RNGStateHook'), influence_hook, quality_hook
]
wsss_row = dict(
    table='igcam',
    name='+Influence',
    parent=
    'configs/igcam/igcam-ablation-base_effl0-d16_1xb32-500it_demo-128x128.py',
    change=[
        'model.attention', 'model.influence_cfg',
        'model.test_cfg.use_influence', 'influence_val_pipeline',
        'influence_hook', 'quality_pipeline', 'quality_hook', 'custom_hooks'
    ])
