# Copyright (c) mmwsss contributors.
from typing import Sequence

from mmseg.datasets.transforms import PackSegInputs

from mmwsss.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label', 'img_labels')


@TRANSFORMS.register_module()
class PackWSSSInputs(PackSegInputs):
    """Pack an image, its optional mask and its image-level labels.

    Same as :class:`mmseg.datasets.transforms.PackSegInputs` except that
    ``img_labels`` (sorted foreground class indices, background is 0) is a
    required meta key, so that image labels reach the model in
    ``data_sample.metainfo['img_labels']``.

    Args:
        meta_keys (Sequence[str]): Meta keys to pack. ``img_labels`` is
            always added.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        meta_keys = tuple(meta_keys)
        if 'img_labels' not in meta_keys:
            meta_keys = meta_keys + ('img_labels', )
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``; fail clearly when the image has no labels."""
        if 'img_labels' not in results:
            raise KeyError(
                f'image {results.get("img_path", "<unknown>")} has no '
                '"img_labels": use an mmwsss dataset (WSSSVOCDataset, '
                'WSSSCOCODataset, ...) that loads image-level labels')
        results['img_labels'] = [int(x) for x in results['img_labels']]
        return super().transform(results)
