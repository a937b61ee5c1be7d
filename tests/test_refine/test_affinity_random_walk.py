# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.refine.affinity_random_walk`.

The reference is a dense numpy transcription of PSA's ``infer_aff.py``:
an explicit double loop over all pixel pairs of the grid builds the
affinity matrix, which is raised to ``beta``, column-normalised and raised
to the power ``n_steps`` with ``np.linalg.matrix_power``.
"""
import numpy as np
import pytest
import torch

from mmwsss.refine.affinity_random_walk import (pair_affinities, pair_indices,
                                                pair_offsets, random_walk,
                                                sparse_transition)


def dense_reference(feats: np.ndarray, radius: int, beta: float, n_steps: int):
    """Transition matrix and ``T ** n_steps`` by brute force (float64)."""
    d, h, w = feats.shape
    n = h * w
    aff = np.zeros((n, n))
    for i in range(n):
        yi, xi = divmod(i, w)
        for j in range(n):
            yj, xj = divmod(j, w)
            if (yi - yj)**2 + (xi - xj)**2 < radius**2:
                dist = np.mean(np.abs(feats[:, yi, xi] - feats[:, yj, xj]))
                aff[i, j] = np.exp(-dist)**beta
    trans = aff / aff.sum(axis=0, keepdims=True)
    return trans, np.linalg.matrix_power(trans, n_steps)


def test_pair_offsets_psa_radius_5():
    offsets = pair_offsets(5)
    # PSA's get_indices_of_pairs(radius=5): 4 + 9 + 9 + 7 + 5 offsets
    assert len(offsets) == 34
    assert offsets[:4] == [(0, 1), (0, 2), (0, 3), (0, 4)]
    # every unordered pair within the radius exactly once
    full = {(dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5) if 0 < dy * dy + dx * dx < 25}
    half = set(offsets)
    assert len(half) == len(offsets)
    assert {(-dy, -dx) for dy, dx in half} | half == full
    assert not half & {(-dy, -dx) for dy, dx in half}
    assert pair_offsets(1) == []
    assert pair_offsets(2) == [(0, 1), (1, -1), (1, 0), (1, 1)]


def test_pair_indices_cover_all_pairs():
    h, w, r = 4, 5, 3
    src, dst = pair_indices(h, w, r)
    got = set(zip(src.tolist(), dst.tolist()))
    want = set()
    for i in range(h * w):
        for j in range(i + 1, h * w):
            (yi, xi), (yj, xj) = divmod(i, w), divmod(j, w)
            if (yi - yj)**2 + (xi - xj)**2 < r * r:
                want.add((i, j))
    assert got == want and len(src) == len(want)


def test_pair_affinities_match_loop():
    torch.manual_seed(0)
    feats = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    affs = pair_affinities(feats, radius=3)
    src, dst = pair_indices(4, 5, 3)
    flat = torch.cat([a.reshape(2, -1) for a in affs], dim=1)
    f = feats.reshape(2, 3, -1)
    for k in range(len(src)):
        ref = torch.exp(-(f[:, :, src[k]] - f[:, :, dst[k]]).abs().mean(1))
        torch.testing.assert_close(flat[:, k], ref)


@pytest.mark.parametrize('layout', ['csr', 'coo'])
def test_transition_and_walk_equal_dense_reference(layout):
    rng = np.random.default_rng(0)
    h, w, d, radius, beta = 6, 7, 3, 3, 8.0
    # small feature differences keep the affinities away from 0
    feats = rng.normal(scale=0.1, size=(d, h, w))
    trans_ref, power_ref = dense_reference(feats, radius, beta, 256)
    trans = sparse_transition(
        torch.from_numpy(feats), radius=radius, beta=beta, layout=layout)
    assert trans.layout == (
        torch.sparse_csr if layout == 'csr' else torch.sparse_coo)
    np.testing.assert_allclose(
        trans.to_dense().numpy(), trans_ref, rtol=1e-12, atol=1e-14)
    # nonzeros: both directions of every pair plus the self loops
    n_pairs = len(pair_indices(h, w, radius)[0])
    assert int((trans.to_dense() != 0).sum()) == 2 * n_pairs + h * w
    cams = rng.random((4, h, w))
    walked = random_walk(trans, torch.from_numpy(cams), n_steps=256)
    ref = (cams.reshape(4, -1) @ power_ref).reshape(4, h, w)
    np.testing.assert_allclose(walked.numpy(), ref, rtol=1e-9, atol=1e-12)
    # few steps too (n_steps is not hard-wired to a power of two)
    walked3 = random_walk(trans, torch.from_numpy(cams), n_steps=3)
    ref3 = cams.reshape(4, -1) @ np.linalg.matrix_power(trans_ref, 3)
    np.testing.assert_allclose(
        walked3.numpy(), ref3.reshape(4, h, w), rtol=1e-9, atol=1e-12)


def test_walk_float32_matches_reference():
    rng = np.random.default_rng(1)
    feats = rng.normal(scale=0.3, size=(5, 5, 6)).astype(np.float32)
    trans_ref, power_ref = dense_reference(
        feats.astype(np.float64), 5, 8.0, 256)
    trans = sparse_transition(torch.from_numpy(feats))
    cams = rng.random((3, 5, 6)).astype(np.float32)
    walked = random_walk(trans, torch.from_numpy(cams))
    assert walked.dtype == torch.float32
    ref = (cams.reshape(3, -1).astype(np.float64) @ power_ref)
    np.testing.assert_allclose(
        walked.numpy(), ref.reshape(3, 5, 6), rtol=1e-4, atol=1e-5)


def test_dense_trans_accepted_and_equal():
    torch.manual_seed(0)
    feats = torch.randn(3, 4, 4, dtype=torch.float64)
    trans = sparse_transition(feats, radius=2)
    cams = torch.rand(2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(
        random_walk(trans.to_dense(), cams, 7), random_walk(trans, cams, 7))


def test_columns_sum_to_one_and_constant_preserved():
    torch.manual_seed(0)
    feats = torch.randn(8, 9, 11, dtype=torch.float64) * 2
    trans = sparse_transition(feats, radius=5, beta=10.0)
    torch.testing.assert_close(trans.to_dense().sum(0),
                               torch.ones(99, dtype=torch.float64))
    # symmetric affinities: T D = A = A^T with D the column sums of A
    dense = trans.to_dense().double()
    degree = 1 / dense.diagonal()  # A_ii = 1 => T_ii = 1 / D_i
    aff = dense * degree[None, :]
    torch.testing.assert_close(aff, aff.t())
    const = torch.full((2, 9, 11), 0.37, dtype=torch.float64)
    torch.testing.assert_close(random_walk(trans, const, 256), const)
    # convex combinations: the walk stays within the input range
    cams = torch.rand(3, 9, 11, dtype=torch.float64)
    out = random_walk(trans, cams, 50)
    lo = cams.flatten(1).min(1).values[:, None, None]
    hi = cams.flatten(1).max(1).values[:, None, None]
    assert (out >= lo - 1e-12).all() and (out <= hi + 1e-12).all()
    assert out.std() < cams.std()  # and it does smooth
    # float32 drifts by rounding only
    out32 = random_walk(
        sparse_transition(feats.float(), 5, 10.0), const.float(), 256)
    torch.testing.assert_close(out32, const.float(), rtol=1e-4, atol=1e-4)


def test_walk_respects_feature_boundary():
    # two regions with very different features: the CAM of the left
    # region spreads inside it but hardly crosses to the right one
    feats = torch.zeros(4, 6, 8)
    feats[:, :, 4:] = 5.0
    cams = torch.zeros(1, 6, 8)
    cams[0, 2, 1] = 1.0
    out = random_walk(sparse_transition(feats), cams, 256)[0]
    left, right = out[:, :4], out[:, 4:]
    assert left.min() > 0.01
    assert right.max() < 1e-10
    # inside a region of equal features T = A D^-1 with a 0/1 adjacency;
    # cam @ T^t tends to the degree-weighted mean (cam . d) / sum(d)
    deg = np.zeros((6, 4))
    for y in range(6):
        for x in range(4):
            deg[y, x] = sum((y - v)**2 + (x - u)**2 < 25 for v in range(6)
                            for u in range(4))
    expected = deg[2, 1] / deg.sum()
    torch.testing.assert_close(
        left, torch.full_like(left, expected), rtol=1e-4, atol=1e-6)


def test_n_steps_zero_and_radius_one():
    feats = torch.randn(2, 3, 3)
    cams = torch.rand(2, 3, 3)
    trans = sparse_transition(feats, radius=1)
    torch.testing.assert_close(trans.to_dense(), torch.eye(9))
    torch.testing.assert_close(random_walk(trans, cams, 0), cams)


def test_bad_inputs():
    feats = torch.randn(3, 4, 4)
    with pytest.raises(ValueError, match='radius'):
        pair_offsets(0)
    with pytest.raises(ValueError, match='radius'):
        sparse_transition(feats, radius=2.5)
    with pytest.raises(ValueError, match=r'feats must be a \(D, h, w\)'):
        sparse_transition(torch.randn(4, 4))
    with pytest.raises(TypeError, match='floating'):
        sparse_transition(torch.ones(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match='NaN'):
        sparse_transition(torch.full((2, 3, 3), float('nan')))
    with pytest.raises(ValueError, match='beta'):
        sparse_transition(feats, beta=0)
    with pytest.raises(ValueError, match='layout'):
        sparse_transition(feats, layout='csc')
    trans = sparse_transition(feats)
    with pytest.raises(ValueError, match=r'cams .* 9 nodes'):
        random_walk(trans, torch.rand(2, 3, 3))
    with pytest.raises(ValueError, match=r'cams must be a \(C, h, w\)'):
        random_walk(trans, torch.rand(16))
    with pytest.raises(ValueError, match='square'):
        random_walk(torch.rand(16, 15), torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match='n_steps'):
        random_walk(trans, torch.rand(1, 4, 4), n_steps=-1)
    with pytest.raises(ValueError, match=r'\(\.\.\., D, h, w\)'):
        pair_affinities(torch.rand(4, 4))


def test_step_msd_and_resolve_walk():
    from mmwsss.refine.affinity_random_walk import resolve_walk, step_msd
    for r in (2, 3, 5):
        disc = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                if dy * dy + dx * dx < r * r]  # self loop included
        assert step_msd(r) == pytest.approx(
            sum(dy * dy + dx * dx for dy, dx in disc) / len(disc))
    irn = (256 * step_msd(5))**0.5 / 128  # IRN: radius 5, 256 steps
    assert resolve_walk(5, dict(reach=irn), (128, 128)) == (5, 256)
    # the demo's 32 grid: the same reach takes 16 steps at radius 5
    assert resolve_walk(5, dict(reach=irn), (32, 32)) == (5, 16)
    # a relative radius resolves to 1.25 -> at least 2 on that grid
    r, n = resolve_walk(dict(rel=5 / 128), dict(reach=irn), (32, 32))
    assert r == 2 and n == round((irn * 32)**2 / step_msd(2))
    assert resolve_walk(4, 7, (9, 9)) == (4, 7)
    with pytest.raises(ValueError, match='n_steps'):
        resolve_walk(5, dict(reach=0), (8, 8))


def test_walk_spread_matches_reach():
    # uniform affinities: a delta spreads with variance n_steps * msd
    from mmwsss.refine.affinity_random_walk import resolve_walk, step_msd
    side = 64
    feats = torch.zeros(2, side, side, dtype=torch.float64)
    radius, steps = resolve_walk(5, dict(reach=0.2), (side, side))
    cams = torch.zeros(1, side, side, dtype=torch.float64)
    cams[0, side // 2, side // 2] = 1
    out = random_walk(sparse_transition(feats, radius, 8.0), cams, steps)[0]
    p = out / out.sum()
    yy, xx = torch.meshgrid(
        torch.arange(side, dtype=torch.float64),
        torch.arange(side, dtype=torch.float64),
        indexing='ij')
    var = (p * ((yy - side // 2)**2 + (xx - side // 2)**2)).sum()
    assert float(var) == pytest.approx(steps * step_msd(radius), rel=0.02)
    assert float(var)**0.5 == pytest.approx(0.2 * side, rel=0.05)
