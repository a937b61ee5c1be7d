# Copyright (c) mmwsss contributors.
from .igcam_loss import (BoundaryAlignmentLoss, InfluenceWeightedBCELoss,
                         MultiScaleConsistencyLoss, normalised_cams,
                         sobel_magnitude)
from .multilabel_loss import MultiLabelSoftMarginLoss

__all__ = [
    'BoundaryAlignmentLoss', 'InfluenceWeightedBCELoss',
    'MultiLabelSoftMarginLoss', 'MultiScaleConsistencyLoss',
    'normalised_cams', 'sobel_magnitude'
]
