# Copyright (c) mmwsss contributors.
"""Every config under ``configs/`` loads, builds its model and runs a step.

No weights are downloaded: ``init_weights`` is never called, so the
``Pretrained`` init_cfg of the paper-setting configs is not resolved.
"""
from pathlib import Path

import numpy as np

import pytest
import torch
from mmengine import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')
    if '_base_' not in p.parts)


def _samples(num_classes: int, size: int, n: int = 2) -> list:
    """Two samples with image labels, masks and an img_path."""
    samples = []
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        s = SegDataSample()
        labels = [1 + i % (num_classes - 1)]
        s.set_metainfo(
            dict(
                img_labels=labels,
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                scale_factor=(1.0, 1.0),
                flip=False,
                flip_direction=None,
                img_path=f'img{i}.jpg'))
        seg = torch.randint(0, num_classes, (1, size, size), generator=gen)
        s.gt_sem_seg = PixelData(data=seg)
        samples.append(s)
    return samples


def test_configs_found():
    assert any('cam/' in c for c in CONFIGS)
    assert any('deeplabv3plus/' in c for c in CONFIGS)


@pytest.mark.parametrize('cfg_path', CONFIGS)
def test_config_builds_and_steps(cfg_path, tmp_path):
    cfg = Config.fromfile(str(ROOT / cfg_path))
    assert cfg.default_scope == 'mmwsss'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'optim_wrapper', 'train_cfg', 'val_evaluator'):
        assert key in cfg, f'{cfg_path} lacks {key}'
    model_cfg = cfg.model
    # a small input keeps the ResNet-101 configs fast on CPU
    model_cfg.data_preprocessor.size = (64, 64)
    if model_cfg.type in ('CAMSegmentor', 'IGCAMSegmentor',
                          'CamGuideSegmentor'):
        model_cfg.test_cfg.scales = (1.0, )
    if model_cfg.type == 'CamGuideSegmentor':
        # no teacher checkpoint in CI: random teacher weights, marked loaded
        model_cfg.teacher_checkpoint = None
        if model_cfg.get('heuristic_targets'):
            model_cfg.heuristic_targets.num_workers = 0
            if model_cfg.heuristic_targets.get('rw'):
                model_cfg.heuristic_targets.rw.n_segments = 50
    if model_cfg.type == 'AffinityNet':
        # the random walk reads saved CAM scores: write them for the samples
        model_cfg.test_cfg.cam_dir = str(tmp_path)
    model = MODELS.build(model_cfg)
    if model_cfg.type == 'AffinityNet':
        gen = np.random.default_rng(0)
        for i, s in enumerate(_samples(model.num_classes, 64)):
            scores = np.zeros((model.num_classes, 64, 64), np.float32)
            scores[0] = 0.5
            lab = s.metainfo['img_labels']
            scores[lab] = gen.random((len(lab), 64, 64))
            np.savez(tmp_path / f'img{i}.npz', scores=scores, img_labels=lab)
    if model_cfg.type == 'CamGuideSegmentor':
        model.teacher_loaded.fill_(1.0)
    if '_demo-' in cfg_path or '_folder-' in cfg_path:
        # the demo chains train and test these with --channels-last
        # (ChannelsLastHook): their models must run on channels-last
        # weights and features (no .view() of a permuted tensor)
        model.to(memory_format=torch.channels_last)
    num_classes = model.num_classes
    dataset_classes = cfg.train_dataloader.dataset.get('type')
    assert dataset_classes is not None
    torch.manual_seed(0)
    inputs = [torch.randint(0, 255, (3, 64, 64)).float() for _ in range(2)]
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=_samples(num_classes, 64)),
        training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'])
    assert out[0].pred_sem_seg.data.shape[-2:] == (64, 64)
    assert int(out[0].pred_sem_seg.data.max()) < num_classes


@pytest.mark.parametrize('cfg_path, batch, num_classes', [
    ('configs/igcam/igcam_r101-fpn_1xb16-20k_voc12aug-512x512.py', 16, 21),
    ('configs/igcam/igcam_r101-fpn_1xb8-80k_coco14-512x512.py', 8, 81),
])
def test_igcam_paper_recipes(cfg_path, batch, num_classes):
    """The IG-CAM VOC and COCO recipes keep the paper's settings (sec. 4.1,
    suppl. Table 5; built and stepped by the test above)."""
    cfg = Config.fromfile(str(ROOT / cfg_path))
    model = cfg.model
    assert model.backbone.type == 'mmseg.ResNetV1c'
    assert model.backbone.depth == 101
    assert model.neck.type == 'mmseg.FPN' and model.neck.num_outs == 4
    assert model.data_preprocessor.size == (512, 512)
    assert cfg.train_dataloader.batch_size == batch
    assert model.cam_head.num_classes == num_classes
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('Adam', 1e-4, 5e-4)
    assert opt.fused  # the one-kernel Adam: builds and steps on the CPU
    model.data_preprocessor.size = (64, 64)
    net = MODELS.build(model)
    optim = build_optim_wrapper(net, cfg.optim_wrapper)
    torch.manual_seed(0)
    inputs = [torch.randint(0, 255, (3, 64, 64)).float() for _ in range(2)]
    losses = net.train_step(
        dict(inputs=inputs, data_samples=_samples(num_classes, 64)), optim)
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))
    assert model.influence_cfg.damping == 1e-3
    # issue #18: learned scale weights, one proposal rule, eval-mode
    # curvature, the influence map (not the |CAM| control)
    head = model.cam_head
    assert head.scale_fusion == 'learned'
    assert head.train_select == head.test_select == 'rank'
    assert model.influence_cfg.curvature_mode == 'eval'
    assert model.influence_cfg.map_source == 'influence'
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert {'SafeCheckpointHook', 'InfluenceHook',
            'StageSwitchHook'} <= set(hooks)
    assert hooks['InfluenceHook']['num_samples'] == 32
    assert hooks['InfluenceHook']['interval'] == 100
