# Copyright (c) mmwsss contributors.
from .thresholds import (ThresholdAccumulator, apply_thresholds,
                         iou_from_confusion, threshold_grid)

__all__ = [
    'ThresholdAccumulator', 'apply_thresholds', 'iou_from_confusion',
    'threshold_grid'
]
