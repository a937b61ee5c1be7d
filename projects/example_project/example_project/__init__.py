# Copyright (c) mmwsss contributors.
"""Example project: a CAM loss and a refinement step registered into mmwsss.

Importing this package (``custom_imports`` in a config does it) runs the
``register_module`` decorators, so configs can name the new types.
"""
from .asymmetric_loss import ExampleAsymmetricLoss
from .morph_refiner import ExampleMorphRefiner

__all__ = ['ExampleAsymmetricLoss', 'ExampleMorphRefiner']
