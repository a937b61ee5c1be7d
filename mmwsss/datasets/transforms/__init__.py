# Copyright (c) mmwsss contributors.
from .formatting import PackWSSSInputs
from .geometric import RandomGeometricWarp, affine_matrix, warp_boxes
from .proposals import AlignProposals, LoadProposals, align_proposals

__all__ = [
    'PackWSSSInputs', 'LoadProposals', 'AlignProposals', 'align_proposals',
    'RandomGeometricWarp', 'affine_matrix', 'warp_boxes'
]
