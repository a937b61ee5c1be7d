# Copyright (c) mmwsss contributors.
from .cam_segmentor import CAMSegmentor
from .igcam_segmentor import IGCAMSegmentor

__all__ = ['CAMSegmentor', 'IGCAMSegmentor']
