# Copyright (c) mmwsss contributors.
from .coco import WSSSCOCODataset
from .demo import WSSSDemoDataset
from .folder import LabelFileError, WSSSFolderDataset
from .transforms import *  # noqa: F401,F403
from .wsss_dataset import WSSSVOCDataset

__all__ = [
    'WSSSVOCDataset', 'WSSSCOCODataset', 'WSSSDemoDataset',
    'WSSSFolderDataset', 'LabelFileError'
]
