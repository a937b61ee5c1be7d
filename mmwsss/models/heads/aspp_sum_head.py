# Copyright (c) mmwsss contributors.
"""DeepLab v2's ASPP classifier: parallel dilated 3x3 convs, summed."""
from typing import List, Sequence

import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmwsss.registry import MODELS


@MODELS.register_module()
class ASPPSumHead(BaseDecodeHead):
    """ASPP-L head of DeepLab v2 (Chen et al., TPAMI 2018), as WSSS uses it.

    One 3x3 convolution per dilation rate (6, 12, 18, 24), each mapping the
    backbone features straight to class logits; the branch logits are
    summed. There is no normalisation, activation or 1x1 projection in the
    head: the form of the DeepLab-v2 ResNet-101 final model that WSSS papers
    (IRN, SEAM, AMN, ...) train on pseudo-labels, as in the widely used
    PyTorch port of DeepLab v2 (``_ASPP``: ``Conv2d(in, classes, 3,
    padding=rate, dilation=rate, bias=True)`` per rate, weights drawn from
    N(0, 0.01), biases 0). This is also the ResNet-101 ASPP of the
    original Caffe models (``fc1_*_c0..c3`` summed by an ``Eltwise`` layer);
    only the VGG-16 ASPP-L has 1x1 "fc7/fc8" layers with dropout per
    branch.

    ``BaseDecodeHead``'s ``conv_seg`` classifier is removed (the branches
    are the classifier), so every parameter of the head gets a gradient.

    Args:
        dilations (Sequence[int]): Dilation (= padding) of each branch.
            Defaults to ``(6, 12, 18, 24)``.
        init_std (float): Std of the normal initialisation of the branch
            weights (biases start at 0). Defaults to 0.01.
        dropout_ratio (float): Dropout on the input features before the
            branches; DeepLab v2 on ResNet has none. Defaults to 0.
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead`
            arguments (``in_channels``, ``num_classes``, ``loss_decode``,
            ``align_corners`` ...). ``channels`` is unused and defaults to
            ``in_channels``; ``norm_cfg``/``act_cfg`` are ignored (the head
            has neither); ``loss_decode`` defaults to
            ``mmseg.CrossEntropyLoss``.

    Example:
        >>> import torch
        >>> head = ASPPSumHead(in_channels=8, num_classes=3)
        >>> head([torch.rand(1, 8, 16, 16)]).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(self,
                 dilations: Sequence[int] = (6, 12, 18, 24),
                 init_std: float = 0.01,
                 dropout_ratio: float = 0.0,
                 **kwargs) -> None:
        if 'in_channels' not in kwargs:
            raise TypeError('ASPPSumHead needs in_channels')
        kwargs.setdefault('channels', kwargs['in_channels'])
        # BaseDecodeHead's default names an unscoped CrossEntropyLoss,
        # which the mmwsss scope does not resolve
        kwargs.setdefault(
            'loss_decode',
            dict(
                type='mmseg.CrossEntropyLoss',
                use_sigmoid=False,
                loss_weight=1.0))
        kwargs.setdefault(
            'init_cfg',
            dict(type='Normal', std=init_std, bias=0, layer='Conv2d'))
        super().__init__(dropout_ratio=dropout_ratio, **kwargs)
        if not dilations:
            raise ValueError('ASPPSumHead needs at least one dilation')
        self.dilations = tuple(int(d) for d in dilations)
        del self.conv_seg
        self.aspp = nn.ModuleList(
            nn.Conv2d(
                self.in_channels,
                self.out_channels,
                kernel_size=3,
                padding=d,
                dilation=d,
                bias=True) for d in self.dilations)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Sum of the branch logits.

        Args:
            inputs (list[Tensor]): Backbone outputs; ``in_index`` picks the
                ``(N, in_channels, H, W)`` map.

        Returns:
            Tensor: ``(N, out_channels, H, W)`` logits.
        """
        x = self._transform_inputs(inputs)
        if self.dropout is not None:
            x = self.dropout(x)
        out = self.aspp[0](x)
        for conv in self.aspp[1:]:
            out = out + conv(x)
        return out

    def cls_seg(self, feat: Tensor) -> Tensor:
        raise NotImplementedError(
            'ASPPSumHead has no conv_seg: its branches are the classifier')
