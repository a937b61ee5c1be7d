# Copyright (c) mmwsss contributors.
"""Synthetic shape-scene dataset for quick WSSS experiments."""
from mmwsss.registry import DATASETS
from .demo_scenes import DEMO_CLASSES, DEMO_PALETTE
from .wsss_dataset import WSSSVOCDataset


@DATASETS.register_module()
class WSSSDemoDataset(WSSSVOCDataset):
    """Synthetic scenes of shapes over photographs, in the VOC layout.

    The data are written by :func:`mmwsss.datasets.demo_scenes.
    generate_demo_dataset` (or ``tools/dataset_converters/
    make_demo_dataset.py``): 1-3 objects per image from 7 shape classes
    (star, ring, cross, crescent, bolt, key, leaf) with photographic
    textures, soft low-contrast edges, occlusion and clutter. Image labels
    are read from ``image_labels.json``.

    Example config::

        dataset = dict(
            type='WSSSDemoDataset',
            data_root='data/demo',
            ann_file='ImageSets/Segmentation/train.txt',
            data_prefix=dict(
                img_path='JPEGImages',
                seg_map_path='SegmentationClass'),
            label_file='image_labels.json')

    Args:
        **kwargs: Passed to :class:`mmwsss.datasets.WSSSVOCDataset`.
    """
    METAINFO = dict(classes=DEMO_CLASSES, palette=DEMO_PALETTE)
