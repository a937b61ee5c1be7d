# Copyright (c) mmwsss contributors.
"""Influence estimation for IG-CAM (issue #3, item 5).

Default path: per scale classifier, an EMA of the closed-form per-class
curvature (:class:`ClassifierCurvature`), an exact damped float64 Cholesky
solve for the validation gradients, and feature grad x input maps
(:func:`feature_grad_x_input`), bundled in :class:`ClassifierInfluence`.
Options for wider parameter subsets: stochastic Hessian-vector products
(:class:`StochasticHVP`) with :func:`conjugate_gradient` or :func:`lissa`,
and input-perturbation maps (:func:`input_grad_maps`).
"""
from .curvature import (ClassifierCurvature, SolveInfo, augment,
                        classifier_grads, classifier_hessian, pack_classifier,
                        unpack_classifier)
from .hvp import (CGInfo, LiSSAInfo, StochasticHVP, conjugate_gradient,
                  flat_hvp, flatten, lissa, top_eigenvalue, unflatten)
from .influence import (ClassifierInfluence, aggregate_scales, assert_disjoint,
                        cam_magnitude_maps, classifier_influence,
                        feature_grad_x_input,
                        influence_scores, input_grad_maps, normalise_maps,
                        resample_maps, sample_weights, select_val_subset,
                        uniform_maps)

__all__ = [
    'CGInfo', 'ClassifierCurvature', 'ClassifierInfluence', 'LiSSAInfo',
    'SolveInfo', 'StochasticHVP', 'aggregate_scales', 'assert_disjoint',
    'augment', 'cam_magnitude_maps', 'classifier_grads', 'classifier_hessian',
    'classifier_influence', 'conjugate_gradient', 'feature_grad_x_input',
    'flat_hvp', 'flatten', 'influence_scores', 'input_grad_maps', 'lissa',
    'normalise_maps', 'pack_classifier', 'resample_maps', 'sample_weights',
    'select_val_subset', 'top_eigenvalue', 'unflatten', 'uniform_maps',
    'unpack_classifier'
]
