# Copyright (c) mmwsss contributors.
from .batch_augments import (MultiLabelCutMix, MultiLabelMixUp,
                             RandomBatchAugment, mix_labels, mix_valid_shapes,
                             valid_shape)
from .box_ops import (axis_coverage, box_area, box_masks, box_sums,
                      select_boxes, to_feature_boxes)

__all__ = [
    'axis_coverage', 'box_area', 'box_masks', 'box_sums', 'select_boxes',
    'to_feature_boxes', 'MultiLabelCutMix', 'MultiLabelMixUp',
    'RandomBatchAugment', 'mix_labels', 'mix_valid_shapes', 'valid_shape'
]
