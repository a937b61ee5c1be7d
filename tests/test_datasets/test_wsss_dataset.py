# Copyright (c) mmwsss contributors.
"""Tests of WSSSVOCDataset and PackWSSSInputs on a tiny VOC fixture."""
import json
import os.path as osp
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mmwsss.datasets import WSSSVOCDataset
from mmwsss.datasets.transforms import PackWSSSInputs
from mmwsss.registry import DATASETS
from mmwsss.utils import register_all_modules

register_all_modules()

H, W = 6, 8
PERSON, DOG, AEROPLANE, CAT, CHAIR, BUS = 15, 12, 1, 8, 9, 6

XML_OBJECT = """  <object>
    <name>{name}</name>
    <difficult>{difficult}</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox>
{part}  </object>
"""
# A person part: its name ("head") must not become an image label.
HEAD_PART = ('    <part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin>'
             '<xmax>2</xmax><ymax>2</ymax></bndbox></part>\n')

# (name, difficult, with head part) per image; "d" has no mask, like the
# SBD images of train_aug.
OBJECTS = {
    'a': [('person', 0, True), ('dog', 0, False)],
    'b': [('aeroplane', 1, False)],
    'c': [('cat', 0, False), ('chair', 1, False)],
    'd': [('bus', 0, False)],
}
XML_LABELS = {
    'a': [DOG, PERSON],
    'b': [AEROPLANE],
    'c': [CAT, CHAIR],
    'd': [BUS]
}


def _palette() -> list:
    pal = np.array(WSSSVOCDataset.METAINFO['palette'], dtype=np.uint8)
    full = np.zeros((256, 3), dtype=np.uint8)
    full[:len(pal)] = pal
    full[255] = (224, 224, 192)
    return full.flatten().tolist()


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write an index mask as a VOC-like palette PNG."""
    im = Image.fromarray(mask.astype(np.uint8))
    im.putpalette(_palette())
    im.save(str(path))


def write_xml(path: Path, objects: list) -> None:
    """Write a VOC annotation."""
    body = ''.join(
        XML_OBJECT.format(name=n, difficult=d, part=HEAD_PART if p else '')
        for n, d, p in objects)
    path.write_text(f'<annotation>\n  <filename>{path.stem}.jpg</filename>\n'
                    f'{body}</annotation>\n')


def make_masks() -> Dict[str, np.ndarray]:
    """Hand-made masks of images a, b, c."""
    a = np.zeros((H, W), np.uint8)
    a[1:4, 1:4] = PERSON
    a[3:6, 5:8] = DOG
    b = np.full((H, W), 255, np.uint8)
    b[1:5, 1:7] = AEROPLANE
    # The difficult chair of "c" is ignore (255) in the mask, so the mask
    # labels of "c" are [CAT] while its XML labels are [CAT, CHAIR].
    c = np.zeros((H, W), np.uint8)
    c[0:3, 0:4] = CAT
    c[4:6, 4:8] = 255
    return dict(a=a, b=b, c=c)


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """A 4-image VOC2012 tree with masks for a, b, c and XML for all."""
    root = tmp_path / 'VOC2012'
    for sub in ('JPEGImages', 'SegmentationClass', 'Annotations',
                'ImageSets/Segmentation'):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in OBJECTS:
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        cv2.imwrite(str(root / 'JPEGImages' / f'{name}.jpg'), img)
        write_xml(root / 'Annotations' / f'{name}.xml', OBJECTS[name])
    for name, mask in make_masks().items():
        write_mask(root / 'SegmentationClass' / f'{name}.png', mask)
    seg = root / 'ImageSets' / 'Segmentation'
    (seg / 'train.txt').write_text('a\nb\nc\n')
    (seg / 'train_aug.txt').write_text('a\nb\nc\nd\n')
    labels = {
        'a': ['person', DOG],
        'b': [AEROPLANE],
        'c': ['cat', 'chair'],
        'd': ['bus']
    }
    (root / 'labels.json').write_text(json.dumps(labels))
    return root


def build(root: Path, **kwargs) -> WSSSVOCDataset:
    """Build the dataset on the fixture (train split, masks on)."""
    cfg = dict(
        data_root=str(root),
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/train.txt')
    cfg.update(kwargs)
    return WSSSVOCDataset(**cfg)


def labels_of(ds: WSSSVOCDataset) -> Dict[str, list]:
    """Image stem -> img_labels."""
    return {
        osp.splitext(osp.basename(info['img_path']))[0]: info['img_labels']
        for info in (ds.get_data_info(i) for i in range(len(ds)))
    }


def test_label_source_file(voc_root):
    ds = build(voc_root, label_source='file', label_file='labels.json')
    assert len(ds) == 3
    assert labels_of(ds) == {k: XML_LABELS[k] for k in 'abc'}
    info = ds.get_data_info(0)
    assert info['img_path'] == str(voc_root / 'JPEGImages' / 'a.jpg')
    assert info['seg_map_path'] == str(voc_root / 'SegmentationClass' /
                                       'a.png')


def test_label_source_xml_ignores_parts_keeps_difficult(voc_root):
    # train_aug: "d" has no mask, so no seg_map_path prefix.
    ds = build(
        voc_root,
        label_source='xml',
        data_prefix=dict(img_path='JPEGImages'),
        ann_file='ImageSets/Segmentation/train_aug.txt')
    assert labels_of(ds) == XML_LABELS
    assert 'seg_map_path' not in ds.get_data_info(3)


def test_label_source_mask(voc_root):
    ds = build(voc_root, label_source='mask')
    assert labels_of(ds) == {'a': [DOG, PERSON], 'b': [AEROPLANE], 'c': [CAT]}


def test_label_source_auto_order(voc_root):
    # 1) a label file wins over the XML folder
    (voc_root / 'other.json').write_text(
        json.dumps({
            'a': [3],
            'b': [4],
            'c': [5]
        }))
    ds = build(voc_root, label_file='other.json')
    assert ds.label_source == 'auto'
    assert labels_of(ds) == {'a': [3], 'b': [4], 'c': [5]}
    # 2) then the XML folder ...
    assert labels_of(build(voc_root))['c'] == [CAT, CHAIR]
    # 3) ... then the masks
    assert labels_of(build(voc_root, xml_dir='missing'))['c'] == [CAT]
    # 4) nothing to read labels from
    with pytest.raises(ValueError, match='cannot find image labels'):
        build(
            voc_root,
            xml_dir='missing',
            data_prefix=dict(img_path='JPEGImages'))


def test_list_images_without_split_file(voc_root):
    ds = build(
        voc_root,
        ann_file='',
        label_source='xml',
        data_prefix=dict(img_path='JPEGImages'))
    assert list(labels_of(ds)) == ['a', 'b', 'c', 'd']


def test_lazy_init_reads_nothing(tmp_path):
    ds = WSSSVOCDataset(
        data_root=str(tmp_path / 'nowhere'),
        data_prefix=dict(img_path='JPEGImages'),
        ann_file='ImageSets/Segmentation/train.txt',
        lazy_init=True)
    assert len(ds.metainfo['classes']) == 21
    with pytest.raises(FileNotFoundError, match='split file not found'):
        ds.full_init()


def test_error_bad_label_source(voc_root):
    with pytest.raises(ValueError, match='label_source'):
        build(voc_root, label_source='json')


def test_error_missing_split_file(voc_root):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        build(voc_root, ann_file='ImageSets/Segmentation/nope.txt')


def test_error_missing_label_entry(voc_root):
    (voc_root / 'partial.json').write_text(json.dumps({'a': [1], 'b': [2]}))
    with pytest.raises(KeyError, match='"c"'):
        build(voc_root, label_source='file', label_file='partial.json')


def test_error_missing_label_file(voc_root):
    with pytest.raises(FileNotFoundError, match='absent.json'):
        build(voc_root, label_source='file', label_file='absent.json')
    with pytest.raises(ValueError, match='needs label_file'):
        build(voc_root, label_source='file')


def test_error_unknown_class_name_in_label_file(voc_root):
    (voc_root / 'typo.json').write_text(
        json.dumps({
            'a': ['persn'],
            'b': [1],
            'c': [2]
        }))
    with pytest.raises(ValueError, match='unknown class "persn"'):
        build(voc_root, label_source='file', label_file='typo.json')


@pytest.mark.parametrize('bad', [0, 21, 1.5])
def test_error_bad_class_index_in_label_file(voc_root, bad):
    (voc_root / 'bad.json').write_text(
        json.dumps({
            'a': [bad],
            'b': [1],
            'c': [2]
        }))
    with pytest.raises(ValueError, match='outside'):
        build(voc_root, label_source='file', label_file='bad.json')


def test_error_label_file_not_json(voc_root):
    (voc_root / 'broken.json').write_text('{"a": [1,')
    with pytest.raises(ValueError, match='not valid JSON'):
        build(voc_root, label_source='file', label_file='broken.json')


def test_error_out_of_range_class_in_mask(voc_root):
    mask = make_masks()['b']
    mask[0, 0] = 30
    write_mask(voc_root / 'SegmentationClass' / 'b.png', mask)
    with pytest.raises(ValueError, match=r'b\.png.*\[30\]'):
        build(voc_root, label_source='mask')


def test_error_missing_mask(voc_root):
    (voc_root / 'SegmentationClass' / 'c.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'c\.png'):
        build(voc_root, label_source='mask')


def test_empty_label_set(voc_root):
    write_mask(voc_root / 'SegmentationClass' / 'b.png',
               np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match='no foreground label.*"b"'):
        build(voc_root, label_source='mask')
    ds = build(voc_root, label_source='mask', allow_empty_labels=True)
    assert labels_of(ds)['b'] == []


def test_error_corrupt_xml(voc_root):
    (voc_root / 'Annotations' / 'b.xml').write_text('<annotation><object>')
    with pytest.raises(ValueError, match=r'cannot parse.*b\.xml'):
        build(voc_root, label_source='xml')


def test_error_unknown_class_in_xml(voc_root):
    write_xml(voc_root / 'Annotations' / 'c.xml', [('unicorn', 0, False)])
    with pytest.raises(ValueError, match='unknown class "unicorn"'):
        build(voc_root, label_source='xml')


def test_error_missing_xml(voc_root):
    (voc_root / 'Annotations' / 'a.xml').unlink()
    with pytest.raises(FileNotFoundError, match=r'a\.xml'):
        build(voc_root, label_source='xml')


def test_pack_wsss_inputs_meta():
    img = np.zeros((H, W, 3), np.uint8)
    results = dict(
        img=img,
        img_path='x.jpg',
        ori_shape=(H, W),
        img_shape=(H, W),
        img_labels=np.array([3, 15]),
        gt_seg_map=np.ones((H, W), np.uint8))
    out = PackWSSSInputs()(results)
    assert out['inputs'].shape == (3, H, W)
    sample = out['data_samples']
    assert sample.metainfo['img_labels'] == [3, 15]
    assert all(type(v) is int for v in sample.metainfo['img_labels'])
    assert sample.gt_sem_seg.data.shape == (1, H, W)
    # img_labels is added even to custom meta keys
    out = PackWSSSInputs(meta_keys=('img_path', ))(
        dict(img=img, img_path='x.jpg', img_labels=[1]))
    assert set(out['data_samples'].metainfo) == {'img_path', 'img_labels'}


def test_pack_wsss_inputs_missing_labels():
    with pytest.raises(KeyError, match='some/dir/x.jpg'):
        PackWSSSInputs()(
            dict(img=np.zeros((H, W, 3), np.uint8), img_path='some/dir/x.jpg'))


def test_full_pipeline_through_registry(voc_root):
    ds = DATASETS.build(
        dict(
            type='WSSSVOCDataset',
            data_root=str(voc_root),
            data_prefix=dict(
                img_path='JPEGImages', seg_map_path='SegmentationClass'),
            ann_file='ImageSets/Segmentation/train.txt',
            label_source='xml',
            pipeline=[
                dict(type='mmseg.LoadImageFromFile'),
                dict(type='mmseg.LoadAnnotations'),
                dict(type='mmseg.RandomFlip', prob=1.0),
                dict(type='PackWSSSInputs'),
            ]))
    assert isinstance(ds, WSSSVOCDataset)
    masks = make_masks()
    for i, name in enumerate('abc'):
        item = ds[i]
        inputs, sample = item['inputs'], item['data_samples']
        assert isinstance(inputs, torch.Tensor)
        assert inputs.shape == (3, H, W) and inputs.dtype == torch.uint8
        assert sample.metainfo['img_labels'] == XML_LABELS[name]
        assert sample.metainfo['flip'] is True
        assert sample.metainfo['ori_shape'] == (H, W)
        assert sample.metainfo['img_path'].endswith(f'{name}.jpg')
        expected = masks[name][:, ::-1]
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(),
                                      expected)


def test_full_pipeline_without_masks(voc_root):
    ds = DATASETS.build(
        dict(
            type='WSSSVOCDataset',
            data_root=str(voc_root),
            data_prefix=dict(img_path='JPEGImages'),
            ann_file='ImageSets/Segmentation/train_aug.txt',
            label_source='xml',
            pipeline=[
                dict(type='mmseg.LoadImageFromFile'),
                dict(
                    type='mmseg.RandomResize',
                    scale=(16, 16),
                    ratio_range=(0.5, 1.5),
                    keep_ratio=True),
                dict(type='mmseg.RandomCrop', crop_size=(8, 8)),
                dict(type='mmseg.RandomFlip', prob=0.5),
                dict(type='PackWSSSInputs'),
            ]))
    item = ds[3]
    assert item['data_samples'].metainfo['img_labels'] == [BUS]
    assert 'gt_sem_seg' not in item['data_samples']
    assert max(item['inputs'].shape[1:]) <= 8
