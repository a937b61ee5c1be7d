# Copyright (c) mmwsss contributors.
"""mIoU of several named label maps (CAM, heuristic targets) against masks.

Used by :class:`~mmwsss.engine.hooks.TargetQualityHook` and
``tools/analysis_tools/camguide_target_quality.py``: every map is booked
into its own confusion matrix (:func:`label_map_confusion`, as
``mmseg.IoUMetric`` counts) and the mIoU is the NaN-mean of the per-class
IoUs over the classes that occur in the predictions or the masks.
"""
from typing import Dict, Iterable

import cv2
import numpy as np

from .label_maps import iou_from_counts, label_map_confusion

__all__ = ['LabelMapIoU']


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
