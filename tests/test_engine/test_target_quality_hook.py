# Copyright (c) mmwsss contributors.
"""TargetQualityHook: a real Runner on a tiny CamGuide stage-3 model.

The logged mIoUs are checked against a brute-force per-class IoU of the
model's maps (numpy loops over classes, nearest upsampling by pixel
repetition), and training with the hook must give exactly the weights of
training without it (no RNG draw, no BN update, no gradient).
"""
import copy
import glob
import json
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from mmwsss.engine.hooks import TargetQualityHook
from mmwsss.registry import HOOKS
from mmwsss.utils import register_all_modules

register_all_modules()

SIZE = 48


def _model():
    backbone = dict(
        type='mmseg.ResNetV1c',
        depth=18,
        base_channels=8,
        stem_channels=8,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        out_indices=(0, 3),
        init_cfg=None)
    return dict(
        type='CamGuideSegmentor',
        stage=3,
        backbone=backbone,
        cam_head=dict(
            type='CAMHead',
            in_channels=64,
            num_classes=8,
            dropout_ratio=0.5,
            loss_cls=dict(type='MultiLabelMarginLoss')),
        refine_head=dict(
            type='CamGuideRefineHead',
            num_classes=8,
            stage1_channels=8,
            channels=16,
            gf_radius=dict(rel=4 / 128)),
        loss_crf=dict(
            type='HeuristicTargetLoss', loss_weight=0.8, loss_name='loss_crf'),
        loss_rw=dict(
            type='HeuristicTargetLoss', loss_weight=0.4, loss_name='loss_rw'),
        heuristic_targets=dict(
            type='HeuristicTargets',
            crf=dict(n_iters=2, scale_factor=4.0),
            close_kernel=3,
            rw=dict(n_segments=20, n_iters=3)),
        data_preprocessor=dict(
            type='mmseg.SegDataPreProcessor',
            mean=[127.] * 3,
            std=[128.] * 3,
            bgr_to_rgb=True,
            size=(SIZE, SIZE)),
        train_cfg=dict(tau_range=(0.05, 0.3), crf_interval=2),
        test_cfg=dict(scales=(1.0, ), flip=False))


def _dataset(demo_root, masks=True):
    pipeline = [
        dict(type='mmseg.LoadImageFromFile'),
        dict(type='mmseg.Resize', scale=(SIZE, SIZE), keep_ratio=False),
    ]
    if masks:
        pipeline.insert(1, dict(type='mmseg.LoadAnnotations'))
    pipeline.append(dict(type='PackWSSSInputs'))
    return dict(
        type='WSSSDemoDataset',
        data_root=demo_root,
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        label_file='image_labels.json',
        pipeline=pipeline)


def _runner(work_dir, demo_root, hook=None):
    train_set = _dataset(demo_root, masks=False)
    cfg = dict(
        model=_model(),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=train_set),
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=4),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=100),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook] if hook else [],
        # a name of its own: MMEngine shares one visualizer (and its
        # save_dir) between runners started in the same second
        visualizer=dict(
            type='Visualizer',
            vis_backends=[dict(type='LocalVisBackend')],
            name=f'target_quality_{uuid.uuid4().hex}'),
        default_scope='mmwsss',
        randomness=dict(seed=3),
        log_level='WARNING')
    return Runner.from_cfg(copy.deepcopy(cfg))


def brute_miou(preds, gts, num_classes=8):
    """Per-class IoU by explicit counting; NaN-mean over present classes."""
    ious = []
    for c in range(num_classes):
        inter = union = 0
        for p, g in zip(preds, gts):
            valid = g != 255
            inter += int(((p == c) & (g == c) & valid).sum())
            union += int((((p == c) | (g == c)) & valid).sum())
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def test_hook_with_real_runner(tmp_path, demo_root):
    hook = dict(
        type='TargetQualityHook',
        dataset=_dataset(demo_root),
        interval=2,
        max_images=5,
        batch_size=2)
    runner = _runner(str(tmp_path / 'with'), demo_root, hook)
    runner.train()
    # scalars.json holds the three curves at steps 0, 2 and 4
    files = glob.glob(
        str(tmp_path / 'with' / '*' / 'vis_data' / 'scalars.json'))
    assert len(files) == 1
    rows = [json.loads(line) for line in open(files[0])]
    tq = [r for r in rows if 'target_quality/cam_miou' in r]
    assert [r['step'] for r in tq] == [0, 2, 4]
    for r in tq:
        assert {'target_quality/crf_miou', 'target_quality/rw_miou'} <= set(r)
    hub = runner.message_hub
    last = tq[-1]
    for name in ('cam', 'crf', 'rw'):
        key = f'target_quality/{name}_miou'
        assert hub.get_scalar(key).current() == pytest.approx(last[key])
    # independent recomputation with the final model
    model = runner.model
    model.eval()
    hook_obj = [h for h in runner.hooks if isinstance(h, TargetQualityHook)]
    samples = hook_obj[0].samples
    assert len(samples) == 5
    preds = {'cam': [], 'crf': [], 'rw': []}
    gts = []
    with torch.no_grad():
        data = model.data_preprocessor(
            pseudo_collate(copy.deepcopy(samples)), False)
        tau = sum(model.train_cfg['tau_range']) / 2
        maps = model.heuristic_target_maps(data['inputs'],
                                           data['data_samples'], tau)
    for i, ds in enumerate(data['data_samples']):
        gt = ds.gt_sem_seg.data[0].numpy()
        gts.append(gt)
        for name in preds:
            m = maps[name][i].numpy()
            preds[name].append(np.repeat(np.repeat(m, 4, 0), 4, 1))
    for name in preds:
        ref = 100 * brute_miou(preds[name], gts)
        assert last[f'target_quality/{name}_miou'] == pytest.approx(
            ref, abs=1e-3)
    # the hook changes nothing in training: same weights as without it
    plain = _runner(str(tmp_path / 'without'), demo_root)
    plain.train()
    for (k, a), b in zip(runner.model.state_dict().items(),
                         plain.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_hook_ids_and_errors(tmp_path, demo_root):
    ids = [
        line.strip() for line in open(
            osp.join(demo_root, 'ImageSets', 'Segmentation', 'train.txt'))
    ]
    id_file = tmp_path / 'labelled.txt'
    id_file.write_text('\n'.join(ids[2:5]) + '\n')
    hook = TargetQualityHook(dataset=_dataset(demo_root), img_ids=str(id_file))
    stems = [
        osp.splitext(osp.basename(s['data_samples'].img_path))[0]
        for s in hook._build_samples()
    ]
    assert stems == ids[2:5]
    with pytest.raises(ValueError, match='not in the dataset'):
        TargetQualityHook(
            dataset=_dataset(demo_root),
            img_ids=['nope']).\
            _build_samples()
    with pytest.raises(KeyError, match='LoadAnnotations'):
        TargetQualityHook(
            dataset=_dataset(demo_root, masks=False),
            max_images=1)._build_samples()
    with pytest.raises(FileNotFoundError, match='id file'):
        TargetQualityHook(
            dataset=_dataset(demo_root),
            img_ids=str(tmp_path / 'missing.txt'))._build_samples()
    with pytest.raises(ValueError, match='interval'):
        TargetQualityHook(dataset=_dataset(demo_root), interval=0)
    assert isinstance(
        HOOKS.build(dict(type='TargetQualityHook', dataset={})),
        TargetQualityHook)


def test_hook_scores_igcam_influence_maps(tmp_path, demo_root):
    """IG-CAM: the influence and |CAM| maps get a foreground AUC, equal to
    a brute-force pair count on the final model's maps; the influence map
    only once the influence has been refreshed."""
    from igcam_hook_testlib import influence_hook_cfg, make_runner, unwrap
    pipe = [
        dict(type='mmseg.LoadImageFromFile'),
        dict(type='mmseg.LoadAnnotations'),
        dict(type='mmseg.Resize', scale=(32, 32), keep_ratio=False),
        dict(type='PackWSSSInputs'),
    ]
    tq = dict(
        type='TargetQualityHook',
        dataset=dict(_dataset(demo_root), pipeline=pipe),
        interval=4,
        max_images=4,
        batch_size=4)
    runner = make_runner(tmp_path / 'ig', demo_root,
                         [influence_hook_cfg(demo_root), tq])
    runner.train()
    files = glob.glob(str(tmp_path / 'ig' / '*' / 'vis_data' /
                          'scalars.json'))
    rows = [json.loads(line) for line in open(files[0])]
    logged = [r for r in rows if 'target_quality/cam_miou' in r]
    assert [r['step'] for r in logged] == [0, 4, 8]
    # before the first refresh (iteration 2) the maps are uniform: no
    # influence AUC; |CAM| is scored from the start
    assert 'target_quality/influence_auc' not in logged[0]
    assert 'target_quality/cam_magnitude_auc' in logged[0]
    last = logged[-1]
    assert {'target_quality/influence_auc',
            'target_quality/cam_magnitude_auc'} <= set(last)
    model = unwrap(runner.model)
    model.eval()
    hook = [h for h in runner.hooks if isinstance(h, TargetQualityHook)][0]
    with torch.no_grad():
        data = model.data_preprocessor(
            pseudo_collate(copy.deepcopy(hook.samples)), False)
        maps = model.quality_maps(data['inputs'], data['data_samples'])
    assert set(maps) == {'influence', 'cam_magnitude'}
    for name, m in maps.items():
        assert m.shape == (4, 32, 32) and bool((m >= 0).all())
        aucs = []
        for i, ds in enumerate(data['data_samples']):
            gt = ds.gt_sem_seg.data[0].numpy()
            s = m[i].numpy()
            fg, bg = s[(gt > 0) & (gt < 255)], s[gt == 0]
            if fg.size and bg.size:
                pairs = (fg[:, None] > bg[None]).sum() + \
                    0.5 * (fg[:, None] == bg[None]).sum()
                aucs.append(pairs / (fg.size * bg.size))
        assert last[f'target_quality/{name}_auc'] == pytest.approx(
            100 * np.mean(aucs), abs=1e-3)
    # the two maps are different maps
    assert not torch.allclose(maps['influence'] / maps['influence'].mean(),
                              maps['cam_magnitude'] /
                              maps['cam_magnitude'].mean())
