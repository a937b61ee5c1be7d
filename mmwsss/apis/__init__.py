# Copyright (c) mmwsss contributors.
from .proposals import ProposalError, generate_proposals
from .pseudo_labels import REFINE_CHOICES, PseudoLabelError, make_pseudo_labels

__all__ = [
    'REFINE_CHOICES', 'PseudoLabelError', 'make_pseudo_labels',
    'ProposalError', 'generate_proposals'
]
