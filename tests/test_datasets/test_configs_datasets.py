# Copyright (c) mmwsss contributors.
"""The dataset base configs load and build without data."""
import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine import Config

from mmwsss.datasets import WSSSCOCODataset, WSSSVOCDataset
from mmwsss.datasets.transforms import PackWSSSInputs
from mmwsss.registry import DATA_SAMPLERS, DATASETS, METRICS
from mmwsss.utils import register_all_modules

register_all_modules()

CFG_DIR = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / \
    'datasets'
CONFIGS = {
    'voc12aug_wsss.py': WSSSVOCDataset,
    'voc12_val_wsss.py': WSSSVOCDataset,
    'coco14_wsss.py': WSSSCOCODataset,
}


def build_lazy(dataset_cfg: dict):
    """Build a dataset config without reading any data."""
    cfg = copy.deepcopy(dataset_cfg)
    cfg['lazy_init'] = True
    return DATASETS.build(cfg)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_dataset_config_builds(name):
    cfg = Config.fromfile(str(CFG_DIR / name))
    for var in ('dataset_type', 'data_root', 'crop_size'):
        assert var in cfg
    assert tuple(cfg.crop_size) == (512, 512)

    train = cfg.train_dataloader
    assert train.sampler.type == 'InfiniteSampler' and train.sampler.shuffle
    assert train.persistent_workers and train.num_workers == 4
    for loader in (train, cfg.val_dataloader, cfg.test_dataloader):
        assert DATA_SAMPLERS.get(loader.sampler.type) is not None
        ds = build_lazy(loader.dataset)
        assert type(ds) is CONFIGS[name]
        assert not ds._fully_initialized
        transforms = ds.pipeline.transforms
        assert len(transforms) == len(loader.dataset.pipeline)
        assert isinstance(transforms[-1], PackWSSSInputs)
        assert ds.data_root == cfg.data_root

    train_names = [t['type'] for t in train.dataset.pipeline]
    assert train_names[0] == 'mmseg.LoadImageFromFile'
    assert 'mmseg.LoadAnnotations' not in train_names
    assert 'mmseg.RandomCrop' in train_names
    test_steps = [(t['type'], t.get('_scope_'))
                  for t in cfg.val_dataloader.dataset.pipeline]
    # _scope_ rather than a prefix: mmseg.apis.inference_model matches
    # type == 'LoadAnnotations' (see tests/test_apis/test_inference.py)
    assert test_steps == [('LoadImageFromFile', 'mmseg'),
                          ('LoadAnnotations', 'mmseg'),
                          ('PackWSSSInputs', None)]
    assert cfg.val_dataloader.batch_size == 1
    assert cfg.val_dataloader.dataset.data_prefix.seg_map_path
    assert cfg.val_evaluator == dict(
        type='mmseg.IoUMetric', iou_metrics=['mIoU'])
    assert METRICS.get(cfg.val_evaluator.type) is not None
    assert cfg.test_evaluator == cfg.val_evaluator


def test_voc_splits():
    aug = Config.fromfile(str(CFG_DIR / 'voc12aug_wsss.py'))
    assert aug.train_dataloader.dataset.ann_file.endswith('train_aug.txt')
    assert aug.train_dataloader.dataset.label_source == 'xml'
    assert aug.val_dataloader.dataset.ann_file.endswith('/train.txt')
    val = Config.fromfile(str(CFG_DIR / 'voc12_val_wsss.py'))
    assert val.val_dataloader.dataset.ann_file.endswith('/val.txt')
    assert val.test_dataloader.dataset.ann_file.endswith('/val.txt')
    # the rest is inherited
    assert val.val_dataloader.dataset.pipeline == \
        aug.val_dataloader.dataset.pipeline
    assert val.train_dataloader == aug.train_dataloader


def test_voc_train_pipeline_runs(tmp_path):
    """The real CAM-training pipeline on a one-image VOC tree."""
    root = tmp_path / 'VOC2012'
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Segmentation'):
        (root / sub).mkdir(parents=True)
    cv2.imwrite(
        str(root / 'JPEGImages' / 'x.jpg'),
        np.full((300, 400, 3), 100, np.uint8))
    (root / 'Annotations' / 'x.xml'
     ).write_text('<annotation><object><name>cat</name></object></annotation>')
    (root / 'ImageSets' / 'Segmentation' / 'train_aug.txt').write_text('x\n')

    cfg = Config.fromfile(str(CFG_DIR / 'voc12aug_wsss.py'))
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg['data_root'] = str(root)
    ds = DATASETS.build(ds_cfg)
    item = ds[0]
    assert item['data_samples'].metainfo['img_labels'] == [8]
    c, h, w = item['inputs'].shape
    assert c == 3 and max(h, w) <= 512
