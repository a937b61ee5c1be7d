# Copyright (c) mmwsss contributors.
from .cam_ops import (BG_MODES, FUSE_MODES, NORM_MODES, background_scores,
                      fuse_maps, label_mask, normalize_cams)
from .simulate import simulate_cams
from .thresholds import (ThresholdAccumulator, apply_thresholds,
                         iou_from_confusion, threshold_grid)

__all__ = [
    'BG_MODES', 'FUSE_MODES', 'NORM_MODES', 'background_scores', 'fuse_maps',
    'label_mask', 'normalize_cams', 'ThresholdAccumulator', 'apply_thresholds',
    'iou_from_confusion', 'threshold_grid', 'simulate_cams'
]
