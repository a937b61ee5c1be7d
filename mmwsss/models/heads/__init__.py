# Copyright (c) mmwsss contributors.
from .affinity_head import AffinityHead
from .cam_head import CAMHead
from .camguide_refine_head import CamGuideRefineHead, GuidedFilter
from .instance_guided_cam_head import IGCAMOutputs, InstanceGuidedCAMHead

__all__ = [
    'AffinityHead', 'CAMHead', 'CamGuideRefineHead', 'GuidedFilter', 'IGCAMOutputs',
    'InstanceGuidedCAMHead'
]
