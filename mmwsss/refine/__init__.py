# Copyright (c) mmwsss contributors.
from .affinity_random_walk import (affinity_transition, pair_offsets,
                                   random_walk, sparse_transition)
from .boundary_affinity import path_max_affinities, path_pixels
from .densecrf import CRF_PRESETS, DenseCRF, morph_close
from .heuristic_targets import HeuristicTargets
from .influence_crf import InfluenceCRF, influence_cleanup, normalise_influence
from .slic_random_walk import (SLICRandomWalk, slic_random_walk,
                               superpixel_graph)

__all__ = [
    'CRF_PRESETS', 'DenseCRF', 'morph_close', 'InfluenceCRF',
    'influence_cleanup', 'normalise_influence', 'HeuristicTargets',
    'SLICRandomWalk', 'slic_random_walk', 'superpixel_graph', 'pair_offsets',
    'random_walk', 'sparse_transition', 'affinity_transition',
    'path_max_affinities', 'path_pixels'
]
