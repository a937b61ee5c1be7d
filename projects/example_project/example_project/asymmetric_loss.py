# Copyright (c) mmwsss contributors.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmwsss.registry import MODELS


@MODELS.register_module()
class ExampleAsymmetricLoss(nn.Module):
    """Asymmetric loss (ASL) on image-level class logits.

    Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV
    2021 (arXiv:2009.14119). With ``p = sigmoid(x)`` and the
    shifted probability ``p_m = max(p - m, 0)`` of a negative class
    (margin ``m = clip``)::

        L+ = (1 - p) ** gamma_pos * log(p)
        L- = p_m ** gamma_neg * log(1 - p_m)
        L  = -y * L+ - (1 - y) * L-

    Easy negatives are down-weighted by ``p_m ** gamma_neg`` and negatives
    with ``p <= clip`` are discarded altogether. As in the official
    implementation (Alibaba-MIIL/ASL) gradients also flow through the
    focusing weights.

    Unlike the official code, which sums over classes and images, the loss
    is averaged over classes per image and then reduced over images, as
    :class:`mmwsss.models.losses.MultiLabelSoftMarginLoss` does: with
    ``gamma_pos = gamma_neg = clip = 0`` both losses are identical, so ASL
    can replace the default CAM loss without retuning ``loss_weight``.

    Args:
        gamma_pos (float): Focusing parameter of positive classes.
            Defaults to 0.0 (the paper's recommended setting).
        gamma_neg (float): Focusing parameter of negative classes.
            Defaults to 4.0.
        clip (float): Probability margin ``m`` of negative classes, in
            [0, 1). Defaults to 0.05.
        eps (float): Lower clamp of the argument of ``log`` for shifted
            negatives. Defaults to 1e-8.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'`` over images.
        loss_name (str): Name of the loss item; must start with ``loss_`` to
            be back-propagated. Defaults to ``'loss_cls'``.
    """

    def __init__(self,
                 gamma_pos: float = 0.0,
                 gamma_neg: float = 4.0,
                 clip: float = 0.05,
                 eps: float = 1e-8,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 loss_name: str = 'loss_cls') -> None:
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f'reduction must be mean/sum/none, got '
                             f'{reduction!r}')
        if gamma_pos < 0 or gamma_neg < 0:
            raise ValueError('gamma_pos and gamma_neg must be >= 0, got '
                             f'{gamma_pos} and {gamma_neg}')
        if not 0 <= clip < 1:
            raise ValueError(f'clip must be in [0, 1), got {clip}')
        self.gamma_pos = float(gamma_pos)
        self.gamma_neg = float(gamma_neg)
        self.clip = float(clip)
        self.eps = float(eps)
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
            targets (Tensor): ``(N, K)`` multi-hot targets in {0, 1}.
            weight (Tensor, optional): ``(N,)`` per-image weights.

        Returns:
            Tensor: The weighted loss.
        """
        if logits.shape != targets.shape:
            raise ValueError(f'logits {tuple(logits.shape)} and targets '
                             f'{tuple(targets.shape)} differ in shape')
        y = targets.to(logits.dtype)
        prob = logits.sigmoid()
        # log p and log(1 - p) from the logits, stable for large |x|
        log_pos = F.logsigmoid(logits)
        if self.clip > 0:
            prob_neg = (prob - self.clip).clamp(min=0)
            log_neg = torch.log((1 - prob_neg).clamp(min=self.eps))
        else:
            prob_neg = prob
            log_neg = F.logsigmoid(-logits)
        # 1 - p as sigmoid(-x): no cancellation for large positive logits
        loss_pos = torch.sigmoid(-logits).pow(self.gamma_pos) * log_pos
        loss_neg = prob_neg.pow(self.gamma_neg) * log_neg
        per_img = -(y * loss_pos + (1 - y) * loss_neg).mean(dim=1)
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
