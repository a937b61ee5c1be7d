# Copyright (c) mmwsss contributors.
"""Quality of named maps against masks: mIoU of label maps (CAM, heuristic
targets), foreground AUC of continuous maps (influence, |CAM|).

Used by :class:`~mmwsss.engine.hooks.TargetQualityHook` and
``tools/analysis_tools/camguide_target_quality.py``: every map is booked
into its own confusion matrix (:func:`label_map_confusion`, as
``mmseg.IoUMetric`` counts) and the mIoU is the NaN-mean of the per-class
IoUs over the classes that occur in the predictions or the masks.

A continuous map (IG-CAM's influence map, or the |CAM| saliency it is
compared with) is scored by :class:`ForegroundAUC`: per image, the area
under the ROC curve of the map as a detector of the mask's foreground
(the Mann-Whitney U statistic of foreground against background pixel
values divided by their pair count, :func:`scipy.stats.mannwhitneyu`; 0.5
is a map that says nothing about where the objects are), then the mean
over images.
"""
from typing import Dict, Iterable, List, Optional

import cv2
import numpy as np

from .label_maps import iou_from_counts, label_map_confusion

__all__ = ['LabelMapIoU', 'ForegroundAUC', 'foreground_auc']


class LabelMapIoU:
    """Accumulates one confusion matrix per map name.

    A prediction of another size than its mask is resized to the mask with
    nearest neighbours first (e.g. a target on the stride-4 CAM grid
    against a full-size mask).

    Args:
        num_classes (int): Classes including background.
        ignore_index (int): Ignored mask value. Defaults to 255.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if int(num_classes) < 2:
            raise ValueError(f'num_classes must be >= 2, got {num_classes}')
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.counts: Dict[str, np.ndarray] = {}

    def add(self, name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        """Book one ``(h, w)`` prediction against its ``(H, W)`` mask."""
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.ndim != 2 or gt.ndim != 2:
            raise ValueError(f'{name}: pred and gt must be 2-D, got '
                             f'{pred.shape} and {gt.shape}')
        if pred.shape != gt.shape:
            pred = cv2.resize(
                pred.astype(np.int32), (gt.shape[1], gt.shape[0]),
                interpolation=cv2.INTER_NEAREST)
        conf = label_map_confusion(pred, gt, self.num_classes,
                                   self.ignore_index)
        if name in self.counts:
            self.counts[name] += conf
        else:
            self.counts[name] = conf

    def names(self) -> Iterable[str]:
        """Names booked so far, in insertion order."""
        return list(self.counts)

    def miou(self, name: str) -> float:
        """mIoU of one name, in [0, 1]."""
        return float(iou_from_counts(self.counts[name])[0])

    def results(self) -> Dict[str, float]:
        """``{name: mIoU}`` of every booked name."""
        return {name: self.miou(name) for name in self.counts}


def foreground_auc(score: np.ndarray,
                   gt: np.ndarray,
                   ignore_index: int = 255) -> Optional[float]:
    """ROC AUC of ``score`` separating the mask's foreground from background.

    Args:
        score (np.ndarray): ``(h, w)`` map; resized to the mask bilinearly
            when its size differs.
        gt (np.ndarray): ``(H, W)`` mask; 0 background, ``ignore_index``
            ignored, anything else foreground.
        ignore_index (int): Ignored mask value. Defaults to 255.

    Returns:
        float | None: AUC in [0, 1] (ties count one half), None when the
        mask has no foreground or no background pixel.
    """
    from scipy.stats import mannwhitneyu
    score = np.asarray(score, dtype=np.float32)
    gt = np.asarray(gt)
    if score.ndim != 2 or gt.ndim != 2:
        raise ValueError(f'score and gt must be 2-D, got {score.shape} and '
                         f'{gt.shape}')
    if score.shape != gt.shape:
        score = cv2.resize(
            score, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    fg = score[(gt != 0) & (gt != ignore_index)]
    bg = score[gt == 0]
    if fg.size == 0 or bg.size == 0:
        return None
    u = mannwhitneyu(fg, bg, alternative='two-sided', method='asymptotic')
    return float(u.statistic) / (fg.size * bg.size)


class ForegroundAUC:
    """Mean over images of :func:`foreground_auc`, one list per map name.

    Args:
        ignore_index (int): Ignored mask value. Defaults to 255.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        self.ignore_index = int(ignore_index)
        self.values: Dict[str, List[float]] = {}

    def add(self, name: str, score: np.ndarray, gt: np.ndarray) -> None:
        """Score one ``(h, w)`` map against its ``(H, W)`` mask; an image
        without foreground or background is skipped."""
        auc = foreground_auc(score, gt, self.ignore_index)
        lst = self.values.setdefault(name, [])
        if auc is not None:
            lst.append(auc)

    def results(self) -> Dict[str, float]:
        """``{name: mean AUC}`` of the names with at least one image."""
        return {
            name: float(np.mean(v))
            for name, v in self.values.items() if v
        }
