# Copyright (c) mmwsss contributors.
"""Global and class-wise background thresholds for CAM seeds.

Decision rule
-------------
Let ``L`` be the image's labelled foreground classes and ``cam_c`` the
normalised CAM of class ``c`` (channel ``c`` of the full ``(C, H, W)``
scores; channel 0, the background score, is not used). For each pixel

- ``c* = argmax_{c in L} cam_c``, ties going to the lowest class index;
- the pixel is labelled ``c*`` if ``cam_{c*} > t_{c*}`` (strictly), else
  background ``0``. Images without foreground labels are all background.

Ties ``cam_{c*} == t_{c*}`` go to background. With one threshold ``t`` for
every class this is exactly IRN's rule ``argmax([t, cam_1, ..., cam_n])``
with the constant background channel first (``np.argmax`` returns the
first maximum). Comparisons are made in float64.

Accumulate then solve
---------------------
:class:`ThresholdAccumulator` never keeps CAMs: for every predicted class
``c*`` and ground-truth class ``g`` it counts the values ``cam_{c*}`` in
``bins + 2`` cells delimited by the grid edges ``e_k = k / bins``
(``k = 0..bins``): cell ``b`` holds the values ``v`` with exactly ``b``
edges strictly below ``v``, so cell 0 is ``v <= 0``, cell ``b`` is
``e_{b-1} < v <= e_b`` and cell ``bins + 1`` is ``v > 1``. Hence for a
threshold on the grid, ``v > e_k`` if and only if ``cell(v) > k``, and the
confusion matrix of any per-class threshold vector on the grid is exact.
Thresholds off the grid are snapped to the nearest edge.

mIoU convention
---------------
As mmseg's ``IoUMetric``: pixels whose ground truth is ``ignore_index``
are skipped, ``IoU_c = TP / (TP + FP + FN)`` is NaN for classes absent from
both ground truth and prediction, and the mIoU is the ``nanmean`` of the
per-class IoUs (mmseg then reports it in percent, rounded to 2 decimals;
here it is a fraction in [0, 1], unrounded).
"""
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

ThrType = Union[float, Sequence[float], np.ndarray]


def threshold_grid(step: float = 0.05) -> np.ndarray:
    """Global thresholds ``step, 2 * step, ...`` strictly below 1.

    Args:
        step (float): Grid step in (0, 1). Defaults to 0.05, giving
            0.05, 0.10, ..., 0.95.

    Returns:
        np.ndarray: float64 thresholds, rounded to 10 decimals.
    """
    if not 0 < step < 1:
        raise ValueError(f'step must be in (0, 1), got {step}')
    n = int(np.floor(1 / step + 1e-9))
    vals = np.round(np.arange(1, n + 1) * step, 10)
    return vals[vals < 1]


def _thr_vector(thr: ThrType, num_classes: int) -> np.ndarray:
    """Broadcast a scalar or check a length-``num_classes`` vector."""
    arr = np.asarray(thr, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(num_classes, float(arr))
    if arr.shape != (num_classes, ):
        raise ValueError(
            f'thresholds must be a scalar or a vector of length num_classes='
            f'{num_classes} (entry 0, the background, is unused); got shape '
            f'{arr.shape}')
    if np.isnan(arr[1:]).any():
        raise ValueError('foreground thresholds contain NaN')
    arr = arr.copy()
    arr[0] = 0.  # the background entry is unused
    return arr


def _check_scores(scores: np.ndarray, img_labels: Sequence[int],
                  num_classes: Optional[int]) -> Tuple[np.ndarray, list]:
    scores = np.asarray(scores)
    if scores.ndim != 3:
        raise ValueError('scores must have shape (C, H, W), got shape '
                         f'{scores.shape}')
    if num_classes is not None and scores.shape[0] != num_classes:
        raise ValueError(f'scores have {scores.shape[0]} channels, expected '
                         f'num_classes={num_classes} (background first)')
    labels = sorted({int(x) for x in img_labels})
    if labels and (labels[0] < 1 or labels[-1] >= scores.shape[0]):
        raise ValueError(
            f'img_labels {labels} must be foreground class indices in '
            f'[1, {scores.shape[0] - 1}]')
    return scores, labels


def _fg_argmax(scores: np.ndarray,
               labels: List[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Best labelled class and its CAM value per pixel (float64)."""
    cams = scores[labels].astype(np.float64)
    if np.isnan(cams).any():
        raise ValueError('scores contain NaN in the channels of img_labels '
                         f'{labels}')
    idx = np.argmax(cams, axis=0)
    val = np.take_along_axis(cams, idx[None], axis=0)[0]
    return np.asarray(labels, dtype=np.int64)[idx], val


def apply_thresholds(scores: np.ndarray, img_labels: Sequence[int],
                     thr_vector: ThrType) -> np.ndarray:
    """Turn CAM scores into a label map with per-class thresholds.

    See the module docstring for the rule (``cam_{c*} > t_{c*}``, ties to
    background). Unlike :class:`ThresholdAccumulator` the thresholds are
    used as given, not snapped to a grid.

    Args:
        scores (np.ndarray): Scores (C, H, W); channel 0 is ignored,
            channels ``img_labels`` are the normalised CAMs.
        img_labels (Sequence[int]): Foreground class indices of the image.
        thr_vector (float | Sequence[float]): One threshold for all classes
            or a vector of length C (entry 0 unused).

    Returns:
        np.ndarray: int64 label map (H, W).
    """
    scores, labels = _check_scores(scores, img_labels, None)
    thr = _thr_vector(thr_vector, scores.shape[0])
    if not labels:
        return np.zeros(scores.shape[1:], dtype=np.int64)
    cls, val = _fg_argmax(scores, labels)
    return np.where(val > thr[cls], cls, 0)


def iou_from_confusion(conf: np.ndarray) -> Tuple[float, np.ndarray]:
    """Per-class IoU and mIoU from a confusion matrix (mmseg convention).

    Args:
        conf (np.ndarray): (C, C) counts, rows prediction, columns ground
            truth.

    Returns:
        tuple[float, np.ndarray]: The nanmean IoU and the per-class IoUs
        (NaN where a class is in neither prediction nor ground truth).
    """
    conf = np.asarray(conf, dtype=np.float64)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    miou = float(np.nanmean(iou)) if np.any(union > 0) else float('nan')
    return miou, iou


class ThresholdAccumulator:
    """Histogram accumulator for threshold sweeps against ground truth.

    Call :meth:`update` once per image, then query any threshold vector
    with :meth:`miou_for_thresholds`, :meth:`sweep_global` or
    :meth:`best_classwise`. Memory is ``O(C * C * bins)`` whatever the
    number of images. Thresholds are snapped to the grid ``k / bins``.

    Args:
        num_classes (int): Number of classes C including background.
        bins (int): Grid resolution over [0, 1]. Defaults to 100 (edges
            0.00, 0.01, ..., 1.00).
        ignore_index (int): Ground-truth label skipped. Defaults to 255.
    """

    def __init__(self,
                 num_classes: int,
                 bins: int = 100,
                 ignore_index: int = 255) -> None:
        if num_classes < 2:
            raise ValueError(f'num_classes must be >= 2, got {num_classes}')
        if bins < 1:
            raise ValueError(f'bins must be >= 1, got {bins}')
        self.num_classes = int(num_classes)
        self.bins = int(bins)
        self.ignore_index = ignore_index
        self.edges = np.arange(self.bins + 1, dtype=np.float64) / self.bins
        # hist[c, g, b]: pixels predicted-candidate c, gt g, cell b.
        self.hist = np.zeros(
            (self.num_classes, self.num_classes, self.bins + 2),
            dtype=np.int64)
        # Pixels that are background whatever the thresholds (no label).
        self.always_bg = np.zeros(self.num_classes, dtype=np.int64)
        self.num_images = 0
        self._suffix = None

    def update(self, scores: np.ndarray, gt: np.ndarray,
               img_labels: Sequence[int]) -> None:
        """Add one image.

        Args:
            scores (np.ndarray): Full scores (C, H, W) as produced by a CAM
                segmentor (float16/32/64); channel 0 is ignored and only the
                channels in ``img_labels`` are read.
            gt (np.ndarray): Ground-truth label map (H, W).
            img_labels (Sequence[int]): Foreground class indices of the
                image.
        """
        scores, labels = _check_scores(scores, img_labels, self.num_classes)
        gt = np.asarray(gt)
        if gt.shape != scores.shape[1:]:
            raise ValueError(f'gt of shape {gt.shape} does not match scores '
                             f'of shape {scores.shape} (C, H, W)')
        gt = gt.astype(np.int64).ravel()
        valid = gt != self.ignore_index
        gt_v = gt[valid]
        if gt_v.size and (gt_v.min() < 0 or gt_v.max() >= self.num_classes):
            bad = np.unique(gt_v[(gt_v < 0) | (gt_v >= self.num_classes)])
            raise ValueError(
                f'gt contains labels {bad.tolist()} outside [0, '
                f'{self.num_classes - 1}] that are not ignore_index='
                f'{self.ignore_index}')
        self.num_images += 1
        self._suffix = None
        if not labels:
            self.always_bg += np.bincount(gt_v, minlength=self.num_classes)
            return
        cls, val = _fg_argmax(scores, labels)
        cls, val = cls.ravel()[valid], val.ravel()[valid]
        cell = np.searchsorted(self.edges, val, side='left')
        nb = self.bins + 2
        flat = (cls * self.num_classes + gt_v) * nb + cell
        self.hist += np.bincount(
            flat, minlength=self.hist.size).reshape(self.hist.shape)

    def merge(self, other: 'ThresholdAccumulator') -> None:
        """Add the counts of another accumulator with the same settings.

        Args:
            other (ThresholdAccumulator): Accumulator to add (e.g. from a
                worker process).
        """
        if (other.num_classes, other.bins,
                other.ignore_index) != (self.num_classes, self.bins,
                                        self.ignore_index):
            raise ValueError('cannot merge accumulators with different '
                             'num_classes, bins or ignore_index')
        self.hist += other.hist
        self.always_bg += other.always_bg
        self.num_images += other.num_images
        self._suffix = None

    def _fg_counts(self) -> np.ndarray:
        """``S[c, g, k]``: pixels of candidate c, gt g with cell > k."""
        if self._suffix is None:
            rev = np.cumsum(self.hist[:, :, ::-1], axis=2)[:, :, ::-1]
            # rev[..., b] = sum of cells >= b; S[..., k] = rev[..., k + 1].
            self._suffix = np.ascontiguousarray(rev[:, :, 1:])
        return self._suffix

    def snap(self, thr: ThrType) -> np.ndarray:
        """Grid indices ``k`` of thresholds (nearest edge, clipped).

        Args:
            thr (float | Sequence[float]): Thresholds.

        Returns:
            np.ndarray: int64 indices in ``[0, bins]``.
        """
        arr = np.asarray(thr, dtype=np.float64)
        return np.clip(np.rint(arr * self.bins), 0, self.bins).astype(np.int64)

    def confusion_matrix(self, thr_vector: ThrType) -> np.ndarray:
        """Confusion matrix for a threshold vector.

        Args:
            thr_vector (float | Sequence[float]): A global threshold or a
                length-C vector (entry 0 unused), snapped to the grid.

        Returns:
            np.ndarray: int64 (C, C), rows prediction, columns ground truth.
        """
        k = self.snap(_thr_vector(thr_vector, self.num_classes))
        fg = self._fg_counts()
        c_idx = np.arange(self.num_classes)
        conf = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        conf[c_idx] = fg[c_idx, :, k]
        total = self.hist.sum(2)
        conf[0] += self.always_bg + (total - conf).sum(0)
        # Candidates are never background: row 0 of hist is empty, so the
        # line above did not count conf[0] twice.
        return conf

    def miou_for_thresholds(self,
                            thr_vector: ThrType) -> Tuple[float, np.ndarray]:
        """mIoU and per-class IoU for a threshold vector.

        Args:
            thr_vector (float | Sequence[float]): A global threshold or a
                length-C vector (entry 0 unused), snapped to the grid.

        Returns:
            tuple[float, np.ndarray]: mIoU (fraction) and per-class IoU
            (NaN for classes in neither ground truth nor prediction).
        """
        return iou_from_confusion(self.confusion_matrix(thr_vector))

    def sweep_global(
        self,
        candidates: Optional[Iterable[float]] = None
    ) -> List[Tuple[float, float]]:
        """mIoU of global thresholds.

        Args:
            candidates (Iterable[float], optional): Thresholds; defaults to
                0.05, 0.10, ..., 0.95.

        Returns:
            list[tuple[float, float]]: ``(t, miou)`` per candidate, ``t``
            snapped to the grid.
        """
        if candidates is None:
            candidates = threshold_grid()
        out = []
        for t in candidates:
            k = int(self.snap(t))
            t_grid = float(self.edges[k])
            out.append((t_grid, self.miou_for_thresholds(t_grid)[0]))
        return out

    def best_classwise(self,
                       init: Optional[ThrType] = None,
                       candidates: Optional[Iterable[float]] = None,
                       rounds: int = 3) -> Tuple[np.ndarray, float]:
        """Class-wise thresholds by coordinate ascent on the mIoU.

        Starting from ``init`` (default: the best global threshold among
        ``candidates``), each round visits the foreground classes in index
        order and sets the class's threshold to the candidate maximising
        the mIoU with the others fixed; a change needs a strict gain, so
        the result is never worse than the start. Stops early when a round
        changes nothing.

        Args:
            init (float | Sequence[float], optional): Starting thresholds.
            candidates (Iterable[float], optional): Thresholds tried for
                every class; defaults to the whole grid ``k / bins``.
            rounds (int): Maximum number of rounds. Defaults to 3.

        Returns:
            tuple[np.ndarray, float]: float64 thresholds (C,) on the grid
            (entry 0 is NaN) and their mIoU.
        """
        if self.hist.sum() + self.always_bg.sum() == 0:
            raise ValueError('no pixel accumulated; call update() first')
        if candidates is None:
            cand_k = np.arange(self.bins + 1)
        else:
            cand_k = np.unique(self.snap(np.asarray(list(candidates))))
        if cand_k.size == 0:
            raise ValueError('candidates is empty')
        if init is None:
            best_t, best_m = -1.0, -np.inf
            for t, m in self.sweep_global(self.edges[cand_k]):
                if m > best_m:
                    best_t, best_m = t, m
            init = best_t
        k = self.snap(_thr_vector(init, self.num_classes))
        C = self.num_classes
        fg = self._fg_counts()
        total = self.hist.sum(2)
        conf = self.confusion_matrix(self.edges[k]).astype(np.float64)
        best = iou_from_confusion(conf)[0]
        active = np.flatnonzero(total.sum(1))
        active = active[active > 0]
        for _ in range(rounds):
            changed = False
            for c in active:
                # Confusion rows 0 and c as functions of the candidate.
                rows_c = fg[c][:, cand_k].T.astype(np.float64)  # (K, C)
                row0_base = conf[0] - (total[c] - conf[c])
                rows_0 = row0_base[None] + (total[c][None] - rows_c)
                col_sum = conf.sum(0)  # ground-truth areas, fixed
                pred = np.repeat(conf.sum(1)[None], len(cand_k), axis=0)
                pred[:, 0] = rows_0.sum(1)
                pred[:, c] = rows_c.sum(1)
                inter = np.repeat(np.diag(conf)[None], len(cand_k), axis=0)
                inter[:, 0] = rows_0[:, 0]
                inter[:, c] = rows_c[:, c]
                union = pred + col_sum[None] - inter
                with np.errstate(divide='ignore', invalid='ignore'):
                    iou = np.where(union > 0, inter / np.maximum(union, 1),
                                   np.nan)
                    mious = np.nanmean(iou, axis=1)
                j = int(np.nanargmax(mious))
                if mious[j] > best + 1e-12 and cand_k[j] != k[c]:
                    k[c] = cand_k[j]
                    conf[c] = rows_c[j]
                    conf[0] = rows_0[j]
                    best = float(mious[j])
                    changed = True
            if not changed:
                break
        thr = self.edges[k].copy()
        thr[0] = np.nan
        return thr, self.miou_for_thresholds(thr)[0]
