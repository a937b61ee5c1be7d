# Copyright (c) mmwsss contributors.
"""CamGuide refinement head: fusion-upscale, guided filter, gated residual.

CamGuide sec. II.I.4, eqs. (17)-(22), with the classifier dropout of
sec. II.H. :class:`GuidedFilter` is He et al.'s guided filter (ECCV 2010),
differentiable and batched.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.utils import ConfigType
from torch import Tensor

from mmwsss.registry import MODELS
from mmwsss.utils.relative_size import (SizeSpec, check_size, grid_side,
                                        is_relative, resolve_size)

_GUIDES = ('color', 'gray')
_RESIZES = ('area', 'bilinear')


def _check_4d(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
        raise ValueError(f'{name} must be a 4-D tensor (N, C, H, W), got '
                         f'{shape}')


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over the ``(2r+1)^2`` window clipped to the image.

    Border windows average only their in-image pixels, i.e. He et al.'s
    ``boxfilter(p) ./ boxfilter(ones)`` (``N`` in the reference MATLAB
    code). OpenCV's normalised ``boxFilter`` would instead reflect the
    border (``BORDER_REFLECT_101``) and always divide by ``(2r+1)^2``.

    Args:
        x (Tensor): ``(N, C, H, W)``.
        radius (int): Window radius ``r``.

    Returns:
        Tensor: ``(N, C, H, W)`` local means.
    """
    if radius == 0:
        return x
    return F.avg_pool2d(
        x,
        kernel_size=2 * radius + 1,
        stride=1,
        padding=radius,
        count_include_pad=False)


def _inv3x3_sym(s: List[Tensor]) -> List[Tensor]:
    """Inverse of symmetric 3x3 matrices given as ``[xx, xy, xz, yy, yz,
    zz]``, by the adjugate (as in He et al.'s reference code).

    Returns the six upper-triangle entries of the inverse in the same order.
    """
    xx, xy, xz, yy, yz, zz = s
    c_xx = yy * zz - yz * yz
    c_xy = xz * yz - xy * zz
    c_xz = xy * yz - xz * yy
    c_yy = xx * zz - xz * xz
    c_yz = xz * xy - xx * yz
    c_zz = xx * yy - xy * xy
    det = xx * c_xx + xy * c_xy + xz * c_xz
    return [c / det for c in (c_xx, c_xy, c_xz, c_yy, c_yz, c_zz)]


@MODELS.register_module()
class GuidedFilter(nn.Module):
    """Guided filter of He et al. (ECCV 2010), CamGuide eq. (19).

    For every window ``w_k`` of radius ``r`` the output is modelled as a
    linear function of the guide, ``q_i = a_k^T I_i + b_k``; with window
    means ``mean(.)`` (:func:`box_mean`, valid pixels only)::

        colour guide (I_i in R^3, a_k in R^3 per filtered channel):
            Sigma_k = mean(I I^T) - mean(I) mean(I)^T          (3 x 3)
            a_k     = (Sigma_k + eps U)^-1 (mean(I p) - mean(I) mean(p))
        gray guide (I_i = channel mean of the image, scalar a_k):
            a_k     = (mean(I p) - mean(I) mean(p)) / (var_k(I) + eps)
        b_k = mean(p) - a_k^T mean(I)
        q_i = mean_a(i)^T I_i + mean_b(i)

    Every channel of ``p`` is filtered independently with the same guide.
    The 3x3 systems are solved in closed form (adjugate), as in He's code;
    ``Sigma + eps U`` is positive definite for ``eps > 0``. Everything is
    differentiable in ``p`` (and in ``I``). Half-precision inputs are
    filtered in float32 (the covariances cancel badly in float16) and cast
    back.

    ``eps`` is in the guide's units squared: He's ``eps = 0.1^2`` assumes a
    guide in ``[0, 1]``; an ImageNet-normalised guide has ~4.4x the
    standard deviation, so the same ``eps`` smooths less there.

    Args:
        radius (int): Window radius ``r`` (window ``2r + 1``). Default 4
            (CamGuide Table III, "Guided Filter Radius kernel size 4").
        eps (float): Regularisation ``eps > 0``. Default 1e-2.
        guide (str): ``'color'`` (3-channel guide) or ``'gray'``.
    """

    def __init__(self,
                 radius: int = 4,
                 eps: float = 1e-2,
                 guide: str = 'color') -> None:
        super().__init__()
        if int(radius) != radius or radius < 0:
            raise ValueError(f'radius must be a non-negative integer, got '
                             f'{radius}')
        if not eps > 0:
            raise ValueError(f'eps must be > 0, got {eps}')
        if guide not in _GUIDES:
            raise ValueError(f'guide must be one of {_GUIDES}, got {guide!r}')
        self.radius = int(radius)
        self.eps = float(eps)
        self.guide = guide

    def extra_repr(self) -> str:
        return f'radius={self.radius}, eps={self.eps}, guide={self.guide!r}'

    def forward(
            self,
            p: Tensor,
            I: Tensor,  # noqa: E741
            radius: Optional[int] = None) -> Tensor:
        """Filter ``p`` guided by ``I``.

        Args:
            p (Tensor): ``(N, K, h, w)`` maps to filter.
            I (Tensor): ``(N, 3, h, w)`` guide image (any channel count for
                ``guide='gray'``).
            radius (int, optional): Window radius of this call; None uses
                ``self.radius``.

        Returns:
            Tensor: ``(N, K, h, w)`` filtered maps, dtype of ``p``.
        """
        _check_4d('p', p)
        _check_4d('I', I)
        if I.shape[0] != p.shape[0] or I.shape[2:] != p.shape[2:]:
            raise ValueError(f'I must have the batch size and spatial size '
                             f'of p {tuple(p.shape)}, got {tuple(I.shape)}')
        if self.guide == 'color' and I.shape[1] != 3:
            raise ValueError(f"I must have 3 channels for guide='color', got "
                             f'{I.shape[1]}')
        if radius is None:
            radius = self.radius
        if int(radius) != radius or radius < 0:
            raise ValueError(f'radius must be a non-negative integer, got '
                             f'{radius}')
        out_dtype = p.dtype
        dtype = torch.promote_types(p.dtype, torch.float32)
        p = p.to(dtype)
        I = I.to(dtype)  # noqa: E741
        if self.guide == 'gray':
            q = self._gray(p, I.mean(dim=1, keepdim=True), int(radius))
        else:
            q = self._color(p, I, int(radius))
        return q.to(out_dtype)

    def _gray(self, p: Tensor, g: Tensor, r: int) -> Tensor:
        k = p.shape[1]
        m = box_mean(torch.cat([g, g * g, p, g * p], dim=1), r)
        m_i, m_ii = m[:, :1], m[:, 1:2]
        m_p, m_ip = m[:, 2:2 + k], m[:, 2 + k:]
        a = (m_ip - m_i * m_p) / (m_ii - m_i * m_i + self.eps)
        b = m_p - a * m_i
        ab = box_mean(torch.cat([a, b], dim=1), r)
        return ab[:, :k] * g + ab[:, k:]

    def _color(
            self,
            p: Tensor,
            I: Tensor,  # noqa: E741
            r: int) -> Tensor:
        k = p.shape[1]
        pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
        prods = [I[:, i:i + 1] * I[:, j:j + 1] for i, j in pairs]
        # (N, 3, K, h, w): I_c * p_k
        ip = I[:, :, None] * p[:, None]
        n, _, _, h, w = ip.shape
        m = box_mean(
            torch.cat([I, *prods, p, ip.reshape(n, 3 * k, h, w)], dim=1), r)
        m_i = m[:, :3]
        m_p = m[:, 9:9 + k]
        m_ip = m[:, 9 + k:].reshape(n, 3, k, h, w)
        sigma = [
            m[:, 3 + t] - m_i[:, i] * m_i[:, j]
            for t, (i, j) in enumerate(pairs)
        ]
        for t in (0, 3, 5):
            sigma[t] = sigma[t] + self.eps
        inv = _inv3x3_sym(sigma)
        full = [[inv[0], inv[1], inv[2]], [inv[1], inv[3], inv[4]],
                [inv[2], inv[4], inv[5]]]
        # cov(I_c, p_k): (N, 3, K, h, w)
        cov = m_ip - m_i[:, :, None] * m_p[:, None]
        # a_k = (Sigma_k + eps U)^-1 cov_k: (N, 3, K, h, w)
        rows = [
            sum(full[c][d][:, None] * cov[:, d] for d in range(3))
            for c in range(3)
        ]
        a = torch.stack(rows, dim=1)
        b = m_p - (a * m_i[:, :, None]).sum(dim=1)
        ab = box_mean(torch.cat([a.reshape(n, 3 * k, h, w), b], dim=1), r)
        mean_a = ab[:, :3 * k].reshape(n, 3, k, h, w)
        return (mean_a * I[:, :, None]).sum(dim=1) + ab[:, 3 * k:]


@MODELS.register_module()
class CamGuideRefineHead(BaseModule):
    """CamGuide refinement head, CamGuide eqs. (17)-(22) and sec. II.H.

    Inputs: classifier output ``x`` (``N x K x H/16 x W/16``, raw CAM
    logits), ResNet stage-1 features ``x_stg1`` (``N x C1 x H/4 x W/4``) and
    the (network-input, i.e. normalised) image ``I`` (``N x 3 x H x W``)::

        x      = Dropout(x)                       # optional, off by default
        x_up   = bilinear(x, size of x_stg1)      # eq. (17)
        h0     = phi([x_up, x_stg1])              # eq. (18)
        z0     = x_up + psi(h0)                   # eq. (18)
        g      = GF(z0, I_down)                   # eq. (19)
        r      = f_res(g)                         # eq. (20)
        a      = sigmoid(r)                       # eq. (21)
        z1     = z0 + a * r                       # eq. (22)

    Readings of ambiguous points:

    - **Dropout.** The paper's "Dropout Head Classifier 0.50" (Table III)
      acts on the backbone output *before* the classifier ("the output of
      the backbone is first subjected to a dropout operation before being
      forwarded to the refinement module", sec. II.H); that is the CAM
      head's ``dropout_ratio`` (``CAMHead(dropout_ratio=0.5)``), so this
      head's own ``dropout_ratio`` defaults to 0. When set, it drops the
      classifier *output* element-wise (``nn.Dropout``;
      ``channel_dropout=True`` drops whole class maps with
      ``nn.Dropout2d``) and the dropped map feeds both the residual
      ``x_up`` and the fusion (the reading of an earlier version, which
      zeroes half the coarse CAM in training).
    - ``phi`` ("Conv-BN-ReLU with depthwise mixing"): a
      ``fusion_kernel x fusion_kernel`` Conv-BN-ReLU (``K + C1 ->
      channels``) followed by ``num_mix`` depthwise-separable mixing
      blocks, each a depthwise 3x3 Conv-BN-ReLU and a pointwise 1x1
      Conv-BN-ReLU (``channels -> channels``). The last pointwise layer
      keeps its BN-ReLU so that it is not a linear map composed with the
      linear ``psi``.
    - ``psi`` is a 1x1 conv ``channels -> K`` and ``f_res`` a 3x3 conv
      ``K -> K`` (both with bias). Both start at zero weights and bias, so
      ``psi(h0) = 0``, ``r = 0``, ``a = 1/2`` and ``z1 = z0 = x_up``
      exactly: the head starts from the plain upsampled CAM (zero-init
      residuals; ``psi`` and ``f_res`` still get non-zero gradients).
      ``zero_init=False`` keeps PyTorch's default init instead.
    - ``I_down`` is the image resized to the stage-1 size with area
      averaging (anti-aliased; ``img_resize='bilinear'`` is the
      alternative). The guide is the image as given to the head, so
      ``gf_eps`` is in (normalised) pixel units squared.
    - ``gf_radius`` is in pixels of the stride-4 grid, or relative to its
      side (``dict(rel=4 / 128)``: Table III's radius 4 on the 128-pixel
      grid of a 512 crop, resolved per forward with
      :func:`~mmwsss.utils.relative_size.resolve_size`, at least 1), so
      the filter covers the same part of the image at every input size.
    - Upsampling uses ``align_corners=False`` (mmseg's ``resize``
      default).

    Parameter count with ``num_classes=21`` (K=20), ``stage1_channels=64``:
    35,256 with the defaults (``channels=128``, ``fusion_kernel=1``,
    ``num_mix=1``: phi 29,056, psi 2,580, f_res 3,620), 1,384,824 with
    ``channels=448, fusion_kernel=3, num_mix=5``, the paper's ~1.41 M added
    parameters (sec. IV.C; the paper gives no layer widths).

    Args:
        num_classes (int): Classes including background; the head works on
            ``K = num_classes - 1`` foreground maps.
        stage1_channels (int): Channels ``C1`` of the stage-1 features
            (64 for ResNet-18).
        channels (int): Width of the fusion block ``phi``.
        dropout_ratio (float): Dropout on the classifier *output* in
            training. Defaults to 0 (the paper's dropout is the CAM head's,
            see above).
        gf_radius (int | dict): Guided filter radius, pixels of the stride-4
            grid or ``dict(rel=f)`` of its side.
        gf_eps (float): Guided filter regularisation.
        gf_guide (str): ``'color'`` or ``'gray'`` guided filter.
        channel_dropout (bool): Drop whole class maps (``Dropout2d``)
            instead of single activations.
        img_resize (str): ``'area'`` or ``'bilinear'`` image downsizing.
        zero_init (bool): Start ``psi`` and ``f_res`` at zero (identity
            head).
        align_corners (bool): ``align_corners`` of the upsampling.
        fusion_kernel (int): Kernel of the first conv of ``phi`` (1 or 3).
        num_mix (int): Depthwise-separable mixing blocks of ``phi``.
        norm_cfg (dict): Norm layer of ``phi``.
        act_cfg (dict): Activation of ``phi``.
        init_cfg (dict | list[dict], optional): Initialisation config. A
            non-pretrained ``init_cfg`` does not override the zero init of
            ``psi`` / ``f_res``.
    """

    def __init__(self,
                 num_classes: int,
                 stage1_channels: int,
                 channels: int = 128,
                 dropout_ratio: float = 0.0,
                 gf_radius: SizeSpec = 4,
                 gf_eps: float = 1e-2,
                 gf_guide: str = 'color',
                 channel_dropout: bool = False,
                 img_resize: str = 'area',
                 zero_init: bool = True,
                 align_corners: bool = False,
                 fusion_kernel: int = 1,
                 num_mix: int = 1,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError('num_classes counts background and must be '
                             f'>= 2, got {num_classes}')
        if stage1_channels < 1 or channels < 1:
            raise ValueError(f'stage1_channels and channels must be >= 1, '
                             f'got {stage1_channels} and {channels}')
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f'dropout_ratio must be in [0, 1), got '
                             f'{dropout_ratio}')
        if img_resize not in _RESIZES:
            raise ValueError(f'img_resize must be one of {_RESIZES}, got '
                             f'{img_resize!r}')
        if fusion_kernel not in (1, 3):
            raise ValueError(f'fusion_kernel must be 1 or 3, got '
                             f'{fusion_kernel!r}')
        if isinstance(num_mix, bool) or int(num_mix) != num_mix or \
                num_mix < 0:
            raise ValueError(f'num_mix must be an integer >= 0, got '
                             f'{num_mix!r}')
        self.gf_radius = check_size(gf_radius, 'gf_radius', 'int', 0)
        self.num_classes = num_classes
        self.stage1_channels = stage1_channels
        self.channels = channels
        self.img_resize = img_resize
        self.zero_init = zero_init
        self.align_corners = align_corners
        k = num_classes - 1
        drop = nn.Dropout2d if channel_dropout else nn.Dropout
        self.dropout = drop(dropout_ratio) if dropout_ratio > 0 \
            else nn.Identity()
        layers = [
            ConvModule(
                k + stage1_channels,
                channels,
                fusion_kernel,
                padding=fusion_kernel // 2,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        ]
        for _ in range(int(num_mix)):
            layers += [
                ConvModule(
                    channels,
                    channels,
                    3,
                    padding=1,
                    groups=channels,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg),
                ConvModule(
                    channels, channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
            ]
        self.phi = nn.Sequential(*layers)
        self.psi = nn.Conv2d(channels, k, 1)
        radius0 = 4 if is_relative(self.gf_radius) else self.gf_radius
        self.guided_filter = GuidedFilter(radius0, gf_eps, gf_guide)
        self.f_res = nn.Conv2d(k, k, 3, padding=1)
        if zero_init:
            self._zero_residuals()

    def _zero_residuals(self) -> None:
        for conv in (self.psi, self.f_res):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then restore the zero init of ``psi`` and
        ``f_res`` unless the weights come from a ``Pretrained`` init."""
        first = not self._is_init
        super().init_weights()
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else \
            [self.init_cfg] if self.init_cfg else []
        pretrained = any(c.get('type') == 'Pretrained' for c in cfgs)
        if first and self.zero_init and not pretrained:
            self._zero_residuals()

    def _check_inputs(self, cls_map: Tensor, stage1: Tensor,
                      img: Tensor) -> None:
        _check_4d('cls_map', cls_map)
        _check_4d('stage1', stage1)
        _check_4d('img', img)
        k = self.num_classes - 1
        if cls_map.shape[1] != k:
            raise ValueError(f'cls_map must have num_classes - 1 = {k} '
                             f'channels, got {tuple(cls_map.shape)}')
        if stage1.shape[1] != self.stage1_channels:
            raise ValueError(f'stage1 must have stage1_channels = '
                             f'{self.stage1_channels} channels, got '
                             f'{tuple(stage1.shape)}')
        if img.shape[1] != 3:
            raise ValueError(f'img must have 3 channels, got '
                             f'{tuple(img.shape)}')
        n = cls_map.shape[0]
        for name, x in (('stage1', stage1), ('img', img)):
            if x.shape[0] != n:
                raise ValueError(f'{name} has batch size {x.shape[0]} but '
                                 f'cls_map has {n}')

    def resolve_gf_radius(self, size: Sequence[int]) -> int:
        """Guided filter radius in pixels on a stride-4 grid of ``size``."""
        return resolve_size(self.gf_radius, grid_side(size), 'int', 1,
                            'gf_radius') if is_relative(
                                self.gf_radius) else int(self.gf_radius)

    def forward_all(self, cls_map: Tensor, stage1: Tensor,
                    img: Tensor) -> Dict[str, Tensor]:
        """Forward returning the intermediate maps.

        Args:
            cls_map (Tensor): ``(N, K, h16, w16)`` classifier output.
            stage1 (Tensor): ``(N, C1, h4, w4)`` stage-1 features.
            img (Tensor): ``(N, 3, H, W)`` input image.

        Returns:
            dict[str, Tensor]: ``x_up``, ``z0``, ``g``, ``r``, ``a`` and
            ``z1``, each ``(N, K, h4, w4)`` (eqs. (17)-(22)).
        """
        self._check_inputs(cls_map, stage1, img)
        size = stage1.shape[2:]
        x = self.dropout(cls_map)
        x_up = F.interpolate(
            x, size=size, mode='bilinear', align_corners=self.align_corners)
        h0 = self.phi(torch.cat([x_up, stage1.to(x_up.dtype)], dim=1))
        z0 = x_up + self.psi(h0)
        if self.img_resize == 'area':
            img_down = F.adaptive_avg_pool2d(img, size)
        else:
            img_down = F.interpolate(
                img, size=size, mode='bilinear', align_corners=False)
        g = self.guided_filter(z0, img_down, self.resolve_gf_radius(size))
        r = self.f_res(g)
        a = torch.sigmoid(r)
        z1 = z0 + a * r
        return dict(x_up=x_up, z0=z0, g=g, r=r, a=a, z1=z1)

    def forward(self, cls_map: Tensor, stage1: Tensor, img: Tensor) -> Tensor:
        """Refined class maps ``z1``, CamGuide eq. (22).

        Args:
            cls_map (Tensor): ``(N, K, h16, w16)`` classifier output
                (``K = num_classes - 1``).
            stage1 (Tensor): ``(N, C1, h4, w4)`` stage-1 features.
            img (Tensor): ``(N, 3, H, W)`` input image.

        Returns:
            Tensor: ``(N, K, h4, w4)`` refined (raw) class maps.

        Raises:
            ValueError: A shape does not fit; the message names the
                argument.
        """
        return self.forward_all(cls_map, stage1, img)['z1']
