# Copyright (c) mmwsss contributors.
from typing import Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData
from mmseg.datasets.transforms import PackSegInputs

from mmwsss.registry import TRANSFORMS
from .proposals import align_proposals

DEFAULT_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label', 'img_labels')


@TRANSFORMS.register_module()
class PackWSSSInputs(PackSegInputs):
    """Pack an image, its optional mask and its image-level labels.

    Same as :class:`mmseg.datasets.transforms.PackSegInputs` except that
    ``img_labels`` (sorted foreground class indices, background is 0) is a
    required meta key, so that image labels reach the model in
    ``data_sample.metainfo['img_labels']``, and that object proposals
    loaded by :class:`~mmwsss.datasets.transforms.LoadProposals` are
    aligned with the transformed image (when no ``AlignProposals`` did it)
    and packed as ``data_sample.proposals``, an ``InstanceData`` with
    ``bboxes`` (float32 ``(N, 4)``, ``x1, y1, x2, y2`` in pixels of the
    packed image) and ``ranks`` (int64 ``(N, )``, the row of each box in
    its proposal file, 0 = best ranked).

    Images given without labels (``mmseg.apis.inference_model`` on a new
    image) are refused unless ``allow_missing_labels``: then the sample is
    packed without ``img_labels`` and with ``img_labels_unknown=True`` in
    its meta information, and a CAM segmentor uses the classes it predicts
    (see :meth:`mmwsss.models.CAMSegmentor.cam_scores`). mmwsss datasets
    always give labels, so the flag only matters for label-free inputs;
    the configs set it in their test pipelines.

    Args:
        meta_keys (Sequence[str]): Meta keys to pack. ``img_labels`` (and
            ``img_labels_unknown``) are always added.
        allow_missing_labels (bool): Pack an image without ``img_labels``
            as described above instead of raising a ``KeyError``.
            Defaults to False.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS,
                 allow_missing_labels: bool = False) -> None:
        meta_keys = tuple(meta_keys)
        for key in ('img_labels', 'img_labels_unknown'):
            if key not in meta_keys:
                meta_keys = meta_keys + (key, )
        super().__init__(meta_keys=meta_keys)
        self.allow_missing_labels = bool(allow_missing_labels)

    def transform(self, results: dict) -> dict:
        """Pack ``results``; fail clearly when the image has no labels."""
        if 'img_labels' not in results:
            if not self.allow_missing_labels:
                raise KeyError(
                    f'image {results.get("img_path", "<unknown>")} has no '
                    '"img_labels": use an mmwsss dataset (WSSSVOCDataset, '
                    'WSSSFolderDataset, ...) that loads image-level labels, '
                    'or PackWSSSInputs(allow_missing_labels=True) for '
                    'inference on unlabelled images')
            results['img_labels_unknown'] = True
        else:
            results['img_labels'] = [int(x) for x in results['img_labels']]
        if 'proposals' not in results:
            return super().transform(results)
        align_proposals(results)
        packed = super().transform(results)
        boxes = np.asarray(results['proposals'], dtype=np.float32)
        ranks = np.asarray(
            results.get('proposal_ranks', np.arange(len(boxes))),
            dtype=np.int64)
        packed['data_samples'].proposals = InstanceData(
            bboxes=torch.from_numpy(boxes.reshape(-1, 4).copy()),
            ranks=torch.from_numpy(ranks.copy()))
        return packed
