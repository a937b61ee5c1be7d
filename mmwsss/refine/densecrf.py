# Copyright (c) mmwsss contributors.
"""Fully connected CRF refinement of CAM scores and label-map morphology.

Two parameterisations of :class:`pydensecrf.densecrf.DenseCRF2D` are in
common use for WSSS pseudo labels and are available as presets:

- ``'irn_label'``: IRN's ``crf_inference_label`` (``misc/imutils.py``): a
  *label* unary ``unary_from_labels(labels, n, gt_prob=0.7,
  zero_unsure=False)``, a Gaussian kernel ``(sxy=3, compat=3)``, a
  bilateral kernel ``(sxy=50, srgb=5, compat=10)`` and 10 mean-field
  iterations.
- ``'psa_softmax'``: PSA's ``crf_inference`` (``tool/imutils.py``): a
  *softmax* unary ``unary_from_softmax(probs)``, a Gaussian kernel
  ``(sxy=3/scale_factor, compat=3)``, a bilateral kernel
  ``(sxy=80/scale_factor, srgb=13, compat=10)`` and 10 iterations.

Both restrict the CRF to the classes of the image (background plus the
image-level labels) and map the result back to the full class index space.
"""
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels, unary_from_softmax

from mmwsss.registry import TASK_UTILS

#: Constants of the public CRF wrappers, see the module docstring.
CRF_PRESETS: Dict[str, dict] = {
    'irn_label':
    dict(
        unary='label',
        gt_prob=0.7,
        gauss_sxy=3.,
        gauss_compat=3.,
        bi_sxy=50.,
        bi_srgb=5.,
        bi_compat=10.,
        n_iters=10),
    'psa_softmax':
    dict(
        unary='softmax',
        gt_prob=0.7,  # unused by the softmax unary
        gauss_sxy=3.,
        gauss_compat=3.,
        bi_sxy=80.,
        bi_srgb=13.,
        bi_compat=10.,
        n_iters=10),
}

# Clip applied by ``unary_from_softmax`` before taking -log (PSA relies on
# the library default).
SOFTMAX_CLIP = 1e-5


def _check_image(img: np.ndarray) -> np.ndarray:
    """Return ``img`` as a C-contiguous uint8 HxWx3 array.

    Integer arrays with values in [0, 255] are cast; float arrays are
    rounded to the nearest integer if all values lie in [0, 255]. Anything
    else raises.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError('img must be an RGB image of shape (H, W, 3), got '
                         f'shape {img.shape}')
    if img.dtype != np.uint8:
        if img.dtype == np.bool_ or not (np.issubdtype(img.dtype, np.integer)
                                         or np.issubdtype(
                                             img.dtype, np.floating)):
            raise TypeError(f'img must be uint8 RGB, got dtype {img.dtype}')
        if img.size:
            if np.issubdtype(img.dtype,
                             np.floating) and not np.all(np.isfinite(img)):
                raise ValueError('img contains NaN or infinite values')
            lo, hi = img.min(), img.max()
            if lo < 0 or hi > 255:
                raise ValueError(
                    f'img of dtype {img.dtype} has values in [{lo}, {hi}], '
                    'outside [0, 255]; pass a uint8 RGB image (a float image '
                    'in [0, 1] must be multiplied by 255 first)')
        if np.issubdtype(img.dtype, np.floating):
            img = np.rint(img)
        img = img.astype(np.uint8)
    return np.ascontiguousarray(img)


def _select_keys(scores: np.ndarray,
                 img_labels: Optional[Sequence[int]]) -> np.ndarray:
    """Class indices the CRF runs on: background then the image labels."""
    num_classes = scores.shape[0]
    if img_labels is None:
        fg = np.flatnonzero(
            np.any(scores[1:].reshape(num_classes - 1, -1) != 0, axis=1)) + 1
        return np.concatenate([[0], fg]).astype(np.int64)
    labels = sorted({int(x) for x in img_labels})
    if any(x < 1 for x in labels):
        raise ValueError('img_labels are foreground class indices (>= 1, '
                         f'background 0 is implicit), got {list(img_labels)}')
    if labels and labels[-1] >= num_classes:
        raise ValueError(
            f'img_labels {labels} index class {labels[-1]} but scores have '
            f'only {num_classes} channels (classes 0..{num_classes - 1})')
    return np.array([0] + labels, dtype=np.int64)


@TASK_UTILS.register_module()
class DenseCRF:
    """Dense CRF refinement of per-image class scores.

    Parameters left as ``None`` take their value from ``preset`` or, when
    no preset is given, from IRN's label-unary CRF (the ``'irn_label'``
    preset). Any parameter given explicitly (not ``None``) overrides the
    preset, e.g. ``DenseCRF(preset='psa_softmax', n_iters=1)`` is PSA's CRF
    with a single iteration.

    ``scale_factor`` divides both spatial standard deviations
    (``gauss_sxy`` and ``bi_sxy``) whatever their source, as PSA's
    ``crf_inference(..., scale_factor)`` does; it is meant for images
    downscaled by that factor. With the default 1.0 it has no effect.

    Unaries:

    - ``'label'``: the hard labels ``argmax`` over the restricted scores
      (ties go to the lower class index, hence to background) compacted to
      ``0..n-1``, then ``unary_from_labels(labels, n, gt_prob,
      zero_unsure=False)``.
    - ``'softmax'``: the restricted scores used as probabilities by
      ``unary_from_softmax``, which clips them to ``[1e-5, 1]`` before
      ``-log``; they are not renormalised (as in PSA, where the background
      channel is e.g. ``(1 - max cam) ** alpha``).

    The object holds only plain attributes and is picklable, so it can be
    sent to a multiprocessing pool.

    Args:
        unary (str, optional): ``'label'`` or ``'softmax'``.
        gt_prob (float, optional): Confidence of the label unary, in
            (0, 1). Unused by the softmax unary.
        gauss_sxy (float, optional): Spatial std of the Gaussian kernel.
        gauss_compat (float, optional): Weight of the Gaussian kernel.
        bi_sxy (float, optional): Spatial std of the bilateral kernel.
        bi_srgb (float, optional): Colour std of the bilateral kernel.
        bi_compat (float, optional): Weight of the bilateral kernel.
        n_iters (int, optional): Mean-field iterations.
        scale_factor (float): Divisor of both spatial stds. Defaults to 1.
        preset (str, optional): ``'irn_label'``, ``'psa_softmax'`` or
            None (IRN constants).
    """

    def __init__(self,
                 unary: Optional[str] = None,
                 gt_prob: Optional[float] = None,
                 gauss_sxy: Optional[float] = None,
                 gauss_compat: Optional[float] = None,
                 bi_sxy: Optional[float] = None,
                 bi_srgb: Optional[float] = None,
                 bi_compat: Optional[float] = None,
                 n_iters: Optional[int] = None,
                 scale_factor: float = 1.0,
                 preset: Optional[str] = None) -> None:
        if preset is not None and preset not in CRF_PRESETS:
            raise ValueError(f'unknown CRF preset {preset!r}; choose from '
                             f'{sorted(CRF_PRESETS)} or None')
        cfg = dict(CRF_PRESETS[preset or 'irn_label'])
        given = dict(
            unary=unary,
            gt_prob=gt_prob,
            gauss_sxy=gauss_sxy,
            gauss_compat=gauss_compat,
            bi_sxy=bi_sxy,
            bi_srgb=bi_srgb,
            bi_compat=bi_compat,
            n_iters=n_iters)
        cfg.update({k: v for k, v in given.items() if v is not None})
        if cfg['unary'] not in ('label', 'softmax'):
            raise ValueError("unary must be 'label' or 'softmax', got "
                             f"{cfg['unary']!r}")
        if not 0 < cfg['gt_prob'] < 1:
            raise ValueError('gt_prob must be in (0, 1), got '
                             f"{cfg['gt_prob']}")
        if not scale_factor > 0:
            raise ValueError(f'scale_factor must be > 0, got {scale_factor}')
        if int(cfg['n_iters']) != cfg['n_iters'] or cfg['n_iters'] < 0:
            raise ValueError('n_iters must be a non-negative integer, got '
                             f"{cfg['n_iters']}")
        for key in ('gauss_sxy', 'bi_sxy', 'bi_srgb'):
            if not cfg[key] > 0:
                raise ValueError(f'{key} must be > 0, got {cfg[key]}')
        self.preset = preset
        self.unary = cfg['unary']
        self.gt_prob = float(cfg['gt_prob'])
        self.gauss_sxy = float(cfg['gauss_sxy'])
        self.gauss_compat = float(cfg['gauss_compat'])
        self.bi_sxy = float(cfg['bi_sxy'])
        self.bi_srgb = float(cfg['bi_srgb'])
        self.bi_compat = float(cfg['bi_compat'])
        self.n_iters = int(cfg['n_iters'])
        self.scale_factor = float(scale_factor)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(unary={self.unary!r}, '
                f'gt_prob={self.gt_prob}, gauss_sxy={self.gauss_sxy}, '
                f'gauss_compat={self.gauss_compat}, bi_sxy={self.bi_sxy}, '
                f'bi_srgb={self.bi_srgb}, bi_compat={self.bi_compat}, '
                f'n_iters={self.n_iters}, '
                f'scale_factor={self.scale_factor}, preset={self.preset!r})')

    def _prepare(
        self, img: np.ndarray, scores: np.ndarray,
        img_labels: Optional[Sequence[int]]
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate inputs; return the image, restricted scores and keys."""
        scores = np.asarray(scores)
        if scores.ndim != 3:
            raise ValueError('scores must have shape (C, H, W), got shape '
                             f'{scores.shape}')
        if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(
                scores.dtype, np.complexfloating):
            raise TypeError(f'scores must be real numbers, got dtype '
                            f'{scores.dtype}')
        img = _check_image(img)
        if img.shape[:2] != scores.shape[1:]:
            raise ValueError(
                f'img of shape {img.shape} (H, W, 3) and scores of shape '
                f'{scores.shape} (C, H, W) differ in spatial size')
        if scores.shape[0] < 1:
            raise ValueError('scores must have at least the background '
                             'channel')
        keys = _select_keys(scores, img_labels)
        sel = scores[keys].astype(np.float32)
        if np.isnan(sel).any():
            raise ValueError('scores contain NaN in the channels used by the '
                             f'CRF (classes {keys.tolist()})')
        return img, sel, keys

    def _inference(self, img: np.ndarray, sel: np.ndarray) -> np.ndarray:
        """Run the CRF on restricted scores; return (n, H, W) marginals."""
        n, h, w = sel.shape
        crf = dcrf.DenseCRF2D(w, h, n)
        if self.unary == 'label':
            labels = np.argmax(sel, axis=0)
            energy = unary_from_labels(
                labels, n, gt_prob=self.gt_prob, zero_unsure=False)
        else:
            energy = unary_from_softmax(sel, clip=SOFTMAX_CLIP)
        crf.setUnaryEnergy(np.ascontiguousarray(energy, dtype=np.float32))
        crf.addPairwiseGaussian(
            sxy=self.gauss_sxy / self.scale_factor, compat=self.gauss_compat)
        crf.addPairwiseBilateral(
            sxy=self.bi_sxy / self.scale_factor,
            srgb=self.bi_srgb,
            rgbim=img,
            compat=self.bi_compat)
        q = crf.inference(self.n_iters)
        return np.asarray(q, dtype=np.float32).reshape(n, h, w)

    def probs(
        self,
        img: np.ndarray,
        scores: np.ndarray,
        img_labels: Optional[Sequence[int]] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """CRF marginals over the image's classes.

        Args:
            img (np.ndarray): uint8 RGB image, (H, W, 3).
            scores (np.ndarray): Class scores (C, H, W), channel 0 is the
                background.
            img_labels (Sequence[int], optional): Foreground class indices
                of the image. If None, every foreground channel with a
                nonzero score is used.

        Returns:
            tuple[np.ndarray, np.ndarray]: The marginals, float32
            ``(n_keys, H, W)``, and ``keys`` (int64, ``(n_keys,)``), the
            class index of each marginal channel (``keys[0] == 0``).
        """
        img, sel, keys = self._prepare(img, scores, img_labels)
        if len(keys) == 1:
            return np.ones_like(sel), keys
        return self._inference(img, sel), keys

    def __call__(self,
                 img: np.ndarray,
                 scores: np.ndarray,
                 img_labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """Refine scores into a label map.

        Args:
            img (np.ndarray): uint8 RGB image, (H, W, 3). Integer arrays in
                [0, 255] and float arrays in [0, 255] (rounded) are
                converted.
            scores (np.ndarray): Class scores (C, H, W) at image size,
                channel 0 is the background.
            img_labels (Sequence[int], optional): Foreground class indices
                of the image. If None, every foreground channel with a
                nonzero score is used.

        Returns:
            np.ndarray: int64 label map (H, W) in the full class index space
            (values among ``[0] + img_labels``).
        """
        q, keys = self.probs(img, scores, img_labels)
        return keys[np.argmax(q, axis=0)]


def morph_close(label_map: np.ndarray,
                kernel_size: int = 15,
                ignore_index: int = 255,
                kernel_shape: str = 'rect') -> np.ndarray:
    """Per-class morphological closing of a label map.

    Each foreground class (every value other than 0 and ``ignore_index``)
    is closed separately with :func:`cv2.morphologyEx`. Classes are handled
    in order of increasing pixel area (ties: lower class index first), and
    a class may only claim pixels that are background (0) in the *input*
    map and not yet claimed by an earlier (smaller) class. Foreground and
    ignore pixels are therefore never overwritten, and when two closings
    overlap on background the smaller class wins, so thin objects are not
    swallowed by large neighbours.

    Args:
        label_map (np.ndarray): Integer label map (H, W).
        kernel_size (int): Side of the structuring element. Values <= 1
            leave the map unchanged. Defaults to 15.
        ignore_index (int): Label never changed nor closed. Defaults to
            255.
        kernel_shape (str): ``'rect'`` (square) or ``'ellipse'``.

    Returns:
        np.ndarray: The closed label map, same shape and dtype.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f'label_map must be (H, W), got shape '
                         f'{label_map.shape}')
    if not np.issubdtype(label_map.dtype, np.integer):
        raise TypeError(f'label_map must be an integer array, got dtype '
                        f'{label_map.dtype}')
    shapes = {'rect': cv2.MORPH_RECT, 'ellipse': cv2.MORPH_ELLIPSE}
    if kernel_shape not in shapes:
        raise ValueError(f"kernel_shape must be 'rect' or 'ellipse', got "
                         f'{kernel_shape!r}')
    out = label_map.copy()
    if kernel_size <= 1:
        return out
    kernel = cv2.getStructuringElement(shapes[kernel_shape],
                                       (int(kernel_size), int(kernel_size)))
    values, counts = np.unique(label_map, return_counts=True)
    keep = (values != 0) & (values != ignore_index)
    values, counts = values[keep], counts[keep]
    order = np.lexsort((values, counts))
    free = label_map == 0
    # Pad with background: OpenCV's default border would count pixels
    # outside the image as object in the erosion and grow objects near the
    # border out to it.
    pad = int(kernel_size)
    for cls in values[order]:
        mask = cv2.copyMakeBorder((label_map == cls).astype(np.uint8), pad,
                                  pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
        closed = closed[pad:-pad, pad:-pad] > 0
        fill = closed & free
        out[fill] = cls
        free &= ~fill
    return out
