# Copyright (c) mmwsss contributors.
from .formatting import PackWSSSInputs

__all__ = ['PackWSSSInputs']
