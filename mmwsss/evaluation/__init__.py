# Copyright (c) mmwsss contributors.
from .label_maps import (evaluate_label_dirs, iou_from_counts,
                         label_map_confusion, read_label_png)

__all__ = [
    'evaluate_label_dirs', 'iou_from_counts', 'label_map_confusion',
    'read_label_png'
]
