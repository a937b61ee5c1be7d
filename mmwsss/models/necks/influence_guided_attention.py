# Copyright (c) mmwsss contributors.
"""Influence-guided attention on multi-scale features (IG-CAM sec. 3.2)."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.utils import OptMultiConfig
from torch import Tensor

from mmwsss.registry import MODELS


@MODELS.register_module()
class InfluenceGuidedAttention(BaseModule):
    """Influence-guided attention, IG-CAM eq. (3)-(4), one block per scale.

    For every scale ``s`` with features ``F_s`` (``N, C, h_s, w_s``) and
    spatial influence map ``I_s`` (``N, 1, h_s, w_s``)::

        W_s = sigmoid(Conv_s(F_s) * I_s)            # eq. (3)
        F~_s = F_s * (1 + alpha_s * W_s)            # eq. (4)

    Readings chosen where the paper is loose:

    - ``Conv_s`` is a 1x1 convolution with bias. With ``mode='channel'``
      (default) it has ``C`` outputs, so ``W_s`` is a per-channel,
      per-location gate: the paper "enhance[s] the most informative feature
      channels" and (suppl. 6.7.1) "modulate[s] feature channels".
      ``mode='spatial'`` gives a single output channel, broadcast over the
      channels (a purely spatial gate, ``C + 1`` parameters per scale).
    - ``alpha_s`` is one learnable scalar per scale (``shared_alpha=True``:
      one for all scales), initialised to ``alpha_init = 0``, so that
      ``F~_s = F_s`` and training starts from a plain multi-scale CAM. The
      gradient w.r.t. ``alpha`` is ``sum F_s W_s dL/dF~_s``, non-zero from
      the first step; ``Conv_s`` receives gradients once ``alpha != 0``.
      Since ``1 + alpha W`` with ``W`` in ``(0, 1)`` lies between 1 and
      ``1 + alpha``, a positive ``alpha`` can only amplify.
    - ``I_s`` is the influence map resampled to the scale, normalised to
      spatial mean 1 by the segmentor, and all ones before the first
      influence refresh (then ``W_s = sigmoid(Conv_s(F_s))``, a self-gate).
      Maps of another size are resized bilinearly. The product with
      ``Conv_s(F_s)`` is literal: where the convolution output is negative a
      higher influence pushes the gate towards 0.

    Args:
        in_channels (int): Channels ``C`` of every scale. Defaults to 256.
        num_scales (int): Number of scales. Defaults to 4.
        mode (str): ``'channel'`` or ``'spatial'``. Defaults to
            ``'channel'``.
        alpha_init (float): Initial ``alpha``. Defaults to 0.
        shared_alpha (bool): One ``alpha`` for all scales. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    MODES = ('channel', 'spatial')

    def __init__(self,
                 in_channels: int = 256,
                 num_scales: int = 4,
                 mode: str = 'channel',
                 alpha_init: float = 0.0,
                 shared_alpha: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got '
                             f'{mode!r}')
        if num_scales < 1:
            raise ValueError('num_scales must be >= 1')
        self.in_channels = in_channels
        self.num_scales = num_scales
        self.mode = mode
        out = in_channels if mode == 'channel' else 1
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, out, 1) for _ in range(num_scales))
        self.alpha = nn.Parameter(
            torch.full((1 if shared_alpha else num_scales, ),
                       float(alpha_init)))

    def alpha_of(self, scale: int) -> Tensor:
        """The ``alpha`` of a scale."""
        return self.alpha[0 if self.alpha.numel() == 1 else scale]

    def forward(
        self,
        feats: Sequence[Tensor],
        influence: Optional[Sequence[Optional[Tensor]]] = None
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """Enhance the features of every scale.

        Args:
            feats (Sequence[Tensor]): ``num_scales`` maps ``(N, C, h_s,
                w_s)``.
            influence (Sequence[Tensor], optional): Per-scale maps ``(N, 1,
                h, w)`` (any size; None entries or None: all ones).

        Returns:
            tuple[list[Tensor], list[Tensor]]: Enhanced features ``F~_s`` and
            gates ``W_s`` (``(N, C or 1, h_s, w_s)``).
        """
        if len(feats) != self.num_scales:
            raise ValueError(f'expected {self.num_scales} feature maps, got '
                             f'{len(feats)}')
        out, gates = [], []
        for s, feat in enumerate(feats):
            logit = self.convs[s](feat)
            inf = None if influence is None else influence[s]
            if inf is not None:
                if inf.shape[-2:] != feat.shape[-2:]:
                    inf = F.interpolate(
                        inf,
                        size=feat.shape[-2:],
                        mode='bilinear',
                        align_corners=False)
                logit = logit * inf.to(logit.dtype)
            gate = torch.sigmoid(logit)
            out.append(feat * (1 + self.alpha_of(s) * gate))
            gates.append(gate)
        return out, gates
