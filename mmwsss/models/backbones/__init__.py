# Copyright (c) mmwsss contributors.
from .efficientnet_lite import (LITE_MEAN, LITE_STD, EfficientNetLite,
                                EfficientNetLiteClassifier,
                                efficientnet_lite_classifier)

__all__ = [
    'EfficientNetLite', 'EfficientNetLiteClassifier',
    'efficientnet_lite_classifier', 'LITE_MEAN', 'LITE_STD'
]
