# Copyright (c) mmwsss contributors.
"""CamGuide heuristic pseudo-label targets (dCRF + closing, SLIC RW).

CamGuide (sec. II.J.3) supervises the student CAMs of stage 3 with targets
``target = morph(algorithm(mask_stochastic))`` (eq. (26)) through a
cross-entropy (eq. (27)). Two targets are used:

- ``'crf'``: ``closure(dcrf(mask))`` (eq. (28)), a dense CRF (Table III: 5
  iterations; IRN's label-unary parameterisation, preset ``'irn_label'``)
  followed by a per-class morphological closing with a 15x15 kernel
  (:func:`~mmwsss.refine.morph_close`);
- ``'rw'``: ``SLIC_RW(mask)`` (eq. (29)), the random walk over SLIC
  superpixels (:class:`~mmwsss.refine.slic_random_walk.SLICRandomWalk`,
  1100 segments, 12 iterations), without morphology.

The "mask" is the per-image score stack: channel 0 holds the background
score (the caller puts the stochastic threshold ``tau`` of eq. (6) there)
and channel ``c`` the normalised CAM of class ``c`` (zero outside the image
labels).

Every spatial size may be given relative to the side of the grid the
targets are computed on (:mod:`mmwsss.utils.relative_size`): the closing
kernel (``close_kernel=dict(rel=15 / 128)``), the CRF spatial standard
deviations (``crf=dict(..., gauss_sxy=dict(rel=3 / 128), bi_sxy=dict(
rel=50 / 128))``: the IRN preset's pixels on the 128 x 128 grid of a
512-pixel crop, CamGuide's stage-3 configs; ``rel=3 / 512`` and ``50 /
512`` would be the preset's share of a ~512-pixel image side instead) and
the SLIC segment count (relative
to the grid area, ``rw=dict(n_segments=dict(rel=1100 / 128 ** 2))``).
They are resolved per batch from the grid size, so one recipe gives the
same targets relative to the image on a 32 x 32 demo grid and a 128 x 128
VOC grid (:meth:`HeuristicTargets.resolved_sizes`).
"""
import copy
import multiprocessing as mp
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmwsss.registry import TASK_UTILS
from mmwsss.utils.relative_size import (SizeSpec, check_size, grid_side,
                                        is_relative, resolve_size)
from .densecrf import DenseCRF, _select_keys, morph_close
from .slic_random_walk import SLICRandomWalk

TARGET_NAMES = ('crf', 'rw')
#: CRF keys that may be relative to the grid side.
_CRF_SPATIAL = ('gauss_sxy', 'bi_sxy')


def _one_image(args: tuple) -> Dict[str, np.ndarray]:
    """Targets of one image; module level so that a pool can pickle it.

    Args:
        args (tuple): ``(crf, rw, close_kernel, ignore_index, img, scores,
            labels, which, valid)``, see :meth:`HeuristicTargets.__call__`.

    Returns:
        dict[str, np.ndarray]: int64 label map (h, w) per name in
        ``which``.
    """
    crf, rw, close_kernel, ignore_index, img, scores, labels, which, \
        valid = args
    out = {}
    for name in which:
        if name == 'crf':
            label_map = crf(img, scores, labels)
            if valid is not None:
                label_map[~valid] = ignore_index
            label_map = morph_close(
                label_map, close_kernel, ignore_index=ignore_index)
        else:
            label_map = rw(img, scores, labels)
            if valid is not None:
                label_map[~valid] = ignore_index
        out[name] = label_map.astype(np.int64)
    return out


@TASK_UTILS.register_module()
class HeuristicTargets:
    """Batch generator of CamGuide's heuristic targets (eqs. (26)-(29)).

    Images arrive at the CAM resolution (the caller downsizes them), so the
    spatial sizes written for full-size images must be scaled: give them
    relative to the grid (module docstring; recommended), or in pixels of
    the grid, e.g. ``crf=dict(preset='irn_label', n_iters=5,
    scale_factor=4.)`` for CAMs at 1/4 of a full-size image (see
    :class:`~mmwsss.refine.DenseCRF`; ``scale_factor`` also divides
    resolved relative stds, so leave it at 1 with them).

    Pixels where ``valid_masks`` is False (e.g. the padding of a crop) get
    ``ignore_index`` in every target; they are set before the closing, so
    the closing never writes into them.

    With ``num_workers > 0`` the images are processed by a persistent
    process pool, created on first use with the ``'spawn'`` (default) or
    ``'forkserver'`` start method, which is safe inside a torch training
    process (no forked CUDA or OpenMP state). The results are identical to
    ``num_workers=0``. The pool is not pickled (a copy creates its own) and
    is shut down by :meth:`close`, on exit of a ``with`` block, or when the
    object is garbage collected.

    Args:
        crf (dict, optional): Keyword arguments of
            :class:`~mmwsss.refine.DenseCRF`. None disables the ``'crf'``
            target. Defaults to ``dict(preset='irn_label', n_iters=5)``
            (CamGuide Table III).
            ``gauss_sxy`` and ``bi_sxy`` may be relative specs.
        close_kernel (int | dict): Side of the square closing kernel of the
            ``'crf'`` target, pixels of the grid or ``dict(rel=f)`` of its
            side (resolved to the nearest odd size); values <= 1 disable
            the closing (the paper's "without morphological operations"
            rows). Defaults to 15 (Table III).
        rw (dict, optional): Keyword arguments of
            :class:`~mmwsss.refine.slic_random_walk.SLICRandomWalk`
            (``n_segments`` may be relative to the grid area). None
            disables the ``'rw'`` target. Defaults to
            ``dict(n_segments=1100, n_iters=12)`` (Table III).
        num_workers (int): Worker processes; 0 runs in the calling
            process. Defaults to 0.
        ignore_index (int): Label of pixels outside ``valid_masks``.
            Defaults to 255.
        mp_start_method (str): ``'spawn'`` or ``'forkserver'``. Defaults
            to ``'spawn'``.
    """

    def __init__(self,
                 crf: Optional[dict] = dict(preset='irn_label', n_iters=5),
                 close_kernel: SizeSpec = 15,
                 rw: Optional[dict] = dict(n_segments=1100, n_iters=12),
                 num_workers: int = 0,
                 ignore_index: int = 255,
                 mp_start_method: str = 'spawn') -> None:
        if int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f'num_workers must be a non-negative integer, '
                             f'got {num_workers}')
        if is_relative(close_kernel):
            close_kernel = check_size(close_kernel, 'close_kernel', 'odd', 1)
        elif isinstance(close_kernel,
                        bool) or int(close_kernel) != close_kernel:
            raise ValueError(f'close_kernel must be an integer, got '
                             f'{close_kernel}')
        if mp_start_method not in ('spawn', 'forkserver'):
            raise ValueError("mp_start_method must be 'spawn' or "
                             f"'forkserver', got {mp_start_method!r}")
        if int(ignore_index) != ignore_index or ignore_index <= 0:
            raise ValueError('ignore_index must be a positive integer (0 is '
                             f'the background), got {ignore_index}')
        self.crf_rel = {}
        if crf is not None:
            crf = dict(crf)
            for key in _CRF_SPATIAL:
                if is_relative(crf.get(key)):
                    self.crf_rel[key] = check_size(
                        crf.pop(key), f'crf.{key}', 'float', None)
        # with relative stds, ``crf`` holds the other settings and
        # :meth:`crf_for` sets the stds of each grid size
        self.crf = None if crf is None else DenseCRF(**crf)
        self.rw = None if rw is None else SLICRandomWalk(**rw)
        self.close_kernel = close_kernel if is_relative(close_kernel) \
            else int(close_kernel)
        self.num_workers = int(num_workers)
        self.ignore_index = int(ignore_index)
        self.mp_start_method = mp_start_method
        self._pool = None
        self._pool_pid = None

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crf={self.crf!r}, '
                f'close_kernel={self.close_kernel}, rw={self.rw!r}, '
                f'num_workers={self.num_workers}, '
                f'ignore_index={self.ignore_index}, '
                f'mp_start_method={self.mp_start_method!r})')

    # ------------------------------------------------------------------
    # Pool management
    # ------------------------------------------------------------------
    def _get_pool(self):
        """The persistent pool of this process, created on first use."""
        if self._pool is not None and self._pool_pid != os.getpid():
            # Inherited through a fork: the pool belongs to the parent.
            self._pool = None
        if self._pool is None:
            ctx = mp.get_context(self.mp_start_method)
            self._pool = ctx.Pool(self.num_workers)
            self._pool_pid = os.getpid()
        return self._pool

    def close(self) -> None:
        """Shut the worker pool down (a later call starts a new one)."""
        pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()
            pool.join()
        self._pool_pid = None

    def __enter__(self) -> 'HeuristicTargets':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        pool = getattr(self, '_pool', None)
        if pool is not None and getattr(self, '_pool_pid',
                                        None) == os.getpid():
            try:
                pool.terminate()
            except Exception:  # interpreter shutdown
                pass
        self._pool = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_pool'] = None
        state['_pool_pid'] = None
        return state

    # ------------------------------------------------------------------
    # Sizes
    # ------------------------------------------------------------------
    def resolve_close_kernel(self, shape: Sequence[int]) -> int:
        """Closing kernel side on a grid of spatial size ``shape``."""
        if not is_relative(self.close_kernel):
            return int(self.close_kernel)
        return resolve_size(self.close_kernel, grid_side(shape), 'odd', 1,
                            'close_kernel')

    def crf_for(self, shape: Sequence[int]) -> Optional[DenseCRF]:
        """The CRF with its spatial stds resolved for a grid of ``shape``."""
        if self.crf is None or not self.crf_rel:
            return self.crf
        crf = copy.copy(self.crf)
        side = grid_side(shape)
        for key, spec in self.crf_rel.items():
            setattr(crf, key,
                    float(resolve_size(spec, side, 'float', None, key)))
        return crf

    def resolved_sizes(self, shape: Sequence[int]) -> Dict[str, float]:
        """Sizes in pixels on a grid of spatial size ``(h, w)``.

        Returns:
            dict: ``close_kernel`` and, when enabled, the CRF's effective
            ``gauss_sxy`` / ``bi_sxy`` (after ``scale_factor``) and the
            SLIC ``n_segments``.
        """
        out = dict(close_kernel=self.resolve_close_kernel(shape))
        crf = self.crf_for(shape)
        if crf is not None:
            out['gauss_sxy'] = crf.gauss_sxy / crf.scale_factor
            out['bi_sxy'] = crf.bi_sxy / crf.scale_factor
        if self.rw is not None:
            out['n_segments'] = self.rw.resolve_segments(shape)
        return out

    # ------------------------------------------------------------------
    # Targets
    # ------------------------------------------------------------------
    def _check_inputs(
        self, imgs: np.ndarray, scores: np.ndarray,
        img_labels: Sequence[Sequence[int]], which: Tuple[str, ...],
        valid_masks: Optional[np.ndarray]
    ) -> Tuple[np.ndarray, np.ndarray, List[List[int]], Optional[np.ndarray]]:
        for name in which:
            if name not in TARGET_NAMES:
                raise ValueError(f'which must name targets among '
                                 f'{TARGET_NAMES}, got {name!r}')
            if getattr(self, name) is None:
                raise ValueError(f'target {name!r} requested but it was '
                                 f'disabled ({name}=None)')
        imgs = np.asarray(imgs)
        scores = np.asarray(scores)
        if imgs.ndim != 4 or imgs.shape[3] != 3:
            raise ValueError(f'imgs must have shape (N, h, w, 3), got shape '
                             f'{imgs.shape}')
        if imgs.dtype != np.uint8:
            raise ValueError(f'imgs must be uint8 RGB, got dtype '
                             f'{imgs.dtype}')
        if scores.ndim != 4:
            raise ValueError(f'scores must have shape (N, C, h, w), got '
                             f'shape {scores.shape}')
        real = np.issubdtype(scores.dtype, np.integer) or np.issubdtype(
            scores.dtype, np.floating)
        if scores.dtype == np.bool_ or not real:
            raise ValueError(f'scores must be real numbers, got dtype '
                             f'{scores.dtype}')
        n, h, w = imgs.shape[:3]
        if scores.shape[0] != n or scores.shape[2:] != (h, w):
            raise ValueError(f'imgs of shape {imgs.shape} (N, h, w, 3) and '
                             f'scores of shape {scores.shape} (N, C, h, w) '
                             'differ in batch or spatial size')
        if len(img_labels) != imgs.shape[0]:
            raise ValueError(f'img_labels has {len(img_labels)} entries for '
                             f'{imgs.shape[0]} images')
        if not np.all(np.isfinite(scores)):
            raise ValueError('scores contain NaN or infinite values')
        labels = []
        for i, lab in enumerate(img_labels):
            lab = [int(x) for x in lab]
            try:
                _select_keys(scores[i], lab)
            except ValueError as err:
                raise ValueError(f'image {i}: {err}') from None
            labels.append(lab)
        if valid_masks is not None:
            valid_masks = np.asarray(valid_masks)
            if valid_masks.shape != imgs.shape[:3]:
                raise ValueError(f'valid_masks must have shape (N, h, w) = '
                                 f'{imgs.shape[:3]}, got '
                                 f'{valid_masks.shape}')
            valid_masks = valid_masks.astype(bool)
        return imgs, scores, labels, valid_masks

    def __call__(
            self,
            imgs: np.ndarray,
            scores: np.ndarray,
            img_labels: Sequence[Sequence[int]],
            which: Union[str, Sequence[str]] = ('crf', 'rw'),
            valid_masks: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        """Compute the heuristic targets of a batch.

        Args:
            imgs (np.ndarray): uint8 RGB images ``(N, h, w, 3)`` at the CAM
                resolution.
            scores (np.ndarray): Scores ``(N, C, h, w)``: channel 0 the
                background score (the stochastic threshold of CamGuide
                eq. (6)), channel ``c`` the normalised CAM of class ``c``.
            img_labels (Sequence[Sequence[int]]): Foreground class ids of
                each image, in ``[1, C - 1]``.
            which (str | Sequence[str]): Targets to compute among
                ``'crf'`` and ``'rw'``. Defaults to both.
            valid_masks (np.ndarray, optional): bool ``(N, h, w)``; False
                pixels get ``ignore_index``. None means all valid.

        Returns:
            dict[str, np.ndarray]: int64 label maps ``(N, h, w)`` per
            requested target, with values among ``[0] + img_labels[i]``
            and ``ignore_index``.
        """
        if isinstance(which, str):
            which = (which, )
        which = tuple(dict.fromkeys(which))
        imgs, scores, labels, valid_masks = self._check_inputs(
            imgs, scores, img_labels, which, valid_masks)
        n, h, w = imgs.shape[:3]
        if not which:
            return {}
        crf = self.crf_for((h, w))
        close_kernel = self.resolve_close_kernel((h, w))
        jobs = [
            (crf, self.rw, close_kernel, self.ignore_index, imgs[i], scores[i],
             labels[i], which, None if valid_masks is None else valid_masks[i])
            for i in range(n)
        ]
        if self.num_workers > 0 and n > 1:
            results = self._get_pool().map(_one_image, jobs)
        else:
            results = [_one_image(job) for job in jobs]
        out = {}
        for name in which:
            out[name] = np.empty((n, h, w), np.int64)
            for i, res in enumerate(results):
                out[name][i] = res[name]
        return out
