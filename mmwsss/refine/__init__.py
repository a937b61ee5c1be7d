# Copyright (c) mmwsss contributors.
from .densecrf import CRF_PRESETS, DenseCRF, morph_close
from .influence_crf import InfluenceCRF, influence_cleanup, normalise_influence

__all__ = [
    'CRF_PRESETS', 'DenseCRF', 'morph_close', 'InfluenceCRF',
    'influence_cleanup', 'normalise_influence'
]
