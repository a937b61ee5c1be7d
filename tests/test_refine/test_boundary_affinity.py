# Copyright (c) mmwsss contributors.
"""Tests of IRN's path affinities (:mod:`mmwsss.refine.boundary_affinity`).

References: the path of a pair is recomputed geometrically (the grid
nodes of the pair's bounding box closer than one node to the line through
the two nodes) in a loop over every pair of a small grid; IRN's inference
graph (``misc/indexing.py``: ``PathIndex`` on the boundary map padded
with 1, dense affinity matrix, crop, ``to_transition_matrix``) is rebuilt
densely in numpy.
"""
import math

import numpy as np
import pytest
import torch

from mmwsss.refine.affinity_random_walk import (affinity_transition,
                                                pair_affinities, pair_indices,
                                                pair_offsets, random_walk,
                                                sparse_transition)
from mmwsss.refine.boundary_affinity import path_max_affinities, path_pixels


def line_path(i, j):
    """Nodes of the bounding box of ``i``, ``j`` within 1 of their line."""
    (yi, xi), (yj, xj) = i, j
    length = math.hypot(yj - yi, xj - xi)
    out = set()
    for y in range(min(yi, yj), max(yi, yj) + 1):
        for x in range(min(xi, xj), max(xi, xj) + 1):
            cross = (yj - yi) * (x - xi) - (xj - xi) * (y - yi)
            if abs(cross) / length < 1:
                out.add((y, x))
    return out


def brute_force_affinities(boundary, radius, beta=1.0):
    """``{(src, dst): (1 - max path B) ** beta}`` over all node pairs."""
    h, w = boundary.shape
    out = {}
    for i in range(h * w):
        yi, xi = divmod(i, w)
        for j in range(i + 1, h * w):
            yj, xj = divmod(j, w)
            if (yi - yj)**2 + (xi - xj)**2 >= radius**2:
                continue
            path = line_path((yi, xi), (yj, xj))
            assert {(yi, xi), (yj, xj)} <= path
            assert all(0 <= y < h and 0 <= x < w for y, x in path)
            top = max(boundary[y, x] for y, x in path)
            out[(i, j)] = (1 - top)**beta
    return out


def as_pair_dict(affs, h, w, radius):
    src, dst = pair_indices(h, w, radius)
    vals = torch.cat([a.reshape(-1) for a in affs])
    assert len(vals) == len(src)
    return {(int(s), int(d)): float(v) for s, d, v in zip(src, dst, vals)}


def test_path_pixels_irn_reading():
    # a row offset: the whole row; a diagonal step: the whole 2 x 2 box
    assert path_pixels(0, 4) == tuple((0, x) for x in range(5))
    assert path_pixels(1, 1) == ((0, 0), (0, 1), (1, 0), (1, 1))
    # (2, 4): (2 x - 4 y) ** 2 < 20 leaves out 4 of the 15 box nodes
    assert set(path_pixels(2, 4)) == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1),
                                      (1, 2), (1, 3), (1, 4), (2, 2), (2, 3),
                                      (2, 4)}
    # (3, 3): |x - y| <= 1
    assert set(path_pixels(3, 3)) == {(y, x)
                                      for y in range(4)
                                      for x in range(4) if abs(x - y) <= 1}
    # a negative column offset spans the box to the left
    assert set(path_pixels(1, -2)) == {(0, -2), (0, -1), (0, 0), (1, -2),
                                       (1, -1), (1, 0)}
    with pytest.raises(ValueError, match='no path'):
        path_pixels(0, 0)


@pytest.mark.parametrize('radius', [5, 10])
def test_path_pixels_match_the_geometric_reading(radius):
    """Every offset's path (both end points included) is the set of box
    nodes closer than one node to the line, as IRN's PathIndex; the paths
    are symmetric (the same nodes seen from either end)."""
    offsets = pair_offsets(radius)
    assert len(offsets) == {5: 34, 10: 152}[radius]
    for dy, dx in offsets:
        path = set(path_pixels(dy, dx))
        assert path == line_path((0, 0), (dy, dx))
        assert {(dy - y, dx - x) for y, x in path} == path


@pytest.mark.parametrize('shape, radius', [((6, 7), 3), ((5, 9), 5),
                                           ((4, 12), 10), ((1, 6), 4),
                                           ((7, 1), 3)])
def test_path_max_matches_brute_force_including_borders(shape, radius):
    """Every pair with both nodes in the grid, and only those, with the
    maximum of the boundary over its path (borders and corners included:
    pairs leaving the grid are not formed)."""
    gen = torch.Generator().manual_seed(sum(shape) + radius)
    boundary = torch.rand(shape, generator=gen, dtype=torch.float64)
    got = as_pair_dict(path_max_affinities(boundary, radius), *shape, radius)
    ref = brute_force_affinities(boundary.numpy(), radius)
    assert got.keys() == ref.keys()
    for key, val in ref.items():
        assert got[key] == pytest.approx(val, abs=1e-12), key
    # beta is a power of the affinities
    got = as_pair_dict(
        path_max_affinities(boundary, radius, beta=10.0), *shape, radius)
    for key, val in brute_force_affinities(boundary.numpy(), radius,
                                           10.0).items():
        assert got[key] == pytest.approx(val, rel=1e-10, abs=1e-300), key


def test_path_max_border_pairs_and_batch_dims():
    # a boundary only on the last column: pairs ending on it have affinity 0
    boundary = torch.zeros(2, 3, 5, 6, dtype=torch.float64)
    boundary[..., :, 5] = 1.0
    affs = path_max_affinities(boundary, radius=3)
    assert all(a.shape[:2] == (2, 3) for a in affs)
    pairs = as_pair_dict([a[1, 2] for a in affs], 5, 6, 3)
    for (i, j), a in pairs.items():
        touches = i % 6 == 5 or j % 6 == 5
        assert a == (0.0 if touches else 1.0), (divmod(i, 6), divmod(j, 6))
    # the bottom-right corner node has its pairs to the left and above
    corner = 5 * 6 - 1
    assert {i
            for i, j in pairs if j == corner} == {
                y * 6 + x
                for y in range(5)
                for x in range(6) if 0 < (4 - y)**2 + (5 - x)**2 < 9
            }
    with pytest.raises(ValueError, match='radius'):
        path_max_affinities(boundary, radius=0)
    with pytest.raises(ValueError, match=r'\(\.\.\., h, w\)'):
        path_max_affinities(torch.rand(4), radius=2)


def test_path_max_gradient_goes_to_the_path_maximum():
    boundary = torch.full((1, 5), 0.1, dtype=torch.float64)
    boundary[0, 2] = 0.7
    boundary.requires_grad_(True)
    affs = path_max_affinities(boundary, radius=5)
    # offset (0, 4) joins node 0 and node 4 through the maximum at node 2
    offsets = pair_offsets(5)
    a = affs[offsets.index((0, 4))]
    assert a.shape == (1, 1) and float(a.detach()) == pytest.approx(0.3)
    a.sum().backward()
    expected = torch.zeros(1, 5, dtype=torch.float64)
    expected[0, 2] = -1.0
    assert torch.equal(boundary.grad, expected)


def irn_dense_affinity(boundary: np.ndarray, radius: int) -> np.ndarray:
    """IRN ``propagate_to_edge``'s dense affinity (before ``** beta``).

    The boundary is padded with 1 left, right and at the bottom, every
    node of the unpadded region's rows and the padded columns' inner part
    is a source (``PathIndex.get_path_indices`` on the padded size), the
    path maximum gives the affinity, the matrix is made symmetric with a
    unit diagonal and the padded nodes are cropped out.
    """
    h, w = boundary.shape
    r = radius
    hp, wp = h + r, w + 2 * r
    padded = np.ones((hp, wp))
    padded[:h, r:r + w] = boundary
    rf = r - 1  # PathIndex.radius_floor = ceil(radius) - 1
    ch, cw = hp - rf, wp - 2 * rf  # cropped height / width
    dense = np.zeros((hp * wp, hp * wp))
    for y in range(ch):
        for x in range(rf, rf + cw):
            src = y * wp + x
            for dy, dx in pair_offsets(r):
                dst = (y + dy) * wp + x + dx
                top = max(padded[y + py, x + px]
                          for py, px in path_pixels(dy, dx))
                dense[src, dst] = dense[dst, src] = 1 - top
    dense[np.arange(hp * wp), np.arange(hp * wp)] = 1.0
    dense = dense.reshape(hp, wp, hp, wp)[:-r, r:-r, :-r, r:-r]
    return dense.reshape(h * w, h * w)


def test_transition_and_walk_equal_irn_dense_reference():
    h, w, radius, beta = 6, 7, 3, 10.0
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(h, w, generator=gen, dtype=torch.float64) * 2
    boundary = torch.sigmoid(logits)
    aff = irn_dense_affinity(boundary.numpy(), radius)
    scaled = aff**beta
    trans_ref = scaled / scaled.sum(0, keepdims=True)
    trans = affinity_transition(
        path_max_affinities(boundary, radius, beta), (h, w), radius)
    np.testing.assert_allclose(
        trans.to_dense().numpy(), trans_ref, rtol=1e-12, atol=1e-15)
    # walk: IRN multiplies the CAMs by 1 - B and squares T 8 times
    cams = torch.rand(2, h, w, generator=gen, dtype=torch.float64)
    x = (cams * (1 - boundary)).reshape(2, -1).numpy()
    ref = x @ np.linalg.matrix_power(trans_ref, 256)
    got = random_walk(trans, cams * (1 - boundary), 256)
    np.testing.assert_allclose(
        got.reshape(2, -1).numpy(), ref, rtol=1e-9, atol=1e-12)


def test_affinity_transition_equals_sparse_transition_and_checks():
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(3, 5, 6, generator=gen)
    for radius, beta in ((1, 8.0), (2, 8.0), (5, 10.0)):
        ref = sparse_transition(feats, radius, beta, layout='coo')
        got = affinity_transition(
            pair_affinities(feats, radius, beta), (5, 6),
            radius,
            layout='coo',
            dtype=feats.dtype)
        assert torch.equal(got.indices(), ref.indices())
        assert torch.equal(got.values(), ref.values())
    affs = pair_affinities(feats, 3)
    with pytest.raises(ValueError, match='affinity maps for the'):
        affinity_transition(affs[:-1], (5, 6), 3)
    with pytest.raises(ValueError, match='must have shape'):
        affinity_transition(affs, (5, 7), 3)
    bad = [a.clone() for a in affs]
    bad[0][0, 0] = -0.5
    with pytest.raises(ValueError, match='finite and >= 0'):
        affinity_transition(bad, (5, 6), 3)
    with pytest.raises(ValueError, match='layout'):
        affinity_transition(affs, (5, 6), 3, layout='csc')
