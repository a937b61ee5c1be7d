# Copyright (c) mmwsss contributors.
from .cam_segmentor import CAMSegmentor

__all__ = ['CAMSegmentor']
