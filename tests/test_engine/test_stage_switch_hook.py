# Copyright (c) mmwsss contributors.
""":class:`StageSwitchHook`, the MixUp / CutMix batch augments with soft
multi-label targets and the proposal-aware geometric warp.

The runner tests train a tiny IG-CAM for 8 iterations with three stages
switched at iterations 3 and 6, two persistent dataloader workers, and
stage pipelines that resize to 32, 40 and 48 px, so the size of every
sample tells which pipeline made it.
"""
import os.path as osp
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from igcam_hook_testlib import (Probe, close_workers, influence_hook_cfg,
                                make_runner, model_cfg, pipeline)
from mmengine import Config
from mmengine.hooks import EarlyStoppingHook
from mmseg.structures import SegDataSample

from mmwsss.datasets.transforms import RandomGeometricWarp, affine_matrix
from mmwsss.datasets.transforms.proposals import (COORD_KEY, MIN_SIZE_KEY,
                                                  SRC_SHAPE_KEY,
                                                  make_coord_map)
from mmwsss.engine.hooks import InfluenceHook, StageSwitchHook
from mmwsss.models import (InstanceGuidedCAMHead, MultiLabelCutMix,
                           MultiLabelMixUp, RandomBatchAugment)
from mmwsss.models.losses import InfluenceWeightedBCELoss
from mmwsss.registry import HOOKS, MODELS
from mmwsss.utils import register_all_modules

register_all_modules()
ROOT = Path(__file__).resolve().parents[2]
CONS = 'cam_head.loss_consistency.loss_weight'
BOUND = 'cam_head.loss_boundary.loss_weight'
AUGMENTS = dict(
    type='RandomBatchAugment',
    augments=[
        dict(type='MultiLabelMixUp', alpha=1.0),
        dict(type='MultiLabelCutMix', alpha=1.0)
    ],
    probs=[0.5, 0.5])


def stage_hook_cfg(**kw):
    warp = dict(type='RandomGeometricWarp', prob=1.0)
    erase = dict(type='mmpretrain.RandomErasing', erase_prob=0.5)
    cfg = dict(
        type='StageSwitchHook',
        stages=[
            dict(
                name='coarse',
                losses={
                    CONS: 0.0,
                    BOUND: 0.0
                },
                pipeline=pipeline(32, flip=True)),
            dict(
                name='refine',
                pipeline=pipeline(40),
                batch_augments=AUGMENTS,
                influence=dict(interval=2)),
            dict(
                name='boundary',
                pipeline=pipeline(48, extra=[warp, erase]),
                batch_augments=None),
        ],
        switch_at=[3, 6])
    cfg.update(kw)
    return cfg


def _samples(label_lists, weights=None):
    out = []
    for i, labels in enumerate(label_lists):
        s = SegDataSample()
        meta = dict(img_labels=labels, img_shape=(4, 4), ori_shape=(4, 4))
        if weights is not None:
            meta['img_label_weights'] = weights[i]
        s.set_metainfo(meta)
        out.append(s)
    return out


def _targets(samples, num_classes=6):
    head = InstanceGuidedCAMHead(
        in_channels=2, num_classes=num_classes, num_scales=1)
    return head.targets(samples)


# ------------------------------------------------------- batch augments
def test_mixup_soft_targets_by_hand():
    x = torch.stack([torch.full((3, 4, 4), 1.), torch.full((3, 4, 4), 5.)])
    samples = _samples([[1, 3], [2]])
    out, samples = MultiLabelMixUp().mix(x, samples, 0.7, [1, 0])
    assert torch.allclose(out[0], torch.full((3, 4, 4), .7 * 1 + .3 * 5))
    assert torch.allclose(out[1], torch.full((3, 4, 4), .7 * 5 + .3 * 1))
    assert samples[0].metainfo['img_labels'] == [1, 2, 3]
    assert samples[0].metainfo['img_label_weights'] == pytest.approx(
        [.7, .3, .7])
    assert samples[1].metainfo['img_label_weights'] == pytest.approx(
        [.3, .7, .3])
    t = _targets(samples)
    assert torch.allclose(
        t, torch.tensor([[.7, .3, .7, 0, 0], [.3, .7, .3, 0, 0]]))
    # a second mix composes the weights: sample 0 with itself keeps its
    # own, sample 1 takes 0.5 of sample 0's
    out, samples = MultiLabelMixUp().mix(out, samples, 0.5, [0, 0])
    assert torch.allclose(
        _targets(samples)[1], torch.tensor([.5, .5, .5, 0, 0]))
    assert torch.allclose(_targets(samples)[0], t[0])


def test_cutmix_soft_targets_by_hand():
    x = torch.stack([torch.full((1, 4, 4), 1.), torch.full((1, 4, 4), 5.)])
    samples = _samples([[1], [4]])
    out, samples = MultiLabelCutMix().mix(x, samples, (1, 3, 0, 2), [1, 0])
    ref0 = torch.ones(1, 4, 4)
    ref0[:, 1:3, 0:2] = 5
    assert torch.equal(out[0], ref0)
    assert torch.equal(x[0], torch.ones(1, 4, 4))  # inputs not modified
    # 4 of 16 pixels pasted: lam = 0.75
    assert torch.allclose(
        _targets(samples),
        torch.tensor([[.75, 0, 0, .25, 0], [.25, 0, 0, .75, 0]]))
    # an empty box keeps the labels (weight 0 labels are dropped)
    samples = _samples([[1], [4]])
    MultiLabelCutMix().mix(x, samples, (2, 2, 0, 4), [1, 0])
    assert samples[0].metainfo['img_labels'] == [1]
    assert samples[0].metainfo['img_label_weights'] == [1.0]


@pytest.mark.parametrize('cls', [MultiLabelMixUp, MultiLabelCutMix])
def test_random_mix_weights_match_pixels(cls):
    """The label weight of the sample's own class equals the share of the
    image it keeps, measured on constant images (values 1 and 5)."""
    torch.manual_seed(0)
    for _ in range(5):
        x = torch.stack(
            [torch.full((1, 16, 16), 1.),
             torch.full((1, 16, 16), 5.)])
        samples = _samples([[1], [2]])
        aug = cls(alpha=1.0)
        aug.sample_perm = lambda n: torch.tensor([1, 0])
        out, samples = aug(x, samples)
        lam = samples[0].metainfo['img_label_weights'][0] \
            if samples[0].metainfo['img_labels'][0] == 1 else 0.0
        if cls is MultiLabelMixUp:
            measured = float((5 - out[0, 0, 0, 0]) / 4)  # lam*1+(1-lam)*5
        else:
            measured = float((out[0] == 1).float().mean())
        assert lam == pytest.approx(measured, abs=1e-5)
        t = _targets(samples)
        assert torch.allclose(t.sum(1), torch.ones(2))  # one label each


def test_random_batch_augment_choice_and_soft_bce():
    aug = RandomBatchAugment(
        [dict(type='MultiLabelMixUp'),
         dict(type='MultiLabelCutMix')],
        probs=[0.0, 0.0])
    x = torch.randn(2, 3, 8, 8)
    samples = _samples([[1], [2]])
    out, _ = aug(x, samples)
    assert out is x and 'img_label_weights' not in samples[0].metainfo
    with pytest.raises(ValueError):
        RandomBatchAugment([dict(type='MultiLabelMixUp')], probs=[0.6, 0.6])
    # the BCE accepts soft targets: -(y log p + (1 - y) log(1 - p))
    z = torch.tensor([[0.3, -1.2]])
    y = torch.tensor([[0.7, 0.25]])
    p = torch.sigmoid(z)
    ref = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    got = InfluenceWeightedBCELoss(loss_weight=1.0)(z, y)
    assert torch.allclose(got, ref)


# ----------------------------------------------------------- warps
def test_geometric_warp_translation_and_rotation_by_hand():
    warp = RandomGeometricWarp(prob=1.0)
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    seg = np.arange(48, dtype=np.uint8).reshape(6, 8)
    res = dict(
        img=img.copy(),
        gt_seg_map=seg.copy(),
        seg_fields=['gt_seg_map'],
        proposals=np.array([[1, 1, 3, 4], [6, 0, 8, 2]], np.float32),
        proposal_ranks=np.array([0, 1]))
    res = warp.warp(res, affine_matrix(8, 6, translate=(2, 1)))
    assert np.array_equal(res['img'][1:, 2:], img[:-1, :-2])
    assert (res['img'][0] == 0).all() and (res['img'][:, :2] == 0).all()
    assert np.array_equal(res['gt_seg_map'][1:, 2:], seg[:-1, :-2])
    assert (res['gt_seg_map'][0] == 255).all()
    # box 1 moves by (2, 1); box 2 leaves the image (clipped to 0 width)
    assert res['proposals'].tolist() == [[3, 2, 5, 5]]
    assert res['proposal_ranks'].tolist() == [0]
    # 90 degrees about the centre of a square image is np.rot90, exactly
    # (this checks OpenCV's pixel-centre convention)
    sq = np.random.RandomState(0).randint(0, 255, (6, 6)).astype(np.uint8)
    res = warp.warp(
        dict(
            img=np.stack([sq] * 3, -1),
            gt_seg_map=sq.copy(),
            seg_fields=['gt_seg_map'],
            proposals=np.array([[0, 0, 2, 1]], np.float32)),
        affine_matrix(6, 6, angle=90))
    assert np.array_equal(res['gt_seg_map'], np.rot90(sq))
    assert np.array_equal(res['img'][..., 0], np.rot90(sq))
    # the top-left 2x1 box goes to the bottom-left 1x2 box
    assert res['proposals'].tolist() == [[0, 4, 1, 6]]


def test_geometric_warp_aligns_pending_proposals():
    # proposals still tracked by LoadProposals' coordinate map
    img = np.zeros((8, 8, 3), np.uint8)
    res = dict(
        img=img,
        img_path='x.jpg',
        proposals=np.array([[2, 2, 6, 4]], np.float32),
        proposal_ranks=np.array([0]),
        seg_fields=[COORD_KEY])
    res[COORD_KEY] = make_coord_map(8, 8)[:, ::-1].copy()  # after a flip
    res[SRC_SHAPE_KEY] = (8, 8)
    res[MIN_SIZE_KEY] = 1.
    out = RandomGeometricWarp(prob=1.0).warp(
        res, affine_matrix(8, 8, translate=(1, 0)))
    assert COORD_KEY not in out and COORD_KEY not in out['seg_fields']
    # flipped: x in [8 - 6, 8 - 2) = [2, 6), then moved right by 1
    assert out['proposals'].tolist() == [[3, 2, 7, 4]]
    assert out['warp_matrix'].shape == (3, 3)


# ---------------------------------------------------------- hook (mock)
def _mock_runner():
    runner = MagicMock()
    runner.iter = 10
    runner.hooks = [EarlyStoppingHook(monitor='mIoU', patience=10)]
    runner.hooks[0].wait_count = 4
    runner.message_hub.get_scalar.return_value = None
    return runner


def test_plateau_rule_and_state(monkeypatch):
    hook = StageSwitchHook(
        stages=[dict(), dict(), dict()],
        plateau=dict(monitor='mIoU', patience=3))
    assert hook.plateau['rule'] == 'greater'
    applied = []
    monkeypatch.setattr(hook, 'apply_stage',
                        lambda runner, k, pos: applied.append((k, pos)))
    runner = _mock_runner()
    hook._in_train = True
    switched_at = []
    for step, score in enumerate([.5, .6, .6, .55, .61, .6, .6, .6, .9]):
        runner.iter = 10 * (step + 1)
        hook.after_val_epoch(runner, dict(mIoU=score))
        if applied and len(switched_at) < len(applied):
            switched_at.append(step)
    # .5 best, .6 best, .6 .55 wait 1, 2, .61 best, then 3 x .6: switch
    # at the 8th validation (index 7), before iteration 80
    assert applied == [(1, 80)] and switched_at == [7]
    assert hook.stage == 1 and hook.best == .9 and hook.wait == 0
    assert runner.hooks[0].wait_count == 0  # early stopping restarts
    # the state goes to the checkpoint as plain numbers and comes back
    ckpt = dict(meta=dict())
    hook.wait = 2
    hook.before_save_checkpoint(runner, ckpt)
    assert ckpt['meta']['stage_switch'] == dict(stage=1, best=.9, wait=2)
    other = StageSwitchHook(
        stages=[dict(), dict(), dict()],
        plateau=dict(monitor='val_loss', patience=3))
    assert other.plateau['rule'] == 'less'
    monkeypatch.setattr(other, 'apply_stage', lambda *a: None)
    monkeypatch.setattr(other, '_capture_defaults', lambda *a: None)
    other.after_load_checkpoint(runner, ckpt)
    other.before_train(runner)
    assert (other.stage, other.best, other.wait) == (1, .9, 2)
    # not during a stand-alone validation
    other.after_train(runner)
    other.after_val_epoch(runner, dict(val_loss=5.))
    assert other.wait == 2
    with pytest.raises(ValueError):
        StageSwitchHook(stages=[dict(), dict()], switch_at=[3, 4])
    with pytest.raises(KeyError):
        StageSwitchHook(stages=[dict(loss={})], switch_at=[])


@pytest.mark.parametrize('mode,best', [(True, .4), ('wait', .4),
                                        ('best', float('inf')),
                                        (False, .4)])
def test_switch_resets_early_stopping(monkeypatch, mode, best):
    hook = StageSwitchHook(
        stages=[dict(), dict()], switch_at=[5], reset_early_stopping=mode)
    monkeypatch.setattr(hook, 'apply_stage', lambda *a: None)
    runner = _mock_runner()
    early = EarlyStoppingHook(monitor='loss', patience=3)  # rule: less
    early.best_score, early.wait_count = .4, 2
    runner.hooks = [early]
    hook.switch(runner, 1, 5, 'test')
    assert early.wait_count == (2 if mode is False else 0)
    assert early.best_score == best
    # the first validation of the new stage: its own best under 'best',
    # one more non-improving record otherwise
    early._check_stop_condition(.5)
    assert early.best_score == (.5 if mode == 'best' else .4)
    with pytest.raises(ValueError, match='reset_early_stopping'):
        StageSwitchHook(
            stages=[dict(), dict()], switch_at=[5],
            reset_early_stopping='yes')


# --------------------------------------------------------- hook (runner)
@pytest.fixture(scope='module')
def staged(demo_root, tmp_path_factory):
    probe = Probe(record_influence=True)
    runner = make_runner(
        tmp_path_factory.mktemp('staged'),
        demo_root,
        [stage_hook_cfg(),
         influence_hook_cfg(demo_root, interval=100), probe],
        num_workers=2)
    runner.train()
    yield runner, probe
    close_workers(runner)


def _expected_paths(runner, root, n_iters, bs=2):
    """The InfiniteSampler's stream for the run's seed, in image paths."""
    gen = torch.Generator().manual_seed(runner.seed)
    idx = []
    while len(idx) < n_iters * bs:
        idx += torch.randperm(8, generator=gen).tolist()
    names = Path(root, 'ImageSets/Segmentation/train.txt').read_text().split()
    paths = [osp.join(root, 'JPEGImages', names[i] + '.jpg') for i in idx]
    return [paths[i * bs:(i + 1) * bs] for i in range(n_iters)]


def test_switch_at_fixed_iterations(staged, demo_root):
    runner, probe = staged
    hook = [h for h in runner.hooks if isinstance(h, StageSwitchHook)][0]
    assert hook.stage == 2
    sizes = [r['shapes'][0][0] for r in probe.iters]
    # every batch from the switch on comes from the new pipeline, although
    # two persistent workers had prefetched batches with the old one
    assert sizes == [32, 32, 32, 40, 40, 40, 48, 48]
    assert all(len(set(r['shapes'])) == 1 for r in probe.iters)
    # no batch lost or repeated at the switches
    assert [r['paths'] for r in probe.iters] == \
        _expected_paths(runner, demo_root, 8)
    weights = [r['weights'] for r in probe.iters]
    assert weights == [(1.0, 0.0, 0.0)] * 3 + [(1.0, 0.5, 0.3)] * 5
    augs = [type(r['augments']).__name__ for r in probe.iters]
    assert augs == ['NoneType'] * 3 + ['RandomBatchAugment'] * 3 + \
        ['NoneType'] * 2
    # influence: first refresh after 2 iterations (begin), then at each
    # switch (3, 6); stage 2 sets the interval to 2 -> 5 as well; stage 3
    # names no interval: back to the configured 100
    assert probe.refresh_iters == [1, 2, 4, 5]
    infl = [h for h in runner.hooks if isinstance(h, InfluenceHook)][0]
    assert infl.interval == 100
    assert runner.message_hub.get_info('train_stage') == 2


def test_resume_in_stage_2_continues_stage_2(staged, demo_root, tmp_path):
    full, full_probe = staged
    ckpt_path = osp.join(full.work_dir, 'iter_4.pth')
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt['meta']['stage_switch']['stage'] == 1
    probe = Probe(record_influence=True)
    resumed = make_runner(
        tmp_path,
        demo_root,
        [stage_hook_cfg(),
         influence_hook_cfg(demo_root, interval=100), probe],
        num_workers=2,
        resume_from=ckpt_path)
    try:
        resumed.train()
    finally:
        close_workers(resumed)
    first = probe.iters[0]
    ref = full_probe.iters[4]
    assert first['iter'] == ref['iter'] == 4
    # same losses, pipeline, batch augments and influence cache as the
    # uninterrupted run at iteration 4
    assert first['weights'] == ref['weights'] == (1.0, 0.5, 0.3)
    assert type(first['augments']).__name__ == 'RandomBatchAugment'
    assert [r['shapes'][0][0] for r in probe.iters] == [40, 40, 48, 48]
    assert [r['paths'] for r in probe.iters] == \
        [r['paths'] for r in full_probe.iters[4:]]
    assert first['influence'].keys() == ref['influence'].keys()
    for k, v in ckpt['influence']['model'].items():
        assert torch.equal(first['influence'][k], v), k
        assert torch.equal(ref['influence'][k], v), k
    # the influence interval of stage 2 (2) is back: last refresh at 3 ->
    # refresh at 5, then stage 3 refreshes at 6, as in the full run
    assert probe.refresh_iters == [4, 5]
    assert [r['weights'] for r in probe.iters] == \
        [r['weights'] for r in full_probe.iters[4:]]


def test_configs_build_their_hooks():
    for name in ('igcam_r101-fpn_1xb16-20k_voc12aug-512x512.py',
                 'igcam_effl0-fpn_1xb16-300it_demo-128x128.py'):
        cfg = Config.fromfile(str(ROOT / 'configs' / 'igcam' / name))
        types = [h['type'] for h in cfg.custom_hooks]
        assert types[0] == 'SafeCheckpointHook'
        assert 'InfluenceHook' in types and 'StageSwitchHook' in types
        hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
        stage = [h for h in hooks if isinstance(h, StageSwitchHook)][0]
        assert len(stage.stages) == 3
        assert isinstance(stage.stages[1]['batch_augments'],
                          RandomBatchAugment)


def test_soft_targets_reach_the_igcam_loss():
    """A CutMix batch trains the tiny model: the head's targets are the
    soft weights and the BCE uses them (checked against F.bce)."""
    torch.manual_seed(0)
    model = MODELS.build(model_cfg())
    cutmix = MultiLabelCutMix()
    cutmix.sample_perm = lambda n: torch.tensor([1, 0])
    model.data_preprocessor.batch_augments = RandomBatchAugment([cutmix],
                                                                probs=[1.0])
    samples = _samples([[1, 2], [5]])
    for s in samples:
        s.set_metainfo(dict(img_shape=(32, 32), ori_shape=(32, 32)))
    data = model.data_preprocessor(
        dict(
            inputs=[torch.randint(0, 255, (3, 32, 32)) for _ in range(2)],
            data_samples=samples),
        training=True)
    t = model.cam_head.targets(data['data_samples'])
    lam = data['data_samples'][0].metainfo['img_label_weights'][0]
    assert 0 < lam < 1
    ref = torch.zeros(2, 7)
    ref[0, [0, 1]], ref[0, 4] = lam, 1 - lam
    ref[1, [0, 1]], ref[1, 4] = 1 - lam, lam
    assert torch.allclose(t, ref)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses['loss_ig'])
    z = torch.zeros(2, 7)
    assert torch.allclose(
        model.cam_head.loss_cls(z, t),
        F.binary_cross_entropy_with_logits(z, t))
