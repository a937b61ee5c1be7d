# Copyright (c) mmwsss contributors.
"""Closed-form curvature of a CAM classifier and its exact damped solve.

Model and loss
--------------
The CAM classifier is the linear layer after global average pooling (GAP):
an ``nn.Linear(D, K)`` or a 1x1 ``nn.Conv2d(D, K)`` with weight ``W``
(``K x D``) and optional bias ``b``. For pooled features ``f`` (``D``) the
logits are ``z = W f + b``. All quantities here are for the loss

``L = loss_weight * mean_i w_i * mean_c BCE(z_ic, y_ic)``,

i.e. :func:`torch.nn.functional.multilabel_soft_margin_loss` (or
:class:`mmwsss.models.losses.MultiLabelSoftMarginLoss`) averaged over the
batch, optionally with per-image weights ``w_i`` (eq. (10) of IG-CAM; ``w =
1`` when not given). Note the **mean over classes**: it scales both the
per-sample gradients and the Hessian by ``1 / K`` compared with a summed BCE.

Parameter layout
----------------
Parameters are packed per class as ``theta[c] = [W_c; b_c]`` (shape
``(K, D + 1)``; ``(K, D)`` without bias), matching the augmented feature
``f~ = [f; 1]``. :func:`pack_classifier` / :func:`unpack_classifier` convert
between this layout and the ``weight`` / ``bias`` tensors of the layer.

Curvature
---------
Logit ``z_ic`` depends only on ``theta[c]``, and ``d2 BCE / dz2 = p (1 - p)``
with ``p = sigmoid(z)``, so the Hessian is block diagonal with one PSD block
per class,

``H_c = loss_weight / (N K) * sum_i w_i p_ic (1 - p_ic) f~_i f~_i^T``.

Because ``z`` is linear in ``theta`` this Hessian equals the generalised
Gauss-Newton matrix. :class:`ClassifierCurvature` keeps an exponential moving
average (EMA) of the blocks over training batches (the paper's "running
approximation of the Hessian") and solves ``(H_c + (lambda + wd) I) s_c =
g_c`` exactly by a float64 Cholesky factorisation of each block.
"""
import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = [
    'ClassifierCurvature', 'SolveInfo', 'augment', 'classifier_grads',
    'classifier_hessian', 'pack_classifier', 'unpack_classifier'
]


def augment(features: Tensor, bias: bool = True) -> Tensor:
    """Append a constant 1 to pooled features when the classifier has a bias.

    Args:
        features (Tensor): ``(N, D)`` pooled features.
        bias (bool): Whether the classifier has a bias. Defaults to True.

    Returns:
        Tensor: ``(N, D + 1)`` features ``[f, 1]`` if ``bias`` else the input.
    """
    if features.dim() != 2:
        raise ValueError('features must be (N, D), got shape '
                         f'{tuple(features.shape)}')
    if not bias:
        return features
    return torch.cat([features, features.new_ones(features.shape[0], 1)], 1)


def pack_classifier(weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Pack a classifier's weight and bias into the per-class layout.

    Args:
        weight (Tensor): ``(K, D)`` (``nn.Linear``) or ``(K, D, 1, 1)``
            (1x1 ``nn.Conv2d``) weight, or anything with these numbers.
        bias (Tensor, optional): ``(K,)`` bias. Defaults to None.

    Returns:
        Tensor: ``(..., K, D + 1)`` (``(..., K, D)`` without bias). Leading
        batch dimensions of ``weight`` (``(M, K, D)``) are kept when the
        weight has no trailing 1x1 dimensions; see :func:`unpack_classifier`.
    """
    if weight.dim() == 4 and weight.shape[-2:] == (1, 1):
        weight = weight.flatten(1)
    if bias is None:
        return weight
    return torch.cat([weight, bias.unsqueeze(-1)], dim=-1)


def unpack_classifier(theta: Tensor, weight_shape: Sequence[int],
                      bias: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """Split a packed ``(..., K, D [+1])`` tensor into weight and bias.

    Args:
        theta (Tensor): Packed tensor, optionally with leading dimensions.
        weight_shape (Sequence[int]): Shape of the layer's weight, e.g.
            ``(K, D)`` or ``(K, D, 1, 1)``.
        bias (bool): Whether the last column is the bias.

    Returns:
        tuple[Tensor, Tensor | None]: Weight of shape ``(..., *weight_shape)``
        and bias of shape ``(..., K)`` (None without bias).
    """
    lead = theta.shape[:-2]
    if bias:
        w, b = theta[..., :-1], theta[..., -1]
    else:
        w, b = theta, None
    return w.reshape(*lead, *weight_shape), b


def _probs(logits: Tensor) -> Tensor:
    return torch.sigmoid(logits)


def _check_shapes(features: Tensor, logits: Tensor) -> None:
    if features.dim() != 2 or logits.dim() != 2:
        raise ValueError('features and logits must be (N, D) and (N, K), '
                         f'got {tuple(features.shape)} and '
                         f'{tuple(logits.shape)}')
    if features.shape[0] != logits.shape[0]:
        raise ValueError(f'batch sizes differ: {features.shape[0]} vs '
                         f'{logits.shape[0]}')


def classifier_grads(features: Tensor,
                     logits: Tensor,
                     labels: Tensor,
                     bias: bool = True,
                     loss_weight: float = 1.0) -> Tensor:
    """Closed-form per-sample gradients of the classifier parameters.

    For image ``i`` with loss ``L_i = loss_weight * mean_c BCE(z_ic, y_ic)``
    the gradient w.r.t. ``theta[c]`` is ``loss_weight * (p_ic - y_ic) / K *
    f~_i``. Sample weights are not included (they multiply ``L_i``).

    Args:
        features (Tensor): ``(N, D)`` pooled features.
        logits (Tensor): ``(N, K)`` logits ``W f + b``.
        labels (Tensor): ``(N, K)`` multi-hot targets.
        bias (bool): Whether the classifier has a bias. Defaults to True.
        loss_weight (float): Loss weight. Defaults to 1.0.

    Returns:
        Tensor: ``(N, K, D + 1)`` (``(N, K, D)`` without bias) gradients.
    """
    _check_shapes(features, logits)
    k = logits.shape[1]
    r = (_probs(logits) - labels.to(logits.dtype)) * (loss_weight / k)
    return r.unsqueeze(2) * augment(features, bias).unsqueeze(1)


def classifier_hessian(features: Tensor,
                       logits: Tensor,
                       bias: bool = True,
                       weight: Optional[Tensor] = None,
                       loss_weight: float = 1.0) -> Tensor:
    """Closed-form per-class Hessian blocks of the batch-mean loss.

    ``H_c = loss_weight / (N K) * sum_i w_i p_ic (1 - p_ic) f~_i f~_i^T``.

    Args:
        features (Tensor): ``(N, D)`` pooled features.
        logits (Tensor): ``(N, K)`` logits.
        bias (bool): Whether the classifier has a bias. Defaults to True.
        weight (Tensor, optional): ``(N,)`` per-image loss weights.
        loss_weight (float): Loss weight. Defaults to 1.0.

    Returns:
        Tensor: ``(K, P, P)`` blocks with ``P = D + 1`` (``D`` without bias),
        in the dtype of ``features``.
    """
    _check_shapes(features, logits)
    n, k = logits.shape
    p = _probs(logits.to(features.dtype))
    a = p * (1 - p) * (loss_weight / (n * k))
    if weight is not None:
        a = a * weight.to(a.dtype).reshape(n, 1)
    ft = augment(features, bias)
    # (K, P, N) @ (N, P) -> (K, P, P)
    return torch.matmul(a.t().unsqueeze(1) * ft.t().unsqueeze(0), ft)


def _chol_solve(rhs: Tensor, chol: Tensor) -> Tensor:
    """``A^{-1} rhs`` from the lower Cholesky factor (two triangular solves,
    several times faster than ``torch.cholesky_solve`` on CPU here)."""
    tmp = torch.linalg.solve_triangular(chol, rhs, upper=False)
    return torch.linalg.solve_triangular(chol.mT, tmp, upper=True)


@dataclass
class SolveInfo:
    """Diagnostics of a damped solve.

    Attributes:
        residual (float): Largest relative residual ``||(H + delta) s - g|| /
            ||g||`` over right-hand sides and classes (0 for ``g = 0``).
        cond (float): Condition number of the damped system (largest over
            class blocks), exact or estimated (see ``cond``), NaN if not
            computed.
        damping (float): Total damping ``lambda + weight_decay`` on the
            weight rows.
        num_updates (int): Number of curvature updates behind ``H``.
    """
    residual: float
    cond: float
    damping: float
    num_updates: int


class ClassifierCurvature:
    """EMA of the per-class Hessian blocks of a CAM classifier.

    One instance per scale classifier. ``update`` is meant for every
    training iteration (cost ``O(N K P^2)``), ``solve`` for every refresh
    (Cholesky ``O(K P^3)`` plus ``O(K P^2 M)`` for ``M`` right-hand sides).

    EMA convention (MMEngine's): ``A <- (1 - momentum) A + momentum H_batch``
    starting from ``A = 0``, with Adam-style bias correction
    ``H = A / (1 - (1 - momentum)^t)`` after ``t`` updates, so ``H`` is a
    normalised, exponentially weighted average of the batch Hessians (exactly
    the first batch's after one update; the last batch's for momentum 1).
    ``momentum = 0.01`` gives a memory of about 100 iterations.

    Args:
        num_classes (int): Classifier outputs ``K``.
        in_channels (int): Feature width ``D``.
        bias (bool): Whether the classifier has a bias. Defaults to True.
        momentum (float): EMA momentum in (0, 1]. Defaults to 0.01.
        loss_weight (float): Weight of the classification loss (the Hessian
            of the loss actually optimised). Defaults to 1.0.
        device (torch.device | str, optional): Device of the state.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 bias: bool = True,
                 momentum: float = 0.01,
                 loss_weight: float = 1.0,
                 device: Optional[torch.device] = None) -> None:
        if not 0 < momentum <= 1:
            raise ValueError(f'momentum must be in (0, 1], got {momentum}')
        if num_classes < 1 or in_channels < 1:
            raise ValueError('num_classes and in_channels must be positive')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.bias = bias
        self.momentum = float(momentum)
        self.loss_weight = float(loss_weight)
        self.dim = in_channels + int(bias)
        self._acc = torch.zeros(
            num_classes,
            self.dim,
            self.dim,
            dtype=torch.float64,
            device=device)
        self.num_updates = 0
        self._factor_cache: Optional[Tuple[int, Tuple[float, float],
                                           Tensor]] = None

    # ------------------------------------------------------------------ state
    @torch.no_grad()
    def update(self,
               features: Tensor,
               logits: Tensor,
               weight: Optional[Tensor] = None) -> None:
        """Fold one batch into the EMA.

        Args:
            features (Tensor): ``(N, D)`` pooled features (detached inside).
            logits (Tensor): ``(N, K)`` logits of the same batch.
            weight (Tensor, optional): ``(N,)`` per-image loss weights.
        """
        f = features.detach().to(self._acc)
        if f.shape[1] != self.in_channels or \
                logits.shape[1] != self.num_classes:
            raise ValueError(
                f'expected features (N, {self.in_channels}) and logits '
                f'(N, {self.num_classes}), got {tuple(features.shape)} and '
                f'{tuple(logits.shape)}')
        w = None if weight is None else weight.detach().to(self._acc)
        h = classifier_hessian(
            f,
            logits.detach().to(self._acc),
            self.bias,
            weight=w,
            loss_weight=self.loss_weight)
        self._acc.mul_(1 - self.momentum).add_(h, alpha=self.momentum)
        self.num_updates += 1
        self._factor_cache = None

    def hessian(self) -> Tensor:
        """Bias-corrected EMA blocks ``(K, P, P)`` in float64."""
        if self.num_updates == 0:
            raise RuntimeError('ClassifierCurvature has no update yet')
        corr = 1 - (1 - self.momentum)**self.num_updates
        return self._acc / corr

    def reset(self) -> None:
        """Forget all updates."""
        self._acc.zero_()
        self.num_updates = 0
        self._factor_cache = None

    def state_dict(self) -> Dict[str, Tensor]:
        """Tensors-only state for checkpoints."""
        return {
            'acc': self._acc.clone(),
            'num_updates': torch.tensor(self.num_updates, dtype=torch.int64)
        }

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Restore a state saved by :meth:`state_dict`."""
        acc = state['acc']
        if tuple(acc.shape) != tuple(self._acc.shape):
            raise ValueError(f'curvature state of shape {tuple(acc.shape)} '
                             f'does not fit {tuple(self._acc.shape)}')
        self._acc.copy_(acc.to(self._acc))
        self.num_updates = int(state['num_updates'])
        self._factor_cache = None

    # ---------------------------------------------------------------- algebra
    def _damping_diag(self, damping: float, weight_decay: float,
                      bias_decay: Optional[float]) -> Tensor:
        d = torch.full((self.dim, ),
                       damping + weight_decay,
                       dtype=torch.float64,
                       device=self._acc.device)
        if self.bias and bias_decay is not None:
            d[-1] = damping + bias_decay
        return d

    def hvp(self,
            v: Tensor,
            damping: float = 0.0,
            weight_decay: float = 0.0,
            bias_decay: Optional[float] = None) -> Tensor:
        """Product ``(H + diag(delta)) v`` with the current blocks.

        Args:
            v (Tensor): ``(..., K, P)`` packed vectors.
            damping (float): ``lambda``. Defaults to 0.
            weight_decay (float): Added to the damping. Defaults to 0.
            bias_decay (float, optional): Weight decay of the bias row; None
                means ``weight_decay``.

        Returns:
            Tensor: ``(..., K, P)`` in float64.
        """
        v64 = v.to(self._acc)
        hv = torch.einsum('kpq,...kq->...kp', self.hessian(), v64)
        diag = self._damping_diag(damping, weight_decay, bias_decay)
        return hv + diag * v64

    def _factor(self, damping: float, weight_decay: float,
                bias_decay: Optional[float]) -> Tensor:
        key = (damping, weight_decay, bias_decay)
        if self._factor_cache is not None and \
                self._factor_cache[0] == self.num_updates and \
                self._factor_cache[1] == key:
            return self._factor_cache[2]
        h = self.hessian()
        diag = self._damping_diag(damping, weight_decay, bias_decay)
        a = h + torch.diag_embed(diag.expand(self.num_classes, -1))
        chol, info = torch.linalg.cholesky_ex(a)
        if bool((info > 0).any()):
            bad = torch.nonzero(info > 0).flatten().tolist()
            raise RuntimeError(
                'Cholesky of the damped classifier curvature failed for '
                f'classes {bad}; increase the damping (now {damping} + '
                f'weight decay {weight_decay})')
        self._factor_cache = (self.num_updates, key, chol)
        return chol

    def solve(self,
              g: Tensor,
              damping: float = 1e-3,
              weight_decay: float = 0.0,
              bias_decay: Optional[float] = None,
              cond: Optional[str] = 'estimate') -> Tuple[Tensor, SolveInfo]:
        """Exact damped solve ``(H_c + (lambda + wd) I) s_c = g_c``.

        The factorisation is cached until the next :meth:`update`.

        Args:
            g (Tensor): ``(K, P)`` or ``(M, K, P)`` packed right-hand sides
                (e.g. validation gradients from :func:`classifier_grads`).
            damping (float): ``lambda``. Defaults to 1e-3.
            weight_decay (float): The optimiser's weight decay on the
                classifier (the Hessian of the regularised objective is
                ``H + wd I``). Defaults to 0.
            bias_decay (float, optional): Weight decay of the bias; None means
                ``weight_decay``.
            cond (str, optional): ``'exact'`` (``eigvalsh`` of every block,
                ``O(K P^3)``, about 9 times the Cholesky cost), ``'estimate'``
                (30 steps of power and inverse power iteration per block,
                ``O(K P^2)`` each; a lower bound on the exact value) or None.
                Defaults to ``'estimate'``.

        Returns:
            tuple[Tensor, SolveInfo]: ``s`` in float64 with the shape of
            ``g``, and diagnostics.
        """
        if cond not in (None, 'exact', 'estimate'):
            raise ValueError(f'cond must be None, exact or estimate, got '
                             f'{cond!r}')
        squeeze = g.dim() == 2
        g64 = g.to(self._acc)
        if squeeze:
            g64 = g64.unsqueeze(0)
        if g64.shape[1:] != (self.num_classes, self.dim):
            raise ValueError(f'g must be (M, {self.num_classes}, {self.dim}), '
                             f'got {tuple(g.shape)}')
        chol = self._factor(damping, weight_decay, bias_decay)
        rhs = g64.permute(1, 2, 0)  # (K, P, M)
        s = _chol_solve(rhs, chol).permute(2, 0, 1).contiguous()
        res = self.hvp(s, damping, weight_decay, bias_decay) - g64
        num = res.flatten(1).norm(dim=1)
        den = g64.flatten(1).norm(dim=1)
        rel = torch.where(den > 0, num / den.clamp_min(1e-300), num)
        info = SolveInfo(
            residual=float(rel.max()) if rel.numel() else 0.0,
            cond=self._cond(chol, damping, weight_decay, bias_decay, cond),
            damping=damping + weight_decay,
            num_updates=self.num_updates)
        return (s[0] if squeeze else s), info

    def _cond(self, chol: Tensor, damping: float, weight_decay: float,
              bias_decay: Optional[float], mode: Optional[str]) -> float:
        if mode is None:
            return math.nan
        diag = self._damping_diag(damping, weight_decay, bias_decay)
        a = self.hessian() + torch.diag_embed(
            diag.expand(self.num_classes, -1))
        if mode == 'exact':
            ev = torch.linalg.eigvalsh(a)
            return float((ev[:, -1] / ev[:, 0]).max())
        gen = torch.Generator(device='cpu').manual_seed(0)
        x = torch.randn(
            self.num_classes, self.dim, 1, generator=gen,
            dtype=torch.float64).to(a.device)
        y = x.clone()
        for _ in range(30):
            x = a @ x
            x = x / x.norm(dim=1, keepdim=True)
            y = _chol_solve(y, chol)
            y = y / y.norm(dim=1, keepdim=True)
        lmax = (x * (a @ x)).sum(dim=(1, 2))
        lmin = (y * (a @ y)).sum(dim=(1, 2))
        return float((lmax / lmin).max())
