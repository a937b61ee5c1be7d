# Copyright (c) mmwsss contributors.
"""Influence-aware refinement of IG-CAM seeds (IG-CAM suppl. sec. 6.7.3).

The paper describes three steps in words only; the readings implemented
here are (``r`` is the influence map rescaled to [0, 1] per image,
``r = (I - min I) / (max I - min I)``, and ``r = 0`` everywhere when the
map is constant or absent):

1. **Seeds** ("influence maps are combined with class scores to identify
   high-confidence, high-influence regions"): the foreground scores are
   multiplied by ``1 + beta * r``, the background score is left unchanged,
   so high-influence pixels lean towards the foreground classes.
2. **DenseCRF** ("using the influence maps to weight the pairwise terms
   ... regions with high influence receive stronger spatial constraints"):
   pydensecrf cannot weight the pairwise kernels per pixel, so the
   *relative* weight is changed instead: the unary energy of pixel ``u`` is
   multiplied by ``1 - gamma * r(u)`` (``0 <= gamma < 1``), making the
   unary less confident, hence the pairwise terms relatively stronger,
   where the influence is high. The CRF constants are the paper's "standard
   setting" (sec. 4.1, Table 5): 10 mean-field iterations, ``w = 3`` and
   ``(sigma_alpha, sigma_beta) = (3, 50)``, read as IRN's
   ``crf_inference_label`` (Gaussian ``sxy=3, compat=3``, bilateral
   ``sxy=50``), whose remaining constants (bilateral ``srgb=5,
   compat=10``, label unary ``gt_prob=0.7``) the paper does not state.
   This is the ``'irn_label'`` preset of :class:`DenseCRF`.
3. **Clean-up** ("influence-guided morphological operations ... removing
   small disconnected regions and filling holes"), on the label map:

   a. every connected component (8-connectivity) of a foreground class is
      set to background if its area is below ``min_area`` pixels or its
      mean influence is below ``influence_thr`` times the image's mean
      influence (a ratio, so a uniform map never removes anything for
      ``influence_thr <= 1``);
   b. then every background component (4-connectivity, the dual of 8) that
      does not touch the image border, has fewer than ``hole_area`` pixels
      and whose 4-neighbours outside it all have one class ``c`` is filled
      with ``c``.

With a constant (or no) influence map the refiner is exactly
:class:`DenseCRF` with the same constants followed by the clean-up with
``influence_thr`` ignored (every ratio is 1).

Defaults of ``beta``, ``gamma``, ``min_area``, ``hole_area`` and
``influence_thr`` are not given by the paper; they are guesses.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels, unary_from_softmax

from mmwsss.registry import TASK_UTILS
from .densecrf import SOFTMAX_CLIP, DenseCRF


def normalise_influence(influence: Optional[np.ndarray],
                        shape: Tuple[int, int]) -> np.ndarray:
    """Rescale an influence map to [0, 1]; zeros when constant or None.

    Args:
        influence (np.ndarray, optional): Non-negative map ``(H, W)``.
        shape (tuple[int, int]): Expected ``(H, W)``.

    Returns:
        np.ndarray: float64 map ``(H, W)`` in [0, 1].
    """
    if influence is None:
        return np.zeros(shape, np.float64)
    inf = np.asarray(influence, dtype=np.float64)
    if inf.shape != tuple(shape):
        raise ValueError(f'influence must have shape {tuple(shape)}, got '
                         f'{inf.shape}')
    if not np.all(np.isfinite(inf)):
        raise ValueError('influence contains NaN or infinite values')
    lo, hi = inf.min(), inf.max()
    if hi == lo:
        return np.zeros(shape, np.float64)
    return (inf - lo) / (hi - lo)


def influence_cleanup(label_map: np.ndarray,
                      influence: Optional[np.ndarray] = None,
                      min_area: int = 0,
                      influence_thr: float = 0.0,
                      hole_area: int = 0) -> np.ndarray:
    """Influence-guided removal of small components and hole filling.

    See step 3 of the module docstring.

    Args:
        label_map (np.ndarray): Integer label map ``(H, W)``, 0 is the
            background.
        influence (np.ndarray, optional): Non-negative influence ``(H, W)``;
            None is a uniform map.
        min_area (int): Foreground components with fewer pixels are
            removed. Defaults to 0 (none).
        influence_thr (float): Foreground components whose mean influence
            is below ``influence_thr`` times the image mean are removed.
            Defaults to 0 (none).
        hole_area (int): Enclosed background components with fewer pixels
            are filled. Defaults to 0 (none).

    Returns:
        np.ndarray: The cleaned map, same shape and dtype.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError('label_map must be an integer (H, W) array')
    out = label_map.copy()
    h, w = out.shape
    if influence is None:
        inf = np.ones((h, w), np.float64)
    else:
        inf = np.asarray(influence, dtype=np.float64)
        if inf.shape != (h, w):
            raise ValueError(f'influence must have shape {(h, w)}, got '
                             f'{inf.shape}')
    img_mean = inf.mean() if inf.size else 0.0
    for cls in np.unique(label_map):
        if cls == 0:
            continue
        n, comp = cv2.connectedComponents(
            (label_map == cls).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            mask = comp == k
            ratio = inf[mask].mean() / img_mean if img_mean > 0 else 1.0
            if mask.sum() < min_area or ratio < influence_thr:
                out[mask] = 0
    if hole_area > 0:
        n, comp = cv2.connectedComponents(
            (out == 0).astype(np.uint8), connectivity=4)
        filled = out.copy()
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        for k in range(1, n):
            mask = comp == k
            if (mask.sum() >= hole_area or mask[0].any() or mask[-1].any()
                    or mask[:, 0].any() or mask[:, -1].any()):
                continue
            ring = cv2.dilate(mask.astype(np.uint8), cross).astype(bool)
            neighbours = np.unique(out[ring & ~mask])
            if len(neighbours) == 1:
                filled[mask] = neighbours[0]
        out = filled
    return out


@TASK_UTILS.register_module()
class InfluenceCRF(DenseCRF):
    """Influence-aware DenseCRF refinement, IG-CAM suppl. sec. 6.7.3.

    See the module docstring for the readings. ``__call__(img, scores,
    img_labels)`` works as :class:`DenseCRF` (uniform influence);
    ``influence`` is an optional fourth argument, a non-negative map at
    image size, which :class:`~mmwsss.models.IGCAMSegmentor` passes from
    ``predict`` once its influence has been refreshed. CRF constants default to the paper's (``'irn_label'``);
    every :class:`DenseCRF` argument can be overridden.

    Args:
        beta (float): Seed boost of foreground scores, ``>= 0``.
            Defaults to 1.0.
        gamma (float): Unary damping at high influence, in [0, 1).
            Defaults to 0.5.
        min_area (int): Clean-up: minimum foreground component area.
            Defaults to 0.
        influence_thr (float): Clean-up: minimum ratio of a component's
            mean influence to the image mean. Defaults to 0.5.
        hole_area (int): Clean-up: largest hole filled is ``hole_area - 1``
            pixels. Defaults to 0.
        **crf_kwargs: :class:`DenseCRF` arguments.
    """

    #: :meth:`IGCAMSegmentor.refine_kwargs` passes ``influence`` (the
    #: multi-scale influence map at image size) to refiners declaring this.
    accepts_influence = True

    def __init__(self,
                 beta: float = 1.0,
                 gamma: float = 0.5,
                 min_area: int = 0,
                 influence_thr: float = 0.5,
                 hole_area: int = 0,
                 **crf_kwargs) -> None:
        crf_kwargs.setdefault('preset', 'irn_label')
        super().__init__(**crf_kwargs)
        if not beta >= 0:
            raise ValueError(f'beta must be >= 0, got {beta}')
        if not 0 <= gamma < 1:
            raise ValueError(f'gamma must be in [0, 1), got {gamma}')
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.min_area = int(min_area)
        self.influence_thr = float(influence_thr)
        self.hole_area = int(hole_area)

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', beta={self.beta}, '
                f'gamma={self.gamma}, min_area={self.min_area}, '
                f'influence_thr={self.influence_thr}, '
                f'hole_area={self.hole_area})')

    def seeds(self, sel: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Restricted scores with foreground boosted by ``1 + beta r``."""
        out = sel.astype(np.float32, copy=True)
        out[1:] *= (1.0 + self.beta * r).astype(np.float32)
        return out

    def _influence_inference(self, img: np.ndarray, sel: np.ndarray,
                             r: np.ndarray) -> np.ndarray:
        n, h, w = sel.shape
        crf = dcrf.DenseCRF2D(w, h, n)
        if self.unary == 'label':
            energy = unary_from_labels(
                np.argmax(sel, axis=0),
                n,
                gt_prob=self.gt_prob,
                zero_unsure=False)
        else:
            energy = unary_from_softmax(sel, clip=SOFTMAX_CLIP)
        if self.gamma > 0 and r.any():
            energy = energy * (1.0 - self.gamma * r.reshape(1, -1))
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
        img_labels: Optional[Sequence[int]] = None,
        influence: Optional[np.ndarray] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """CRF marginals (steps 1-2) over the image's classes.

        Args:
            img (np.ndarray): uint8 RGB image ``(H, W, 3)``.
            scores (np.ndarray): Class scores ``(C, H, W)``, background
                first, non-negative (the boost scales them).
            img_labels (Sequence[int], optional): Foreground classes.
            influence (np.ndarray, optional): Influence ``(H, W)``.

        Returns:
            tuple[np.ndarray, np.ndarray]: Marginals ``(n_keys, H, W)`` and
            their class indices ``keys``.
        """
        img, sel, keys = self._prepare(img, scores, img_labels)
        if len(keys) == 1:
            return np.ones_like(sel), keys
        r = normalise_influence(influence, sel.shape[1:])
        return self._influence_inference(img, self.seeds(sel, r), r), keys

    def __call__(self,
                 img: np.ndarray,
                 scores: np.ndarray,
                 img_labels: Optional[Sequence[int]] = None,
                 influence: Optional[np.ndarray] = None) -> np.ndarray:
        """Refine scores into a label map (steps 1-3).

        Args:
            img (np.ndarray): uint8 RGB image ``(H, W, 3)``.
            scores (np.ndarray): Class scores ``(C, H, W)``.
            img_labels (Sequence[int], optional): Foreground classes.
            influence (np.ndarray, optional): Influence ``(H, W)``; None is
                uniform.

        Returns:
            np.ndarray: int64 label map ``(H, W)``.
        """
        q, keys = self.probs(img, scores, img_labels, influence)
        label_map = keys[np.argmax(q, axis=0)]
        return influence_cleanup(label_map, influence, self.min_area,
                                 self.influence_thr, self.hole_area)
