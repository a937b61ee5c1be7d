# Copyright (c) mmwsss contributors.
"""CamGuideSegmentor: masks, teacher handling and the three stages."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from mmwsss.models.segmentors.camguide_segmentor import (make_cam,
                                                         stochastic_mask)
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()

NUM_CLASSES = 4


def _backbone(out_indices=(0, 3)):
    return dict(
        type='mmseg.ResNetV1c',
        depth=18,
        base_channels=8,
        stem_channels=8,
        num_stages=4,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        out_indices=out_indices,
        norm_cfg=dict(type='BN'),
        init_cfg=None)


def _teacher():
    return dict(
        type='CAMSegmentor',
        backbone=_backbone((3, )),
        cam_head=dict(
            type='CAMHead',
            in_channels=64,
            num_classes=NUM_CLASSES,
            init_cfg=None))


def _cfg(stage=1, **kw):
    cfg = dict(
        type='CamGuideSegmentor',
        stage=stage,
        teacher=_teacher() if stage < 3 else None,
        backbone=_backbone(),
        cam_head=dict(
            type='CAMHead',
            in_channels=64,
            num_classes=NUM_CLASSES,
            loss_cls=dict(type='MultiLabelMarginLoss', loss_weight=0.35)),
        loss_reg=dict(type='CAMDistillL1Loss', loss_weight=0.65)
        if stage < 3 else None,
        data_preprocessor=dict(
            type='mmseg.SegDataPreProcessor',
            mean=[0., 0., 0.],
            std=[1., 1., 1.]),
        test_cfg=dict(scales=(1.0, ), flip=False, bg_thr=0.3))
    if stage == 3:
        cfg.update(
            refine_head=dict(
                type='CamGuideRefineHead',
                num_classes=NUM_CLASSES,
                stage1_channels=8,
                gf_radius=2),
            loss_crf=dict(
                type='HeuristicTargetLoss',
                loss_weight=0.8,
                loss_name='loss_crf'),
            loss_rw=dict(
                type='HeuristicTargetLoss',
                loss_weight=0.4,
                loss_name='loss_rw'),
            loss_edge=dict(type='EdgeConsistencyLoss', loss_weight=0.7),
            loss_loc=dict(type='WindowLocalConsistencyLoss', loss_weight=0.45),
            heuristic_targets=dict(
                type='HeuristicTargets',
                crf=dict(preset='irn_label', n_iters=2, scale_factor=4.0),
                close_kernel=3,
                rw=dict(n_segments=20, n_iters=3)),
            train_cfg=dict(tau_range=(0.05, 0.3), crf_interval=2))
    cfg.update(kw)
    return cfg


def _samples(n, labels=((1, 2), (3, ))):
    out = []
    for i in range(n):
        ds = SegDataSample(
            metainfo=dict(
                img_labels=list(labels[i % len(labels)]),
                img_shape=(32, 32),
                ori_shape=(32, 32),
                img_path=f'img{i}.jpg'))
        out.append(ds)
    return out


def _teacher_ckpt(tmp_path, seed=1):
    torch.manual_seed(seed)
    teacher = MODELS.build(_teacher())
    teacher.init_weights()
    path = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict(), meta=dict()), path)
    return path, teacher


def test_make_cam_closed_form():
    x = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
    eps = 1e-5
    out = make_cam(x, eps)
    expect = torch.tensor([[[[1 - eps, 0.0], [3 - eps, 0.5 - eps]]]
                           ]) / (3 + eps)
    torch.testing.assert_close(out, expect)
    # an all-negative map gives zeros, not NaN
    assert torch.equal(
        make_cam(-torch.ones(1, 1, 2, 2)), torch.zeros(1, 1, 2, 2))


def test_stochastic_mask_brute_force():
    torch.manual_seed(0)
    cams = torch.rand(2, 3, 4, 5)
    labels = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    tau = torch.tensor([[0.5, 0.1, 0.7], [0.9, 0.3, 0.2]])
    mask = stochastic_mask(cams, labels, tau, (4, 5), 'union', 'nearest')
    ref = np.zeros((2, 1, 4, 5), np.float32)
    for b in range(2):
        for y in range(4):
            for x in range(5):
                keep = any(labels[b, k] > 0 and cams[b, k, y, x] > tau[b, k]
                           for k in range(3))
                ref[b, 0, y, x] = float(keep)
    np.testing.assert_array_equal(mask.numpy(), ref)
    # 'max' reading: one threshold per sample on the max over labels
    mask = stochastic_mask(cams, labels, tau, (4, 5), 'max', 'nearest')
    for b in range(2):
        m = max((cams[b, k] * labels[b, k] for k in range(3)),
                key=lambda t: 0,
                default=None)
        m = torch.stack([cams[b, k] * labels[b, k]
                         for k in range(3)]).max(0).values
        np.testing.assert_array_equal(mask[b, 0].numpy(),
                                      (m > tau[b, 0]).float().numpy())
    # the mask is upsampled to the input size
    assert stochastic_mask(cams, labels, tau, (8, 10)).shape == (2, 1, 8, 10)
    with pytest.raises(ValueError, match='mask_combine'):
        stochastic_mask(cams, labels, tau, (4, 5), 'mean')


def test_stage_validation():
    with pytest.raises(ValueError, match='stage must be'):
        MODELS.build(_cfg(stage=4))
    with pytest.raises(ValueError, match='needs a teacher'):
        MODELS.build(_cfg(stage=1, teacher=None))
    with pytest.raises(ValueError, match='refine_head'):
        MODELS.build(_cfg(stage=3, refine_head=None))
    with pytest.raises(KeyError, match='tau_rang'):
        MODELS.build(_cfg(train_cfg=dict(tau_rang=(0.1, 0.2))))
    bad = _cfg()
    bad['teacher']['cam_head']['num_classes'] = 5
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(bad)


def test_teacher_required_and_kept_through_init_weights(tmp_path):
    model = MODELS.build(_cfg())
    model.init_weights()
    inputs = torch.rand(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match='teacher weights were never'):
        model.loss(inputs, _samples(2))
    path, teacher = _teacher_ckpt(tmp_path)
    model = MODELS.build(_cfg(teacher_checkpoint=path))
    model.init_weights()  # the runner calls this after construction
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[k], v)
    # a checkpoint of another architecture is refused with its name
    other = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'backbone.x': torch.zeros(1)}), other)
    with pytest.raises(ValueError, match='other.pth'):
        MODELS.build(_cfg(teacher_checkpoint=other))


@pytest.mark.parametrize('stage', [1, 2])
def test_distill_stages_train_student_only(tmp_path, stage):
    path, _ = _teacher_ckpt(tmp_path)
    torch.manual_seed(0)
    model = MODELS.build(_cfg(stage=stage, teacher_checkpoint=path))
    model.init_weights()
    model.train()
    assert not model.teacher.training
    teacher_state = copy.deepcopy(model.teacher.state_dict())
    inputs = torch.rand(4, 3, 32, 32)
    losses = model.loss(inputs, _samples(4))
    assert ('loss_cls' in losses) == (stage == 1)
    assert 'loss_reg' in losses
    total = sum(v for k, v in losses.items() if k.startswith('loss_'))
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.cam_head.classifier.weight.grad is not None
    # BN running statistics of the teacher are untouched
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_state[k]), k
    # stage 1 regularises the student's ORIGINAL view: with an all-open
    # mask both views agree, so L_reg equals the L1 of F_S(x) to F_T(x)
    model.eval()
    with torch.no_grad():
        t = model.teacher_maps(inputs)
        s = model._forward(inputs)
    ref = (torch.nn.functional.interpolate(
        s, size=t.shape[2:], mode='bilinear', align_corners=False) -
           t).abs().mean() if s.shape != t.shape else (s - t).abs().mean()
    model.train_cfg['tau_range'] = (0.0, 0.0)
    model.train()
    for m in model.modules():  # deterministic student for the comparison
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    with torch.no_grad():
        losses = model.loss(inputs, _samples(4))
    if stage == 1:
        torch.testing.assert_close(losses['loss_reg'], 0.65 * ref)


def test_checkpoint_carries_teacher(tmp_path):
    path, teacher = _teacher_ckpt(tmp_path)
    model = MODELS.build(_cfg(teacher_checkpoint=path))
    state = model.state_dict()
    assert float(state['teacher_loaded']) == 1.0
    # a stage-2 model without teacher_checkpoint gets the teacher from the
    # stage-1 state dict (what load_from does)
    model2 = MODELS.build(_cfg(stage=2))
    model2.load_state_dict(state)
    assert float(model2.teacher_loaded) == 1.0
    model2.loss(torch.rand(2, 3, 32, 32), _samples(2))
    assert 'teacher.backbone.stem.0.weight' not in \
        model.state_dict_teacher_free()
    assert model.num_student_params() < sum(p.numel()
                                            for p in model.parameters())


def test_stage3_losses_and_predict():
    torch.manual_seed(0)
    model = MODELS.build(_cfg(stage=3))
    model.init_weights()
    model.train()
    inputs = torch.rand(2, 3, 32, 32) * 255
    losses = model.loss(inputs, _samples(2))
    for key in ('loss_cls', 'loss_crf', 'loss_rw', 'loss_edge', 'loss_loc'):
        assert key in losses and torch.isfinite(losses[key]), key
    total = sum(v for k, v in losses.items() if k.startswith('loss_'))
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.refine_head.parameters())
    # crf_interval=2: the next iteration has no CRF term (logged as 0)
    losses = model.loss(inputs, _samples(2))
    assert float(losses['loss_crf']) == 0.0
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, _samples(2))
    pred = out[0].pred_sem_seg.data
    assert pred.shape == (1, 32, 32)
    assert set(pred.unique().tolist()) <= {0, 1, 2}
    # inference uses the refined (stride-4) maps
    assert model._forward(inputs).shape[-1] == 8


class _Capture:
    """Wraps a model's heuristic-target generator and ``_sample_tau`` to
    record the scores, targets and thresholds of the last call."""

    def __init__(self, model):
        self.gen = model.heuristic_targets
        self.sample = model._sample_tau
        model.heuristic_targets = self
        model._sample_tau = self._tau

    def _tau(self, *args):
        self.tau = self.sample(*args)
        return self.tau

    def __call__(self, imgs, scores, labels, which):
        self.scores = scores.copy()
        self.targets = self.gen(imgs, scores, labels, which=which)
        return self.targets


def _stage3_dropout_model(target_forward, **train_cfg):
    cfg = _cfg(stage=3)
    cfg['cam_head']['dropout_ratio'] = 0.5
    cfg['train_cfg'].update(target_forward=target_forward, **train_cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # make the refinement head non-trivial
        nn.init.normal_(model.refine_head.psi.weight, 0, 0.1)
    model.train()
    return model


@pytest.mark.parametrize('mode', ['eval_head', 'eval', 'train'])
def test_stage3_targets_from_eval_forward(mode):
    model = _stage3_dropout_model(mode)
    cap = _Capture(model)
    inputs = torch.rand(2, 3, 32, 32) * 255
    samples = _samples(2)
    labels = torch.tensor([[1., 1., 0.], [0., 0., 1.]])
    model._local_iter = 0
    model.loss(inputs, samples)
    # dropout state and train mode are restored
    assert model.training and model.cam_head.training
    assert model.refine_head.training and model.backbone.training
    got = torch.from_numpy(cap.scores[:, 1:])
    # independent references
    with torch.no_grad():
        model.eval()  # BN running statistics as after the loss' forward
        full_eval = model._forward(inputs)
        model.train()
        feats = model.extract_feat(inputs)  # train-mode backbone
        model.cam_head.eval()
        model.refine_head.eval()
        eval_head = model.refine_head(model.cam_head(feats), feats[0], inputs)
        model.train()
        torch.manual_seed(1)
        dropped = model._forward(inputs)  # training forward, with dropout
    ref = dict(eval_head=eval_head, eval=full_eval)
    if mode in ref:
        torch.testing.assert_close(
            got,
            make_cam(ref[mode]) * labels[..., None, None])
    else:
        # the training forward's own (dropped) maps: not the eval ones
        assert not torch.allclose(
            got, make_cam(eval_head) * labels[..., None, None], atol=1e-3)
    # dropout changes the maps, so the modes differ
    assert not torch.allclose(make_cam(dropped), make_cam(eval_head))
    # background channel: the sampled tau
    np.testing.assert_allclose(cap.scores[:, 0],
                               cap.tau[:, :1, None].expand(2, 8, 8).numpy())


def test_stage3_targets_from_multi_scale_maps():
    model = _stage3_dropout_model(
        'multi_scale', target_scales=(1.0, 2.0), target_flip=True)
    cap = _Capture(model)
    inputs = torch.rand(2, 3, 32, 32) * 255
    labels = torch.tensor([[1., 1., 0.], [0., 0., 1.]])
    model._local_iter = 0
    model.loss(inputs, _samples(2))
    assert model.training and model.cam_head.training
    got = torch.from_numpy(cap.scores[:, 1:])
    # reference: eval-mode maps of each view, flips undone, summed at the
    # input size (test_cfg fusion 'sum'), averaged down to the 8 x 8 grid
    with torch.no_grad():
        model.eval()
        fused = 0
        for size in (32, 64):
            x = F.interpolate(inputs, size=(size, size), mode='bilinear',
                              align_corners=False)
            for flip in (False, True):
                view = x.flip(-1) if flip else x
                m = torch.relu(model._forward(view))
                m = m.flip(-1) if flip else m
                fused = fused + F.interpolate(
                    m, size=(32, 32), mode='bilinear', align_corners=False)
        model.train()
    ref = F.avg_pool2d(fused, 4)
    torch.testing.assert_close(
        got, make_cam(ref) * labels[..., None, None], rtol=1e-4, atol=1e-5)
    # the single-view eval map differs: the option changes the targets
    with torch.no_grad():
        model.eval()
        single = model._forward(inputs)
        model.train()
    assert not torch.allclose(
        got, make_cam(single) * labels[..., None, None], atol=1e-3)


@pytest.mark.parametrize('detach', [True, False])
def test_stage3_detach_norm_gradient(detach):
    model = _stage3_dropout_model('eval_head', detach_norm=detach)
    model.cam_head.dropout = nn.Identity()
    cap = _Capture(model)
    out = {}

    def keep(module, args, output):
        if output.requires_grad:  # the training forward, not the target's
            output.retain_grad()
            out['z1'] = output

    model.refine_head.register_forward_hook(keep)
    inputs = torch.rand(2, 3, 32, 32) * 255
    labels = torch.tensor([[1., 1., 0.], [0., 0., 1.]])
    losses = model.loss(inputs, _samples(2))
    losses['loss_rw'].backward()
    grad = out['z1'].grad
    # reference: the same loss with the per-class max held constant
    x = out['z1'].detach().clone().requires_grad_(True)
    amax = (x.flatten(2).max(-1).values[..., None, None] + 1e-5).detach()
    cams = torch.relu(x - 1e-5) / amax * labels[..., None, None]
    bg = cap.tau[..., None, None].expand(2, 1, 8, 8)
    tgt = torch.from_numpy(cap.targets['rw'])
    model.loss_rw(torch.cat([bg, cams], 1), tgt).backward()
    if detach:
        torch.testing.assert_close(grad, x.grad)
    else:
        assert not torch.allclose(grad, x.grad, atol=1e-6)


def test_stage3_train_cfg_validation():
    with pytest.raises(ValueError, match='target_forward'):
        MODELS.build(_cfg(stage=3, train_cfg=dict(target_forward='x')))
    with pytest.raises(ValueError, match='detach_norm'):
        MODELS.build(_cfg(stage=3, train_cfg=dict(detach_norm=('crf', 'x'))))
    with pytest.raises(ValueError, match='target_scales'):
        MODELS.build(_cfg(stage=3, train_cfg=dict(target_scales=())))
    with pytest.raises(ValueError, match='target_scales'):
        MODELS.build(_cfg(stage=3, train_cfg=dict(target_scales=(1.0, 0))))
    model = MODELS.build(
        _cfg(stage=3, train_cfg=dict(detach_norm=('edge', 'loc'))))
    assert model.train_cfg['detach_terms'] == ('edge', 'loc')
    model = MODELS.build(_cfg(stage=3, train_cfg=dict(detach_norm=False)))
    assert model.train_cfg['detach_terms'] == ()


def test_heuristic_target_maps():
    torch.manual_seed(0)
    model = MODELS.build(_cfg(stage=3))
    model.init_weights()
    model.eval()
    inputs = torch.rand(2, 3, 32, 32) * 255
    samples = _samples(2)
    maps = model.heuristic_target_maps(inputs, samples, tau=0.2)
    assert set(maps) == {'cam', 'crf', 'rw'}
    for v in maps.values():
        assert v.shape == (2, 8, 8) and v.dtype == torch.long
    # 'cam' = argmax over [tau, image-class CAMs], an independent argmax
    cams = make_cam(model._forward(inputs)).detach()
    for i, lab in enumerate(((1, 2), (3, ))):
        keys = [0] + list(lab)
        stack = torch.cat(
            [torch.full((1, 8, 8), 0.2), cams[i, [c - 1 for c in lab]]])
        expect = torch.tensor(keys)[stack.argmax(0)]
        torch.testing.assert_close(maps['cam'][i], expect)
    assert set(maps['crf'][1].unique().tolist()) <= {0, 3}
    # stage 1 (no targets): only the CAM map
    s1 = MODELS.build(_cfg(stage=1)).eval()
    assert set(s1.heuristic_target_maps(inputs, samples)) == {'cam'}
