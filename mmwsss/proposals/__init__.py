# Copyright (c) mmwsss contributors.
"""Object proposals: Selective Search and box filtering (IG-CAM sec. 3.3)."""
from .selective_search import (COLOUR_SPACES, MODES, convert_colour,
                               filter_proposals, hierarchical_grouping,
                               selective_search)

__all__ = [
    'COLOUR_SPACES', 'MODES', 'convert_colour', 'filter_proposals',
    'hierarchical_grouping', 'selective_search'
]
