# Copyright (c) mmwsss contributors.
from .formatting import PackWSSSInputs
from .proposals import AlignProposals, LoadProposals, align_proposals

__all__ = [
    'PackWSSSInputs', 'LoadProposals', 'AlignProposals', 'align_proposals'
]
