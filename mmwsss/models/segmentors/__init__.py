# Copyright (c) mmwsss contributors.
from .affinity_net import AffinityNet
from .cam_segmentor import CAMSegmentor
from .camguide_segmentor import CamGuideSegmentor
from .igcam_segmentor import IGCAMSegmentor

__all__ = [
    'AffinityNet', 'CAMSegmentor', 'CamGuideSegmentor', 'IGCAMSegmentor'
]
