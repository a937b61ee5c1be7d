# Copyright (c) mmwsss contributors.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS


@MODELS.register_module()
class MultiLabelSoftMarginLoss(nn.Module):
    """Multi-label soft-margin loss on image-level class logits.

    ``mean_c [-y_c log sigmoid(x_c) - (1 - y_c) log sigmoid(-x_c)]`` per
    image, i.e. ``F.multilabel_soft_margin_loss`` as used by IRN, PSA and
    PuzzleCAM for CAM classifiers (CamGuide eq. (23) is the hinge
    variant, :class:`MultiLabelMarginLoss`).

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'`` over images.
        loss_name (str): Name of the loss item; must start with ``loss_`` to
            be back-propagated. Defaults to ``'loss_cls'``.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 loss_name: str = 'loss_cls') -> None:
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f'reduction must be mean/sum/none, got '
                             f'{reduction!r}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self._loss_name = loss_name

    def forward(self,
                logits: torch.Tensor,
                targets: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits (Tensor): ``(N, K)`` class logits.
            targets (Tensor): ``(N, K)`` multi-hot targets in {0, 1}, or
                soft targets in ``[0, 1]`` (MixUp / CutMix).
            weight (Tensor, optional): ``(N,)`` per-image weights.

        Returns:
            Tensor: The weighted loss.
        """
        if logits.shape != targets.shape:
            raise ValueError(f'logits {tuple(logits.shape)} and targets '
                             f'{tuple(targets.shape)} differ in shape')
        per_img = F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction='none').mean(dim=1)
        if weight is not None:
            per_img = per_img * weight
        if self.reduction == 'mean':
            loss = per_img.mean()
        elif self.reduction == 'sum':
            loss = per_img.sum()
        else:
            loss = per_img
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name
