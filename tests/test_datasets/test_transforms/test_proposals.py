# Copyright (c) mmwsss contributors.
"""Tests of LoadProposals / AlignProposals and proposal packing.

Alignment is checked two ways on the same pipeline run:

- every proposal is also drawn as a binary mask in its own seg field, so
  the mmseg transforms move it like a label map; the aligned box must be
  the bounding box of the transformed mask;
- the test image stores its own column / row index in two channels, so
  the *image* path (bilinear resize, crop, flip) tells where each output
  pixel came from; the aligned box must agree with it within 1 px.
"""
import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from mmwsss.datasets.transforms import (AlignProposals, LoadProposals,
                                        PackWSSSInputs)
from mmwsss.registry import TRANSFORMS
from mmwsss.utils import register_all_modules
from mmwsss.utils.io import atomic_save_npz

register_all_modules()

H, W = 90, 120


def random_boxes(rng, n, h=H, w=W):
    x = np.sort(rng.integers(0, w + 1, (n, 2)), axis=1)
    y = np.sort(rng.integers(0, h + 1, (n, 2)), axis=1)
    keep = (x[:, 1] > x[:, 0]) & (y[:, 1] > y[:, 0])
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1)[keep]
    extra = [[0, 0, w, h], [0, 0, 1, 1], [w - 3, h - 2, w, h], [5, 0, 9, h]]
    return np.concatenate([extra, boxes]).astype(np.float32)


@pytest.fixture
def sample(tmp_path):
    """A coordinate-coded image file and its proposal file."""
    yy, xx = np.mgrid[:H, :W]
    img = np.stack([xx, yy, np.full_like(xx, 77)], -1).astype(np.uint8)
    img_path = tmp_path / 'img_0001.png'
    cv2.imwrite(str(img_path), img)  # loaded back as the same array
    boxes = random_boxes(np.random.default_rng(0), 60)
    prop_dir = tmp_path / 'proposals'
    atomic_save_npz(
        str(prop_dir / 'img_0001.npz'),
        boxes=boxes,
        img_shape=np.array([H, W]))
    return dict(img_path=str(img_path), prop_dir=str(prop_dir), boxes=boxes)


def build(cfgs):
    with DefaultScope.overwrite_default_scope('mmwsss'):
        return [TRANSFORMS.build(c) for c in cfgs]


def load(sample, **kwargs):
    results = dict(img_path=sample['img_path'], seg_fields=[], img_labels=[1])
    loader, = build([dict(type='mmseg.LoadImageFromFile')])
    results = loader(results)
    return LoadProposals(sample['prop_dir'], **kwargs)(results)


def add_masks(results):
    """Draw every proposal as a uint8 mask in its own seg field."""
    names = []
    for k, (x1, y1, x2, y2) in enumerate(results['proposals'].astype(int)):
        mask = np.zeros((H, W), dtype=np.uint8)
        mask[y1:y2, x1:x2] = 1
        results[f'mask{k}'] = mask
        results['seg_fields'].append(f'mask{k}')
        names.append(f'mask{k}')
    return names


def mask_box(mask):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def image_box(img, box):
    """Box of the output pixels whose source (read from the image) is in
    ``box``."""
    src_x = img[0, :, 0].astype(np.float64)  # same in every row
    src_y = img[:, 0, 1].astype(np.float64)
    cols = np.flatnonzero((src_x >= box[0]) & (src_x < box[2]))
    rows = np.flatnonzero((src_y >= box[1]) & (src_y < box[3]))
    if len(cols) == 0 or len(rows) == 0:
        return None
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def check_alignment(sample, transforms, seed, min_size=1.):
    np.random.seed(seed)
    results = load(sample, min_size=min_size)
    names = add_masks(results)
    for t in build(transforms):
        results = t(results)
    results = AlignProposals()(results)
    assert 'proposal_coord_map' not in results
    assert 'proposal_coord_map' not in results['seg_fields']
    img = results['img']
    h, w = img.shape[:2]
    got = {
        int(r): b.tolist()
        for r, b in zip(results['proposal_ranks'], results['proposals'])
    }
    assert results['proposals'].dtype == np.float32
    n_cmp = 0
    for k, name in enumerate(names):
        ref = mask_box(results[name])
        if ref is not None and min(ref[2] - ref[0],
                                   ref[3] - ref[1]) < min_size:
            ref = None
        if ref is None:
            assert k not in got, (k, got.get(k))
            continue
        assert got[k] == ref, (k, sample['boxes'][k], got[k], ref)
        n_cmp += 1
        # independent of the seg path: where the image pixels came from
        img_ref = image_box(img, sample['boxes'][k])
        if img_ref is not None:
            assert np.abs(np.subtract(got[k], img_ref)).max() <= 1, \
                (k, got[k], img_ref)
    boxes = results['proposals']
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= h).all()
    return results, n_cmp


RESIZE = dict(type='mmseg.Resize', scale=(150, 70), keep_ratio=False)


def random_resize(lo=0.5, hi=2.0):
    return dict(
        type='mmseg.RandomResize',
        scale=(W, H),
        ratio_range=(lo, hi),
        keep_ratio=True,
        resize_type='mmseg.Resize')


@pytest.mark.parametrize('transforms', [
    [RESIZE],
    [dict(type='mmseg.Resize', scale=(40, 33), keep_ratio=False)],
    [dict(type='mmseg.RandomCrop', crop_size=(50, 70))],
    [dict(type='mmseg.RandomCrop', crop_size=(128, 160))],
    [dict(type='mmseg.RandomFlip', prob=1., direction='vertical')],
    [
        random_resize(),
        dict(type='mmseg.RandomCrop', crop_size=(64, 80)),
        dict(type='mmseg.RandomFlip', prob=1., direction='horizontal')
    ],
    [
        random_resize(),
        dict(type='mmseg.RandomCrop', crop_size=(64, 80)),
        dict(
            type='mmseg.RandomFlip',
            prob=[0.3, 0.3, 0.3],
            direction=['horizontal', 'vertical', 'diagonal'])
    ],
])
def test_alignment_matches_masks_and_image(sample, transforms):
    compared = 0
    for seed in range(4):
        _, n = check_alignment(sample, transforms, seed)
        compared += n
    assert compared > 40  # the checks did compare boxes


def test_resize_and_flip_analytic(sample):
    """Without a crop: box * scale, mirrored, within 1 px."""
    transforms = [RESIZE, dict(type='mmseg.RandomFlip', prob=1.)]
    results, _ = check_alignment(sample, transforms, seed=0)
    sx, sy = 150 / W, 70 / H
    for r, box in zip(results['proposal_ranks'], results['proposals']):
        x1, y1, x2, y2 = sample['boxes'][r]
        expect = [150 - x2 * sx, y1 * sy, 150 - x1 * sx, y2 * sy]
        assert np.abs(box - expect).max() <= 1, (box, expect)


def test_min_size_drops_small_boxes(sample):
    small = [dict(type='mmseg.Resize', scale=(30, 22), keep_ratio=False)]
    results, _ = check_alignment(sample, small, seed=0, min_size=3)
    boxes = results['proposals']
    assert len(boxes) < len(sample['boxes'])
    assert ((boxes[:, 2] - boxes[:, 0]) >= 3).all()
    assert ((boxes[:, 3] - boxes[:, 1]) >= 3).all()
    # ranks name the rows of the file, in order
    ranks = results['proposal_ranks']
    assert (np.diff(ranks) > 0).all()


def test_padding_is_not_a_source(sample):
    results = load(sample)
    pad = ((0, 10), (0, 7))
    results['img'] = np.pad(results['img'], pad + ((0, 0), ))
    results['proposal_coord_map'] = np.pad(
        results['proposal_coord_map'], pad, constant_values=255)
    results = AlignProposals()(results)
    np.testing.assert_array_equal(results['proposals'], sample['boxes'])


def test_max_num_and_pack(sample):
    results = load(sample, max_num=7)
    assert len(results['proposals']) == 7
    transforms = build([RESIZE])
    results = transforms[0](results)
    packed = PackWSSSInputs()(results)
    props = packed['data_samples'].proposals
    assert props.bboxes.dtype == torch.float32
    assert props.bboxes.shape == (7, 4)
    assert props.ranks.tolist() == list(range(7))
    np.testing.assert_allclose(props.bboxes.numpy()[0],
                               [0, 0, 150, 70])  # the whole image
    assert packed['inputs'].shape == (3, 70, 150)


def test_pack_without_proposals_unchanged(sample):
    loader, = build([dict(type='mmseg.LoadImageFromFile')])
    results = loader(dict(img_path=sample['img_path'], img_labels=[2]))
    packed = PackWSSSInputs()(results)
    assert 'proposals' not in packed['data_samples']
    assert packed['data_samples'].metainfo['img_labels'] == [2]


def test_pipeline_in_config_style(sample):
    from mmengine.dataset import Compose
    with DefaultScope.overwrite_default_scope('mmwsss'):
        pipeline = Compose([
            dict(type='mmseg.LoadImageFromFile'),
            dict(type='LoadProposals', proposal_dir=sample['prop_dir']),
            random_resize(),
            dict(type='mmseg.RandomCrop', crop_size=(64, 64)),
            dict(type='mmseg.RandomFlip', prob=0.5),
            dict(type='PackWSSSInputs'),
        ])
    np.random.seed(3)
    out = pipeline(dict(img_path=sample['img_path'], img_labels=[1]))
    boxes = out['data_samples'].proposals.bboxes
    h, w = out['inputs'].shape[1:]
    assert len(boxes) > 0
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()


# ----------------------------------------------------------------------
# errors
def test_error_missing_file(sample, tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='generate_proposals') as e:
        LoadProposals(missing)(_fresh(sample))
    assert missing + '/img_0001.npz' in str(e.value)


def _fresh(sample):
    loader, = build([dict(type='mmseg.LoadImageFromFile')])
    return loader(dict(img_path=sample['img_path'], seg_fields=[]))


@pytest.mark.parametrize('arrays, match', [
    (dict(boxes=np.zeros((2, 4)), img_shape=np.array(
        [H + 1, W])), 'was made for a 120x91 image'),
    (dict(boxes=np.array([[0, 0, W + 1, 5]])), 'outside'),
    (dict(boxes=np.array([[4, 0, 4, 5]])), 'empty'),
    (dict(boxes=np.array([[0, 0, np.nan, 5]])), 'finite'),
    (dict(boxes=np.zeros((3, 5))), r'shape \(N, 4\)'),
    (dict(bboxes=np.zeros((3, 4))), 'no "boxes"'),
])
def test_error_bad_file(sample, arrays, match):
    path = sample['prop_dir'] + '/img_0001.npz'
    atomic_save_npz(path, **arrays)
    with pytest.raises(ValueError, match=match) as e:
        LoadProposals(sample['prop_dir'])(_fresh(sample))
    assert path in str(e.value)


def test_error_corrupt_file(sample):
    path = sample['prop_dir'] + '/img_0001.npz'
    with open(path, 'wb') as f:
        f.write(b'not a zip file')
    with pytest.raises(ValueError, match='cannot read') as e:
        LoadProposals(sample['prop_dir'])(_fresh(sample))
    assert path in str(e.value)


def test_error_order(sample):
    with pytest.raises(KeyError, match='after LoadImageFromFile'):
        LoadProposals(sample['prop_dir'])(dict(img_path=sample['img_path']))
    results = _fresh(sample)
    results = build([RESIZE])[0](results)
    with pytest.raises(ValueError, match='right after LoadImageFromFile'):
        LoadProposals(sample['prop_dir'])(results)


@pytest.mark.parametrize('crop', [True, False])
def test_error_resize_ignoring_seg_fields(sample, crop):
    """mmcv's Resize (what RandomResize builds under the mmwsss scope)."""
    transforms = [
        dict(
            type='mmseg.RandomResize',
            scale=(W, H),
            ratio_range=(1.1, 1.1),
            keep_ratio=True)
    ]
    if crop:  # equal shapes afterwards: only the unit steps tell
        transforms.append(dict(type='mmseg.RandomCrop', crop_size=(64, 80)))
    np.random.seed(0)
    results = load(sample)
    for t in build(transforms):
        results = t(results)
    if crop:
        assert results['img'].shape[:2] == \
            results['proposal_coord_map'].shape
    with pytest.raises(ValueError, match='seg_fields') as e:
        AlignProposals()(results)
    assert sample['img_path'] in str(e.value)


def test_error_not_axis_aligned(sample):
    results = load(sample)
    results['img'] = results['img'][:80, :80].transpose(1, 0, 2)
    results['proposal_coord_map'] = results['proposal_coord_map'][:80, :80].T
    with pytest.raises(ValueError, match='axis-aligned'):
        AlignProposals()(results)


def test_bad_arguments(sample):
    with pytest.raises(TypeError, match='proposal_dir'):
        LoadProposals(None)
    with pytest.raises(ValueError, match='max_num'):
        LoadProposals('x', max_num=-1)
    with pytest.raises(ValueError, match='min_size'):
        LoadProposals('x', min_size=-1)
    with pytest.raises(KeyError, match='LoadProposals'):
        AlignProposals()(dict(img=np.zeros((2, 2, 3))))


def test_empty_proposal_file_gives_no_boxes(sample):
    """A file with zero boxes (Selective Search found nothing that passed
    the filters) is valid: the image gets no proposals and the instance
    head falls back to the whole image (its always-present proposal)."""
    path = sample['prop_dir'] + '/img_0001.npz'
    atomic_save_npz(
        path, boxes=np.zeros((0, 4), np.float32), img_shape=np.array([H, W]))
    results = LoadProposals(sample['prop_dir'])(_fresh(sample))
    assert results['proposals'].shape == (0, 4)
    assert results['proposal_ranks'].shape == (0, )
