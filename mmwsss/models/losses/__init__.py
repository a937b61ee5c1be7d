# Copyright (c) mmwsss contributors.
from .camguide_loss import (CAMDistillL1Loss, EdgeConsistencyLoss,
                            HeuristicTargetLoss, MultiLabelMarginLoss,
                            WindowLocalConsistencyLoss)
from .igcam_loss import (BoundaryAlignmentLoss, InfluenceWeightedBCELoss,
                         MultiScaleConsistencyLoss, normalised_cams,
                         sobel_magnitude)
from .multilabel_loss import MultiLabelSoftMarginLoss

__all__ = [
    'CAMDistillL1Loss', 'EdgeConsistencyLoss', 'HeuristicTargetLoss',
    'MultiLabelMarginLoss', 'WindowLocalConsistencyLoss',
    'BoundaryAlignmentLoss', 'InfluenceWeightedBCELoss',
    'MultiLabelSoftMarginLoss', 'MultiScaleConsistencyLoss', 'normalised_cams',
    'sobel_magnitude'
]
