# Copyright (c) mmwsss contributors.
from .pseudo_labels import (REFINE_CHOICES, PseudoLabelError,
                            make_pseudo_labels)

__all__ = ['REFINE_CHOICES', 'PseudoLabelError', 'make_pseudo_labels']
