# Copyright (c) mmwsss contributors.
"""Tests of WSSSCOCODataset, the COCO RLE helpers and the converter."""
import importlib.util
import json
import os
import os.path as osp
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mmwsss.datasets import WSSSCOCODataset
from mmwsss.datasets.coco import (COCO_CAT2LABEL, annotations_to_label_map,
                                  counts_to_rle_string, polygons_to_mask,
                                  rle_string_to_counts, rle_to_mask)
from mmwsss.registry import DATASETS
from mmwsss.utils import register_all_modules

register_all_modules()

REPO = Path(__file__).resolve().parents[2]
PERSON, DOG, TOOTHBRUSH = 1, 17, 80  # COCO ids 1, 18, 90

# Crowd "dog" region of image 1 (6x8): pixel (y0, x0), x6 rows 4-5 and
# column x7. Column-major runs: [0, 1, 39, 8]. Hand-encoded: 0 -> '0',
# 1 -> '1', 39 = 0b1_00111 -> 6-bit groups 7|0x20 ('W') and 1 ('1'),
# 4th count stored as 8 - counts[1] = 7 -> '7'.
CROWD_RLE = '01W17'

STEM1 = 'COCO_train2014_000000000001'
STEM2 = 'COCO_train2014_000000000002'
STEM3 = 'COCO_train2014_000000000003'

# Hand-computed converter output (cv2.fillPoly fills border pixels).
# Image 1: person rect x1-6/y1-4 over the crowd (255), toothbrush x3-4/y2-3
# drawn last (smaller).
EXPECTED1 = np.array([
    [255, 0, 0, 0, 0, 0, 0, 255],
    [0, 1, 1, 1, 1, 1, 1, 255],
    [0, 1, 1, 80, 80, 1, 1, 255],
    [0, 1, 1, 80, 80, 1, 1, 255],
    [0, 1, 1, 1, 1, 1, 1, 255],
    [0, 0, 0, 0, 0, 0, 255, 255],
], np.uint8)
# Image 2 (5x4): the two-part dog is listed first in the JSON but is
# smaller than the whole-image person, so it is drawn on top.
EXPECTED2 = np.array([
    [17, 17, 1, 1],
    [17, 17, 1, 1],
    [1, 1, 1, 1],
    [1, 1, 17, 17],
    [1, 1, 17, 17],
], np.uint8)
EXPECTED3 = np.zeros((4, 4), np.uint8)


def mini_instances(split: str = 'train2014') -> dict:
    """A 3-image COCO instances file (image 3 has no annotation)."""

    def img(i, h, w):
        return dict(
            id=i, file_name=f'COCO_{split}_{i:012d}.jpg', height=h, width=w)

    return dict(
        images=[img(1, 6, 8), img(2, 5, 4),
                img(3, 4, 4)],
        categories=[
            dict(id=1, name='person', supercategory='person'),
            dict(id=18, name='dog', supercategory='animal'),
            dict(id=90, name='toothbrush', supercategory='indoor'),
        ],
        annotations=[
            dict(
                id=10,
                image_id=1,
                category_id=1,
                iscrowd=0,
                area=24.0,
                segmentation=[[1, 1, 6, 1, 6, 4, 1, 4]]),
            dict(
                id=11,
                image_id=1,
                category_id=90,
                iscrowd=0,
                area=4.0,
                segmentation=[[3, 2, 4, 2, 4, 3, 3, 3]]),
            dict(
                id=12,
                image_id=1,
                category_id=18,
                iscrowd=1,
                area=9.0,
                segmentation=dict(size=[6, 8], counts=CROWD_RLE)),
            dict(
                id=13,
                image_id=2,
                category_id=18,
                iscrowd=0,
                area=8.0,
                segmentation=[[0, 0, 1, 0, 1, 1, 0, 1],
                              [2, 3, 3, 3, 3, 4, 2, 4]]),
            dict(
                id=14,
                image_id=2,
                category_id=1,
                iscrowd=0,
                area=20.0,
                segmentation=[[0, 0, 3, 0, 3, 4, 0, 4]]),
        ])


def write_coco(root: Path, split: str) -> None:
    """Write the mini instances JSON and matching JPEGs."""
    coco = mini_instances(split)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / 'annotations' / f'instances_{split}.json').write_text(
        json.dumps(coco))
    (root / split).mkdir()
    for img in coco['images']:
        cv2.imwrite(
            str(root / split / img['file_name']),
            np.full((img['height'], img['width'], 3), 128, np.uint8))


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """A mini COCO root with train2014."""
    root = tmp_path / 'coco'
    write_coco(root, 'train2014')
    return root


def load_converter():
    """Import tools/dataset_converters/coco_wsss.py."""
    path = REPO / 'tools' / 'dataset_converters' / 'coco_wsss.py'
    spec = importlib.util.spec_from_file_location('coco_wsss', path)
    module = importlib.util.module_from_spec(spec)
    # registered so that pool workers can unpickle its functions
    sys.modules['coco_wsss'] = module
    spec.loader.exec_module(module)
    return module


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == 'P'
        return np.asarray(im)


# ----------------------------------------------------------------- RLE


def test_rle_string_decoder_hand_encoded():
    # 3x6 mask, runs [5, 6, 2, 1, 4]; 4th count stored as 1 - 6 = -5:
    # -5 & 0x1f = 27 with the sign bit 0x10 set, one group -> chr(75) 'K';
    # 5th stored as 4 - 2 = 2 -> '2'.
    counts = rle_string_to_counts('562K2')
    assert counts == [5, 6, 2, 1, 4]
    expected = np.array([
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 1, 1, 0, 0, 0],
    ], np.uint8)
    mask = rle_to_mask(dict(size=[3, 6], counts='562K2'))
    np.testing.assert_array_equal(mask, expected)
    # uncompressed counts list and bytes give the same mask
    np.testing.assert_array_equal(
        rle_to_mask(dict(size=[3, 6], counts=[5, 6, 2, 1, 4])), expected)
    np.testing.assert_array_equal(
        rle_to_mask(dict(size=[3, 6], counts=b'562K2')), expected)


def test_rle_multi_group_and_crowd_example():
    assert rle_string_to_counts(CROWD_RLE) == [0, 1, 39, 8]
    assert rle_string_to_counts('X1') == [40]  # 40 = 8|0x20, then 1<<5
    expected = np.zeros((6, 8), np.uint8)
    expected[0, 0] = expected[4:6, 6] = expected[:, 7] = 1
    mask = rle_to_mask(dict(size=[6, 8], counts=CROWD_RLE))
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize('counts', [
    [0, 1, 39, 8],
    [5, 6, 2, 1, 4],
    [1000, 3, 70000, 2, 5, 123456, 0, 9],
    [17, 33, 16, 15, 1, 1000000, 2],
])
def test_rle_round_trip(counts):
    assert rle_string_to_counts(counts_to_rle_string(counts)) == counts


def test_rle_errors():
    with pytest.raises(ValueError, match='sum to'):
        rle_to_mask(dict(size=[3, 6], counts=[5, 6]))
    with pytest.raises(ValueError, match='truncated'):
        rle_string_to_counts('X')  # continuation bit without a next group
    with pytest.raises(ValueError, match='invalid character'):
        rle_string_to_counts('5 6')


def test_polygon_fill_includes_border():
    mask = polygons_to_mask([[1, 1, 3, 1, 3, 2, 1, 2], [0, 0, 1, 0]], 4, 5)
    expected = np.zeros((4, 5), np.uint8)
    expected[1:3, 1:4] = 1  # the 2-vertex "polygon" is skipped
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match='odd number'):
        polygons_to_mask([[0, 0, 1, 0, 1]], 4, 5)


# ------------------------------------------------------------ labels


def test_category_mapping():
    assert len(COCO_CAT2LABEL) == 80
    assert COCO_CAT2LABEL[1] == PERSON
    assert COCO_CAT2LABEL[13] == 12  # id 12 is a gap
    assert COCO_CAT2LABEL[18] == DOG
    assert COCO_CAT2LABEL[90] == TOOTHBRUSH
    classes = WSSSCOCODataset.METAINFO['classes']
    assert len(classes) == 81 and classes[0] == 'background'
    assert classes[DOG] == 'dog' and classes[TOOTHBRUSH] == 'toothbrush'
    palette = WSSSCOCODataset.METAINFO['palette']
    assert len(palette) == 81 and palette[0] == [0, 0, 0]
    assert len({tuple(c) for c in palette}) == 81


def test_label_map_unknown_category():
    ann = dict(
        id=5, image_id=1, category_id=12, segmentation=[[0, 0, 1, 0, 1, 1]])
    with pytest.raises(ValueError, match='unknown COCO category id 12'):
        annotations_to_label_map([ann], 2, 2)


def test_dataset_labels_from_coco_json(coco_root):
    ds = WSSSCOCODataset(
        data_root=str(coco_root),
        data_prefix=dict(img_path='train2014'),
        ann_json='annotations/instances_train2014.json')
    assert len(ds) == 2 and ds.num_dropped_empty == 1
    info = ds.get_data_info(0)
    assert info['img_path'] == str(coco_root / 'train2014' / f'{STEM1}.jpg')
    assert 'seg_map_path' not in info
    # crowd categories count as present
    assert info['img_labels'] == [PERSON, DOG, TOOTHBRUSH]
    assert ds.get_data_info(1)['img_labels'] == [PERSON, DOG]

    ds = WSSSCOCODataset(
        data_root=str(coco_root),
        data_prefix=dict(img_path='train2014'),
        ann_json='annotations/instances_train2014.json',
        allow_empty_labels=True)
    assert len(ds) == 3 and ds.get_data_info(2)['img_labels'] == []


def test_dataset_split_file(coco_root):
    (coco_root / 'split.txt').write_text(f'{STEM2}\n\n')
    ds = WSSSCOCODataset(
        data_root=str(coco_root),
        data_prefix=dict(img_path='train2014'),
        ann_file='split.txt',
        ann_json='annotations/instances_train2014.json')
    assert len(ds) == 1
    assert ds.get_data_info(0)['img_labels'] == [PERSON, DOG]
    (coco_root / 'split.txt').write_text('COCO_train2014_000000000099\n')
    with pytest.raises(KeyError, match='000000000099'):
        WSSSCOCODataset(
            data_root=str(coco_root),
            data_prefix=dict(img_path='train2014'),
            ann_file='split.txt',
            ann_json='annotations/instances_train2014.json')


def test_dataset_errors(coco_root):
    with pytest.raises(ValueError, match='label_source'):
        WSSSCOCODataset(label_source='xml', lazy_init=True)
    with pytest.raises(ValueError, match='needs ann_json'):
        WSSSCOCODataset(
            data_root=str(coco_root), data_prefix=dict(img_path='train2014'))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        WSSSCOCODataset(
            data_root=str(coco_root),
            data_prefix=dict(img_path='train2014'),
            ann_json='missing.json')
    coco = mini_instances()
    coco['categories'][1]['name'] = 'cat'
    (coco_root / 'wrong.json').write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="named 'cat', expected 'dog'"):
        WSSSCOCODataset(
            data_root=str(coco_root),
            data_prefix=dict(img_path='train2014'),
            ann_json='wrong.json')


def test_dataset_lazy_init_needs_nothing(tmp_path):
    ds = WSSSCOCODataset(
        data_root=str(tmp_path / 'nowhere'),
        data_prefix=dict(img_path='train2014'),
        ann_json='annotations/instances_train2014.json',
        lazy_init=True)
    assert len(ds.metainfo['classes']) == 81


# --------------------------------------------------------- converter


def test_converter_masks_and_labels(coco_root):
    conv = load_converter()
    stats = conv.convert(str(coco_root), 'train2014', workers=1)
    assert stats == dict(images=3, written=3, skipped=0, empty=1)
    seg = coco_root / 'SegmentationClass' / 'train2014'
    np.testing.assert_array_equal(read_png(seg / f'{STEM1}.png'), EXPECTED1)
    np.testing.assert_array_equal(read_png(seg / f'{STEM2}.png'), EXPECTED2)
    np.testing.assert_array_equal(read_png(seg / f'{STEM3}.png'), EXPECTED3)
    with Image.open(seg / f'{STEM2}.png') as im:
        palette = im.getpalette()
    assert palette[3 * DOG:3 * DOG + 3] == \
        WSSSCOCODataset.METAINFO['palette'][DOG]
    assert not [p for p in os.listdir(seg) if p.endswith('.tmp')]
    labels = json.loads((coco_root / 'cls_labels.json').read_text())
    assert labels == {
        STEM1: [PERSON, DOG, TOOTHBRUSH],
        STEM2: [PERSON, DOG],
        STEM3: []
    }

    # the outputs feed the dataset: label file, masks, full pipeline
    ds = DATASETS.build(
        dict(
            type='WSSSCOCODataset',
            data_root=str(coco_root),
            data_prefix=dict(
                img_path='train2014',
                seg_map_path='SegmentationClass/train2014'),
            label_source='file',
            label_file='cls_labels.json',
            pipeline=[
                dict(type='mmseg.LoadImageFromFile'),
                dict(type='mmseg.LoadAnnotations'),
                dict(type='PackWSSSInputs'),
            ]))
    assert len(ds) == 2 and ds.num_dropped_empty == 1
    item = ds[0]
    assert item['data_samples'].metainfo['img_labels'] == \
        [PERSON, DOG, TOOTHBRUSH]
    np.testing.assert_array_equal(
        item['data_samples'].gt_sem_seg.data[0].numpy(), EXPECTED1)
    assert item['inputs'].shape == (3, 6, 8)

    # mask labels miss the crowd-only dog of image 1
    ds = WSSSCOCODataset(
        data_root=str(coco_root),
        data_prefix=dict(
            img_path='train2014', seg_map_path='SegmentationClass/train2014'),
        label_source='mask')
    assert [ds.get_data_info(i)['img_labels'] for i in range(len(ds))] == \
        [[PERSON, TOOTHBRUSH], [PERSON, DOG]]


def test_converter_rerun_skips_existing(coco_root):
    conv = load_converter()
    conv.convert(str(coco_root), 'train2014', workers=1)
    seg = coco_root / 'SegmentationClass' / 'train2014'
    target = seg / f'{STEM2}.png'
    sentinel = np.full((5, 4), 7, np.uint8)
    Image.fromarray(sentinel).save(target)
    stats = conv.convert(str(coco_root), 'train2014', workers=1)
    assert stats['written'] == 0 and stats['skipped'] == 3
    with Image.open(target) as im:  # untouched
        np.testing.assert_array_equal(np.asarray(im), sentinel)
    # a missing output is regenerated alone
    (seg / f'{STEM1}.png').unlink()
    stats = conv.convert(str(coco_root), 'train2014', workers=1)
    assert stats['written'] == 1 and stats['skipped'] == 2
    np.testing.assert_array_equal(read_png(seg / f'{STEM1}.png'), EXPECTED1)
    stats = conv.convert(
        str(coco_root), 'train2014', workers=1, overwrite=True)
    assert stats['written'] == 3
    np.testing.assert_array_equal(read_png(target), EXPECTED2)


def test_converter_cli_pool_merges_label_file(coco_root):
    conv = load_converter()
    conv.main([
        '--coco-root',
        str(coco_root), '--split', 'train2014', '--workers', '1'
    ])
    write_coco(coco_root, 'val2014')
    conv.main([
        '--coco-root',
        str(coco_root), '--split', 'val2014', '--workers', '2'
    ])
    seg = coco_root / 'SegmentationClass' / 'val2014'
    np.testing.assert_array_equal(
        read_png(seg / 'COCO_val2014_000000000001.png'), EXPECTED1)
    np.testing.assert_array_equal(
        read_png(seg / 'COCO_val2014_000000000002.png'), EXPECTED2)
    labels = json.loads((coco_root / 'cls_labels.json').read_text())
    assert len(labels) == 6
    assert labels['COCO_val2014_000000000001'] == labels[STEM1]
    assert osp.isfile(seg / 'COCO_val2014_000000000003.png')
