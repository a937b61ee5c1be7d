# Copyright (c) mmwsss contributors.
from .cls_metric import MultiLabelClsMetric, average_precision
from .label_maps import (evaluate_label_dirs, iou_from_counts,
                         label_map_confusion, read_label_png)

__all__ = [
    'MultiLabelClsMetric', 'average_precision', 'evaluate_label_dirs',
    'iou_from_counts', 'label_map_confusion', 'read_label_png'
]
