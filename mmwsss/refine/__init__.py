# Copyright (c) mmwsss contributors.
from .densecrf import CRF_PRESETS, DenseCRF, morph_close

__all__ = ['CRF_PRESETS', 'DenseCRF', 'morph_close']
