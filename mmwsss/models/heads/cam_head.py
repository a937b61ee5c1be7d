# Copyright (c) mmwsss contributors.
import re
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.utils import ConfigType, SampleList

from mmwsss.cams.cam_ops import label_mask
from mmwsss.registry import MODELS

_CLASSIFIER_KEY = re.compile(r'classifiers?(\.\d+)?\.(weight|bias)$')


def check_classifier_rows(state_dict: dict, prefix: str,
                          num_classes: int) -> None:
    """Refuse classifier weights whose class count differs from the model.

    MMEngine's ``load_checkpoint(strict=False)`` (used for ``load_from``)
    only logs a warning on a shape mismatch and leaves the classifier at its
    random initialisation, which gives silently wrong CAMs. Called from the
    heads' ``_load_from_state_dict``.

    Args:
        state_dict (dict): The state dict being loaded.
        prefix (str): The head's key prefix in ``state_dict``.
        num_classes (int): Classes of the model, background included.

    Raises:
        ValueError: A ``classifier`` key has a first dimension other than
            ``num_classes - 1``; the message names the key.
    """
    for key, value in state_dict.items():
        if not key.startswith(prefix) or not _CLASSIFIER_KEY.fullmatch(
                key[len(prefix):]):
            continue
        rows = value.shape[0] if getattr(value, 'ndim', 0) else None
        if rows is not None and rows != num_classes - 1:
            raise ValueError(
                f'checkpoint key "{key}" has {rows} foreground classes '
                f'({rows + 1} with background) but the model has '
                f'num_classes={num_classes}; set num_classes to match the '
                'checkpoint, or drop the head weights to fine-tune')


def label_rows(data_samples: SampleList,
               num_classes: int,
               device=None) -> torch.Tensor:
    """Targets ``(N, num_classes - 1)`` from the samples' ``img_labels``.

    Args:
        data_samples (list[SegDataSample]): Samples with ``img_labels``
            (and optionally ``img_label_weights``).
        num_classes (int): Classes including background.
        device: Torch device of the result.

    Returns:
        Tensor: Multi-hot (or soft) targets.

    Raises:
        KeyError: A sample has no ``img_labels``.
        ValueError: A label is outside ``[1, num_classes - 1]``; both
            errors name the sample's ``img_path``.
    """
    rows = []
    for ds in data_samples:
        path = ds.metainfo.get('img_path', '?')
        if 'img_labels' not in ds.metainfo:
            raise KeyError(f'data sample of {path} has no img_labels; pack '
                           'inputs with PackWSSSInputs')
        try:
            rows.append(
                label_mask(ds.metainfo['img_labels'], num_classes, device,
                           ds.metainfo.get('img_label_weights')))
        except ValueError as e:
            raise ValueError(f'data sample of {path}: {e}') from None
    return torch.stack(rows)


@MODELS.register_module()
class CAMHead(BaseModule):
    """IRN-style CAM head: a 1x1 convolution over the last feature map.

    The classifier is applied to every feature position, giving class
    activation maps ``cam = W * f``; the image logits are their global
    average (``GAP(W * f) = W * GAP(f)``, identical to IRN's
    ``classifier(gap2d(x))``). Only foreground classes are classified:
    ``num_classes`` counts background, which has no channel.

    Args:
        in_channels (int): Channels of the input feature map.
        num_classes (int): Number of segmentation classes including
            background.
        in_index (int): Index of the backbone/neck output to use.
        bias (bool): Whether the classifier has a bias. IRN has none.
        dropout_ratio (float): Dropout before the classifier in training.
        loss_cls (dict): Config of the image-level classification loss.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 in_index: int = -1,
                 bias: bool = False,
                 dropout_ratio: float = 0.0,
                 loss_cls: ConfigType = dict(
                     type='MultiLabelSoftMarginLoss', loss_weight=1.0),
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Xavier', layer='Conv2d', distribution='uniform'),
                 ) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError('num_classes counts background and must be '
                             f'>= 2, got {num_classes}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.in_index = in_index
        self.dropout = nn.Dropout2d(dropout_ratio) \
            if dropout_ratio > 0 else nn.Identity()
        self.classifier = nn.Conv2d(
            in_channels, num_classes - 1, 1, bias=bias)
        self.loss_cls = MODELS.build(loss_cls)

    def _load_from_state_dict(self, state_dict, prefix, *args,
                              **kwargs) -> None:
        check_classifier_rows(state_dict, prefix, self.num_classes)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _select(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]):
        if isinstance(feats, torch.Tensor):
            return feats
        return feats[self.in_index]

    def forward(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]
                ) -> torch.Tensor:
        """Raw class activation maps ``(N, K, h, w)`` (before ReLU)."""
        feat = self._select(feats)
        if feat.shape[1] != self.in_channels:
            raise ValueError(f'CAMHead expects {self.in_channels} input '
                             f'channels, got {feat.shape[1]}')
        return self.classifier(self.dropout(feat))

    def targets(self, data_samples: SampleList,
                device=None) -> torch.Tensor:
        """Foreground targets ``(N, K)`` from ``img_labels``.

        Multi-hot, or soft when the samples carry ``img_label_weights``
        (the value of each label, aligned with ``img_labels``, written by
        the MixUp / CutMix batch augments).
        """
        return label_rows(data_samples, self.num_classes, device)

    def loss_by_feat(self, cams: torch.Tensor,
                     data_samples: SampleList) -> dict:
        """Image-level classification loss on GAP of the CAMs.

        Args:
            cams (Tensor): ``(N, K, h, w)`` raw CAMs.
            data_samples (list[SegDataSample]): Samples with ``img_labels``.

        Returns:
            dict: ``{loss_name: loss, 'acc_cls': exact-match accuracy}``.
        """
        logits = cams.mean(dim=(2, 3))
        target = self.targets(data_samples, logits.device)
        loss = self.loss_cls(logits, target)
        with torch.no_grad():
            acc = ((logits > 0) == (target > 0.5)).all(dim=1).float().mean()
        return {self.loss_cls.loss_name: loss, 'acc_cls': acc}

    def loss(self, feats, data_samples: SampleList) -> dict:
        """Forward and compute the classification loss."""
        return self.loss_by_feat(self.forward(feats), data_samples)

    def logits(self, feats) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(cams, image logits)``."""
        cams = self.forward(feats)
        return cams, cams.mean(dim=(2, 3))
