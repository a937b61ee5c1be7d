# Copyright (c) mmwsss contributors.
"""IRN's pair affinities from a class-boundary map (path maximum).

IRN (Ahn, Cho & Kwak, CVPR 2019, ``jiwoon-ahn/irn``) predicts a boundary
probability ``B`` per node of its stride-4 grid and defines the affinity
of two nodes as one minus the strongest boundary on the straight path
between them (the paper's inter-pixel affinity from class boundaries):

    ``a_ij = 1 - max_{k in path(i, j)} B_k``

``misc/indexing.py`` (``PathIndex.get_search_paths_dst``) discretises the
path of an offset ``d = (dy, dx)`` as the lattice points ``(y, x)`` of the
bounding box ``[min(0, dy), max(0, dy)] x [min(0, dx), max(0, dx)]``
whose distance to the *line* through ``0`` and ``d`` is below one node::

    (dy * x - dx * y) ** 2 / (dy ** 2 + dx ** 2) < 1

Both end points belong to the path (distance 0), so the boundary values
of the two nodes themselves count; the path is a band about two nodes
wide, not a one-node Bresenham line: offset ``(1, 1)`` takes all four
nodes of its 2 x 2 box, offset ``(0, 4)`` the five nodes of its row.
IRN sorts the points by ``-(|y| + |x|)`` to find the destination, which
does not change the maximum.

The offsets are those of PSA
(:func:`~mmwsss.refine.affinity_random_walk.pair_offsets`; IRN's
``search_dirs`` are built by the same loops): each
unordered pair closer than ``radius`` once, ``radius`` 10 in IRN's
training and 5 in its inference.

Borders: a path lies inside the bounding box of its two end points, so
when both nodes are inside the grid so is their whole path; pairs with a
node outside the grid are not formed
(:func:`~mmwsss.refine.affinity_random_walk.pair_slices`). IRN's
inference (``propagate_to_edge``) pads the boundary map with 1 (affinity
0) and then crops the padded nodes out of its dense affinity matrix,
which gives the same graph. IRN's *training* (``train_irn.py``) builds
``PathIndex`` on the unpadded crop and takes only source nodes at least
``radius - 1`` from the left, right and bottom borders; here the loss
uses every pair inside the grid, as for PSA's loss (padding is labelled
uncertain, 255, and forms no pair).
"""
from functools import lru_cache
from typing import List, Tuple

import torch
from torch import Tensor

from .affinity_random_walk import _check_radius, pair_offsets, pair_slices

__all__ = ['path_pixels', 'path_max_affinities']


@lru_cache(maxsize=None)
def path_pixels(dy: int, dx: int) -> Tuple[Tuple[int, int], ...]:
    """IRN's discretised straight path from ``(0, 0)`` to ``(dy, dx)``.

    ``PathIndex.get_search_paths_dst`` of IRN's ``misc/indexing.py``: the
    points ``(y, x)`` of the offset's bounding box with
    ``(dy x - dx y) ** 2 < dy ** 2 + dx ** 2`` (distance to the line below
    one node), both end points included, in raster order.

    Args:
        dy (int): Row offset.
        dx (int): Column offset; ``(dy, dx) != (0, 0)``.

    Returns:
        tuple[tuple[int, int], ...]: The path's ``(y, x)`` offsets.
    """
    dy, dx = int(dy), int(dx)
    length_sq = dy * dy + dx * dx
    if length_sq == 0:
        raise ValueError('the offset (0, 0) has no path')
    return tuple((y, x) for y in range(min(0, dy),
                                       max(0, dy) + 1)
                 for x in range(min(0, dx),
                                max(0, dx) + 1)
                 if (dy * x - dx * y)**2 < length_sq)


def path_max_affinities(boundary: Tensor,
                        radius: int = 5,
                        beta: float = 1.0) -> List[Tensor]:
    """``(1 - max_path B) ** beta`` of the pairs of each offset.

    IRN ``edge_to_affinity`` (``1 - max_pool`` over the path indices),
    one offset at a time on grid slices: for the pairs ``(y, x) - (y + dy,
    x + dx)`` of :func:`~mmwsss.refine.affinity_random_walk.pair_slices`
    the maximum of ``boundary`` over the :func:`path_pixels` of the offset
    shifted to each pair.

    Args:
        boundary (Tensor): Boundary probabilities ``(..., h, w)`` in
            ``[0, 1]`` (IRN: ``sigmoid`` of the edge logits).
        radius (int): Pair radius (IRN: 10 in training, 5 in inference).
        beta (float): Power of the affinities (IRN's random walk: 10). 1
            (the default) returns the affinities themselves, without a
            power.

    Returns:
        list[Tensor]: For each offset of ``pair_offsets(radius)``, the
        ``(..., h', w')`` affinities on its pair slices.
    """
    if boundary.dim() < 2:
        raise ValueError('boundary must have shape (..., h, w), got shape '
                         f'{tuple(boundary.shape)}')
    radius = _check_radius(radius)
    beta = float(beta)
    h, w = boundary.shape[-2:]
    out = []
    for dy, dx in pair_offsets(radius):
        (fy, fx), _ = pair_slices(h, w, dy, dx)
        ny, nx = fy.stop - fy.start, fx.stop - fx.start
        if ny == 0 or nx == 0:
            out.append(boundary.new_zeros(boundary.shape[:-2] + (ny, nx)))
            continue
        vals = [
            boundary[..., fy.start + py:fy.start + py + ny,
                     fx.start + px:fx.start + px + nx]
            for py, px in path_pixels(dy, dx)
        ]
        aff = 1 - torch.stack(vals).max(dim=0).values
        out.append(aff if beta == 1.0 else aff.pow(beta))
    return out
