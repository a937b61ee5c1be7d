# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.proposals.selective_search`.

The pieces are checked against brute-force references on small arrays:
histograms against ``np.histogram`` per region, adjacency and boxes against
pixel loops, the greedy grouping against a re-implementation that
recomputes every region from its pixels at every step, and the filter
against a Python loop.
"""
import itertools

import numpy as np
import pytest

from mmwsss.proposals import (convert_colour, filter_proposals,
                              hierarchical_grouping, selective_search)
from mmwsss.proposals.selective_search import (_adjacent_pairs, _region_boxes,
                                               _region_histograms)

RECTS = [(10, 12, 50, 40), (60, 50, 110, 88), (72, 4, 118, 30)]
COLOURS = [(220, 30, 30), (30, 40, 210), (40, 190, 60)]


def rect_image(noise: float = 0.) -> np.ndarray:
    """96x128 grey image with three flat-colour rectangles."""
    img = np.full((96, 128, 3), 128, dtype=np.float64)
    for (x1, y1, x2, y2), c in zip(RECTS, COLOURS):
        img[y1:y2, x1:x2] = c
    if noise:
        img += np.random.default_rng(0).normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def iou(box, boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def voronoi_labels(h: int, w: int, n: int, seed: int) -> np.ndarray:
    """A random partition of an ``h x w`` grid into ``n`` labelled cells."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform([0, 0], [h, w], size=(n, 2))
    yy, xx = np.mgrid[:h, :w]
    d = (yy[..., None] - pts[:, 0])**2 + (xx[..., None] - pts[:, 1])**2
    lab = d.argmin(-1)
    _, lab = np.unique(lab, return_inverse=True)
    return lab.reshape(h, w)


# ----------------------------------------------------------------------
# pieces vs brute force
def test_region_histograms_match_np_histogram():
    rng = np.random.default_rng(1)
    lab = voronoi_labels(9, 11, 5, seed=1)
    n = lab.max() + 1
    vals = rng.random((lab.size, 3))
    got = _region_histograms(lab.ravel(), n, vals, 7)
    for r in range(n):
        sel = vals[lab.ravel() == r]
        ref = np.concatenate([
            np.histogram(sel[:, f], bins=7, range=(0, 1))[0] for f in (0, 1, 2)
        ])
        np.testing.assert_allclose(got[r], ref / ref.sum())


def test_adjacency_and_boxes_brute_force():
    # random labels: many pairs touch only through a diagonal
    lab = np.random.default_rng(2).integers(0, 7, (13, 10))
    n = lab.max() + 1
    ref = set()
    h, w = lab.shape
    for y, x in itertools.product(range(h), range(w)):
        for dy, dx in itertools.product((-1, 0, 1), repeat=2):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w and lab[y, x] != lab[yy, xx]:
                a, b = sorted((lab[y, x], lab[yy, xx]))
                ref.add((int(a), int(b)))
    assert set(map(tuple, _adjacent_pairs(lab, n).tolist())) == ref
    # pairs touching only diagonally, both ways
    for diag in ([[1, 0], [2, 1]], [[0, 1], [1, 2]]):
        got = _adjacent_pairs(np.array(diag), 3).tolist()
        assert [0, 2] in got
    boxes = _region_boxes(lab, n)
    for r in range(n):
        ys, xs = np.nonzero(lab == r)
        assert boxes[r].tolist() == [
            xs.min(), ys.min(), xs.max() + 1,
            ys.max() + 1
        ]


def test_convert_colour_formulas():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    img[0, 0] = 0  # black: rg of rgI defined as 1/3
    rgi = convert_colour(img, 'rgI')
    f = img.astype(np.float64)
    s = f.sum(-1)
    with np.errstate(invalid='ignore', divide='ignore'):
        r = np.where(s > 0, f[..., 0] / s, 1 / 3)
        g = np.where(s > 0, f[..., 1] / s, 1 / 3)
    np.testing.assert_allclose(rgi[..., 0], r)
    np.testing.assert_allclose(rgi[..., 1], g)
    np.testing.assert_allclose(rgi[..., 2], s / 765.)
    np.testing.assert_allclose(
        convert_colour(img, 'I')[..., 0],
        f.mean(-1) / 255.)
    for space in ('HSV', 'Lab', 'H', 'RGB'):
        out = convert_colour(img, space)
        assert out.shape[:2] == img.shape[:2]
        assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match='colour space'):
        convert_colour(img, 'XYZ')


def brute_force_grouping(lab, colour_px, texture_px, similarity):
    """Greedy grouping recomputing every region from its pixels.

    ``colour_px`` / ``texture_px`` are per-pixel one-hot histogram rows, so
    a region's histogram is the mean of its pixels' rows.
    """
    im_size = lab.size
    h, w = lab.shape
    regions = {r: lab == r for r in range(lab.max() + 1)}
    order = list(regions)
    boxes = []

    def box(mask):
        ys, xs = np.nonzero(mask)
        return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]

    for r in order:
        boxes.append(box(regions[r]))

    def adjacent(ma, mb):
        pad = np.pad(ma, 1)
        grown = np.zeros_like(ma)
        for dy, dx in itertools.product((-1, 0, 1), repeat=2):
            grown |= pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        return bool((grown & mb).any())

    def sim(ma, mb):
        s = 0.
        if 'C' in similarity:
            s += np.minimum(colour_px[ma.ravel()].mean(0),
                            colour_px[mb.ravel()].mean(0)).sum()
        if 'T' in similarity:
            s += np.minimum(texture_px[ma.ravel()].mean(0),
                            texture_px[mb.ravel()].mean(0)).sum()
        if 'S' in similarity:
            s += 1 - (ma.sum() + mb.sum()) / im_size
        if 'F' in similarity:
            bb = box(ma | mb)
            s += 1 - ((bb[2] - bb[0]) *
                      (bb[3] - bb[1]) - ma.sum() - mb.sum()) / im_size
        return s

    next_id = len(order)
    while len(regions) > 1:
        best = None
        for a, b in itertools.combinations(sorted(regions), 2):
            if adjacent(regions[a], regions[b]):
                s = sim(regions[a], regions[b])
                if best is None or s > best[0] + 1e-12:
                    best = (s, a, b)
        _, a, b = best
        regions[next_id] = regions.pop(a) | regions.pop(b)
        boxes.append(box(regions[next_id]))
        next_id += 1
    return np.array(boxes, dtype=np.float64)


@pytest.mark.parametrize('similarity',
                         ['CTSF', 'TSF', 'C', 'T', 'CS', 'F', 'S'])
def test_hierarchical_grouping_matches_brute_force(similarity):
    rng = np.random.default_rng(4)
    lab = voronoi_labels(14, 12, 9, seed=5)
    n = lab.max() + 1
    nc, nt = 6, 5
    flat = lab.ravel()
    # every region draws its pixels' bins from its own distribution, so
    # that the colour / texture terms decide and no two pairs tie
    p_col = rng.dirichlet(np.full(nc, 0.5), n)
    p_tex = rng.dirichlet(np.full(nt, 0.5), n)
    colour_bins = np.array([rng.choice(nc, p=p_col[r]) for r in flat])
    texture_bins = np.array([rng.choice(nt, p=p_tex[r]) for r in flat])
    colour_px = np.eye(nc)[colour_bins]
    texture_px = np.eye(nt)[texture_bins]
    colour_hist = np.stack([colour_px[flat == r].mean(0) for r in range(n)])
    texture_hist = np.stack([texture_px[flat == r].mean(0) for r in range(n)])
    got = hierarchical_grouping(lab, colour_hist, texture_hist, similarity)
    ref = brute_force_grouping(lab, colour_px, texture_px, similarity)
    assert got.shape == (2 * n - 1, 4)
    np.testing.assert_array_equal(got, ref)
    assert got[-1].tolist() == [0, 0, lab.shape[1], lab.shape[0]]


def test_hierarchical_grouping_bad_input():
    lab = voronoi_labels(6, 6, 3, seed=0)
    with pytest.raises(ValueError, match='similarity'):
        hierarchical_grouping(lab, None, None, 'CX')
    with pytest.raises(ValueError, match='colour_hist of shape'):
        hierarchical_grouping(lab, None, None, 'CS')
    with pytest.raises(ValueError, match='texture_hist of shape'):
        hierarchical_grouping(lab, None, np.ones((2, 4)), 'TS')
    with pytest.raises(ValueError, match='every value'):
        hierarchical_grouping(lab * 2, None, None, 'S')
    with pytest.raises(ValueError, match='2-D'):
        hierarchical_grouping(lab.astype(float), None, None, 'S')
    # one region: only its box
    one = hierarchical_grouping(np.zeros((3, 4), int), None, None, 'SF')
    assert one.tolist() == [[0, 0, 4, 3]]


# ----------------------------------------------------------------------
# selective_search
@pytest.mark.parametrize('mode', ['single', 'fast'])
def test_finds_flat_rectangles(mode):
    img = rect_image(noise=3.)
    boxes = selective_search(img, mode=mode)
    for rect in RECTS:
        assert iou(rect, boxes).max() > 0.9, (mode, rect)
    h, w = img.shape[:2]
    assert boxes.dtype == np.float32 and boxes.shape[1] == 4
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2] > boxes[:, 0]).all()
    assert (boxes[:, 3] > boxes[:, 1]).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)
    # the whole image is the top of every hierarchy
    assert [0, 0, w, h] in boxes.tolist()


def test_deterministic_and_max_proposals():
    img = rect_image(noise=20.)
    a = selective_search(img, mode='fast', max_proposals=None)
    b = selective_search(img, mode='fast', max_proposals=None)
    np.testing.assert_array_equal(a, b)
    assert len(a) > 30
    top = selective_search(img, mode='fast', max_proposals=25)
    np.testing.assert_array_equal(top, a[:25])
    assert len(selective_search(img, mode='fast', max_proposals=0)) == 0
    # another seed: the same boxes in another order
    c = selective_search(img, mode='fast', max_proposals=None, seed=1)
    assert not np.array_equal(a, c)
    assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, c.tolist()))


def test_more_strategies_more_boxes():
    img = rect_image(noise=20.)
    single = selective_search(img, mode='single', max_proposals=None)
    fast = selective_search(img, mode='fast', max_proposals=None)
    assert set(map(tuple, single.tolist())) <= set(map(tuple, fast.tolist()))
    assert len(fast) > len(single)


def test_grey_input_and_options():
    grey = rect_image()[..., 1]
    boxes = selective_search(grey, mode='single', scale=50, min_size=20)
    assert len(boxes) > 0
    boxes2 = selective_search(
        grey[..., None], mode='single', scale=[50], min_size=20)
    np.testing.assert_array_equal(boxes, boxes2)


@pytest.mark.parametrize('kwargs, err, match', [
    (dict(mode='slow'), ValueError, 'mode'),
    (dict(scale=0), ValueError, 'scale'),
    (dict(similarities='CQ'), ValueError, 'similarities'),
    (dict(max_proposals=-1), ValueError, 'max_proposals'),
    (dict(sigma=-1.), ValueError, 'sigma'),
])
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        selective_search(rect_image(), **kwargs)


def test_bad_images():
    with pytest.raises(TypeError, match='uint8'):
        selective_search(rect_image().astype(np.float32))
    with pytest.raises(ValueError, match='shape'):
        selective_search(np.zeros((8, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match='too small'):
        selective_search(np.zeros((1, 8, 3), dtype=np.uint8))


# ----------------------------------------------------------------------
# filter_proposals
def test_filter_matches_loop():
    rng = np.random.default_rng(6)
    xy = rng.uniform(0, 60, (400, 2))
    wh = rng.uniform(0, 60, (400, 2))
    wh[:20] = 0  # empty boxes
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    for min_area, max_aspect, min_size, max_num in [(100, 4, 1, None),
                                                    (0, None, 0, None),
                                                    (250, 2, 5, 30),
                                                    (100, 1, 1, None)]:
        keep = []
        for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.float64)):
            w, h = x2 - x1, y2 - y1
            if w <= 0 or h <= 0 or w < min_size or h < min_size:
                continue
            if w * h < min_area:
                continue
            if max_aspect is not None and max(w / h, h / w) > max_aspect:
                continue
            keep.append(i)
        if max_num is not None:
            keep = keep[:max_num]
        got, inds = filter_proposals(
            boxes,
            min_area=min_area,
            max_aspect=max_aspect,
            min_size=min_size,
            max_num=max_num,
            return_inds=True)
        assert inds.tolist() == keep
        np.testing.assert_array_equal(got, boxes[keep])
        assert got.dtype == boxes.dtype
    # the boundaries are inclusive
    edge = np.array([[0, 0, 10, 10], [0, 0, 40, 10], [0, 0, 41, 10]],
                    dtype=np.float32)
    assert filter_proposals(edge, min_area=100, max_aspect=4).tolist() == \
        edge[:2].tolist()


def test_filter_bad_arguments():
    with pytest.raises(ValueError, match='shape'):
        filter_proposals(np.zeros((3, 5)))
    with pytest.raises(ValueError, match='max_aspect'):
        filter_proposals(np.zeros((3, 4)), max_aspect=0.5)
    with pytest.raises(ValueError, match='max_num'):
        filter_proposals(np.zeros((3, 4)), max_num=-2)
    assert filter_proposals(np.zeros((0, 4))).shape == (0, 4)


def test_ranking_follows_the_paper():
    """Single strategy: sort by hierarchy position x U(0, 1), dedupe."""
    from skimage.segmentation import felzenszwalb

    from mmwsss.proposals.selective_search import _texture_maps
    img = rect_image(noise=20.)
    chans = convert_colour(img, 'HSV')
    seg = felzenszwalb(chans, scale=100., sigma=0.8, min_size=100)
    _, seg = np.unique(seg, return_inverse=True)
    seg = seg.reshape(img.shape[:2])
    n = seg.max() + 1
    flat = seg.ravel()
    ch = _region_histograms(flat, n, chans.reshape(-1, 3), 25)
    th = _region_histograms(flat, n, _texture_maps(chans), 10)
    hier = hierarchical_grouping(seg, ch, th, 'CTSF')
    pos = np.arange(len(hier), 0, -1)  # the last merge has position 1
    value = pos * np.random.default_rng(7).random(len(hier))
    ref, seen = [], set()
    for i in sorted(range(len(hier)), key=lambda i: (value[i], i)):
        if tuple(hier[i]) not in seen:
            seen.add(tuple(hier[i]))
            ref.append(hier[i])
    got = selective_search(img, mode='single', max_proposals=None, seed=7)
    np.testing.assert_array_equal(got, np.array(ref, dtype=np.float32))
