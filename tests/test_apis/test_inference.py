# Copyright (c) mmwsss contributors.
"""mmseg.apis.inference_model on mmwsss configs; mmwsss.apis.inference_cam.

References: the model's own ``test_step`` through the dataset pipeline
(scores), ``DenseCRF`` called directly (refined labels), hand-written
normalisation (CamGuide maps), mmseg's ``_preprare_data`` (pipelines).
"""
import copy
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.structures import InstanceData
from PIL import Image

from mmwsss.apis import (cam_result, dataset_meta_from_config, inference_cam,
                         init_model, predict_images, prepare_image)
from mmwsss.datasets.shapes_folder import SHAPES_CLASSES, write_shapes_folder

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CAM_CFG = osp.join(ROOT,
                   'configs/cam/cam_effl0-d16_1xb16-500it_folder-128x128.py')
SEG_CFG = osp.join(
    ROOT, 'configs/deeplabv3plus/'
    'deeplabv3plus_effl0-d16_1xb16-800it_folder-pseudo-128x128.py')
FAST = {'model.test_cfg.scales': (1.0, 0.5), 'model.test_cfg.flip': True}


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('inference') / 'shapes'
    return write_shapes_folder(
        str(root), num_images=3, img_size=40, num_masks=1, num_new=2)


def data_options(root):
    return {
        'train_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root
    }


@pytest.fixture(scope='module')
def cam_model(folder):
    torch.manual_seed(0)
    return init_model(CAM_CFG, None, 'cpu', {
        **FAST,
        **data_options(folder['root'])
    })


class _Fake:

    def __init__(self, cfg):
        self.cfg = cfg


def _config_files():
    return sorted(
        glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))


@pytest.mark.parametrize(
    'path', [p for p in _config_files() if '_base_' not in p],
    ids=lambda p: osp.relpath(p, osp.join(ROOT, 'configs')))
def test_every_config_test_pipeline_fits_mmseg_inference(path, folder):
    """mmseg drops type == 'LoadAnnotations' and retypes step 0."""
    from mmseg.apis.utils import _preprare_data
    cfg = Config.fromfile(path)
    assert cfg.get('test_pipeline', None) is not None, \
        f'{path} has no test_pipeline'
    img_path = osp.join(folder['root'], 'new_images', 'new_000.jpg')
    arr = cv2.imread(img_path)
    init_default_scope(cfg.get('default_scope', 'mmwsss'))
    for img in (img_path, arr):
        fake = _Fake(copy.deepcopy(cfg))
        names = [t.get('type') for t in fake.cfg.test_pipeline]
        if any('LoadProposals' in str(n) for n in names):
            # proposals are per image file: a new image needs its own
            with pytest.raises((FileNotFoundError, KeyError),
                               match='proposal|img_path'):
                _preprare_data(img, fake)
            continue
        data, _ = _preprare_data(img, fake)
        sample = data['data_samples'][0]
        assert 'gt_sem_seg' not in sample
        assert data['inputs'][0].shape[0] == 3
        assert tuple(sample.metainfo['ori_shape'][:2]) == (40, 40)
        if 'PackWSSSInputs' in [str(n) for n in names]:
            assert sample.metainfo['img_labels_unknown'] is True


@pytest.mark.parametrize('as_array', [False, True])
def test_mmseg_inference_model_on_cam_config(folder, as_array):
    """No labels: the classes with a positive logit (else the top one)."""
    from mmseg.apis import inference_model
    from mmseg.apis import init_model as mmseg_init_model
    torch.manual_seed(0)
    model = mmseg_init_model(
        CAM_CFG,
        None,
        'cpu',
        cfg_options={
            **FAST,
            **data_options(folder['root'])
        })
    img_path = osp.join(folder['root'], 'new_images', 'new_001.jpg')
    img = cv2.imread(img_path) if as_array else img_path
    result = inference_model(model, img)
    assert result.pred_sem_seg.data.shape == (1, 40, 40)
    # reference: the model's own multi-scale logits on the same input
    data = prepare_image(model, img_path, labels=[1])
    data = model.data_preprocessor(data, False)
    with torch.no_grad():
        _, logits = model.multi_scale_cams(data['inputs'],
                                           data['data_samples'])
    want = [i + 1 for i in range(3) if logits[0, i] > 0] or \
        [int(logits[0].argmax()) + 1]
    scores = result.seg_logits.data
    used = [c for c in range(1, 4) if scores[c].abs().sum() > 0]
    assert used == want or (not used and len(want) == 1)


def test_mmseg_inference_model_on_seg_config(folder):
    from mmseg.apis import inference_model
    model = init_model(SEG_CFG, None, 'cpu', data_options(folder['root']))
    img = osp.join(folder['root'], 'new_images', 'new_000.jpg')
    result = inference_model(model, img)
    assert result.pred_sem_seg.data.shape == (1, 40, 40)
    assert model.dataset_meta['classes'] == list(SHAPES_CLASSES)


def test_inference_cam_matches_test_step_and_densecrf(folder, cam_model):
    from mmwsss.refine import DenseCRF
    model = cam_model
    name = folder['images'][0]
    labels = folder['labels'][name]
    path = osp.join(folder['root'], 'images', name)
    out = inference_cam(model, path, labels)
    # the model's predict through the dataset (labels from labels.csv)
    from mmwsss.apis.pseudo_labels import dataset_cfg_for_split
    from mmwsss.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmwsss'):
        ds = DATASETS.build(dataset_cfg_for_split(model.cfg, 'train'))
    with torch.no_grad():
        ref = model.test_step(pseudo_collate([ds.prepare_data(0)]))[0]
    scores = out.seg_logits.data.numpy()
    np.testing.assert_allclose(scores, ref.seg_logits.data.numpy(), atol=1e-6)
    assert out.metainfo['img_labels'] == labels
    assert out.metainfo['labels_given'] is True
    np.testing.assert_array_equal(out.seed_sem_seg.data[0].numpy(),
                                  scores.argmax(0))
    # per-class CAMs: the labelled ones are the score channels
    cams = out.cams.data.numpy()
    assert cams.shape == (3, 40, 40)
    for c in labels:
        np.testing.assert_allclose(cams[c - 1], scores[c], atol=1e-6)
    # refined: DenseCRF with the IRN label unary on the decoded RGB image
    rgb = cv2.imread(path)[..., ::-1].copy()
    crf = DenseCRF(preset='irn_label')(rgb, scores, labels)
    np.testing.assert_array_equal(out.refined_sem_seg.data[0].numpy(), crf)
    np.testing.assert_array_equal(out.pred_sem_seg.data[0].numpy(), crf)
    assert out.metainfo['refine'] == 'irn_label'
    none = inference_cam(model, path, labels, refine='none')
    assert 'refined_sem_seg' not in none
    np.testing.assert_array_equal(none.pred_sem_seg.data[0].numpy(),
                                  scores.argmax(0))


def test_inference_cam_predicts_labels_without_them(folder, cam_model):
    path = osp.join(folder['root'], 'new_images', 'new_000.jpg')
    out = inference_cam(cam_model, path, refine='none')
    data = cam_model.data_preprocessor(prepare_image(cam_model, path), False)
    with torch.no_grad():
        _, logits = cam_model.multi_scale_cams(data['inputs'],
                                               data['data_samples'])
    want = [i + 1 for i in range(3) if logits[0, i] > 0] or \
        [int(logits[0].argmax()) + 1]
    np.testing.assert_allclose(
        out.metainfo['img_scores'],
        torch.sigmoid(logits[0]).numpy(),
        rtol=1e-6)
    assert out.metainfo['img_labels'] == want
    assert out.metainfo['labels_given'] is False
    with pytest.raises(TypeError, match='not a CAM segmentor'):
        seg = init_model(SEG_CFG, None, 'cpu', data_options(folder['root']))
        inference_cam(seg, path)


IG_CFG = dict(
    type='IGCAMSegmentor',
    data_preprocessor=dict(
        type='mmseg.SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        size=(40, 40)),
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        stem_channels=8,
        base_channels=8,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 2, 2),
        dilations=(1, 1, 1, 1)),
    neck=dict(
        type='mmseg.FPN',
        in_channels=[8, 16, 32, 64],
        out_channels=8,
        num_outs=4),
    attention=dict(type='InfluenceGuidedAttention', in_channels=8),
    cam_head=dict(
        type='InstanceGuidedCAMHead',
        in_channels=8,
        num_classes=4,
        num_proposals=3),
    test_cfg=dict(scales=(1.0, ), flip=False))


def test_inference_cam_igcam_influence_and_proposals(folder, tmp_path):
    from mmwsss.registry import MODELS
    init_default_scope('mmwsss')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(IG_CFG)).eval()
    names = folder['images']
    for name in names:
        stem = osp.splitext(name)[0]
        np.savez(
            tmp_path / f'{stem}.npz',
            boxes=np.array([[2, 3, 20, 30], [10, 10, 39, 39], [0, 0, 40, 40]],
                           np.float32),
            img_shape=np.array([40, 40]))
    cfg = Config(
        dict(
            default_scope='mmwsss',
            test_pipeline=[
                dict(type='LoadImageFromFile', _scope_='mmseg'),
                dict(type='LoadProposals', proposal_dir=str(tmp_path)),
                dict(type='LoadAnnotations', _scope_='mmseg'),
                dict(type='PackWSSSInputs', allow_missing_labels=True)
            ]))
    paths = [osp.join(folder['root'], 'images', n) for n in names]
    batch = [
        prepare_image(model, p, folder['labels'][n], cfg)
        for p, n in zip(paths, names)
    ]
    val = dict(
        inputs=[b['inputs'][0] for b in batch],
        data_samples=[b['data_samples'][0] for b in batch])
    # curvature from one training step, then a solve: a valid influence
    model.train()
    data = model.data_preprocessor(copy.deepcopy(val), True)
    model.loss(data['inputs'], data['data_samples'])
    model.refresh_influence(val)
    assert model.influence_valid
    out = inference_cam(
        model, paths[0], folder['labels'][names[0]], refine='none', cfg=cfg)
    inf = out.influence.data.numpy()
    assert inf.shape == (1, 40, 40) and (inf >= 0).all() and inf.max() > 0
    # the proposals the head selects, in original image pixels (no resize)
    samples = prepare_image(model, paths[0], [1], cfg)['data_samples']
    want = model.cam_head.gather_proposals(samples)[0]
    np.testing.assert_allclose(out.proposals.bboxes.numpy(), want.numpy())


def test_inference_cam_camguide_coarse_and_refined(folder):
    cfg = Config.fromfile(
        osp.join(
            ROOT, 'configs/camguide/'
            'camguide-stage3_effl0_1xb32-300it_demo-128x128.py'))
    cfg.merge_from_dict({
        'model.test_cfg.scales': (1.0, ),
        'model.test_cfg.flip': False,
        'model.cam_head.num_classes': 4,
        'model.refine_head.num_classes': 4
    })
    cfg.test_dataloader.dataset = dict(
        type='WSSSFolderDataset',
        data_root=folder['root'],
        data_prefix=dict(img_path='images'),
        label_file='labels.csv',
        metainfo=dict(classes=SHAPES_CLASSES))
    torch.manual_seed(0)
    model = init_model(cfg, None, 'cpu')
    path = osp.join(folder['root'], 'images', folder['images'][1])
    out = inference_cam(model, path, [1, 2], refine='none')
    data = model.data_preprocessor(prepare_image(model, path, [1]), False)
    with torch.no_grad():
        coarse, refined = model.student_forward(data['inputs'])
    for raw, key in ((coarse, 'coarse_cams'), (refined, 'refined_cams')):
        x = F.interpolate(
            torch.relu(raw),
            size=(40, 40),
            mode='bilinear',
            align_corners=False)[0]
        top = x.flatten(1).max(1).values[:, None, None]
        want = x / (top + 1e-5)  # IRN max normalisation
        np.testing.assert_allclose(
            out.get(key).data.numpy(), want.numpy(), atol=1e-5)


def test_init_model_meta_and_predict_images(folder, cam_model, tmp_path):
    from mmseg.apis import inference_model
    meta = dataset_meta_from_config(Config.fromfile(CAM_CFG))
    assert meta['classes'] == list(SHAPES_CLASSES)
    # a checkpoint without dataset_meta: classes from the config
    ckpt = tmp_path / 'm.pth'
    torch.save(dict(state_dict=cam_model.state_dict(), meta=dict()), ckpt)
    model = init_model(CAM_CFG, str(ckpt), 'cpu', {
        **FAST,
        **data_options(folder['root'])
    })
    assert model.dataset_meta == meta
    for k, v in cam_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    imgs = sorted(glob.glob(osp.join(folder['root'], 'new_images', '*.jpg')))
    out = tmp_path / 'pred'
    res = predict_images(model, imgs, str(out), overlay=True, progress=False)
    assert res == dict(total=2, skipped=0, written=2)
    for p in imgs:
        stem = osp.splitext(osp.basename(p))[0]
        with Image.open(out / f'{stem}.png') as im:
            assert im.mode == 'P'
            got = np.asarray(im)
        want = inference_model(model, p).pred_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(got, want)
        assert (out / 'overlay' / f'{stem}.png').is_file()
    again = predict_images(model, imgs, str(out), overlay=True, progress=False)
    assert again['skipped'] == 2
    with pytest.raises(ValueError, match='share the stem'):
        predict_images(model, imgs + imgs, str(out), progress=False)


def test_cam_result_needs_one_image(cam_model, folder):
    a = prepare_image(cam_model,
                      osp.join(folder['root'], 'new_images', 'new_000.jpg'))
    two = dict(inputs=a['inputs'] * 2, data_samples=a['data_samples'] * 2)
    with pytest.raises(ValueError, match='one image'):
        cam_result(cam_model, two)
    assert isinstance(a['data_samples'][0].get('proposals', None),
                      (type(None), InstanceData))
