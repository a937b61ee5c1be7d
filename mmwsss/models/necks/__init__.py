# Copyright (c) mmwsss contributors.
from .influence_guided_attention import InfluenceGuidedAttention

__all__ = ['InfluenceGuidedAttention']
