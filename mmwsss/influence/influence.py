# Copyright (c) mmwsss contributors.
"""Influence scores, spatial influence maps and sample weights (IG-CAM).

Definitions (fixed by tests)
----------------------------
* Influence (Koh & Liang's ``I_up,loss``, IG-CAM eq. (2) with damping):
  ``I(z_i, z_v) = -g_v^T (H + delta I)^{-1} g_i``, where ``g`` are gradients
  of the per-image loss, ``H`` is the Hessian of the batch-**mean** training
  loss and ``delta = lambda + weight decay``. ``I < 0``: upweighting ``z_i``
  lowers the validation loss (helpful). No ``1 / N`` factor. Removing ``z_i``
  changes the validation loss by about ``-I / N``. What this measures at an
  intermediate ``theta`` is a local, damped response (the proximal Bregman
  response of Bae et al. 2022), not leave-one-out retraining.
* With ``s_v = (H + delta I)^{-1} g_v`` (from
  :meth:`ClassifierCurvature.solve`), ``I(z_i, z_v) = -s_v^T g_i``.
* Spatial maps (eq. (9)): for each validation vector ``v`` a signed map
  ``M_v(u)`` over locations ``u``, then ``mean_v |M_v(u)|``:

  - ``feature_grad_x_input`` (default): gradient x input of ``I`` w.r.t. the
    pre-GAP feature map ``F`` (``N, D, h, w``): ``M_v(u) = sum_d dI/dF[d, u]
    F[d, u]``, the first-order change of ``I`` when location ``u`` is scaled
    (``d/d alpha I(F with column u times alpha)`` at ``alpha = 1``). It
    includes the change of the residual ``p - y`` that masking an object
    causes. Closed form, no extra forward.
  - ``input_grad_maps`` (option): Koh & Liang's input-perturbation influence
    ``-s_v^T d/dx grad_theta L(x)`` (one double backward per validation
    vector), as gradient x input summed over channels and average-pooled to
    the grid.

  Maps are resampled to a 32 x 32 grid, then bilinearly to the size needed;
  scales are aggregated by averaging the upsampled maps. Only relative values
  matter downstream (weights are normalised).
* Sample weights (eq. (10)): ``w_i = mean_u map_i(u) / mean_j mean_u map_j(u)
  + eps`` (``eps`` relative to the batch mean so that it does not depend on
  the arbitrary scale of influence values), rescaled so that the batch mean
  is exactly 1 after clamping to ``[lo, hi]`` (default ``[0.25, 4]``),
  detached. ``w = 1`` and uniform maps before the first refresh.
"""
from typing import (Callable, Dict, Hashable, Iterable, List, Optional,
                    Sequence, Tuple, Union)

import torch
import torch.nn.functional as F
from torch import Tensor

from .curvature import ClassifierCurvature, SolveInfo, classifier_grads

__all__ = [
    'ClassifierInfluence', 'aggregate_scales', 'assert_disjoint',
    'cam_magnitude_maps', 'classifier_influence', 'feature_grad_x_input',
    'influence_scores', 'input_grad_maps', 'normalise_maps', 'resample_maps',
    'sample_weights', 'select_val_subset', 'uniform_maps'
]

Size = Union[int, Tuple[int, int]]


def _pair(size: Size) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def influence_scores(s_val: Tensor, g_train: Tensor) -> Tensor:
    """``I(z_i, z_v) = -s_v^T g_i`` for all pairs.

    Args:
        s_val (Tensor): ``(M, ...)`` damped inverse-HVPs of the validation
            gradients (any trailing shape, e.g. packed ``(M, K, P)``).
        g_train (Tensor): ``(N, ...)`` per-sample training gradients with the
            same trailing shape.

    Returns:
        Tensor: ``(N, M)`` influence values.
    """
    if s_val.shape[1:] != g_train.shape[1:]:
        raise ValueError(f'trailing shapes differ: {tuple(s_val.shape)} vs '
                         f'{tuple(g_train.shape)}')
    s = s_val.flatten(1)
    g = g_train.flatten(1).to(s.dtype)
    return -(g @ s.t())


def classifier_influence(features: Tensor,
                         logits: Tensor,
                         labels: Tensor,
                         s_val: Tensor,
                         loss_weight: float = 1.0) -> Tensor:
    """Influence of images on validation losses through the classifier.

    Args:
        features (Tensor): ``(N, D)`` pooled features.
        logits (Tensor): ``(N, K)`` logits.
        labels (Tensor): ``(N, K)`` multi-hot targets.
        s_val (Tensor): ``(M, K, P)`` packed validation iHVPs; ``P = D + 1``
            means the classifier has a bias.
        loss_weight (float): Loss weight. Defaults to 1.0.

    Returns:
        Tensor: ``(N, M)`` influence values.
    """
    bias = s_val.shape[-1] == features.shape[1] + 1
    g = classifier_grads(
        features.to(s_val.dtype), logits.to(s_val.dtype), labels, bias,
        loss_weight)
    return influence_scores(s_val, g)


def _reduce(maps: Tensor, reduction: str) -> Tensor:
    if reduction == 'abs_mean':
        return maps.abs().mean(dim=1, keepdim=True)
    if reduction == 'none':
        return maps
    raise ValueError(f"reduction must be 'abs_mean' or 'none', got "
                     f'{reduction!r}')


def feature_grad_x_input(feature_map: Tensor,
                         s_val: Tensor,
                         weight: Tensor,
                         bias: Optional[Tensor],
                         labels: Tensor,
                         loss_weight: float = 1.0,
                         reduction: str = 'abs_mean') -> Tensor:
    """Feature-level gradient x input of the classifier influence.

    For image ``i`` and validation vector ``v`` with ``f = GAP(F)``,
    ``z = W f + b``, ``r = loss_weight (sigmoid(z) - y) / K``:
    ``I = -sum_c r_c s_c^T f~`` and

    ``dI/df = -sum_c [r_c s_c^W + (s_c^T f~) loss_weight p_c (1 - p_c) / K
    W_c]``, ``M_v(u) = dI/df . F[:, u] / (h w)``.

    Computed in closed form in the dtype of ``feature_map`` promoted to at
    least float32 (no autograd; safe under ``torch.no_grad``). Cost
    ``O(N M (K D + D h w))``.

    Args:
        feature_map (Tensor): ``(N, D, h, w)`` pre-GAP features (what the
            classifier sees; detach is implicit).
        s_val (Tensor): ``(M, K, P)`` packed validation iHVPs.
        weight (Tensor): Classifier weight ``(K, D)`` or ``(K, D, 1, 1)``.
        bias (Tensor, optional): ``(K,)`` bias or None; must agree with
            ``P``.
        labels (Tensor): ``(N, K)`` multi-hot targets.
        loss_weight (float): Loss weight. Defaults to 1.0.
        reduction (str): ``'abs_mean'`` (``mean_v |M_v|``, shape ``(N, 1, h,
            w)``) or ``'none'`` (signed, ``(N, M, h, w)``).

    Returns:
        Tensor: The maps.
    """
    # at least float32: iHVPs with small damping are large for fp16
    dt = torch.promote_types(feature_map.dtype, torch.float32)
    fm = feature_map.detach().to(dt)
    n, d, h, w = fm.shape
    wmat = weight.detach().reshape(weight.shape[0], -1).to(dt)
    k = wmat.shape[0]
    has_bias = bias is not None
    if s_val.shape[1:] != (k, d + int(has_bias)):
        raise ValueError(f's_val {tuple(s_val.shape)} does not fit a '
                         f'classifier ({k}, {d}) with bias={has_bias}')
    s = s_val.detach().to(dt)
    s_w = s[..., :d]  # (M, K, D)
    f = fm.mean(dim=(2, 3))
    z = f @ wmat.t()
    if has_bias:
        z = z + bias.detach().to(dt)
    p = torch.sigmoid(z)
    r = (p - labels.to(dt)) * (loss_weight / k)  # (N, K)
    q = p * (1 - p) * (loss_weight / k)  # (N, K)
    t = torch.einsum('nd,mkd->nmk', f, s_w)  # s_c^T f~
    if has_bias:
        t = t + s[..., d].unsqueeze(0)
    grad_f = torch.einsum('nk,mkd->nmd', r, s_w) + \
        (t * q.unsqueeze(1)) @ wmat
    grad_f = -grad_f  # (N, M, D)
    maps = torch.einsum('nmd,ndx->nmx', grad_f, fm.flatten(2)) / (h * w)
    return _reduce(maps.reshape(n, -1, h, w), reduction)


def cam_magnitude_maps(feature_map: Tensor, weight: Tensor,
                       bias: Optional[Tensor], labels: Tensor) -> Tensor:
    """``|CAM|`` of the labelled classes: the saliency control of IG-CAM.

    ``m(u) = sum_c y_c |W_c F(u) + b_c| / sum_c y_c`` for image labels (or
    soft targets) ``y``: the magnitude of the dense class activation of the
    labelled classes, computed from the same features and classifier as
    :func:`feature_grad_x_input`, so that the two maps can be swapped in the
    same pipeline (resampled to the grid, normalised to spatial mean 1, and
    the same sample weights). The map of an image without labels is zero
    (uniform after :func:`normalise_maps`). Closed form, no autograd.

    Args:
        feature_map (Tensor): ``(N, D, h, w)`` features.
        weight (Tensor): Classifier weight ``(K, D)`` or ``(K, D, 1, 1)``.
        bias (Tensor, optional): ``(K,)`` bias or None.
        labels (Tensor): ``(N, K)`` multi-hot or soft targets.

    Returns:
        Tensor: ``(N, 1, h, w)`` non-negative maps (detached).
    """
    dt = torch.promote_types(feature_map.dtype, torch.float32)
    fm = feature_map.detach().to(dt)
    wmat = weight.detach().reshape(weight.shape[0], -1).to(dt)
    if wmat.shape[1] != fm.shape[1]:
        raise ValueError(f'classifier {tuple(wmat.shape)} does not fit '
                         f'{fm.shape[1]} feature channels')
    cam = torch.einsum('kd,ndhw->nkhw', wmat, fm)
    if bias is not None:
        cam = cam + bias.detach().to(dt)[None, :, None, None]
    y = labels.detach().to(dt).clamp_min(0)
    den = y.sum(dim=1).clamp_min(1e-12)[:, None, None]
    return (torch.einsum('nk,nkhw->nhw', y, cam.abs()) / den).unsqueeze(1)


def input_grad_maps(loss_fn: Callable[[Tensor], Tensor],
                    inputs: Tensor,
                    params: Sequence[Tensor],
                    s_val: Sequence[Tensor],
                    grid: Optional[Size] = 32,
                    reduction: str = 'abs_mean') -> Tensor:
    """Input-perturbation influence maps (Koh & Liang ``I_pert,loss``).

    ``M_v = sum_channels (d I_v / d x) * x`` with ``I_v(x) = -s_v^T
    grad_theta L(x)``, one double backward per validation vector for the
    whole batch. The per-image losses must be independent (model in eval
    mode: batch-norm statistics of the batch would couple images).

    Args:
        loss_fn (Callable[[Tensor], Tensor]): Maps inputs ``(N, C, H, W)``
            to per-image losses ``(N,)`` (not averaged), with a graph to
            ``params`` and the inputs.
        inputs (Tensor): ``(N, C, H, W)`` images.
        params (Sequence[Tensor]): Parameters ``theta`` of ``s_val``.
        s_val (Sequence[Tensor]): One tensor per parameter, shaped ``(M,
            *param.shape)`` (see :func:`unpack_classifier`).
        grid (int | tuple, optional): Average-pool the signed maps to this
            grid before ``|.|``; None keeps the input resolution.
            Defaults to 32.
        reduction (str): ``'abs_mean'`` -> ``(N, 1, g, g)``, ``'none'`` ->
            signed ``(N, M, g, g)``.

    Returns:
        Tensor: The maps (detached).
    """
    if len(params) != len(s_val):
        raise ValueError('need one s_val tensor per parameter')
    m = s_val[0].shape[0]
    x = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        losses = loss_fn(x)
        if losses.dim() != 1 or losses.shape[0] != x.shape[0]:
            raise ValueError('loss_fn must return per-image losses (N,), '
                             f'got {tuple(losses.shape)}')
        grads = torch.autograd.grad(losses.sum(), params, create_graph=True)
        maps = []
        for j in range(m):
            inf = -sum((g * s[j].to(g)).sum() for g, s in zip(grads, s_val))
            (gx, ) = torch.autograd.grad(inf, x, retain_graph=j < m - 1)
            maps.append((gx * x.detach()).sum(dim=1))
    out = torch.stack(maps, dim=1)
    if grid is not None:
        out = F.adaptive_avg_pool2d(out, _pair(grid))
    return _reduce(out.detach(), reduction)


def resample_maps(maps: Tensor,
                  size: Optional[Size] = None,
                  grid: Size = 32) -> Tensor:
    """Resample maps to the influence grid, then to the size needed.

    To the grid: area averaging when the map is at least as large as the
    grid in both directions, bilinear (``align_corners=False``) otherwise;
    then bilinear to ``size``.

    Args:
        maps (Tensor): ``(N, h, w)`` or ``(N, C, h, w)``.
        size (int | tuple, optional): Output size; None returns the grid.
        grid (int | tuple): Grid size. Defaults to 32.

    Returns:
        Tensor: ``(N, C, *size)`` (``C = 1`` for 3-D input).
    """
    x = maps.unsqueeze(1) if maps.dim() == 3 else maps
    if x.dim() != 4:
        raise ValueError(f'maps must be 3-D or 4-D, got {tuple(maps.shape)}')
    g = _pair(grid)
    if tuple(x.shape[-2:]) != g:
        if x.shape[-2] >= g[0] and x.shape[-1] >= g[1]:
            x = F.adaptive_avg_pool2d(x, g)
        else:
            x = F.interpolate(x, size=g, mode='bilinear', align_corners=False)
    if size is not None and tuple(x.shape[-2:]) != _pair(size):
        x = F.interpolate(
            x, size=_pair(size), mode='bilinear', align_corners=False)
    return x


def aggregate_scales(maps: Sequence[Tensor],
                     size: Size,
                     grid: Size = 32) -> Tensor:
    """Multi-scale map: mean of the per-scale maps resampled to ``size``.

    ``I_multi = 1/|S| sum_s Upsample(I^(s))`` (IG-CAM section 3.4), every
    scale passing through the common grid (:func:`resample_maps`).

    Args:
        maps (Sequence[Tensor]): Per-scale ``(N, 1, h_s, w_s)`` maps.
        size (int | tuple): Output size.
        grid (int | tuple): Grid size. Defaults to 32.

    Returns:
        Tensor: ``(N, 1, *size)``.
    """
    if len(maps) == 0:
        raise ValueError('need at least one map')
    return torch.stack([resample_maps(m, size, grid) for m in maps]).mean(0)


def uniform_maps(num: int,
                 size: Size = 32,
                 device: Optional[torch.device] = None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform (all-ones) maps used before the first refresh."""
    return torch.ones(num, 1, *_pair(size), device=device, dtype=dtype)


def normalise_maps(maps: Tensor, tiny: float = 1e-12) -> Tensor:
    """Divide each map by its spatial mean (mean 1; all-zero maps -> 1).

    Args:
        maps (Tensor): ``(N, C, h, w)`` non-negative maps.
        tiny (float): Means at or below it count as zero.

    Returns:
        Tensor: Maps with per-image, per-channel mean 1.
    """
    mean = maps.mean(dim=(-2, -1), keepdim=True)
    ok = mean > tiny
    return torch.where(ok, maps / torch.where(ok, mean, torch.ones_like(mean)),
                       torch.ones_like(maps))


def sample_weights(maps: Optional[Tensor],
                   eps: float = 0.01,
                   clamp: Tuple[float, float] = (0.25, 4.0),
                   num: Optional[int] = None,
                   device: Optional[torch.device] = None) -> Tensor:
    """Per-image loss weights from influence maps (IG-CAM eq. (10)).

    ``w_i = m_i / mean_j m_j + eps`` with ``m_i`` the spatial mean of map
    ``i``; then ``w <- clip(c w, lo, hi)`` with the scalar ``c > 0`` chosen by
    bisection so that ``mean_i w_i = 1`` exactly (to 1e-12; possible because
    ``lo <= 1 <= hi``). So the loss scale is unchanged, no image is weighted
    more than ``hi`` (4) or less than ``lo`` (0.25) times the batch average,
    and the order of the weights is kept.

    Args:
        maps (Tensor, optional): ``(N, ...)`` non-negative maps; None (no
            refresh yet) gives ones.
        eps (float): Floor relative to the batch mean. Defaults to 0.01.
        clamp (tuple[float, float]): ``(lo, hi)`` with ``0 <= lo <= 1 <=
            hi``. Defaults to ``(0.25, 4.0)``.
        num (int, optional): Batch size when ``maps`` is None.
        device (torch.device, optional): Device of the ones when ``maps`` is
            None.

    Returns:
        Tensor: ``(N,)`` detached weights (dtype of ``maps``, float32 for
        None).
    """
    lo, hi = clamp
    if not 0 <= lo <= 1 <= hi:
        raise ValueError(f'clamp must satisfy 0 <= lo <= 1 <= hi, got '
                         f'{clamp}')
    if maps is None:
        if num is None:
            raise ValueError('num is required when maps is None')
        return torch.ones(num, device=device)
    m = maps.detach().flatten(1).to(torch.float64).mean(dim=1)
    if bool((m < 0).any()):
        raise ValueError('influence maps must be non-negative')
    total = m.mean()
    if not torch.isfinite(total) or total <= 0:
        return torch.ones_like(m).to(maps.dtype)
    w = m / total + eps
    c_lo, c_hi = 0.0, hi / float(w.min())
    for _ in range(200):
        c = 0.5 * (c_lo + c_hi)
        if float(torch.clamp(c * w, lo, hi).mean()) < 1:
            c_lo = c
        else:
            c_hi = c
        if c_hi - c_lo <= 1e-15 * c_hi:
            break
    w = torch.clamp(0.5 * (c_lo + c_hi) * w, lo, hi)
    return w.to(maps.dtype)


def select_val_subset(labels: Tensor,
                      num: int = 32,
                      exclude: Optional[Iterable[int]] = None,
                      seed: int = 0) -> Tensor:
    """Class-balanced choice of the influence validation images.

    Round-robin over classes (rarest first): each turn takes a random
    not-yet-chosen image containing the class; when no class can add an
    image the rest is filled at random. Deterministic given ``seed``.

    The pool must not contain images of the split used to report results
    (check with :func:`assert_disjoint`); ``exclude`` removes more indices.

    Args:
        labels (Tensor): ``(N, K)`` multi-hot labels of the candidate pool.
        num (int): Images to choose. Defaults to 32.
        exclude (Iterable[int], optional): Pool indices never chosen.
        seed (int): RNG seed. Defaults to 0.

    Returns:
        Tensor: ``(min(num, available),)`` sorted int64 indices.
    """
    gen = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    banned = set(int(i) for i in (exclude or ()))
    order = [
        int(i) for i in torch.randperm(n, generator=gen)
        if int(i) not in banned
    ]
    lab = labels.bool()
    counts = lab[order].sum(0) if order else lab.sum(0)
    classes = sorted(range(lab.shape[1]), key=lambda c: (int(counts[c]), c))
    chosen: List[int] = []
    taken = set()
    progress = True
    while len(chosen) < num and progress:
        progress = False
        for c in classes:
            if len(chosen) >= num:
                break
            for i in order:
                if i not in taken and bool(lab[i, c]):
                    chosen.append(i)
                    taken.add(i)
                    progress = True
                    break
    for i in order:
        if len(chosen) >= num:
            break
        if i not in taken:
            chosen.append(i)
            taken.add(i)
    return torch.tensor(sorted(chosen), dtype=torch.int64)


def assert_disjoint(influence_ids: Iterable[Hashable],
                    report_ids: Iterable[Hashable]) -> None:
    """Raise if influence validation images overlap the reported split.

    Args:
        influence_ids (Iterable): Identifiers (e.g. image names) of the
            influence validation images.
        report_ids (Iterable): Identifiers of the split results are
            reported on.

    Raises:
        ValueError: Listing up to 10 shared identifiers.
    """
    common = set(influence_ids) & set(report_ids)
    if common:
        shown = sorted(map(str, common))[:10]
        raise ValueError(
            f'{len(common)} influence validation images are in the reported '
            f'split (e.g. {shown}); choose them from a disjoint pool')


class ClassifierInfluence:
    """Running influence state of one scale classifier (default path).

    Holds the EMA curvature and the validation iHVPs ``s`` of the last
    refresh; gives influence scores and feature grad x input maps for
    training batches, uniform maps before the first refresh.

    Args:
        num_classes (int): Classifier outputs ``K``.
        in_channels (int): Feature width ``D``.
        bias (bool): Whether the classifier has a bias. Defaults to True.
        momentum (float): Curvature EMA momentum. Defaults to 0.01.
        damping (float): ``lambda``. Defaults to 1e-3.
        weight_decay (float): Optimiser weight decay on the classifier.
            Defaults to 0.
        bias_decay (float, optional): Weight decay of the bias; None means
            ``weight_decay``.
        loss_weight (float): Classification loss weight. Defaults to 1.0.
        device (torch.device | str, optional): Device of the state.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 bias: bool = True,
                 momentum: float = 0.01,
                 damping: float = 1e-3,
                 weight_decay: float = 0.0,
                 bias_decay: Optional[float] = None,
                 loss_weight: float = 1.0,
                 device: Optional[torch.device] = None) -> None:
        self.curvature = ClassifierCurvature(
            num_classes,
            in_channels,
            bias=bias,
            momentum=momentum,
            loss_weight=loss_weight,
            device=device)
        self.damping = damping
        self.weight_decay = weight_decay
        self.bias_decay = bias_decay
        self.loss_weight = loss_weight
        self.s_val: Optional[Tensor] = None
        self.last_info: Optional[SolveInfo] = None

    @property
    def valid(self) -> bool:
        """Whether a refresh has produced ``s``."""
        return self.s_val is not None

    def update(self,
               features: Tensor,
               logits: Tensor,
               weight: Optional[Tensor] = None) -> None:
        """Fold a training batch into the curvature EMA."""
        self.curvature.update(features, logits, weight)

    @torch.no_grad()
    def refresh(self, val_features: Tensor, val_logits: Tensor,
                val_labels: Tensor) -> SolveInfo:
        """Solve for the validation vectors with the current curvature.

        Args:
            val_features (Tensor): ``(M, D)`` pooled validation features
                (model in eval mode).
            val_logits (Tensor): ``(M, K)`` validation logits.
            val_labels (Tensor): ``(M, K)`` validation targets.

        Returns:
            SolveInfo: Diagnostics of the solve.
        """
        g = classifier_grads(
            val_features.to(torch.float64), val_logits.to(torch.float64),
            val_labels, self.curvature.bias, self.loss_weight)
        s, info = self.curvature.solve(g, self.damping, self.weight_decay,
                                       self.bias_decay)
        self.s_val, self.last_info = s, info
        return info

    def scores(self, features: Tensor, logits: Tensor,
               labels: Tensor) -> Tensor:
        """``(N, M)`` influence of training images on validation images."""
        if self.s_val is None:
            raise RuntimeError('no refresh yet')
        return classifier_influence(features, logits, labels, self.s_val,
                                    self.loss_weight)

    def maps(self,
             feature_map: Tensor,
             weight: Tensor,
             bias: Optional[Tensor],
             labels: Tensor,
             size: Optional[Size] = None,
             grid: Size = 32) -> Tensor:
        """``(N, 1, *size)`` maps (uniform before the first refresh).

        Args:
            feature_map (Tensor): ``(N, D, h, w)`` pre-GAP features.
            weight (Tensor): Classifier weight.
            bias (Tensor, optional): Classifier bias.
            labels (Tensor): ``(N, K)`` targets.
            size (int | tuple, optional): Output size; None gives the grid.
            grid (int | tuple): Grid size. Defaults to 32.
        """
        out = _pair(grid) if size is None else _pair(size)
        if self.s_val is None:
            return uniform_maps(
                feature_map.shape[0],
                out,
                device=feature_map.device,
                dtype=feature_map.dtype)
        maps = feature_grad_x_input(feature_map, self.s_val, weight, bias,
                                    labels, self.loss_weight)
        return resample_maps(maps, size, grid)

    def state_dict(self) -> Dict[str, Tensor]:
        """Tensors-only state (curvature and ``s``)."""
        state = {
            f'curvature.{k}': v
            for k, v in self.curvature.state_dict().items()
        }
        if self.s_val is not None:
            state['s_val'] = self.s_val.clone()
        return state

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Restore a state saved by :meth:`state_dict`."""
        self.curvature.load_state_dict({
            k[len('curvature.'):]: v
            for k, v in state.items() if k.startswith('curvature.')
        })
        s = state.get('s_val')
        self.s_val = None if s is None else s.clone().to(torch.float64)
        self.last_info = None
