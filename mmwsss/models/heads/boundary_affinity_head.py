# Copyright (c) mmwsss contributors.
"""IRN's class-boundary branch as a head of AffinityNet."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmseg.utils import OptConfigType, OptMultiConfig
from torch import Tensor

from mmwsss.refine.boundary_affinity import path_max_affinities
from mmwsss.registry import MODELS
from mmwsss.utils.relative_size import SizeSpec
from .affinity_head import BaseAffinityHead, check_levels


@MODELS.register_module()
class BoundaryAffinityHead(BaseAffinityHead):
    """Inter-pixel relation head of IRN: a boundary map and path affinities.

    IRN (Ahn, Cho & Kwak, "Weakly Supervised Learning of Instance
    Segmentation with Inter-pixel Relations", CVPR 2019,
    ``jiwoon-ahn/irn``), its class-boundary branch only; the displacement
    field branch, which IRN trains for instance masks, is left out.

    Architecture (``net/resnet50_irn.py``, ``fc_edge1``-``fc_edge6``):
    every selected backbone level goes through a 1x1 convolution without
    bias to ``channels`` (32) channels and ``GroupNorm(4, 32)``, is resized
    bilinearly to the size of the *first* selected level (IRN: stride 4),
    then ReLU (IRN upsamples between the norm and the ReLU); the maps are
    concatenated and a 1x1 convolution with bias maps them to one channel,
    the boundary logits ``(N, 1, h, w)`` (:meth:`forward`). IRN uses all
    five ResNet-50 levels (64, 256, 512, 1024, 2048 channels at strides 4,
    4, 8, 16, 16) with 32 channels each (160 concatenated).

    Affinity (IRN ``misc/indexing.py``, ``edge_to_affinity``): with the
    boundary probability ``B = sigmoid(logits)``, ``a_ij = 1 - max B`` over
    the discretised straight path between nodes ``i`` and ``j`` (both
    included; :func:`~mmwsss.refine.boundary_affinity.path_pixels`).

    Loss (``step/train_irn.py``, the affinity terms): ``pos = -log(a +
    1e-5)`` on background-positive and foreground-positive pairs,
    ``neg = -log(1 + 1e-5 - a)`` on negative pairs, each averaged over
    its pairs, ``((bg + fg) / 2 + neg) / 2``: the pair loss of
    :class:`BaseAffinityHead` with its default weights
    ``(0.25, 0.25, 0.5)``, on pairs closer than ``radius`` (IRN 10).

    Random walk (``step/make_sem_seg_labels.py``, ``propagate_to_edge``):
    the segmentor asks for ``a ** beta`` (IRN ``beta=10``) on pairs closer
    than its ``test_cfg.radius`` (IRN 5), and, with
    ``weight_cams_by_boundary`` (IRN), walks ``cams * (1 - B)``
    (:meth:`walk_inputs`). With ``test_cfg.flip`` the segmentor averages
    the logits of the image and of its mirror before the sigmoid, as IRN's
    ``EdgeDisplacement`` does.

    Args:
        in_channels (Sequence[int]): Channels of the backbone outputs.
        channels (int | Sequence[int]): Channels of each used level's
            projection. Defaults to 32 (IRN).
        in_index (Sequence[int], optional): Backbone outputs used, in
            order (the first one sets the grid stride). Defaults to all.
        norm_cfg (dict, optional): Norm after each projection. Defaults to
            ``GN`` with 4 groups (IRN); None gives the convolutions a bias
            and no norm.
        act_cfg (dict): Activation after the resize. Defaults to ReLU.
        radius (int | dict): Pair radius of the training loss, in grid
            nodes or relative to the grid side. Defaults to 10 (IRN).
        loss_weights (Sequence[float]): Weights of the bg-positive,
            fg-positive and negative terms. Defaults to IRN's
            ``(0.25, 0.25, 0.5)``.
        ignore_index (int): Label of uncertain pixels. Defaults to 255.
        eps (float): The ``1e-5`` of IRN's logs and counts.
        weight_cams_by_boundary (bool): Multiply the maps to walk by
            ``1 - B`` (IRN ``propagate_to_edge``). Defaults to True.
        init_cfg (dict, optional): Initialisation config. Defaults to None:
            PyTorch's default initialisation of the layers, as IRN.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: Union[int, Sequence[int]] = 32,
                 in_index: Optional[Sequence[int]] = None,
                 norm_cfg: OptConfigType = dict(type='GN', num_groups=4),
                 act_cfg: OptConfigType = dict(type='ReLU'),
                 radius: SizeSpec = 10,
                 loss_weights: Sequence[float] = (0.25, 0.25, 0.5),
                 ignore_index: int = 255,
                 eps: float = 1e-5,
                 weight_cams_by_boundary: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            radius=radius,
            loss_weights=loss_weights,
            ignore_index=ignore_index,
            eps=eps,
            init_cfg=init_cfg)
        if isinstance(channels, int):
            channels = [channels] * len(check_levels(in_channels,
                                                     in_index)[1])
        channels = self._init_levels(in_channels, in_index, channels,
                                     norm_cfg)
        in_channels, in_index = self.in_channels, self.in_index
        self.weight_cams_by_boundary = bool(weight_cams_by_boundary)
        projs = []
        for i, c in zip(in_index, channels):
            layers = [nn.Conv2d(in_channels[i], c, 1, bias=norm_cfg is None)]
            if norm_cfg is not None:
                layers.append(build_norm_layer(norm_cfg, c)[1])
            projs.append(nn.Sequential(*layers))
        self.projs = nn.ModuleList(projs)
        self.act = build_activation_layer(act_cfg) if act_cfg else \
            nn.Identity()
        self.conv_edge = nn.Conv2d(sum(channels), 1, 1, bias=True)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Boundary logits ``(N, 1, h, w)`` on the first used level."""
        return self.conv_edge(self._project_levels(inputs, self.act))

    @staticmethod
    def boundary(logits: Tensor) -> Tensor:
        """Boundary probabilities ``(..., h, w)`` of ``(..., 1, h, w)``."""
        if logits.dim() < 3 or logits.shape[-3] != 1:
            raise ValueError('boundary logits must have shape '
                             f'(..., 1, h, w), got {tuple(logits.shape)}')
        return torch.sigmoid(logits[..., 0, :, :])

    def pair_affinities(self,
                        feats: Tensor,
                        radius: int,
                        beta: float = 1.0) -> List[Tensor]:
        """IRN's path affinities ``(1 - max_path B) ** beta`` of every pair.

        Args:
            feats (Tensor): Boundary logits ``(..., 1, h, w)``.
            radius (int): Pair radius in grid nodes.
            beta (float): Power of the affinities. Defaults to 1.

        Returns:
            list[Tensor]: ``(..., h', w')`` per offset of
            ``pair_offsets(radius)``, see
            :func:`~mmwsss.refine.boundary_affinity.path_max_affinities`.
        """
        return path_max_affinities(self.boundary(feats), radius, beta)

    def walk_inputs(self, feats: Tensor, maps: Tensor) -> Tensor:
        """``maps * (1 - B)`` (IRN ``propagate_to_edge``), or ``maps``.

        Args:
            feats (Tensor): Boundary logits ``(1, h, w)`` of one image.
            maps (Tensor): ``(C, h, w)`` score maps on the grid.

        Returns:
            Tensor: The maps to walk.
        """
        if not self.weight_cams_by_boundary:
            return maps
        return maps * (1 - self.boundary(feats)).to(maps.dtype)
