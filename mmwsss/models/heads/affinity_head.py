# Copyright (c) mmwsss contributors.
"""AffinityNet head: multi-level features to pixel-affinity embeddings.

:class:`BaseAffinityHead` holds what every head of
:class:`~mmwsss.models.segmentors.AffinityNet` shares: the pair loss on
confident labels and the interface through which the segmentor's random
walk asks the head for the affinities of its pairs. :class:`AffinityHead`
is PSA's embedding head; IRN's boundary head is
:class:`~mmwsss.models.heads.BoundaryAffinityHead`.
"""
from abc import abstractmethod
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.utils import OptConfigType, OptMultiConfig
from torch import Tensor

from mmwsss.refine.affinity_random_walk import (check_beta, check_feats,
                                                check_walk_cfg,
                                                pair_affinities, pair_offsets,
                                                pair_slices, resolve_walk)
from mmwsss.registry import MODELS
from mmwsss.utils.relative_size import SizeSpec, is_relative


class BaseAffinityHead(BaseModule):
    """Base of the heads of :class:`~mmwsss.models.segmentors.AffinityNet`.

    A head maps the backbone levels to a per-pixel output on its grid
    (``forward``, ``(N, D, h, w)``: affinity features for PSA, boundary
    logits for IRN) and says how that output defines the affinity of a
    pair of grid nodes (:meth:`pair_affinities`). Everything else is
    shared: the confident labels are resized to the grid, and the pair
    loss of PSA (``train_aff.py``) and IRN (``step/train_irn.py``, its
    affinity part) is computed on the pairs of nodes closer than
    ``radius`` (each unordered pair once, see
    :func:`~mmwsss.refine.affinity_random_walk.pair_offsets`; both nodes
    inside the grid) whose two labels are valid (not ``ignore_index``),
    with the head's affinity ``a``:

    - background-positive pairs (both labels 0): ``-log(a + eps)``;
    - foreground-positive pairs (equal labels > 0): ``-log(a + eps)``;
    - negative pairs (different labels): ``-log(1 + eps - a)``;

    each term is averaged over its pairs of the whole batch (sum over the
    batch divided by ``count + eps``, so an empty set gives 0, as in PSA
    and IRN) and the loss is ``bg / 4 + fg / 4 + neg / 2``
    (``loss_weights``; IRN writes it ``((bg / 2 + fg / 2) + neg) / 2``).

    The random walk of the segmentor uses :meth:`pair_affinities` (with
    its ``beta``) for the transition matrix and :meth:`walk_inputs` on
    the maps it walks.

    Args:
        radius (int | dict): Pair radius of the training loss, in grid
            nodes or relative to the grid side (``dict(rel=5 / 128,
            min=2)``, resolved per batch as the random walk's, see
            :func:`~mmwsss.refine.affinity_random_walk.resolve_walk`).
        loss_weights (Sequence[float]): Weights of the bg-positive,
            fg-positive and negative terms.
        ignore_index (int): Label of uncertain pixels.
        eps (float): The ``1e-5`` of PSA's and IRN's logs and counts.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 radius: SizeSpec = 5,
                 loss_weights: Sequence[float] = (0.25, 0.25, 0.5),
                 ignore_index: int = 255,
                 eps: float = 1e-5,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(loss_weights) != 3:
            raise ValueError('loss_weights must be (bg_pos, fg_pos, neg), '
                             f'got {loss_weights}')
        check_walk_cfg(radius, 0)  # validates the radius
        self.radius = radius if is_relative(radius) else int(radius)
        self.loss_weights = tuple(float(w) for w in loss_weights)
        self.ignore_index = int(ignore_index)
        self.eps = float(eps)

    def _init_levels(self, in_channels: Sequence[int],
                     in_index: Optional[Sequence[int]],
                     channels: Sequence[int],
                     norm_cfg: OptConfigType) -> List[int]:
        """Validate and store the levels of a multi-level head.

        Sets ``in_channels``, ``in_index`` and ``channels`` (one projection
        width per used level) and returns the widths.
        """
        in_channels, in_index = check_levels(in_channels, in_index)
        channels = [int(c) for c in channels]
        if len(channels) != len(in_index):
            raise ValueError(
                f'channels {channels} must give one value per used level '
                f'(in_index {in_index})')
        check_gn_groups(norm_cfg, channels)
        self.in_channels = in_channels
        self.in_index = in_index
        self.channels = channels
        return channels

    def _project_levels(self,
                        inputs: Sequence[Tensor],
                        post: Optional[nn.Module] = None) -> Tensor:
        """``self.projs`` of the used levels, resized (bilinear) to the
        first used level, each followed by ``post``, concatenated on the
        channels."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'expected {len(self.in_channels)} feature maps '
                             f'(in_channels), got {len(inputs)}')
        size = inputs[self.in_index[0]].shape[2:]
        outs = []
        for proj, i in zip(self.projs, self.in_index):
            x = proj(inputs[i])
            if x.shape[2:] != size:
                x = F.interpolate(
                    x, size=size, mode='bilinear', align_corners=False)
            outs.append(x if post is None else post(x))
        return torch.cat(outs, dim=1)

    @abstractmethod
    def pair_affinities(self,
                        feats: Tensor,
                        radius: int,
                        beta: float = 1.0) -> List[Tensor]:
        """Affinities ``a ** beta`` of the pairs of every offset.

        Args:
            feats (Tensor): Head outputs ``(..., D, h, w)``.
            radius (int): Pair radius in grid nodes.
            beta (float): Power of the affinities (the random walk's
                ``beta``; 1 in the loss).

        Returns:
            list[Tensor]: For each offset ``(dy, dx)`` of
            ``pair_offsets(radius)``, the values ``(..., h', w')`` of the
            pairs ``(y, x) - (y + dy, x + dx)`` on
            :func:`~mmwsss.refine.affinity_random_walk.pair_slices`, in
            ``[0, 1]`` for ``beta > 0``.
        """

    def walk_affinities(self, feats: Tensor, radius: int,
                        beta: float) -> List[Tensor]:
        """:meth:`pair_affinities` of one image for the random walk.

        Args:
            feats (Tensor): Head outputs ``(D, h, w)`` of one image
                (finite floating point).
            radius (int): Walk radius in grid nodes.
            beta (float): Affinity power, finite and > 0.

        Returns:
            list[Tensor]: ``(h', w')`` affinities ``a ** beta`` per offset,
            as ``affinity_transition`` of
            :mod:`mmwsss.refine.affinity_random_walk` takes them.
        """
        check_feats(feats)
        return self.pair_affinities(feats, radius, check_beta(beta))

    def walk_inputs(self, feats: Tensor, maps: Tensor) -> Tensor:
        """The maps the random walk propagates, on the head's grid.

        Args:
            feats (Tensor): Head outputs ``(D, h, w)`` of one image.
            maps (Tensor): ``(C, h, w)`` score maps pooled to the grid.

        Returns:
            Tensor: ``maps`` (unchanged here; IRN's boundary head weights
            them by ``1 - boundary``).
        """
        return maps

    def downsample_labels(self, labels: Tensor, size) -> Tensor:
        """Nearest-neighbour labels ``(N, h, w)`` on the feature grid.

        Args:
            labels (Tensor): ``(N, H, W)`` or ``(N, 1, H, W)`` label maps.
            size (tuple[int, int]): Grid size ``(h, w)``.

        Returns:
            Tensor: int64 ``(N, h, w)``; node ``(y, x)`` takes the label at
            ``(floor(y H / h), floor(x W / w))`` (PSA rescales its labels
            with nearest-neighbour interpolation too, IRN with PIL's
            nearest ``pil_rescale(label, 0.25, 0)``).
        """
        if labels.dim() == 4:
            if labels.shape[1] != 1:
                raise ValueError('labels must be (N, H, W) or (N, 1, H, W), '
                                 f'got shape {tuple(labels.shape)}')
            labels = labels[:, 0]
        if labels.dim() != 3:
            raise ValueError('labels must be (N, H, W) or (N, 1, H, W), got '
                             f'shape {tuple(labels.shape)}')
        if tuple(labels.shape[1:]) == tuple(size):
            return labels.long()
        out = F.interpolate(
            labels[:, None].float(), size=tuple(size), mode='nearest')
        return out[:, 0].round().long()

    def loss_by_feat(self, feats: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """The pair loss of PSA / IRN (see the class docstring).

        Args:
            feats (Tensor): Head outputs ``(N, D, h, w)``.
            labels (Tensor): Confident labels ``(N, H, W)`` or
                ``(N, 1, H, W)``: 0 background, ``1..K-1`` foreground,
                ``ignore_index`` uncertain; resized to the grid with
                nearest neighbours.

        Returns:
            dict[str, Tensor]: ``loss_aff_bg``, ``loss_aff_fg`` and
            ``loss_aff_neg`` (already weighted; their sum is the loss) and
            the pair counts ``num_bg_pos``, ``num_fg_pos``, ``num_neg``.
        """
        if feats.dim() != 4:
            raise ValueError('feats must be (N, D, h, w), got shape '
                             f'{tuple(feats.shape)}')
        labels = self.downsample_labels(labels, feats.shape[2:])
        if labels.shape[0] != feats.shape[0]:
            raise ValueError(f'{labels.shape[0]} label maps for '
                             f'{feats.shape[0]} feature maps')
        h, w = feats.shape[2:]
        ign = self.ignore_index
        sums = [feats.new_zeros(()) for _ in range(3)]
        counts = [feats.new_zeros(()) for _ in range(3)]
        radius, _ = resolve_walk(self.radius, 0, (h, w))
        affs = self.pair_affinities(feats, radius)
        for (dy, dx), aff in zip(pair_offsets(radius), affs):
            (fy, fx), (ty, tx) = pair_slices(h, w, dy, dx)
            lf, lt = labels[:, fy, fx], labels[:, ty, tx]
            if lf.numel() == 0:
                continue
            valid = (lf != ign) & (lt != ign)
            pos = valid & (lf == lt)
            masks = (pos & (lf == 0), pos & (lf != 0), valid & (lf != lt))
            pos_loss = -torch.log(aff + self.eps)
            neg_loss = -torch.log(1 + self.eps - aff)
            for k, (mask, term) in enumerate(
                    zip(masks, (pos_loss, pos_loss, neg_loss))):
                sums[k] = sums[k] + (term * mask).sum()
                counts[k] = counts[k] + mask.sum()
        terms = [s / (c + self.eps) for s, c in zip(sums, counts)]
        w_bg, w_fg, w_neg = self.loss_weights
        return dict(
            loss_aff_bg=terms[0] * w_bg,
            loss_aff_fg=terms[1] * w_fg,
            loss_aff_neg=terms[2] * w_neg,
            num_bg_pos=counts[0].detach(),
            num_fg_pos=counts[1].detach(),
            num_neg=counts[2].detach())

    @staticmethod
    def sample_labels(data_samples: List) -> Tensor:
        """Stack the samples' ``gt_sem_seg`` into ``(N, H, W)``."""
        maps = []
        for ds in data_samples:
            if 'gt_sem_seg' not in ds:
                raise KeyError(
                    f'{ds.metainfo.get("img_path", "sample")}: AffinityNet '
                    'training needs the confident label map as gt_sem_seg '
                    '(mmseg.LoadAnnotations + PackWSSSInputs)')
            data = ds.gt_sem_seg.data
            maps.append(data[0] if data.dim() == 3 else data)
        shapes = {tuple(m.shape) for m in maps}
        if len(shapes) != 1:
            raise ValueError(f'label maps of different sizes {shapes} in one '
                             'batch; let the data preprocessor pad them')
        return torch.stack(maps)


@MODELS.register_module()
class AffinityHead(BaseAffinityHead):
    """Affinity embedding head of AffinityNet (PSA).

    Architecture (PSA ``network/resnet38_aff.py``, whose three levels are
    projected to 64, 128 and 256 channels, concatenated and mixed by a
    448-channel 1x1 convolution, all followed by ELU): every selected
    backbone level goes through a 1x1 ``ConvModule`` (conv + optional norm
    + activation) to ``channels[i]`` channels, is resized bilinearly to
    the size of the *first* selected level (so the affinity grid has that
    level's stride: 4 for ``out_indices`` starting at a stride-4 stage,
    PSA uses 8), the maps are concatenated and a final 1x1 ``ConvModule``
    (no norm) maps them to ``feat_dim`` channels (PSA 448).

    Affinity (PSA): ``a = exp(-mean_d |f_i - f_j|)`` of the two nodes'
    features (:func:`~mmwsss.refine.affinity_random_walk.pair_affinities`;
    ``a ** beta`` is computed as ``exp(-beta * mean_d |f_i - f_j|)``).
    Loss: the pair loss of :class:`BaseAffinityHead`.

    Args:
        in_channels (Sequence[int]): Channels of the backbone outputs.
        channels (Sequence[int]): Projection channels of each used level.
            Defaults to PSA's ``(64, 128, 256)``.
        feat_dim (int): Channels of the affinity features. Defaults to
            448 (PSA).
        in_index (Sequence[int], optional): Backbone outputs used, in
            order (the first one sets the grid stride). Defaults to all.
        norm_cfg (dict, optional): Norm of the projections. Defaults to
            ``GN`` with 8 groups (PSA uses none on ResNet-38 and GN on its
            VGG variant); None disables it.
        act_cfg (dict): Activation after every 1x1 conv. Defaults to ELU
            (PSA).
        radius (int | dict): Pair radius of the training loss, in grid
            nodes or relative to the grid side (``dict(rel=5 / 128,
            min=2)``, resolved per batch as the random walk's, see
            :func:`~mmwsss.refine.affinity_random_walk.resolve_walk`).
            Defaults to 5.
        loss_weights (Sequence[float]): Weights of the bg-positive,
            fg-positive and negative terms. Defaults to PSA's
            ``(0.25, 0.25, 0.5)``.
        ignore_index (int): Label of uncertain pixels. Defaults to 255.
        eps (float): The ``1e-5`` of PSA's logs and counts.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: Sequence[int] = (64, 128, 256),
        feat_dim: int = 448,
        in_index: Optional[Sequence[int]] = None,
        norm_cfg: OptConfigType = dict(type='GN', num_groups=8),
        act_cfg: OptConfigType = dict(type='ELU'),
        radius: SizeSpec = 5,
        loss_weights: Sequence[float] = (0.25, 0.25, 0.5),
        ignore_index: int = 255,
        eps: float = 1e-5,
        init_cfg: OptMultiConfig = dict(type='Kaiming', layer='Conv2d')
    ) -> None:
        super().__init__(
            radius=radius,
            loss_weights=loss_weights,
            ignore_index=ignore_index,
            eps=eps,
            init_cfg=init_cfg)
        channels = self._init_levels(in_channels, in_index, channels,
                                     norm_cfg)
        in_channels, in_index = self.in_channels, self.in_index
        self.feat_dim = int(feat_dim)
        self.projs = nn.ModuleList([
            ConvModule(
                in_channels[i],
                c,
                1,
                bias=norm_cfg is None,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg) for i, c in zip(in_index, channels)
        ])
        self.fuse = ConvModule(
            sum(channels), self.feat_dim, 1, bias=False, act_cfg=act_cfg)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Affinity features ``(N, feat_dim, h, w)`` on the first level."""
        return self.fuse(self._project_levels(inputs))

    def pair_affinities(self,
                        feats: Tensor,
                        radius: int,
                        beta: float = 1.0) -> List[Tensor]:
        """PSA's ``exp(-beta * mean_d |f_i - f_j|)`` of every pair.

        See :meth:`BaseAffinityHead.pair_affinities` and
        :func:`~mmwsss.refine.affinity_random_walk.pair_affinities`.
        """
        return pair_affinities(feats, radius, beta)


def check_levels(in_channels: Sequence[int],
                 in_index: Optional[Sequence[int]]) -> tuple:
    """Validated ``(in_channels, in_index)`` lists of a multi-level head."""
    in_channels = [int(c) for c in in_channels]
    if in_index is None:
        in_index = list(range(len(in_channels)))
    in_index = [int(i) for i in in_index]
    if not in_index:
        raise ValueError('in_index must select at least one level')
    for i in in_index:
        if not 0 <= i < len(in_channels):
            raise ValueError(f'in_index {in_index} out of range for '
                             f'{len(in_channels)} in_channels')
    return in_channels, in_index


def check_gn_groups(norm_cfg: OptConfigType, channels: Sequence[int]) -> None:
    """Refuse GN group counts that do not divide the channels."""
    if norm_cfg is not None and norm_cfg.get('type') == 'GN':
        groups = norm_cfg.get('num_groups', 1)
        bad = [c for c in channels if c % groups]
        if bad:
            raise ValueError(f'channels {bad} are not divisible by the '
                             f'GN num_groups={groups}')
