# Copyright (c) mmwsss contributors.
from .cam_head import CAMHead
from .instance_guided_cam_head import IGCAMOutputs, InstanceGuidedCAMHead

__all__ = ['CAMHead', 'IGCAMOutputs', 'InstanceGuidedCAMHead']
