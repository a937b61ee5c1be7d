# Copyright (c) mmwsss contributors.
"""Influence-weighted objectives of IG-CAM (sec. 3.5, eq. (10)-(13)).

``L_total = lambda_1 L_IG + lambda_2 L_consistency + lambda_3 L_boundary``
(eq. (13)) with ``lambda = 1.0 / 0.5 / 0.3``: each term is a loss module
here whose ``loss_weight`` is its ``lambda``; the runner sums the
``loss_*`` items.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmwsss.influence import sample_weights
from mmwsss.registry import MODELS
from .multilabel_loss import MultiLabelSoftMarginLoss


def normalised_cams(cams: Tensor, eps: float = 1e-5) -> Tensor:
    """``relu(x) / (max_hw relu(x) + eps)`` per image and class.

    Differentiable (through the max as well). Same as
    :func:`mmwsss.cams.cam_ops.normalize_cams` with ``mode='max'``.
    """
    cams = torch.relu(cams)
    cmax = cams.flatten(-2).max(dim=-1).values[..., None, None]
    denom = cmax + eps
    return cams / torch.where(denom == 0, torch.ones_like(denom), denom)


def _class_mask(targets: Optional[Tensor], n: int, k: int,
                ref: Tensor) -> Tensor:
    if targets is None:
        return ref.new_ones(n, k)
    if targets.shape != (n, k):
        raise ValueError(f'targets must be ({n}, {k}), got '
                         f'{tuple(targets.shape)}')
    return (targets > 0).to(ref.dtype)


def _resize(x: Tensor, size: Tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


@MODELS.register_module()
class InfluenceWeightedBCELoss(MultiLabelSoftMarginLoss):
    """Influence-guided classification loss ``L_IG``, IG-CAM eq. (10).

    ``L_IG = loss_weight * mean_i w_i mean_c BCE(z_ic, y_ic)`` with the
    per-image weights ``w_i`` of :func:`mmwsss.influence.sample_weights`:
    ``w_i`` proportional to the spatial mean of the influence map of image
    ``i`` plus ``eps`` (relative to the batch mean), rescaled to batch mean
    1 after clamping to ``clamp`` and detached. The paper's ``w_i = mean(I)
    + eps`` on raw influence values has an arbitrary scale; the
    normalisation keeps the loss scale (and the learning rate) unchanged.
    Without maps (before the first influence refresh) ``w = 1`` and the loss
    is :class:`MultiLabelSoftMarginLoss`, which is also the loss the
    classifier curvature of :mod:`mmwsss.influence` assumes.

    Args:
        eps (float): ``epsilon`` of eq. (10). Defaults to 0.01.
        clamp (tuple[float, float]): Weight bounds relative to the batch
            mean. Defaults to ``(0.25, 4.0)``.
        loss_weight (float): ``lambda_1``. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``.
        loss_name (str): Defaults to ``'loss_ig'``.
    """

    def __init__(self,
                 eps: float = 0.01,
                 clamp: Tuple[float, float] = (0.25, 4.0),
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 loss_name: str = 'loss_ig') -> None:
        super().__init__(
            loss_weight=loss_weight, reduction=reduction, loss_name=loss_name)
        self.eps = eps
        self.clamp = tuple(clamp)

    def sample_weights(self, maps: Optional[Tensor],
                       num: Optional[int] = None,
                       device: Optional[torch.device] = None) -> Tensor:
        """``(N,)`` detached weights from ``(N, ...)`` maps (ones if None)."""
        return sample_weights(maps, self.eps, self.clamp, num, device)

    def forward(self,
                logits: Tensor,
                targets: Tensor,
                weight: Optional[Tensor] = None,
                influence_maps: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            logits (Tensor): ``(N, K)`` class logits.
            targets (Tensor): ``(N, K)`` multi-hot or soft targets in
                ``[0, 1]``.
            weight (Tensor, optional): ``(N,)`` precomputed image weights.
            influence_maps (Tensor, optional): ``(N, ...)`` non-negative raw
                influence maps to derive the weights from (ignored when
                ``weight`` is given).

        Returns:
            Tensor: The loss.
        """
        if weight is None and influence_maps is not None:
            weight = self.sample_weights(influence_maps)
        if weight is not None:
            weight = weight.detach().to(logits.dtype)
        return super().forward(logits, targets, weight)


@MODELS.register_module()
class MultiScaleConsistencyLoss(torch.nn.Module):
    """Influence-weighted multi-scale consistency, IG-CAM eq. (11).

    ``L = loss_weight * sum_s sum_{i, c in y_i, u} W_s(u) d(C^_s(u),
    C^_base(u)) / (sum_i |y_i| * H * W)``

    - ``C^_s``: the CAM of scale ``s`` upsampled (bilinear) to the largest
      scale ``(H, W)``, then ReLU and max-normalised per image and class
      (:func:`normalised_cams`), so that scales with different logit ranges
      are compared by shape, not by magnitude;
    - ``C^_base``: the mean of the ``C^_s`` over scales (the fused CAM), by
      default not detached: with ``d = squared L2`` the loss is then the
      total variance of the normalised CAMs across scales;
      ``detach_base=True`` pulls every scale towards a fixed consensus;
    - ``d``: squared difference (``'l2'``, the paper's ``||.||_2^2``) or
      absolute difference (``'l1'``);
    - only the image's labelled classes ``c in y_i`` count (absent classes
      have no meaningful normalised CAM);
    - ``W_s``: the influence-guided attention gate of scale ``s`` (eq. (3)),
      averaged over channels, upsampled, **detached** (otherwise the loss
      could be lowered by closing the gates); ones when not given. The sum
      over scales is the paper's ``sum_s``.

    Args:
        distance (str): ``'l2'`` or ``'l1'``. Defaults to ``'l2'``.
        detach_base (bool): Detach ``C^_base``. Defaults to False.
        norm_eps (float): ``eps`` of the normalisation. Defaults to 1e-5.
        loss_weight (float): ``lambda_2``. Defaults to 0.5.
        loss_name (str): Defaults to ``'loss_consistency'``.
    """

    def __init__(self,
                 distance: str = 'l2',
                 detach_base: bool = False,
                 norm_eps: float = 1e-5,
                 loss_weight: float = 0.5,
                 loss_name: str = 'loss_consistency') -> None:
        super().__init__()
        if distance not in ('l1', 'l2'):
            raise ValueError(f"distance must be 'l1' or 'l2', got "
                             f'{distance!r}')
        self.distance = distance
        self.detach_base = detach_base
        self.norm_eps = norm_eps
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name

    def forward(self,
                cams: Sequence[Tensor],
                targets: Optional[Tensor] = None,
                weights: Optional[Sequence[Optional[Tensor]]] = None
                ) -> Tensor:
        """Compute the loss.

        Args:
            cams (Sequence[Tensor]): Per-scale raw CAMs ``(N, K, h_s, w_s)``.
            targets (Tensor, optional): ``(N, K)`` multi-hot labels; None
                uses every class.
            weights (Sequence[Tensor], optional): Per-scale weight maps
                ``(N, C', h, w)`` (e.g. attention gates).

        Returns:
            Tensor: The loss (0 with fewer than two scales or no label).
        """
        if len(cams) < 2:
            return cams[0].sum() * 0 if len(cams) else torch.zeros(())
        size = max((tuple(c.shape[-2:]) for c in cams),
                   key=lambda hw: hw[0] * hw[1])
        n, k = cams[0].shape[:2]
        mask = _class_mask(targets, n, k, cams[0])[..., None, None]
        norm = [
            normalised_cams(_resize(c, size), self.norm_eps) for c in cams
        ]
        base = torch.stack(norm).mean(0)
        if self.detach_base:
            base = base.detach()
        total = cams[0].new_zeros(())
        for s, c in enumerate(norm):
            diff = c - base
            d = diff * diff if self.distance == 'l2' else diff.abs()
            w = None if weights is None else weights[s]
            if w is not None:
                w = _resize(w.detach().mean(dim=1, keepdim=True).to(d), size)
                d = d * w
            total = total + (d * mask).sum()
        count = mask.sum() * size[0] * size[1]
        return self.loss_weight * total / count.clamp_min(1)


def sobel_magnitude(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Sobel gradient magnitude ``sqrt(gx^2 + gy^2 + eps)`` per channel.

    The kernels are divided by 8, so a unit step between two pixels gives
    ``0.5`` on both sides (the central difference); borders are replicated.

    Args:
        x (Tensor): ``(N, C, H, W)``.
        eps (float): Added under the square root (finite gradient at 0).

    Returns:
        Tensor: ``(N, C, H, W)``.
    """
    n, c, h, w = x.shape
    kx = x.new_tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]]) / 8
    k = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    pad = F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode='replicate')
    g = F.conv2d(pad, k)
    return (g.pow(2).sum(dim=1) + eps).sqrt().view(n, c, h, w)


@MODELS.register_module()
class BoundaryAlignmentLoss(torch.nn.Module):
    """Influence-weighted boundary alignment, IG-CAM eq. (12).

    The paper's ``W_b * ||grad CAM - grad Image||_1`` with ``W_b =
    sigmoid(I_multi * |grad Image|)`` compares quantities in different units
    (class scores vs. colour) and with signs that depend on whether the
    object is darker or brighter than its surroundings. Reading implemented:

    - **resolution**: the loss runs on a map of stride at most
      ``max_stride`` (default 8, i.e. at least 1/8 of the input): a CAM of
      stride ``t > max_stride`` (e.g. 1/32) is upsampled bilinearly by the
      integer factor ``ceil(t / max_stride)``. On a 4 x 4 CAM (1/32 of 128
      px) almost every cell is next to a border and the image gradient,
      area-pooled to 32 px cells, has no edge left to align with;
    - **valid area**: only the unpadded image counts. For image ``i`` with
      valid size ``(h_i, w_i)`` in input pixels (``valid_shapes``; the data
      preprocessor pads at the bottom and right) the CAM cells that lie
      entirely inside it (``floor(h_i / t)`` rows, ``floor(w_i / t)``
      columns) and the pixels they cover are cut out *before* upsampling,
      normalisation and the Sobel filters, so the loss of a padded crop is
      exactly the loss of the crop alone: no false edge at the border of the
      zero padding, no padded cell in the CAM maximum or the image min-max,
      and the mean runs over valid cells only. (A partial cell at the
      border, ``h_i`` not a multiple of ``t``, is left out.);
    - ``C^``: ReLU + max-normalised CAM of each labelled class (``[0, 1]``);
    - ``G``: the input image averaged over channels (after the data
      preprocessor's normalisation), resized to the map (area average when
      shrinking), min-max normalised per image to ``[0, 1]``;
    - gradients are Sobel magnitudes (:func:`sobel_magnitude`, borders
      replicated), so both fields are in "unit step = 0.5" units and
      sign-free;
    - ``W_b = sigmoid(I_multi * |grad G|)``, **detached**, with ``I_multi``
      the multi-scale influence map (spatial mean 1; ones when not given),
      resized to the (upsampled) map of the whole input, then cut like the
      CAM. ``W_b >= 0.5``: flat image regions still ask for a flat CAM
      (edge-aware smoothness), strong edges with high influence weigh up to
      1;
    - ``mode='l1'`` (default, the paper's norm): ``sum W_b | |grad C^| -
      |grad G| | / (sum_i |y_i| h_i w_i)`` (``h_i w_i``: valid map cells);
      ``mode='cosine'``: mean over labelled class maps of ``1 - <W_b |grad
      C^|, |grad G|> / (||sqrt(W_b) |grad C^|| ||sqrt(W_b) |grad G||| +
      eps)``, invariant to the contrast of the image and of the CAM.

    ``max_stride=None`` and no ``valid_shapes`` give the earlier loss on the
    whole CAM at its own resolution.

    Args:
        mode (str): ``'l1'`` or ``'cosine'``. Defaults to ``'l1'``.
        max_stride (int, optional): Largest stride (input pixels per map
            cell) the loss runs at; None keeps the CAM's. Defaults to 8.
        norm_eps (float): CAM normalisation ``eps``. Defaults to 1e-5.
        grad_eps (float): ``eps`` under the gradient square roots. Defaults
            to 1e-8.
        loss_weight (float): ``lambda_3``. Defaults to 0.3.
        loss_name (str): Defaults to ``'loss_boundary'``.
    """

    def __init__(self,
                 mode: str = 'l1',
                 max_stride: Optional[int] = 8,
                 norm_eps: float = 1e-5,
                 grad_eps: float = 1e-8,
                 loss_weight: float = 0.3,
                 loss_name: str = 'loss_boundary') -> None:
        super().__init__()
        if mode not in ('l1', 'cosine'):
            raise ValueError(f"mode must be 'l1' or 'cosine', got {mode!r}")
        if max_stride is not None and max_stride < 1:
            raise ValueError(f'max_stride must be >= 1 or None, got '
                             f'{max_stride}')
        self.mode = mode
        self.max_stride = max_stride
        self.norm_eps = norm_eps
        self.grad_eps = grad_eps
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name

    @staticmethod
    def image_gray(images: Tensor, size: Tuple[int, int]) -> Tensor:
        """Channel mean, resized to ``size``, min-max to ``[0, 1]``."""
        x = images.detach()
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        g = x.mean(dim=1, keepdim=True)
        if tuple(g.shape[-2:]) != tuple(size):
            if g.shape[-2] >= size[0] and g.shape[-1] >= size[1]:
                g = F.adaptive_avg_pool2d(g, size)
            else:
                g = _resize(g, size)
        flat = g.flatten(1)
        lo = flat.min(dim=1).values[:, None, None, None]
        hi = flat.max(dim=1).values[:, None, None, None]
        span = hi - lo
        return torch.where(span > 0, (g - lo) / span.clamp_min(1e-12),
                           torch.zeros_like(g))

    def upsample_factor(self, cam_size: Tuple[int, int],
                        img_size: Tuple[int, int]) -> int:
        """Integer factor bringing the CAM stride to ``<= max_stride``."""
        if self.max_stride is None:
            return 1
        stride = max(img_size[0] / cam_size[0], img_size[1] / cam_size[1])
        return max(1, math.ceil(stride / self.max_stride - 1e-9))

    def _valid_cells(self, valid_shapes: Optional[Sequence], n: int,
                     cam_size: Tuple[int, int],
                     img_size: Tuple[int, int]) -> List[Tuple[int, int]]:
        h, w = cam_size
        if valid_shapes is None:
            return [(h, w)] * n
        if len(valid_shapes) != n:
            raise ValueError(f'{len(valid_shapes)} valid shapes for {n} '
                             'images')
        out = []
        for shape in valid_shapes:
            if shape is None:
                out.append((h, w))
                continue
            vh, vw = (float(v) for v in tuple(shape)[:2])
            ch = int(math.floor(vh * h / img_size[0] + 1e-6))
            cw = int(math.floor(vw * w / img_size[1] + 1e-6))
            out.append((min(h, max(1, ch)), min(w, max(1, cw))))
        return out

    def forward(self,
                cam: Tensor,
                images: Tensor,
                targets: Optional[Tensor] = None,
                influence: Optional[Tensor] = None,
                valid_shapes: Optional[Sequence] = None) -> Tensor:
        """Compute the loss.

        Args:
            cam (Tensor): ``(N, K, h, w)`` raw CAMs (e.g. the fused CAM)
                covering the whole (padded) input.
            images (Tensor): ``(N, 3, H, W)`` network inputs.
            targets (Tensor, optional): ``(N, K)`` multi-hot labels; None
                uses every class.
            influence (Tensor, optional): ``(N, 1, h', w')`` multi-scale
                influence map of the whole input.
            valid_shapes (Sequence, optional): Per image the unpadded
                ``(h_i, w_i)`` in input pixels (``img_shape`` of the
                samples), or None for the whole input.

        Returns:
            Tensor: The loss.
        """
        n, k, h, w = cam.shape
        img_size = tuple(images.shape[-2:])
        mask = _class_mask(targets, n, k, cam)
        f = self.upsample_factor((h, w), img_size)
        cells = self._valid_cells(valid_shapes, n, (h, w), img_size)
        inf_full = None
        if influence is not None:
            inf_full = _resize(influence.detach().to(cam.dtype),
                               (h * f, w * f))
        num = cam.new_zeros(())
        count = cam.new_zeros(())
        # images with the same valid cells are processed together
        groups = {}
        for i, hw in enumerate(cells):
            groups.setdefault(hw, []).append(i)
        for (ch, cw), idx in groups.items():
            ids = torch.as_tensor(idx, device=cam.device)
            c = cam[ids, :, :ch, :cw]
            if f > 1:
                c = F.interpolate(
                    c, scale_factor=f, mode='bilinear', align_corners=False)
            ph = round(ch * img_size[0] / h)
            pw = round(cw * img_size[1] / w)
            gray = self.image_gray(images[ids, :, :ph, :pw],
                                   (ch * f, cw * f)).to(cam.dtype)
            g_img = sobel_magnitude(gray, self.grad_eps)  # (n', 1, h', w')
            if inf_full is None:
                wb = torch.sigmoid(g_img)
            else:
                wb = torch.sigmoid(inf_full[ids, :, :ch * f, :cw * f] * g_img)
            wb = wb.detach()
            g_cam = sobel_magnitude(
                normalised_cams(c, self.norm_eps), self.grad_eps)
            m = mask[ids]
            if self.mode == 'l1':
                per = (wb * (g_cam - g_img).abs()).sum(dim=(2, 3))
                num = num + (per * m).sum()
                count = count + m.sum() * (ch * f) * (cw * f)
            else:
                dot = (wb * g_cam * g_img).sum(dim=(2, 3))
                na = (wb * g_cam * g_cam).sum(dim=(2, 3)).sqrt()
                nb = (wb * g_img * g_img).sum(dim=(2, 3)).sqrt()
                per = 1 - dot / (na * nb + 1e-12)
                num = num + (per * m).sum()
                count = count + m.sum()
        return self.loss_weight * num / count.clamp_min(1)
