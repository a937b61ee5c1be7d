# Copyright (c) mmwsss contributors.
from .affinity_head import AffinityHead, BaseAffinityHead
from .aspp_sum_head import ASPPSumHead
from .boundary_affinity_head import BoundaryAffinityHead
from .cam_head import CAMHead
from .camguide_refine_head import CamGuideRefineHead, GuidedFilter
from .instance_guided_cam_head import IGCAMOutputs, InstanceGuidedCAMHead

__all__ = [
    'AffinityHead', 'ASPPSumHead', 'BaseAffinityHead', 'BoundaryAffinityHead',
    'CAMHead', 'CamGuideRefineHead', 'GuidedFilter', 'IGCAMOutputs',
    'InstanceGuidedCAMHead'
]
