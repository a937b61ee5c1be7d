# Copyright (c) mmwsss contributors.
from .inference import (cam_result, dataset_meta_from_config, inference_cam,
                        init_model, predict_images, prepare_image)
from .proposals import ProposalError, generate_proposals
from .pseudo_labels import REFINE_CHOICES, PseudoLabelError, make_pseudo_labels

__all__ = [
    'REFINE_CHOICES', 'PseudoLabelError', 'make_pseudo_labels',
    'ProposalError', 'generate_proposals', 'init_model', 'inference_cam',
    'cam_result', 'prepare_image', 'predict_images',
    'dataset_meta_from_config'
]
