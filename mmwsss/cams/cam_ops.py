# Copyright (c) mmwsss contributors.
"""Tensor operations on class activation maps (CAMs).

All functions take CAMs shaped ``(K, H, W)`` or ``(N, K, H, W)`` for ``K``
foreground classes and work on any device. Constants follow the public
anchors (see ``configs/cam/README.md``):

- ``normalize_cams(mode='max')``: ``relu(x) / (max_hw relu(x) + eps)``,
  IRN ``make_cam.py`` / PuzzleCAM inference (``eps=1e-5``).
- ``normalize_cams(mode='minmax')``: ``(x - min) / (max - min + eps)`` after
  ``relu``, SEAM / ToCo.
- ``fuse_maps(mode='sum'|'max'|'mean')``: IRN/PSA/SEAM fuse flips and
  scales by sum, ToCo fuses flips by element-wise max, AMN scales by mean.
- ``background_scores``: a constant threshold (IRN 0.15), PSA's
  ``(1 - max_c cam_c) ** alpha``, or the image's Otsu threshold of
  ``max_c cam_c`` (label-free, ``docs/en/user_guides/own_data.md``).
"""
from typing import Optional, Sequence

import numpy as np
import torch

NORM_MODES = ('max', 'minmax', 'none')
FUSE_MODES = ('sum', 'max', 'mean')
BG_MODES = ('const', 'power', 'otsu')


def normalize_cams(cams: torch.Tensor,
                   mode: str = 'max',
                   eps: float = 1e-5) -> torch.Tensor:
    """Normalise each CAM channel to [0, 1] over its spatial extent.

    Args:
        cams (Tensor): ``(..., H, W)`` CAMs (raw or ReLU-ed).
        mode (str): ``'max'`` (IRN/PuzzleCAM), ``'minmax'`` (SEAM/ToCo) or
            ``'none'``.
        eps (float): Stabiliser added to the denominator. Defaults to 1e-5.
            A constant channel maps to 0, also with ``eps=0``.

    Returns:
        Tensor: Normalised CAMs, same shape.
    """
    if mode not in NORM_MODES:
        raise ValueError(f'norm mode must be one of {NORM_MODES}, got '
                         f'{mode!r}')
    cams = torch.relu(cams)
    if mode == 'none':
        return cams
    flat = cams.flatten(-2)
    cmax = flat.max(dim=-1).values[..., None, None]
    if mode == 'max':
        return cams / _nonzero(cmax + eps)
    cmin = flat.min(dim=-1).values[..., None, None]
    return (cams - cmin) / _nonzero(cmax - cmin + eps)


def _nonzero(denom: torch.Tensor) -> torch.Tensor:
    # With eps=0 a constant channel would give 0 / 0 = NaN; its numerator
    # is 0 everywhere, so dividing by 1 instead maps it to 0.
    return torch.where(denom == 0, torch.ones_like(denom), denom)


def fuse_maps(maps: Sequence[torch.Tensor], mode: str = 'sum') -> torch.Tensor:
    """Fuse same-shaped maps (flips or scales) element-wise.

    Args:
        maps (Sequence[Tensor]): Maps of identical shape.
        mode (str): ``'sum'``, ``'max'`` or ``'mean'``.

    Returns:
        Tensor: The fused map.
    """
    if mode not in FUSE_MODES:
        raise ValueError(f'fusion mode must be one of {FUSE_MODES}, got '
                         f'{mode!r}')
    if len(maps) == 0:
        raise ValueError('fuse_maps needs at least one map')
    stacked = torch.stack(list(maps), dim=0)
    if mode == 'sum':
        return stacked.sum(0)
    if mode == 'mean':
        return stacked.mean(0)
    return stacked.max(0).values


def label_mask(img_labels: Sequence[int],
               num_classes: int,
               device=None,
               weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Multi-hot (or soft) vector over foreground classes from image labels.

    Args:
        img_labels (Sequence[int]): Foreground class indices in the
            segmentation label space (1..num_classes-1).
        num_classes (int): Number of classes including background.
        device: Torch device of the result.
        weights (Sequence[float], optional): Target value of each label,
            aligned with ``img_labels`` (soft multi-label targets, e.g. the
            ``img_label_weights`` written by the MixUp / CutMix batch
            augments of :mod:`mmwsss.models.utils.batch_augments`). None
            gives 1 for every label.

    Returns:
        Tensor: ``(num_classes - 1,)`` float vector, 0 for absent classes.
    """
    if weights is not None and len(weights) != len(img_labels):
        raise ValueError(f'{len(weights)} label weights for '
                         f'{len(img_labels)} image labels')
    vec = torch.zeros(num_classes - 1, device=device)
    for i, lab in enumerate(img_labels):
        lab = int(lab)
        if not 0 < lab < num_classes:
            raise ValueError(f'image label {lab} is outside [1, '
                             f'{num_classes - 1}] (num_classes='
                             f'{num_classes}); check the dataset classes '
                             'against the model num_classes')
        vec[lab - 1] = 1 if weights is None else float(weights[i])
    return vec


def background_scores(cams: torch.Tensor,
                      mode: str = 'const',
                      thr: float = 0.15,
                      alpha: float = 4.0) -> torch.Tensor:
    """Background score map for normalised foreground CAMs.

    Args:
        cams (Tensor): ``(K, H, W)`` normalised CAMs in [0, 1].
        mode (str): ``'const'``: the constant ``thr`` (IRN/ReCAM/AMN); a
            pixel is background when no CAM reaches ``thr``.
            ``'power'``: ``(1 - max_k cam_k) ** alpha`` (PSA/SEAM); for the
            argmax this is the constant ``t = (1 - t) ** alpha`` (0.276
            for alpha 4), it differs only as a CRF unary.
            ``'otsu'``: a constant per image, the Otsu threshold of
            ``max_k cam_k`` (:func:`otsu_background`); label-free and
            adapted to how peaked the image's CAMs are.
        thr (float): Constant background score (``'otsu'``: used for a
            flat map). Defaults to 0.15 (IRN).
        alpha (float): Power for ``'power'``. Defaults to 4 (PSA la_crf).

    Returns:
        Tensor: ``(1, H, W)`` background scores.
    """
    if mode not in BG_MODES:
        raise ValueError(f'background mode must be one of {BG_MODES}, got '
                         f'{mode!r}')
    if mode == 'const':
        # new_full, not full_like(cams[:1]): with no labelled class (K=0)
        # cams[:1] is empty and the background channel would be missing.
        return cams.new_full((1, ) + tuple(cams.shape[1:]), float(thr))
    if cams.shape[0] == 0:
        return cams.new_ones((1, ) + tuple(cams.shape[1:]))
    if mode == 'otsu':
        t = otsu_background(cams.max(dim=0).values, thr)
        return cams.new_full((1, ) + tuple(cams.shape[1:]), t)
    return (1 - cams.max(dim=0, keepdim=True).values).clamp(min=0)**alpha


def otsu_background(cam: torch.Tensor,
                    fallback: float = 0.15,
                    bins: int = 256) -> float:
    """Otsu's threshold of a map (``skimage.filters.threshold_otsu``).

    The histogram of ``cam`` (``bins`` bins over its own range) is split
    where the between-class variance is largest; the threshold is that
    bin's centre. Used as a label-free, per-image background score: pixels
    whose strongest labelled CAM exceeds it are foreground.

    Args:
        cam (Tensor | np.ndarray): ``(H, W)`` map, e.g. ``max_k cam_k``.
        fallback (float): Returned for a (nearly) constant map, which has
            no two classes.
        bins (int): Histogram bins. Defaults to 256 (scikit-image's).

    Returns:
        float: The threshold.
    """
    from skimage.filters import threshold_otsu
    x = cam.detach().float().cpu().numpy() if isinstance(
        cam, torch.Tensor) else np.asarray(cam, dtype=np.float32)
    if x.size == 0 or not np.isfinite(x).all() or np.ptp(x) < 1e-6:
        return float(fallback)
    return float(threshold_otsu(x, nbins=bins))
