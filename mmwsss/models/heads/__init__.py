# Copyright (c) mmwsss contributors.
from .cam_head import CAMHead

__all__ = ['CAMHead']
