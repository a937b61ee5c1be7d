# Copyright (c) mmwsss contributors.
"""Sparse random walk with AffinityNet features (PSA / IRN style).

The refinement step "RW: Random Walk with AffinityNet" of CamGuide
(Tables IV-VI) is the random walk of AffinityNet (Ahn & Kwak, CVPR 2018,
``jiwoon-ahn/psa``), with the constants of ``psa/infer_aff.py``:

- pairs of feature-grid nodes closer than ``radius=5`` (Euclidean
  distance ``< radius``) are connected, plus a self loop;
- the affinity of a pair is ``a_ij = exp(-mean_d |f_i - f_j|)``
  (``network/resnet38_aff.py``), the self affinity is 1;
- ``A = a ** beta`` with ``beta=8`` (IRN uses 10 with edge affinities);
- the transition matrix is column-normalised,
  ``T = A / A.sum(0, keepdim=True)`` (PSA ``trans_mat``);
- the walk is ``cam_vec @ T ** t`` with ``t = 2 ** logt = 256``.

PSA (and IRN) build ``A`` as a *dense* ``(h w) x (h w)`` matrix and square
it ``logt`` times. At a 512x512 input and stride 4 that is a 16384 x
16384 float matrix, 1 GiB per copy and three copies during a squaring,
the out-of-memory reported for IRN/ReCAM on 11 GB GPUs. Here ``T`` stays
sparse (``h w (2 |offsets| + 1)`` entries, about 1.1 M at 128 x 128
nodes) and the walk is ``n_steps`` sparse matrix products with the
``(h w, C)`` CAM matrix. Squaring would not stay sparse (``T ** 256``
couples nodes up to ``256 * radius`` apart, i.e. it is dense), so the
mat-vec form is the memory-light one; it costs ``O(n_steps nnz C)``
instead of ``O(logt (h w) ** 3)``. Both give ``cam_vec @ T ** n_steps``
up to float rounding.

**Other affinities.** The graph and the walk do not depend on how a
pair's affinity is made: :func:`affinity_transition` builds ``T`` from
any per-offset pair affinities (already raised to ``beta``),
:func:`sparse_transition` is it with AffinityNet's feature affinities
(:func:`pair_affinities`), and IRN's boundary affinities
(:mod:`mmwsss.refine.boundary_affinity`, ``beta=10``) use the same pairs,
self loops, normalisation and walk (IRN ``misc/indexing.py``:
``affinity_sparse2dense``, ``to_transition_matrix``).

Difference to PSA's ``get_indices_of_pairs``: PSA only takes "from" nodes
away from the bottom, left and right borders (``radius - 1`` wide strips),
so pairs of two border nodes of those strips are missing from its graph.
IRN's ``propagate_to_edge`` fixes this by padding; here every pair whose
two nodes lie inside the grid is used, as in IRN.

**Reach relative to the grid.** PSA / IRN fix ``radius=5`` and 256 steps
for a stride-4 grid of a ~512-pixel image (about 128 nodes across). On a
uniform region the walk is a lazy random walk whose steps have the mean
squared length :func:`step_msd` (10.9 node^2 for radius 5), so after
``t`` steps it has spread over ``sqrt(t * step_msd)`` nodes: 53 nodes,
0.41 of a 128 grid, but 1.65 of the 32-node grid of a 128-pixel demo
crop. :func:`resolve_walk` therefore accepts the radius relative to the
grid side (``dict(rel=5 / 128, min=2)``) and the steps as a **reach**,
``dict(reach=f)``: the number of steps whose spread is ``f`` of the grid
side for the resolved radius (``f = 0.41`` is IRN's; 16 steps at radius 5
on a 32 grid). ``beta`` has no spatial unit and is kept as given.
"""
import math
import warnings
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from mmwsss.utils.relative_size import (SizeSpec, check_size, grid_side,
                                        is_relative, resolve_size)

__all__ = [
    'pair_offsets', 'pair_slices', 'pair_affinities', 'pair_indices',
    'affinity_transition', 'sparse_transition', 'random_walk', 'step_msd',
    'resolve_walk', 'check_walk_cfg', 'check_feats', 'check_beta'
]

StepSpec = Union[int, Mapping]


def _check_radius(radius: int) -> int:
    if isinstance(radius, bool) or int(radius) != radius or radius < 1:
        raise ValueError(f'radius must be an integer >= 1, got {radius!r}')
    return int(radius)


def _to_csr(coo: Tensor) -> Tensor:
    """COO -> CSR without PyTorch's "CSR support is in beta" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support')
        return coo.to_sparse_csr()


def pair_offsets(radius: int = 5) -> List[Tuple[int, int]]:
    """Half-neighbourhood offsets ``(dy, dx)`` within ``radius``.

    As PSA's ``get_indices_of_pairs`` / ``ExtractAffinityLabelInRadius``:
    ``(0, dx)`` for ``dx`` in ``[1, radius)``, then for ``dy`` in
    ``[1, radius)`` every ``dx`` in ``(-radius, radius)`` with
    ``dx ** 2 + dy ** 2 < radius ** 2``. The other half (the negated
    offsets) would list every pair twice and is left out: each unordered
    pair of distinct nodes closer than ``radius`` appears exactly once,
    from its earlier node in raster order to the later one. ``radius=5``
    gives 34 offsets (68 neighbours per node).

    Args:
        radius (int): Neighbourhood radius (exclusive), >= 1. Defaults
            to 5 (PSA, IRN inference).

    Returns:
        list[tuple[int, int]]: The offsets ``(dy, dx)``.
    """
    radius = _check_radius(radius)
    offsets = [(0, dx) for dx in range(1, radius)]
    for dy in range(1, radius):
        for dx in range(-radius + 1, radius):
            if dx * dx + dy * dy < radius * radius:
                offsets.append((dy, dx))
    return offsets


def step_msd(radius: int) -> float:
    """Mean squared length (nodes^2) of one step of the uniform lazy walk.

    Every node is joined to the nodes closer than ``radius`` and to
    itself with equal weight (affinity 1), as on a uniform region.

    Args:
        radius (int): Neighbourhood radius.

    Returns:
        float: ``sum |d|^2 / (number of neighbours + 1)``.
    """
    offsets = pair_offsets(radius)
    total = 2 * sum(dy * dy + dx * dx for dy, dx in offsets)
    return total / (2 * len(offsets) + 1)


def check_walk_cfg(radius: SizeSpec, n_steps: StepSpec) -> None:
    """Validate a radius spec and a steps spec (see :func:`resolve_walk`)."""
    if is_relative(radius):
        check_size(radius, 'radius', 'int', 1)
    else:
        _check_radius(radius)
    if isinstance(n_steps, Mapping):
        reach = n_steps.get('reach')
        if set(n_steps) != {'reach'} or isinstance(reach, bool) or \
                not isinstance(reach, (int, float)) or not reach > 0:
            raise ValueError(f'n_steps must be an integer >= 0 or '
                             f'dict(reach=FRACTION > 0), got {n_steps!r}')
    elif isinstance(n_steps, bool) or int(n_steps) != n_steps or \
            n_steps < 0:
        raise ValueError(f'n_steps must be an integer >= 0 or '
                         f'dict(reach=FRACTION), got {n_steps!r}')


def resolve_walk(radius: SizeSpec, n_steps: StepSpec,
                 shape: Sequence[int]) -> Tuple[int, int]:
    """Radius and steps of the walk on a grid of spatial size ``shape``.

    Args:
        radius (int | dict): Radius in nodes, or ``dict(rel=f[, min=...])``
            of the grid side (:mod:`mmwsss.utils.relative_size`, at least
            2 by default: radius 1 has no neighbour).
        n_steps (int | dict): Steps, or ``dict(reach=f)``: the steps after
            which the uniform walk has spread over ``f`` of the grid side,
            ``round((f * side) ** 2 / step_msd(radius))``, at least 1.
        shape (Sequence[int]): ``(..., h, w)`` of the grid.

    Returns:
        tuple[int, int]: ``(radius, n_steps)``.
    """
    check_walk_cfg(radius, n_steps)
    side = grid_side(shape)
    if is_relative(radius):
        radius = resolve_size(radius, side, 'int', 2, 'radius')
    radius = _check_radius(radius)
    if isinstance(n_steps, Mapping):
        spread = float(n_steps['reach']) * side
        n_steps = max(1, int(round(spread * spread / step_msd(radius))))
    return radius, int(n_steps)


def pair_slices(h: int, w: int, dy: int,
                dx: int) -> Tuple[Tuple[slice, slice], Tuple[slice, slice]]:
    """Slices of the "from" and "to" nodes of one offset on an h x w grid.

    Node ``(y, x)`` of ``grid[from]`` pairs with node ``(y + dy, x + dx)``
    of the grid, which is the same position of ``grid[to]``; only pairs
    with both nodes inside the grid are covered.

    Args:
        h (int): Grid height.
        w (int): Grid width.
        dy (int): Row offset (>= 0).
        dx (int): Column offset.

    Returns:
        tuple: ``((rows, cols), (rows, cols))`` slices of the from and to
        nodes (empty when the offset does not fit in the grid).
    """
    x0, x1 = max(0, -dx), w - max(0, dx)
    x1 = max(x0, x1)
    y1 = max(0, h - dy)
    return ((slice(0, y1), slice(x0, x1)), (slice(dy, dy + y1),
                                            slice(x0 + dx, x1 + dx)))


def pair_affinities(feats: Tensor,
                    radius: int = 5,
                    beta: float = 1.0) -> List[Tensor]:
    """Affinities ``exp(-mean_d |f_i - f_j|)`` of the pairs of each offset.

    AffinityNet's affinity (PSA ``network/resnet38_aff.py``), computed one
    offset at a time on grid slices, which needs no index tensors and at
    most one ``(..., D, h, w)`` temporary. With ``beta`` the affinities
    are raised to that power, computed as ``exp(-beta * mean_d |f_i -
    f_j|)`` (``beta=1``, the default, gives the affinities themselves).

    Args:
        feats (Tensor): Features ``(..., D, h, w)``.
        radius (int): Neighbourhood radius, see :func:`pair_offsets`.
        beta (float): Power of the affinities. Defaults to 1.

    Returns:
        list[Tensor]: For each offset of :func:`pair_offsets`, the
        affinities ``(..., h', w')`` of the pairs on :func:`pair_slices`.
    """
    if feats.dim() < 3:
        raise ValueError('feats must have shape (..., D, h, w), got shape '
                         f'{tuple(feats.shape)}')
    beta = float(beta)
    h, w = feats.shape[-2:]
    out = []
    for dy, dx in pair_offsets(radius):
        (fy, fx), (ty, tx) = pair_slices(h, w, dy, dx)
        diff = (feats[..., fy, fx] - feats[..., ty, tx]).abs()
        out.append(torch.exp(-beta * diff.mean(dim=-3)))
    return out


def pair_indices(h: int,
                 w: int,
                 radius: int = 5,
                 device=None) -> Tuple[Tensor, Tensor]:
    """Flat node indices of all pairs, in the order of :func:`pair_offsets`.

    Args:
        h (int): Grid height.
        w (int): Grid width.
        radius (int): Neighbourhood radius.
        device (torch.device, optional): Device of the result.

    Returns:
        tuple[Tensor, Tensor]: int64 ``src`` and ``dst`` (raster indices
        ``y * w + x``), matching ``torch.cat([a.flatten() for a in
        pair_affinities(feats, radius)])``.
    """
    idx = torch.arange(h * w, device=device).view(h, w)
    src, dst = [], []
    for dy, dx in pair_offsets(radius):
        (fy, fx), (ty, tx) = pair_slices(h, w, dy, dx)
        src.append(idx[fy, fx].reshape(-1))
        dst.append(idx[ty, tx].reshape(-1))
    if not src:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    return torch.cat(src), torch.cat(dst)


def affinity_transition(affs: Sequence[Tensor],
                        shape: Sequence[int],
                        radius: int = 5,
                        layout: str = 'csr',
                        dtype: Optional[torch.dtype] = None,
                        device=None) -> Tensor:
    """Sparse column-normalised transition matrix of given pair affinities.

    The walk's graph for any pairwise affinity (AffinityNet's feature
    affinities, IRN's boundary path affinities): ``A_ij = A_ji = affs``
    for the pairs of :func:`pair_offsets` (both directions), ``A_ii = 1``
    and ``T = A / A.sum(0, keepdim=True)`` (PSA ``infer_aff.py``, IRN
    ``indexing.to_transition_matrix``). Raise the affinities to ``beta``
    before (:func:`pair_affinities` takes it).

    Args:
        affs (Sequence[Tensor]): For each offset of
            ``pair_offsets(radius)``, the ``(h', w')`` affinities of the
            pairs on :func:`pair_slices` (finite, >= 0).
        shape (Sequence[int]): ``(..., h, w)`` of the grid.
        radius (int): Neighbourhood radius of ``affs``. Defaults to 5.
        layout (str): ``'csr'`` (default, fast products) or ``'coo'``.
        dtype (torch.dtype, optional): dtype of ``T`` when ``affs`` is
            empty (radius 1); else that of ``affs``.
        device (torch.device, optional): Device of ``T`` when ``affs`` is
            empty; else that of ``affs``.

    Returns:
        Tensor: Sparse ``(h w, h w)`` matrix ``T`` (raster node order
        ``y * w + x``).
    """
    if layout not in ('csr', 'coo'):
        raise ValueError(f"layout must be 'csr' or 'coo', got {layout!r}")
    radius = _check_radius(radius)
    h, w = (int(s) for s in tuple(shape)[-2:])
    offsets = pair_offsets(radius)
    affs = list(affs)
    if len(affs) != len(offsets):
        raise ValueError(f'{len(affs)} affinity maps for the '
                         f'{len(offsets)} offsets of radius {radius}')
    flat = []
    for (dy, dx), aff in zip(offsets, affs):
        (fy, fx), _ = pair_slices(h, w, dy, dx)
        size = (fy.stop - fy.start, fx.stop - fx.start)
        if tuple(aff.shape) != size:
            raise ValueError(f'affinities of offset {(dy, dx)} must have '
                             f'shape {size} on a {h} x {w} grid, got '
                             f'{tuple(aff.shape)}')
        flat.append(aff.reshape(-1))
    if flat:
        aff = torch.cat(flat)
        dtype, device = aff.dtype, aff.device
        if not aff.is_floating_point():
            raise TypeError(f'affinities must be floating point, got '
                            f'{aff.dtype}')
        if not torch.isfinite(aff).all() or (aff < 0).any():
            raise ValueError('affinities must be finite and >= 0')
    else:
        dtype = dtype or torch.get_default_dtype()
        aff = torch.zeros(0, dtype=dtype, device=device)
    n = h * w
    src, dst = pair_indices(h, w, radius, device)
    diag = torch.arange(n, device=device)
    rows = torch.cat([src, dst, diag])
    cols = torch.cat([dst, src, diag])
    vals = torch.cat([aff, aff, aff.new_ones(n)])
    colsum = aff.new_zeros(n).index_add_(0, cols, vals)
    vals = vals / colsum[cols]
    # the indices are built above, in range and unique by construction
    trans = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), vals, (n, n),
        check_invariants=False).coalesce()
    return _to_csr(trans) if layout == 'csr' else trans


def sparse_transition(feats: Tensor,
                      radius: int = 5,
                      beta: float = 8.0,
                      layout: str = 'csr') -> Tensor:
    """Sparse column-normalised transition matrix of AffinityNet features.

    ``A_ij = exp(-mean_d |f_i - f_j|) ** beta`` for nodes ``i != j``
    closer than ``radius`` (both directions), ``A_ii = 1``, and
    ``T = A / A.sum(0, keepdim=True)`` (PSA ``infer_aff.py``; ``beta=8``,
    ``radius=5``). ``A`` is symmetric, so ``T = A D^-1`` with the node
    degrees ``D``; every column of ``T`` sums to 1. ``a ** beta`` is
    computed as ``exp(-beta * mean_d |f_i - f_j|)``
    (:func:`pair_affinities`, then :func:`affinity_transition`).

    Args:
        feats (Tensor): Affinity features ``(D, h, w)`` of one image.
        radius (int): Neighbourhood radius. Defaults to 5.
        beta (float): Affinity power (PSA 8, IRN 10). Defaults to 8.
        layout (str): ``'csr'`` (default, fast products) or ``'coo'``.

    Returns:
        Tensor: Sparse ``(h w, h w)`` float matrix ``T`` (raster node
        order ``y * w + x``) on the device of ``feats``.
    """
    check_feats(feats)
    beta = check_beta(beta)
    if layout not in ('csr', 'coo'):
        raise ValueError(f"layout must be 'csr' or 'coo', got {layout!r}")
    radius = _check_radius(radius)
    return affinity_transition(
        pair_affinities(feats, radius, beta),
        feats.shape,
        radius,
        layout,
        dtype=feats.dtype,
        device=feats.device)


def check_feats(feats: Tensor) -> None:
    """Validate the ``(D, h, w)`` features of one image for the walk."""
    if not isinstance(feats, Tensor) or feats.dim() != 3:
        shape = tuple(feats.shape) if isinstance(feats, Tensor) else \
            type(feats).__name__
        raise ValueError(f'feats must be a (D, h, w) tensor, got {shape}')
    if not feats.is_floating_point():
        raise TypeError(f'feats must be floating point, got {feats.dtype}')
    if feats.shape[0] < 1 or feats.shape[1] < 1 or feats.shape[2] < 1:
        raise ValueError(f'feats must be non-empty, got shape '
                         f'{tuple(feats.shape)}')
    if not torch.isfinite(feats).all():
        raise ValueError('feats contain NaN or infinite values')


def check_beta(beta: float) -> float:
    """``beta`` as a float, which must be finite and > 0."""
    beta = float(beta)
    if not (beta > 0 and beta < float('inf')):
        raise ValueError(f'beta must be a finite number > 0, got {beta}')
    return beta


def random_walk(trans: Tensor, cams: Tensor, n_steps: int = 256) -> Tensor:
    """Propagate CAMs with a transition matrix: ``cam_vec @ T ** n_steps``.

    PSA computes ``T ** 256`` by 8 dense squarings (``logt=8``); this
    applies ``T`` ``n_steps`` times to the ``(h w, C)`` CAM matrix instead
    (``x <- T^t x``, one sparse product per step), which never forms a
    dense matrix.

    Since every column of ``T`` sums to 1, each output value is a convex
    combination of input values: a constant CAM stays constant and the
    walked CAM stays within ``[min, max]`` of the input. ``T = A D^-1``
    with symmetric ``A``, so on a connected graph ``cam @ T ** t`` tends
    to the degree-weighted mean ``(cam . d) / sum(d)`` as ``t`` grows
    (total CAM mass is not preserved).

    Args:
        trans (Tensor): ``(n, n)`` column-normalised transition matrix,
            sparse (CSR or COO, see :func:`sparse_transition`) or dense.
        cams (Tensor): ``(C, h, w)`` maps with ``h * w == n``.
        n_steps (int): Number of steps ``t`` (PSA/IRN: 256). 0 returns the
            input.

    Returns:
        Tensor: ``(C, h, w)`` walked maps in the dtype of ``trans``.
    """
    if not isinstance(trans, Tensor) or trans.dim() != 2 or \
            trans.shape[0] != trans.shape[1]:
        shape = tuple(trans.shape) if isinstance(trans, Tensor) else \
            type(trans).__name__
        raise ValueError(f'trans must be a square (n, n) matrix, got {shape}')
    if not isinstance(cams, Tensor) or cams.dim() != 3:
        shape = tuple(cams.shape) if isinstance(cams, Tensor) else \
            type(cams).__name__
        raise ValueError(f'cams must be a (C, h, w) tensor, got {shape}')
    c, h, w = cams.shape
    if h * w != trans.shape[0]:
        raise ValueError(f'cams of shape {tuple(cams.shape)} have {h * w} '
                         f'nodes but trans is {tuple(trans.shape)}')
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f'n_steps must be an integer >= 0, got {n_steps!r}')
    if trans.layout == torch.sparse_csr:
        trans_t = _to_csr(trans.to_sparse_coo().t().coalesce())
    elif trans.layout == torch.sparse_coo:
        trans_t = _to_csr(trans.t().coalesce())
    elif trans.layout == torch.strided:
        trans_t = trans.t().contiguous()
    else:
        raise ValueError(f'unsupported trans layout {trans.layout}')
    x = cams.to(device=trans.device, dtype=trans.dtype)
    x = x.reshape(c, h * w).t().contiguous()
    for _ in range(int(n_steps)):
        x = trans_t @ x
    return x.t().reshape(c, h, w)
