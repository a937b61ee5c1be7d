# Copyright (c) mmwsss contributors.
"""Random walk of class scores over a SLIC superpixel graph.

CamGuide (sec. II.I.2, eqs. (13)-(16)) propagates the normalised CAMs over
a graph of SLIC superpixels [Achanta et al., TPAMI 2012]:

- eq. (13): the unary of class ``k`` on superpixel ``s`` is the mean score
  inside it, ``u_{k,s} = 1/|s| sum_{(i,j) in s} target[i, j]``;
- eq. (14): superpixels that touch in the 4-neighbourhood of pixels are
  joined by an edge of weight ``exp(-||mu_a - mu_b|| / (2 sigma_color^2))``
  where ``mu`` is the mean colour of a superpixel;
- eq. (15): the weights are row-normalised into a transition matrix ``P``;
- eq. (16): ``u_{t+1} = P u_t`` is iterated ``n_iters`` times (12 in the
  paper's Table III, with 1100 SLIC segments).

Readings of the points the paper leaves open:

- **Norm in eq. (14).** The paper divides the *plain* (not squared)
  Euclidean distance by ``2 sigma_color^2``. This is kept as written, so
  ``2 sigma_color^2`` is a colour *distance* scale (the distance at which
  the weight falls to ``1/e``), not a variance.
- **Colour space.** Mean colours are taken in CIELab by default
  (``color_space='lab'``): SLIC itself clusters in CIELab, and the
  Euclidean Lab distance is the CIE76 colour difference, whose scale is
  perceptual (about 2.3 is a just noticeable difference). The default
  ``sigma_color=2.5`` gives ``2 sigma_color^2 = 12.5``: a barely visible
  difference keeps a weight of ~0.8, a clear one (10) ~0.45, a strong edge
  (60) ~0.008. ``color_space='rgb'`` uses RGB scaled to [0, 1]; its
  default ``sigma_color=0.23`` gives the same distance scale (one unit of
  RGB-[0, 1] distance is about 118 Lab units for nearby colours).
- **Graph.** Two superpixels are neighbours when at least one pair of
  4-adjacent pixels has one pixel in each; the edge weight does not depend
  on the length of the shared border.
- **Self loop.** Eq. (15) normalises over the *neighbourhood*. With
  ``self_loop=True`` (default) every superpixel is counted in its own
  neighbourhood with weight ``exp(0) = 1`` (eq. (14) at zero colour
  distance): the walk is lazy, so 12 steps do not oscillate between the
  two sides of a bipartite-like graph nor replace a superpixel's own
  evidence by the plain average of its neighbours. ``self_loop=False`` is
  eq. (15) with the node excluded. A superpixel whose weights sum to zero
  (e.g. a single-superpixel image without self loop) keeps its value.

``P`` is row-stochastic, so a score that is constant over the image (such
as CamGuide's stochastic background threshold) stays constant.

**Renormalisation after the walk** (:class:`SLICRandomWalk`,
``renorm='class'``, default). The walk averages every foreground map with
its neighbours, so its peak falls (on the demo's 32 x 32 grid by half or
more) while a constant background score stays where it was: comparing the
walked maps with an un-renormalised constant background marks almost
everything background (CamGuide issue #19, D2). As in the AffinityNet /
IRN random walk, the walked foreground maps are therefore divided by
their maximum before the argmax: per class (``'class'``, each class back
to a peak of 1, as the inputs are after eq. (3)) or by the maximum over
all classes (``'global'``, IRN ``make_sem_seg_labels.py``). ``None``
compares the raw walked scores (the earlier behaviour). The background
channel is never rescaled.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
from skimage.color import rgb2lab
from skimage.segmentation import slic

from mmwsss.registry import TASK_UTILS
from mmwsss.utils.relative_size import (SizeSpec, check_size, is_relative,
                                        resolve_size)
from .densecrf import _select_keys

#: Renormalisations of the walked foreground maps, see the module docstring.
RENORMS = (None, 'class', 'global')

#: Default ``sigma_color`` per colour space, see the module docstring.
DEFAULT_SIGMA_COLOR = {'lab': 2.5, 'rgb': 0.23}


class SuperpixelGraph(NamedTuple):
    """Output of :func:`superpixel_graph`.

    Attributes:
        segments (np.ndarray): int64 superpixel labels (H, W), contiguous
            from ``start_label``.
        colors (np.ndarray): float64 mean colour of each superpixel
            ``(S, 3)`` in the chosen colour space; row ``i`` is label
            ``start_label + i``.
        transition (scipy.sparse.csr_matrix): Row-stochastic ``(S, S)``
            transition matrix, eq. (15), indexed like ``colors``.
    """
    segments: np.ndarray
    colors: np.ndarray
    transition: sp.csr_matrix


def _check_uint8_image(img: np.ndarray) -> np.ndarray:
    """Return ``img`` as a C-contiguous uint8 (H, W, 3) array or raise."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError('img must be an RGB image of shape (H, W, 3), got '
                         f'shape {img.shape}')
    if img.dtype != np.uint8:
        raise ValueError(f'img must be a uint8 RGB image, got dtype '
                         f'{img.dtype}')
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f'img must not be empty, got shape {img.shape}')
    return np.ascontiguousarray(img)


def _check_scores(scores: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Return ``scores`` as float64 (C, H, W) or raise."""
    scores = np.asarray(scores)
    if scores.ndim != 3:
        raise ValueError('scores must have shape (C, H, W), got shape '
                         f'{scores.shape}')
    real = np.issubdtype(scores.dtype, np.integer) or np.issubdtype(
        scores.dtype, np.floating)
    if scores.dtype == np.bool_ or not real:
        raise ValueError(f'scores must be real numbers, got dtype '
                         f'{scores.dtype}')
    if scores.shape[1:] != tuple(hw):
        raise ValueError(f'scores of shape {scores.shape} (C, H, W) and img '
                         f'of spatial size {tuple(hw)} (H, W) differ in '
                         'spatial size')
    if scores.shape[0] < 1:
        raise ValueError('scores must have at least one channel')
    scores = scores.astype(np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError('scores contain NaN or infinite values')
    return scores


def _resolve_sigma(sigma_color: Optional[float], color_space: str) -> float:
    if color_space not in DEFAULT_SIGMA_COLOR:
        raise ValueError("color_space must be 'lab' or 'rgb', got "
                         f'{color_space!r}')
    if sigma_color is None:
        return DEFAULT_SIGMA_COLOR[color_space]
    if not sigma_color > 0:
        raise ValueError(f'sigma_color must be > 0, got {sigma_color}')
    return float(sigma_color)


def _color_features(img: np.ndarray, color_space: str) -> np.ndarray:
    """Per-pixel colour in ``color_space``, float64 (H, W, 3)."""
    if color_space == 'lab':
        return rgb2lab(img)
    return img.astype(np.float64) / 255.


def _segment_means(flat: np.ndarray, values: np.ndarray,
                   n_sp: int) -> np.ndarray:
    """Mean of each row of ``values`` (K, P) per superpixel: (S, K)."""
    counts = np.bincount(flat, minlength=n_sp).astype(np.float64)
    sums = [np.bincount(flat, weights=v, minlength=n_sp) for v in values]
    return np.stack(sums, axis=1) / counts[:, None]


def superpixel_graph(img: np.ndarray,
                     n_segments: int = 1100,
                     compactness: float = 10.,
                     sigma_color: Optional[float] = None,
                     start_label: int = 0,
                     self_loop: bool = True,
                     color_space: str = 'lab') -> SuperpixelGraph:
    """SLIC superpixels and their colour-weighted transition matrix.

    Superpixels come from :func:`skimage.segmentation.slic` (CIELab
    clustering, ``channel_axis=-1``, connectivity enforced) and are
    relabelled to be contiguous. The transition matrix follows CamGuide
    eqs. (14)-(15) as read in the module docstring.

    Args:
        img (np.ndarray): uint8 RGB image (H, W, 3).
        n_segments (int): Approximate number of superpixels. Defaults to
            1100 (CamGuide Table III).
        compactness (float): SLIC compactness. Defaults to 10.
        sigma_color (float, optional): ``sigma_color`` of eq. (14), in
            units of ``color_space``. None takes 2.5 for ``'lab'`` and 0.23
            for ``'rgb'``.
        start_label (int): Label of the first superpixel. Defaults to 0.
        self_loop (bool): Count every superpixel in its own neighbourhood
            with weight 1 (lazy walk). False is eq. (15) with the node
            excluded. Defaults to True.
        color_space (str): ``'lab'`` (CIELab) or ``'rgb'`` (RGB in
            [0, 1]) for the mean colours. Defaults to ``'lab'``.

    Returns:
        SuperpixelGraph: ``(segments, colors, transition)``.
    """
    img = _check_uint8_image(img)
    sigma = _resolve_sigma(sigma_color, color_space)
    if int(n_segments) != n_segments or n_segments < 1:
        raise ValueError(f'n_segments must be a positive integer, got '
                         f'{n_segments}')
    if not compactness > 0:
        raise ValueError(f'compactness must be > 0, got {compactness}')
    raw = slic(
        img,
        n_segments=int(n_segments),
        compactness=float(compactness),
        start_label=0,
        channel_axis=-1)
    _, inverse = np.unique(raw, return_inverse=True)
    seg = inverse.reshape(raw.shape).astype(np.int64)
    n_sp = int(seg.max()) + 1
    flat = seg.ravel()

    feats = _color_features(img, color_space).reshape(-1, 3)
    colors = _segment_means(flat, feats.T, n_sp)

    # Superpixel pairs that touch in the 4-neighbourhood of pixels.
    src = np.concatenate([seg[:, :-1].ravel(), seg[:-1, :].ravel()])
    dst = np.concatenate([seg[:, 1:].ravel(), seg[1:, :].ravel()])
    cross = src != dst
    fwd = np.stack((src[cross], dst[cross]), axis=1)
    pairs = np.unique(np.concatenate((fwd, fwd[:, ::-1])), axis=0)
    pairs = pairs.reshape(-1, 2)
    dist = np.linalg.norm(colors[pairs[:, 0]] - colors[pairs[:, 1]], axis=1)
    weights = np.exp(-dist / (2. * sigma**2))  # eq. (14), norm not squared
    rows, cols = pairs[:, 0], pairs[:, 1]
    if self_loop:
        diag = np.arange(n_sp)
        rows = np.concatenate([rows, diag])
        cols = np.concatenate([cols, diag])
        weights = np.concatenate([weights, np.ones(n_sp)])
    mat = sp.csr_matrix((weights, (rows, cols)), shape=(n_sp, n_sp))
    row_sum = np.asarray(mat.sum(axis=1)).ravel()
    isolated = row_sum <= 0
    if isolated.any():
        # Nothing to walk to: the superpixel keeps its value.
        mat = mat + sp.csr_matrix(
            (np.ones(isolated.sum()),
             (np.flatnonzero(isolated), np.flatnonzero(isolated))),
            shape=(n_sp, n_sp))
        row_sum[isolated] = 1.
    transition = sp.csr_matrix(sp.diags(1. / row_sum) @ mat)  # eq. (15)
    return SuperpixelGraph(seg + int(start_label), colors, transition)


def slic_random_walk(img: np.ndarray,
                     scores: np.ndarray,
                     n_segments: int = 1100,
                     n_iters: int = 12,
                     compactness: float = 10.,
                     sigma_color: Optional[float] = None,
                     self_loop: bool = True,
                     color_space: str = 'lab') -> np.ndarray:
    """Propagate class scores over the SLIC superpixel graph.

    CamGuide eq. (13) averages every channel inside each superpixel,
    eq. (16) applies ``u <- P u`` ``n_iters`` times with the transition
    matrix of :func:`superpixel_graph`, and the superpixel values are
    broadcast back to their pixels.

    Args:
        img (np.ndarray): uint8 RGB image (H, W, 3).
        scores (np.ndarray): Real scores (C, H, W), e.g. normalised CAMs.
        n_segments (int): Approximate number of superpixels. Defaults to
            1100 (CamGuide Table III).
        n_iters (int): Random-walk steps. 0 returns the superpixel means.
            Defaults to 12 (CamGuide Table III).
        compactness (float): SLIC compactness. Defaults to 10.
        sigma_color (float, optional): See :func:`superpixel_graph`.
        self_loop (bool): See :func:`superpixel_graph`. Defaults to True.
        color_space (str): See :func:`superpixel_graph`.

    Returns:
        np.ndarray: float32 walked scores (C, H, W), constant on every
        superpixel.
    """
    img = _check_uint8_image(img)
    scores = _check_scores(scores, img.shape[:2])
    if int(n_iters) != n_iters or n_iters < 0:
        raise ValueError(f'n_iters must be a non-negative integer, got '
                         f'{n_iters}')
    graph = superpixel_graph(
        img,
        n_segments=n_segments,
        compactness=compactness,
        sigma_color=sigma_color,
        start_label=0,
        self_loop=self_loop,
        color_space=color_space)
    flat = graph.segments.ravel()
    n_sp = graph.transition.shape[0]
    # eq. (13): mean score of every superpixel, (S, C)
    unary = _segment_means(flat, scores.reshape(scores.shape[0], -1), n_sp)
    for _ in range(int(n_iters)):
        unary = graph.transition @ unary  # eq. (16)
    out = unary[flat].T.reshape(scores.shape)
    return out.astype(np.float32)


@TASK_UTILS.register_module()
class SLICRandomWalk:
    """SLIC superpixel random walk producing a label map (CamGuide eq. 29).

    The walk (:func:`slic_random_walk`) runs on the image's classes only:
    channel 0 (background) and the channels of ``img_labels``; the walked
    foreground maps are renormalised (``renorm``, see the module
    docstring); the label map is the argmax (ties go to the lower class
    index, hence to background) mapped back to the full class index space,
    as :class:`~mmwsss.refine.DenseCRF` does. No morphology is applied (the
    paper's ``SLIC_RW(mask)``).

    ``n_segments`` is a count or relative to the image *area*
    (``dict(rel=1100 / 128 ** 2)``: Table III's 1100 segments on the
    128 x 128 stride-4 grid of a 512 crop; at least 1), resolved per image
    (:meth:`resolve_segments`), so the superpixels cover the same part of
    the image at every grid size.

    The object holds only plain attributes and is picklable, so it can be
    sent to a multiprocessing pool.

    Args:
        n_segments (int | dict): Approximate number of superpixels.
            Defaults to 1100 (CamGuide Table III).
        n_iters (int): Random-walk steps. Defaults to 12 (Table III).
        compactness (float): SLIC compactness. Defaults to 10.
        sigma_color (float, optional): See :func:`superpixel_graph`.
        self_loop (bool): See :func:`superpixel_graph`. Defaults to True.
        color_space (str): ``'lab'`` or ``'rgb'``. Defaults to ``'lab'``.
        renorm (str, optional): ``'class'`` (default), ``'global'`` or
            None, see the module docstring.
    """

    def __init__(self,
                 n_segments: SizeSpec = 1100,
                 n_iters: int = 12,
                 compactness: float = 10.,
                 sigma_color: Optional[float] = None,
                 self_loop: bool = True,
                 color_space: str = 'lab',
                 renorm: Optional[str] = 'class') -> None:
        sigma = _resolve_sigma(sigma_color, color_space)
        if is_relative(n_segments):
            n_segments = check_size(n_segments, 'n_segments', 'count', 1)
        elif isinstance(
                n_segments,
                bool) or int(n_segments) != n_segments or n_segments < 1:
            raise ValueError(f'n_segments must be a positive integer, got '
                             f'{n_segments}')
        if renorm not in RENORMS:
            raise ValueError(f'renorm must be one of {RENORMS}, got '
                             f'{renorm!r}')
        if int(n_iters) != n_iters or n_iters < 0:
            raise ValueError(f'n_iters must be a non-negative integer, got '
                             f'{n_iters}')
        if not compactness > 0:
            raise ValueError(f'compactness must be > 0, got {compactness}')
        self.n_segments = n_segments if is_relative(n_segments) else int(
            n_segments)
        self.n_iters = int(n_iters)
        self.compactness = float(compactness)
        self.sigma_color = sigma
        self.self_loop = bool(self_loop)
        self.color_space = color_space
        self.renorm = renorm

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(n_segments={self.n_segments}, '
                f'n_iters={self.n_iters}, compactness={self.compactness}, '
                f'sigma_color={self.sigma_color}, '
                f'self_loop={self.self_loop}, '
                f'color_space={self.color_space!r}, '
                f'renorm={self.renorm!r})')

    def resolve_segments(self, shape: Sequence[int]) -> int:
        """Superpixel count for an image of spatial size ``shape``."""
        if not is_relative(self.n_segments):
            return int(self.n_segments)
        h, w = (int(s) for s in tuple(shape)[:2])
        return resolve_size(self.n_segments, h * w, 'count', 1, 'n_segments')

    def probs(
        self,
        img: np.ndarray,
        scores: np.ndarray,
        img_labels: Optional[Sequence[int]] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Walked scores of the image's classes.

        Args:
            img (np.ndarray): uint8 RGB image (H, W, 3).
            scores (np.ndarray): Class scores (C, H, W), channel 0 is the
                background.
            img_labels (Sequence[int], optional): Foreground class indices
                of the image. If None, every foreground channel with a
                nonzero score is used.

        Returns:
            tuple[np.ndarray, np.ndarray]: The walked (and renormalised,
            see ``renorm``) scores, float32 ``(n_keys, H, W)``, and
            ``keys`` (int64, ``(n_keys,)``), the class index of each
            channel (``keys[0] == 0``).
        """
        img = _check_uint8_image(img)
        scores = np.asarray(scores)
        if scores.ndim != 3:
            raise ValueError('scores must have shape (C, H, W), got shape '
                             f'{scores.shape}')
        keys = _select_keys(scores, img_labels)
        walked = slic_random_walk(
            img,
            scores[keys],
            n_segments=self.resolve_segments(img.shape),
            n_iters=self.n_iters,
            compactness=self.compactness,
            sigma_color=self.sigma_color,
            self_loop=self.self_loop,
            color_space=self.color_space)
        if self.renorm is not None and len(keys) > 1:
            fg = walked[1:]
            if self.renorm == 'class':
                top = fg.reshape(len(fg), -1).max(axis=1)[:, None, None]
            else:
                top = np.full((1, 1, 1), fg.max(), np.float32)
            walked[1:] = np.where(top > 0, fg / np.where(top > 0, top, 1), fg)
        return walked, keys

    def __call__(self,
                 img: np.ndarray,
                 scores: np.ndarray,
                 img_labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """Walk the scores and take the argmax.

        Args:
            img (np.ndarray): uint8 RGB image (H, W, 3).
            scores (np.ndarray): Class scores (C, H, W), channel 0 is the
                background.
            img_labels (Sequence[int], optional): Foreground class indices
                of the image. If None, every foreground channel with a
                nonzero score is used.

        Returns:
            np.ndarray: int64 label map (H, W) in the full class index space
            (values among ``[0] + img_labels``).
        """
        walked, keys = self.probs(img, scores, img_labels)
        return keys[np.argmax(walked, axis=0)]
