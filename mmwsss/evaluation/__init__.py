# Copyright (c) mmwsss contributors.
from .affinity_labels import (AffinityLabelPrecision,
                              evaluate_affinity_label_dir)
from .cls_metric import MultiLabelClsMetric, average_precision
from .label_maps import (evaluate_label_dirs, iou_from_counts,
                         label_map_confusion, read_label_png)
from .proposal_quality import (ProposalQuality, coverage_map,
                               evaluate_proposal_dir, mask_objects)
from .target_quality import LabelMapIoU

__all__ = [
    'MultiLabelClsMetric', 'average_precision', 'evaluate_label_dirs',
    'iou_from_counts', 'label_map_confusion', 'read_label_png',
    'AffinityLabelPrecision', 'evaluate_affinity_label_dir', 'LabelMapIoU',
    'ProposalQuality', 'coverage_map', 'mask_objects', 'evaluate_proposal_dir'
]
