# Copyright (c) mmwsss contributors.
"""Box masks and masked average pooling on feature maps (IG-CAM eq. (6)).

Conventions
-----------
Boxes are ``(x1, y1, x2, y2)`` in pixel-edge coordinates of the network
input (a box covering pixel columns ``3..7`` has ``x1 = 3, x2 = 8``), as
packed by :class:`~mmwsss.datasets.transforms.PackWSSSInputs`. On a feature
map of size ``(h, w)`` computed from an input of size ``(H, W)`` the box is
mapped to feature coordinates by ``x * w / W`` and ``y * h / H`` (feature
cell ``j`` covers input pixels ``[j W / w, (j + 1) W / w)``) and clipped to
the map.

``Mask(p_k)`` on a feature map is the **area fraction** of every feature cell
covered by the box, ``M_k(i, j) = |[y1, y2] & [i, i + 1]| * |[x1, x2] & [j, j
+ 1]|``. For boxes aligned to the feature stride it is the binary mask of
the paper; for the others it is its exact area-weighted version, so a box
smaller than one cell still has a non-empty mask and pooled values vary
continuously with the box. ``sum_u M_k(u)`` is the box area in feature cells.

Masked sums ``sum_u M_k(u) x(u)`` for all boxes are read from an integral
image: with ``S(y, x) = int_0^y int_0^x x(u) du`` of the piecewise-constant
map, ``S`` is bilinear inside every cell, so bilinear interpolation of the
zero-padded cumulative sums at the fractional box corners is exact. Cost
``O(N C h w + N K C)`` instead of ``O(N K C h w)`` for dense masks. The map
is centred (per channel mean subtracted, added back times the area) before
the cumulative sum to limit cancellation in float32.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'axis_coverage', 'box_area', 'box_masks', 'box_sums', 'select_boxes',
    'to_feature_boxes'
]

SELECT_MODES = ('rank', 'area', 'random')


def to_feature_boxes(boxes: Tensor, img_shape: Tuple[int, int],
                     feat_shape: Tuple[int, int]) -> Tensor:
    """Map input-pixel boxes to feature-cell coordinates, clipped.

    Args:
        boxes (Tensor): ``(..., 4)`` boxes ``x1, y1, x2, y2`` in pixels of
            an input of size ``img_shape``.
        img_shape (tuple[int, int]): Input ``(H, W)``.
        feat_shape (tuple[int, int]): Feature ``(h, w)``.

    Returns:
        Tensor: ``(..., 4)`` boxes in feature cells, inside ``[0, w] x [0,
        h]``.
    """
    (ih, iw), (fh, fw) = img_shape, feat_shape
    scale = boxes.new_tensor([fw / iw, fh / ih, fw / iw, fh / ih])
    out = boxes * scale
    upper = boxes.new_tensor([fw, fh, fw, fh])
    return torch.minimum(out.clamp_min(0), upper)


def box_area(boxes: Tensor) -> Tensor:
    """``(x2 - x1) * (y2 - y1)``, zero for empty boxes."""
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * \
        (boxes[..., 3] - boxes[..., 1]).clamp_min(0)


def select_boxes(boxes: Tensor,
                 limit: Optional[int],
                 mode: str = 'rank',
                 ranks: Optional[Tensor] = None) -> Tensor:
    """Keep at most ``limit`` non-empty boxes of one image.

    The proposal choice of :class:`~mmwsss.models.heads.
    InstanceGuidedCAMHead` (in training and test) and of
    :mod:`mmwsss.evaluation.proposal_quality`, so both see the same boxes.

    Args:
        boxes (Tensor): ``(K, 4)`` boxes (any leading shape is flattened).
        limit (int, optional): Most boxes kept; None keeps all.
        mode (str): ``'rank'`` (best ranked first: ``ranks`` ascending,
            ties and ``ranks=None`` in row order), ``'area'`` (largest
            first) or ``'random'`` (uniformly at random with the global
            torch RNG).
        ranks (Tensor, optional): ``(K,)`` ranks (0 = best).

    Returns:
        Tensor: ``(K', 4)`` selected boxes, empty boxes dropped.
    """
    if mode not in SELECT_MODES:
        raise ValueError(f'mode must be one of {SELECT_MODES}, got {mode!r}')
    boxes = boxes.reshape(-1, 4)
    keep = box_area(boxes) > 0
    boxes = boxes[keep]
    if ranks is not None:
        ranks = ranks.reshape(-1)[keep]
    k = boxes.shape[0]
    limit = k if limit is None else min(k, int(limit))
    if limit == k and mode != 'random':
        return boxes
    if mode == 'rank':
        order = torch.arange(k, device=boxes.device) if ranks is None \
            else torch.argsort(ranks.to(boxes.device), stable=True)
    elif mode == 'area':
        order = torch.argsort(box_area(boxes), descending=True, stable=True)
    else:
        order = torch.randperm(k).to(boxes.device)
    return boxes[order[:limit]]


def axis_coverage(lo: Tensor, hi: Tensor, size: int) -> Tensor:
    """Overlap of the intervals ``[lo, hi]`` with the cells ``[i, i + 1]``.

    Args:
        lo (Tensor): ``(...)`` interval starts.
        hi (Tensor): ``(...)`` interval ends.
        size (int): Number of cells.

    Returns:
        Tensor: ``(..., size)`` overlaps in ``[0, 1]``.
    """
    i = torch.arange(size, device=lo.device, dtype=lo.dtype)
    left = torch.maximum(lo.unsqueeze(-1), i)
    right = torch.minimum(hi.unsqueeze(-1), i + 1)
    return (right - left).clamp_min(0)


def box_masks(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Dense area-fraction masks ``M_k`` of boxes in feature coordinates.

    Args:
        boxes (Tensor): ``(..., 4)`` boxes in feature cells.
        size (tuple[int, int]): Map size ``(h, w)``.

    Returns:
        Tensor: ``(..., h, w)`` masks.
    """
    my = axis_coverage(boxes[..., 1], boxes[..., 3], size[0])
    mx = axis_coverage(boxes[..., 0], boxes[..., 2], size[1])
    return my.unsqueeze(-1) * mx.unsqueeze(-2)


def _corner_values(integral: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """Bilinear samples of ``(N, C, h + 1, w + 1)`` at ``(N, Q)`` points."""
    n, c, hp, wp = integral.shape
    y0 = ys.floor().clamp(0, hp - 2)
    x0 = xs.floor().clamp(0, wp - 2)
    ty, tx = (ys - y0).unsqueeze(1), (xs - x0).unsqueeze(1)  # (N, 1, Q)
    y0, x0 = y0.long(), x0.long()
    flat = integral.flatten(2)  # (N, C, (h+1)(w+1))

    def tap(dy: int, dx: int) -> Tensor:
        idx = ((y0 + dy) * wp + x0 + dx).unsqueeze(1).expand(n, c, -1)
        return flat.gather(2, idx)

    return (1 - ty) * ((1 - tx) * tap(0, 0) + tx * tap(0, 1)) + \
        ty * ((1 - tx) * tap(1, 0) + tx * tap(1, 1))


def box_sums(x: Tensor, boxes: Tensor) -> Tensor:
    """Masked sums ``sum_u M_k(u) x(u)`` for every box (integral image).

    Args:
        x (Tensor): ``(N, C, h, w)`` maps.
        boxes (Tensor): ``(N, K, 4)`` boxes in feature cells (clipped to the
            map, see :func:`to_feature_boxes`).

    Returns:
        Tensor: ``(N, K, C)`` sums in the dtype of ``x`` (computed in at
        least float32), differentiable w.r.t. ``x`` (and the box
        coordinates).
    """
    n, c, h, w = x.shape
    if boxes.dim() != 3 or boxes.shape[0] != n or boxes.shape[-1] != 4:
        raise ValueError(f'boxes must be (N, K, 4) with N = {n}, got '
                         f'{tuple(boxes.shape)}')
    k = boxes.shape[1]
    if k == 0:
        return x.new_zeros(n, 0, c)
    out_dtype = x.dtype
    # at least float32: half-precision cumulative sums lose the small boxes
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    mean = x.mean(dim=(2, 3))  # (N, C)
    centred = x - mean[..., None, None]
    integral = centred.new_zeros(n, c, h + 1, w + 1)
    integral[:, :, 1:, 1:] = centred.cumsum(2).cumsum(3)
    b = boxes.to(x.dtype)
    x1, y1, x2, y2 = b.unbind(-1)
    ys = torch.cat([y2, y1, y2, y1], dim=1)
    xs = torch.cat([x2, x2, x1, x1], dim=1)
    v = _corner_values(integral, ys, xs).view(n, c, 4, k)
    sums = v[:, :, 0] - v[:, :, 1] - v[:, :, 2] + v[:, :, 3]  # (N, C, K)
    out = sums.transpose(1, 2) + box_area(b).unsqueeze(-1) * \
        mean.unsqueeze(1)
    return out.to(out_dtype)
