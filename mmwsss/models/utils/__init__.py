# Copyright (c) mmwsss contributors.
from .box_ops import (axis_coverage, box_area, box_masks, box_sums,
                      to_feature_boxes)

__all__ = [
    'axis_coverage', 'box_area', 'box_masks', 'box_sums', 'to_feature_boxes'
]
