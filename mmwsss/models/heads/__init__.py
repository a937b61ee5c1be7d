# Copyright (c) mmwsss contributors.
from .affinity_head import AffinityHead
from .aspp_sum_head import ASPPSumHead
from .cam_head import CAMHead
from .camguide_refine_head import CamGuideRefineHead, GuidedFilter
from .instance_guided_cam_head import IGCAMOutputs, InstanceGuidedCAMHead

__all__ = [
    'AffinityHead', 'ASPPSumHead', 'CAMHead', 'CamGuideRefineHead',
    'GuidedFilter', 'IGCAMOutputs', 'InstanceGuidedCAMHead'
]
