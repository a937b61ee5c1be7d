# Copyright (c) mmwsss contributors.
"""Tests of WSSSCOCODataset, the COCO mask helpers and the converter.

The masks are checked against pycocotools itself (``COCO.annToMask`` on
the same annotations): polygons, compressed and uncompressed RLE, crowd
regions in the semantic label map.
"""
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
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mmwsss.datasets import WSSSCOCODataset
from mmwsss.datasets.coco import (COCO_CAT2LABEL, annotation_to_mask,
                                  annotations_to_label_map)
from mmwsss.registry import DATASETS
from mmwsss.utils import register_all_modules

register_all_modules()
# pycocotools' decode under NumPy 2 (the reference calls below)
pytestmark = pytest.mark.filterwarnings(
    'ignore:__array__ implementation:DeprecationWarning')

REPO = Path(__file__).resolve().parents[2]
PERSON, DOG, TOOTHBRUSH = 1, 17, 80  # COCO ids 1, 18, 90

# Crowd "dog" region of image 1 (6x8): pixel (y0, x0), x6 rows 4-5 and
# column x7. Column-major runs: [0, 1, 39, 8], written uncompressed as COCO
# writes its crowd regions. Compressed by hand (COCO's rleToString):
# 0 -> '0', 1 -> '1', 39 = 0b1_00111 -> 6-bit groups 7|0x20 ('W') and 1
# ('1'), 4th count stored as 8 - counts[1] = 7 -> '7'.
CROWD_COUNTS = [0, 1, 39, 8]
CROWD_RLE = '01W17'

STEM1 = 'COCO_train2014_000000000001'
STEM2 = 'COCO_train2014_000000000002'
STEM3 = 'COCO_train2014_000000000003'

# Hand-computed converter output. COCO polygon coordinates are continuous
# with pixel x covering [x - 0.5, x + 0.5] for pycocotools, so the
# rectangles below run along pixel edges (x.5).
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
                segmentation=[[0.5, 0.5, 6.5, 0.5, 6.5, 4.5, 0.5, 4.5]]),
            dict(
                id=11,
                image_id=1,
                category_id=90,
                iscrowd=0,
                area=4.0,
                segmentation=[[2.5, 1.5, 4.5, 1.5, 4.5, 3.5, 2.5, 3.5]]),
            dict(
                id=12,
                image_id=1,
                category_id=18,
                iscrowd=1,
                area=9.0,
                segmentation=dict(size=[6, 8], counts=CROWD_COUNTS)),
            dict(
                id=13,
                image_id=2,
                category_id=18,
                iscrowd=0,
                area=8.0,
                segmentation=[[-.5, -.5, 1.5, -.5, 1.5, 1.5, -.5, 1.5],
                              [1.5, 2.5, 3.5, 2.5, 3.5, 4.5, 1.5, 4.5]]),
            dict(
                id=14,
                image_id=2,
                category_id=1,
                iscrowd=0,
                area=20.0,
                segmentation=[[-.5, -.5, 3.5, -.5, 3.5, 4.5, -.5, 4.5]]),
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


# ------------------------------------------------- masks vs pycocotools


def coco_api(images: list, annotations: list) -> COCO:
    """A pycocotools ``COCO`` object over in-memory annotations."""
    api = COCO()
    api.dataset = dict(
        images=images,
        annotations=annotations,
        categories=[dict(id=1, name='person')])
    api.createIndex()
    return api


def random_masks(rng: np.random.Generator, n: int, h: int, w: int) -> list:
    """Blobby random binary masks (some empty, some full)."""
    masks = [np.zeros((h, w), np.uint8), np.ones((h, w), np.uint8)]
    while len(masks) < n:
        small = (rng.random((h // 4 + 1, w // 4 + 1)) < 0.4).astype(np.uint8)
        m = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        m ^= (rng.random((h, w)) < 0.03).astype(np.uint8)  # speckle
        masks.append(m)
    return masks


def runs_fortran(mask: np.ndarray) -> list:
    """Uncompressed COCO RLE counts, by brute force over the pixels."""
    flat = mask.ravel(order='F')
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return counts


def test_polygons_agree_with_pycocotools():
    rng = np.random.default_rng(0)
    h, w = 37, 53
    anns = []
    for i in range(60):
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(3, 9))
            # vertices around a centre, some outside the image, floats
            cx, cy = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5)
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = rng.uniform(1, 15, k)
            xy = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
            parts.append(np.round(xy, 2).ravel().tolist())
        anns.append(
            dict(
                id=i + 1,
                image_id=1,
                category_id=1,
                iscrowd=0,
                segmentation=parts))
    api = coco_api([dict(id=1, height=h, width=w)], anns)
    nonempty = 0
    for ann in anns:
        ref = api.annToMask(ann)
        got = annotation_to_mask(ann, h, w)
        assert got.dtype == np.uint8 and got.shape == (h, w)
        np.testing.assert_array_equal(got, ref, err_msg=str(ann['id']))
        nonempty += bool(ref.any())
    assert nonempty > 40  # the comparison is not between empty masks


def test_rle_agrees_with_pycocotools():
    rng = np.random.default_rng(1)
    h, w = 29, 41
    masks = random_masks(rng, 12, h, w)
    anns = []
    for i, m in enumerate(masks):
        compressed = mask_utils.encode(np.asfortranarray(m))
        # as read from a JSON file: counts is a str
        compressed['counts'] = compressed['counts'].decode('ascii')
        anns.append(
            dict(
                id=2 * i + 1,
                image_id=1,
                category_id=1,
                iscrowd=0,
                segmentation=compressed))
        anns.append(
            dict(
                id=2 * i + 2,
                image_id=1,
                category_id=1,
                iscrowd=1,
                segmentation=dict(size=[h, w], counts=runs_fortran(m))))
    api = coco_api([dict(id=1, height=h, width=w)], anns)
    for ann in anns:
        m = masks[(ann['id'] - 1) // 2]
        ref = api.annToMask(ann)
        np.testing.assert_array_equal(ref, m)  # the reference is right
        np.testing.assert_array_equal(
            annotation_to_mask(ann, h, w), ref, err_msg=str(ann['id']))


def test_rle_hand_encoded():
    # 3x6 mask, runs [5, 6, 2, 1, 4]; 4th count stored as 1 - 6 = -5:
    # -5 & 0x1f = 27 with the sign bit 0x10 set, one group -> chr(75) 'K';
    # 5th stored as 4 - 2 = 2 -> '2'.
    expected = np.array([
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 1, 1, 0, 0, 0],
    ], np.uint8)
    for counts in ('562K2', b'562K2', [5, 6, 2, 1, 4]):
        ann = dict(id=1, segmentation=dict(size=[3, 6], counts=counts))
        np.testing.assert_array_equal(annotation_to_mask(ann, 3, 6), expected)
    crowd = np.zeros((6, 8), np.uint8)
    crowd[0, 0] = crowd[4:6, 6] = crowd[:, 7] = 1
    for counts in (CROWD_RLE, CROWD_COUNTS):
        ann = dict(id=2, segmentation=dict(size=[6, 8], counts=counts))
        np.testing.assert_array_equal(annotation_to_mask(ann, 6, 8), crowd)


def test_crowd_label_map_agrees_with_pycocotools():
    """Label map = pycocotools masks composed by the documented rule."""
    rng = np.random.default_rng(2)
    h, w = 24, 32
    masks = random_masks(rng, 9, h, w)[2:]
    cat_ids = [1, 18, 90, 3, 44, 62, 1]
    anns = []
    for i, (m, cat) in enumerate(zip(masks, cat_ids)):
        crowd = i in (0, 4)
        if crowd:
            seg = dict(size=[h, w], counts=runs_fortran(m))
        else:
            seg = mask_utils.encode(np.asfortranarray(m))
            seg['counts'] = seg['counts'].decode('ascii')
        anns.append(
            dict(
                id=100 - i,
                image_id=1,
                category_id=cat,
                iscrowd=int(crowd),
                area=float(m.sum()),
                segmentation=seg))
    # two polygons too, one crossing a crowd region
    anns.append(
        dict(
            id=7,
            image_id=1,
            category_id=18,
            iscrowd=0,
            area=60.0,
            segmentation=[[2.5, 3.5, 14.5, 3.5, 14.5, 8.5, 2.5, 8.5]]))
    anns.append(
        dict(
            id=8,
            image_id=1,
            category_id=90,
            iscrowd=1,
            area=30.0,
            segmentation=[[20.5, 10.5, 26.5, 10.5, 26.5, 15.5]]))
    api = coco_api([dict(id=1, height=h, width=w)], anns)
    ref = np.zeros((h, w), np.uint8)
    for ann in anns:  # crowd regions first, as 255
        if ann['iscrowd']:
            ref[api.annToMask(ann) > 0] = 255
    for ann in sorted((a for a in anns if not a['iscrowd']),
                      key=lambda a: (-a['area'], a['id'])):
        ref[api.annToMask(ann) > 0] = COCO_CAT2LABEL[ann['category_id']]
    got = annotations_to_label_map(anns, h, w)
    np.testing.assert_array_equal(got, ref)
    assert (got == 255).any() and len(np.unique(got)) >= 5


def test_mask_errors_and_degenerate_parts():
    square = [0.5, 0.5, 4.5, 0.5, 4.5, 3.5, 0.5, 3.5]
    # a first part of 4 numbers: pycocotools reads it as a box and fails
    ann = dict(
        id=3, image_id=9, category_id=1, segmentation=[[1, 1, 3, 1], square])
    with pytest.raises(TypeError):
        coco_api([dict(id=9, height=5, width=6)], [ann]).annToMask(ann)
    ref = coco_api([dict(id=9, height=5, width=6)],
                   []).annToMask(dict(image_id=9, segmentation=[square]))
    np.testing.assert_array_equal(annotation_to_mask(ann, 5, 6), ref)
    assert annotation_to_mask(dict(segmentation=[]), 5, 6).sum() == 0
    with pytest.raises(ValueError, match='annotation 4 of image 9.*odd'):
        annotation_to_mask(
            dict(id=4, image_id=9, segmentation=[[0, 0, 1, 0, 1]]), 4, 5)
    with pytest.raises(ValueError, match='annotation 5 .*sum to 11'):
        annotation_to_mask(
            dict(id=5, segmentation=dict(size=[3, 6], counts=[5, 6])), 3, 6)
    with pytest.raises(ValueError, match='annotation 6 .*truncated'):
        annotation_to_mask(
            dict(id=6, segmentation=dict(size=[3, 6], counts='562')), 3, 6)
    with pytest.raises(ValueError, match='annotation 7 .*decode'):
        annotation_to_mask(
            dict(id=7, segmentation=dict(size=[3, 6], counts='5 6')), 3, 6)
    with pytest.raises(ValueError, match='annotation 8 .*image size'):
        annotation_to_mask(
            dict(id=8, segmentation=dict(size=[3, 6], counts='562K2')), 4, 6)
    with pytest.raises(ValueError, match='annotation 9 .*unsupported'):
        annotation_to_mask(dict(id=9, segmentation='x'), 3, 6)


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
