# Copyright (c) mmwsss contributors.
"""Training objectives of CamGuide (sec. II.J, eqs. (23)-(39)).

- :class:`MultiLabelMarginLoss`: ``L_cls``, eq. (23), on the GAP logits of
  eq. (9) (stages 1 and 3);
- :class:`CAMDistillL1Loss`: ``L_reg^(1)`` / ``L_reg^(2)``, eqs. (24)-(25)
  (stages 1 and 2);
- :class:`HeuristicTargetLoss`: ``CE(CAM_student, target)``, eqs. (27)-(29),
  used for ``L_crf`` and ``L_rw`` (stage 3);
- :class:`EdgeConsistencyLoss`: ``L_edge``, eqs. (30)-(34) (stage 3);
- :class:`WindowLocalConsistencyLoss`: ``L_loc``, eqs. (35)-(39) (stage 3).

Every loss multiplies its value by ``loss_weight`` (the paper's
``lambda_*`` of eqs. (40) and (42)) and exposes ``loss_name``. Throughout,
a class counts as present in an image iff its multi-hot label value is
``> 0``.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmwsss.registry import MODELS
from mmwsss.utils.relative_size import (SizeSpec, check_size, grid_side,
                                        resolve_size)

# Scharr derivative along x (cv2.Scharr(dx=1, dy=0)); the y kernel is its
# transpose.
_SCHARR_X = ((-3., 0., 3.), (-10., 0., 10.), (-3., 0., 3.))


def _check_tensor(x: Tensor, name: str, ndim: int) -> None:
    """Raise ``ValueError`` for a wrong rank or non-finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f'{name} must be a Tensor, got {type(x).__name__}')
    if x.dim() != ndim:
        raise ValueError(f'{name} must be {ndim}-D, got shape '
                         f'{tuple(x.shape)}')
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f'{name} contains NaN or Inf values')


def _check_labels(labels: Tensor, name: str, n: int, k: int) -> Tensor:
    """Validate ``(n, k)`` multi-hot labels; return the 0/1 float mask."""
    _check_tensor(labels, name, 2)
    if tuple(labels.shape) != (n, k):
        raise ValueError(f'{name} must have shape ({n}, {k}), got '
                         f'{tuple(labels.shape)}')
    return (labels > 0).float()


def _check_loss_name(loss_name: str) -> str:
    if not isinstance(loss_name, str) or not loss_name.startswith('loss_'):
        raise ValueError(f"loss_name must start with 'loss_', got "
                         f'{loss_name!r}')
    return loss_name


def gaussian_kernel1d(size: int, sigma: float) -> Tensor:
    """Normalised 1-D Gaussian taps, as ``cv2.getGaussianKernel``.

    Args:
        size (int): Odd number of taps.
        sigma (float): Standard deviation (> 0).

    Returns:
        Tensor: ``(size,)`` float64 taps summing to 1.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f'kernel size must be odd and positive, got {size}')
    if sigma <= 0:
        raise ValueError(f'sigma must be positive, got {sigma}')
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def gaussian_blur(x: Tensor, size: int, sigma: float) -> Tensor:
    """Per-channel separable Gaussian blur with replicated borders.

    Equivalent to ``cv2.GaussianBlur(x, (size, size), sigma,
    borderType=cv2.BORDER_REPLICATE)`` on each channel.

    Args:
        x (Tensor): ``(N, C, H, W)``.
        size (int): Odd kernel size.
        sigma (float): Standard deviation.

    Returns:
        Tensor: ``(N, C, H, W)``.
    """
    n, c, h, w = x.shape
    g = gaussian_kernel1d(size, sigma).to(x)
    r = size // 2
    y = F.pad(x.reshape(n * c, 1, h, w), (r, r, r, r), mode='replicate')
    y = F.conv2d(y, g.view(1, 1, 1, size))
    y = F.conv2d(y, g.view(1, 1, size, 1))
    return y.view(n, c, h, w)


def scharr_magnitude(x: Tensor) -> Tensor:
    """Per-channel Scharr gradient magnitude with replicated borders.

    ``sqrt(gx^2 + gy^2)`` with ``gx``/``gy`` as ``cv2.Scharr(x, dx=1/0,
    dy=0/1, borderType=cv2.BORDER_REPLICATE)`` (unnormalised kernels, a
    unit step gives 16). The square root is evaluated so that flat regions
    give exactly 0 with a zero (not NaN) gradient.

    Args:
        x (Tensor): ``(N, C, H, W)``.

    Returns:
        Tensor: ``(N, C, H, W)``, non-negative.
    """
    n, c, h, w = x.shape
    kx = x.new_tensor(_SCHARR_X)
    k = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    y = F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode='replicate')
    sq = F.conv2d(y, k).pow(2).sum(dim=1)
    pos = sq > 0
    mag = torch.where(pos,
                      torch.where(pos, sq, torch.ones_like(sq)).sqrt(),
                      torch.zeros_like(sq))
    return mag.view(n, c, h, w)


def max_normalize(x: Tensor, eps: float = 1e-5) -> Tensor:
    """PuzzleCAM ``make_cam``, CamGuide eqs. (2)-(3).

    ``CAM = relu(x - eps) / max(eps, max_hw(x) + eps)`` per image and
    channel, differentiable (through the max as well).

    Args:
        x (Tensor): ``(N, K, h, w)`` raw class feature maps.
        eps (float): The paper's ``epsilon``. Defaults to 1e-5.

    Returns:
        Tensor: ``(N, K, h, w)`` in ``[0, 1)``.
    """
    amax = (x.flatten(2).max(dim=2).values + eps).clamp_min(eps)
    return torch.relu(x - eps) / amax[..., None, None]


class _CamGuideLoss(nn.Module):
    """Holds ``loss_weight`` and ``loss_name``."""

    def __init__(self, loss_weight: float, loss_name: str) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = _check_loss_name(loss_name)

    @property
    def loss_name(self) -> str:
        """Name of the loss item (starts with ``loss_``)."""
        return self._loss_name


@MODELS.register_module()
class MultiLabelMarginLoss(_CamGuideLoss):
    """Multi-label hinge loss ``L_cls``, CamGuide eq. (23).

    Per sample ``n`` with positive classes ``P`` and negative classes
    ``Q`` (``Q`` = complement of ``P``)::

        l_n = sum_{j in P} sum_{i in Q} max(0, 1 - (x_j - x_i)) / K

    i.e. :func:`torch.nn.functional.multilabel_margin_loss` (whose
    ``x.size(0)`` is the number of classes ``K``), but with multi-hot
    targets ``(N, K)`` instead of ``-1``-terminated index lists. A class is
    positive iff its target value is ``> 0``. A sample without positive
    labels (or without negatives) has no pair and contributes ``0`` (as in
    torch), and still counts in the batch mean. ``logits`` are the GAP
    logits of eq. (9).

    Args:
        loss_weight (float): ``lambda_cls``. Defaults to 1.0.
        loss_name (str): Defaults to ``'loss_cls'``.
        reduction (str): ``'mean'`` (default, torch's), ``'sum'`` or
            ``'none'`` over samples.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_cls',
                 reduction: str = 'mean') -> None:
        super().__init__(loss_weight, loss_name)
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', "
                             f'got {reduction!r}')
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            logits (Tensor): ``(N, K)`` class logits.
            target (Tensor): ``(N, K)`` multi-hot targets (float, int or
                bool).

        Returns:
            Tensor: Scalar loss (``(N,)`` with ``reduction='none'``).
        """
        _check_tensor(logits, 'logits', 2)
        n, k = logits.shape
        pos = _check_labels(target, 'target', n, k).to(logits.dtype)
        # margin[n, j, i] = 1 - (x_j - x_i) for positive j, negative i
        margin = 1 - logits[:, :, None] + logits[:, None, :]
        pair = pos[:, :, None] * (1 - pos)[:, None, :]
        per = (torch.relu(margin) * pair).sum(dim=(1, 2)) / max(k, 1)
        if self.reduction == 'mean':
            loss = per.mean() if n else logits.sum() * 0
        elif self.reduction == 'sum':
            loss = per.sum()
        else:
            loss = per
        return self.loss_weight * loss


@MODELS.register_module()
class CAMDistillL1Loss(_CamGuideLoss):
    """Teacher-student L1 regularisation, CamGuide eqs. (24)-(25).

    ``L_reg = mean |F_T - F_S|`` over batch, classes and pixels (the
    ``||.||_1`` of the paper, averaged so that its scale does not depend on
    the resolution). The teacher map is detached (eq. (5)). Stage 1 passes
    ``F_S(x)`` (eq. (24)), stage 2 ``F_S(x_masked)`` (eq. (25)).

    When the spatial sizes differ, one map is resized bilinearly
    (``align_corners=False``): the student to the teacher's size
    (``resize_to='teacher'``, default) or the teacher to the student's
    (``'student'``).

    Args:
        loss_weight (float): ``lambda_reg``. Defaults to 1.0.
        normalize (str, optional): ``None`` (default): compare the raw
            class feature maps, the paper's reading of eq. (24);
            ``'max'``: compare the normalised CAMs of eqs. (2)-(3)
            (:func:`max_normalize`).
        loss_name (str): Defaults to ``'loss_reg'``.
        resize_to (str): ``'teacher'`` or ``'student'``.
        norm_eps (float): ``epsilon`` of eqs. (2)-(3). Defaults to 1e-5.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 normalize: Optional[str] = None,
                 loss_name: str = 'loss_reg',
                 resize_to: str = 'teacher',
                 norm_eps: float = 1e-5) -> None:
        super().__init__(loss_weight, loss_name)
        if normalize not in (None, 'max'):
            raise ValueError(f"normalize must be None or 'max', got "
                             f'{normalize!r}')
        if resize_to not in ('teacher', 'student'):
            raise ValueError(f"resize_to must be 'teacher' or 'student', "
                             f'got {resize_to!r}')
        self.normalize = normalize
        self.resize_to = resize_to
        self.norm_eps = norm_eps

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            student (Tensor): ``(N, K, h, w)`` student feature maps
                ``F_S``.
            teacher (Tensor): ``(N, K, h', w')`` teacher feature maps
                ``F_T`` (detached here).

        Returns:
            Tensor: Scalar loss.
        """
        _check_tensor(student, 'student', 4)
        _check_tensor(teacher, 'teacher', 4)
        if student.shape[:2] != teacher.shape[:2]:
            raise ValueError(f'student {tuple(student.shape)} and teacher '
                             f'{tuple(teacher.shape)} differ in (N, K)')
        teacher = teacher.detach().to(student.dtype)
        if student.shape[2:] != teacher.shape[2:]:
            if self.resize_to == 'teacher':
                student = F.interpolate(
                    student,
                    size=teacher.shape[2:],
                    mode='bilinear',
                    align_corners=False)
            else:
                teacher = F.interpolate(
                    teacher,
                    size=student.shape[2:],
                    mode='bilinear',
                    align_corners=False)
        if self.normalize == 'max':
            student = max_normalize(student, self.norm_eps)
            teacher = max_normalize(teacher, self.norm_eps)
        if student.numel() == 0:
            return self.loss_weight * student.sum() * 0
        return self.loss_weight * F.l1_loss(student, teacher)


@MODELS.register_module()
class EdgeConsistencyLoss(_CamGuideLoss):
    """Asymmetric edge consistency ``L_edge``, CamGuide eqs. (30)-(34).

    Image side (no gradient, sec. II.I.3): Gaussian blur
    (``img_blur_kernel``, ``img_blur_sigma``), Scharr magnitude per channel
    (:func:`scharr_magnitude`), mean over channels, division by the global
    spatial max per image (a flat image gives 0), ``dilate_kernel`` grey
    dilation (max pool, out-of-image pixels ignored), then adaptive average
    pooling to the CAM grid: ``S_down in [0, 1]^(N, 1, h, w)``. The image
    may have any affine intensity scale (e.g. the normalised network
    input): the max normalisation removes it.

    CAM side: Gaussian blur (``cam_blur_kernel``, ``cam_blur_sigma``),
    Scharr magnitude per class, division by ``max_hw + eps`` per image and
    class: ``E in [0, 1]^(N, K, h, w)`` (differentiable, through the max as
    well).

    Blurs and Scharr filters replicate the border pixels
    (``cv2.BORDER_REPLICATE``), so the image frame is not an edge. Then,
    with ``y`` the multi-hot labels and ``M = 1[S_down < tau]``::

        u     = relu(E - (S_down + delta)) * M * y          (30)
        N     = sum y * M                                  (31)
        focal = sum u ** gamma / N                         (32)
        hard  = sum u * 1[E > tau2] / N                    (33)
        L     = focal + lambda_hard * hard                 (34)

    with sums over batch, classes and pixels. When ``N == 0`` (no labelled
    class, or the image supports edges everywhere) the loss is ``0`` and
    still connected to ``cams`` (zero gradient).

    **Sizes.** Every kernel size and sigma is either in pixels (the
    paper's values, defaults) or relative (``dict(rel=f)``, see
    :mod:`mmwsss.utils.relative_size`): the image blur and the dilation
    relative to the side of the image given to :meth:`forward`, the CAM
    blur relative to the side of the CAM grid. The paper's 9x9 / sigma 3
    image blur and 3x3 dilation are for 512 crops
    (``dict(rel=9 / 512)``, ...), its 5x5 / sigma 1.5 CAM blur for the
    128-pixel stride-4 grid of a 512 crop (``dict(rel=5 / 128)``, ...);
    kernels resolve to the nearest odd size >= 1 (1 = no blur / no
    dilation).

    Args:
        img_blur_kernel (int | dict): Defaults to 9.
        img_blur_sigma (float | dict): Defaults to 3.0.
        cam_blur_kernel (int | dict): Defaults to 5.
        cam_blur_sigma (float | dict): Defaults to 1.5.
        dilate_kernel (int | dict): Odd size of the dilation; 1 disables
            it. Defaults to 3.
        tau (float): Edge-support threshold. Defaults to 0.1.
        delta (float): Tolerance margin. Defaults to 0.05.
        gamma (float): Focal exponent (> 0). Defaults to 2.0.
        tau2 (float): Hard-mining threshold on ``E``. Defaults to 0.35.
        lambda_hard (float): Defaults to 2.0.
        loss_weight (float): ``lambda_edge``. Defaults to 1.0.
        loss_name (str): Defaults to ``'loss_edge'``.
        eps (float): Stabiliser of the CAM edge normalisation. Defaults to
            1e-6.
        detach_max (bool): Treat the per-class maximum of the CAM edge
            magnitude (the normaliser of ``E``) as a constant. The paper
            normalises "by their global maximum" and says nothing about
            the gradient; through the maximum, the loss falls when one
            edge spikes and every other normalised edge shrinks, which on
            the demo's dev seeds made the stage-3 CAMs collapse onto peaks
            (see ``configs/camguide/README.md``). Defaults to False (the
            literal reading).
    """

    def __init__(self,
                 img_blur_kernel: SizeSpec = 9,
                 img_blur_sigma: SizeSpec = 3.0,
                 cam_blur_kernel: SizeSpec = 5,
                 cam_blur_sigma: SizeSpec = 1.5,
                 dilate_kernel: SizeSpec = 3,
                 tau: float = 0.1,
                 delta: float = 0.05,
                 gamma: float = 2.0,
                 tau2: float = 0.35,
                 lambda_hard: float = 2.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_edge',
                 eps: float = 1e-6,
                 detach_max: bool = False) -> None:
        super().__init__(loss_weight, loss_name)
        for name, size in (('img_blur_kernel', img_blur_kernel),
                           ('cam_blur_kernel', cam_blur_kernel),
                           ('dilate_kernel', dilate_kernel)):
            if isinstance(size, bool) or not isinstance(size, (int, dict)):
                raise ValueError(f'{name} must be an odd positive int or '
                                 f'dict(rel=...), got {size!r}')
            check_size(size, name, 'odd', 1)
        for name, value in (('img_blur_sigma', img_blur_sigma),
                            ('cam_blur_sigma', cam_blur_sigma)):
            try:
                check_size(value, name, 'float', None)
            except ValueError:
                raise ValueError(f'{name} must be positive, got '
                                 f'{value!r}') from None
        if not gamma > 0:
            raise ValueError(f'gamma must be positive, got {gamma!r}')
        self.img_blur_kernel = img_blur_kernel
        self.img_blur_sigma = img_blur_sigma
        self.cam_blur_kernel = cam_blur_kernel
        self.cam_blur_sigma = cam_blur_sigma
        self.dilate_kernel = dilate_kernel
        self.tau = tau
        self.delta = delta
        self.gamma = gamma
        self.tau2 = tau2
        self.lambda_hard = lambda_hard
        self.eps = eps
        self.detach_max = bool(detach_max)

    def resolved_sizes(self, img_shape: Tuple[int, int],
                       cam_shape: Tuple[int, int]) -> dict:
        """Sizes in pixels for an image and a CAM grid of these shapes.

        Args:
            img_shape (tuple[int, int]): ``(H, W)`` of the image.
            cam_shape (tuple[int, int]): ``(h, w)`` of the CAM grid.

        Returns:
            dict: ``img_blur_kernel``, ``img_blur_sigma``, ``dilate_kernel``
            (image pixels), ``cam_blur_kernel``, ``cam_blur_sigma`` (CAM
            pixels).
        """
        side_i, side_c = grid_side(img_shape), grid_side(cam_shape)
        return dict(
            img_blur_kernel=resolve_size(self.img_blur_kernel, side_i, 'odd',
                                         1, 'img_blur_kernel'),
            img_blur_sigma=resolve_size(self.img_blur_sigma, side_i, 'float',
                                        None, 'img_blur_sigma'),
            dilate_kernel=resolve_size(self.dilate_kernel, side_i, 'odd', 1,
                                       'dilate_kernel'),
            cam_blur_kernel=resolve_size(self.cam_blur_kernel, side_c, 'odd',
                                         1, 'cam_blur_kernel'),
            cam_blur_sigma=resolve_size(self.cam_blur_sigma, side_c, 'float',
                                        None, 'cam_blur_sigma'))

    @torch.no_grad()
    def image_support(self, img: Tensor, size: Tuple[int, int]) -> Tensor:
        """Image edge-support map ``S_down``.

        Args:
            img (Tensor): ``(N, C, H, W)`` image, any intensity scale.
            size (tuple[int, int]): CAM grid ``(h, w)``.

        Returns:
            Tensor: ``(N, 1, h, w)`` float32 in ``[0, 1]``.
        """
        sizes = self.resolved_sizes(img.shape[-2:], size)
        x = img.detach().float()
        x = gaussian_blur(x, sizes['img_blur_kernel'], sizes['img_blur_sigma'])
        s = scharr_magnitude(x).mean(dim=1, keepdim=True)
        smax = s.flatten(1).max(dim=1).values[:, None, None, None]
        s = torch.where(smax > 0, s / smax.clamp_min(1e-30),
                        torch.zeros_like(s))
        dilate = sizes['dilate_kernel']
        if dilate > 1:
            s = F.max_pool2d(s, dilate, stride=1, padding=dilate // 2)
        return F.adaptive_avg_pool2d(s, size)

    def cam_edges(self, cams: Tensor) -> Tensor:
        """Per-class CAM edge map ``E`` (differentiable).

        Args:
            cams (Tensor): ``(N, K, h, w)`` normalised CAMs.

        Returns:
            Tensor: ``(N, K, h, w)`` in ``[0, 1]``.
        """
        sizes = self.resolved_sizes(cams.shape[-2:], cams.shape[-2:])
        x = gaussian_blur(cams, sizes['cam_blur_kernel'],
                          sizes['cam_blur_sigma'])
        e = scharr_magnitude(x)
        emax = e.flatten(2).max(dim=2).values[..., None, None]
        if self.detach_max:
            emax = emax.detach()
        return e / (emax + self.eps)

    def forward(self, cams: Tensor, img: Tensor, labels: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            cams (Tensor): ``(N, K, h, w)`` foreground CAMs normalised to
                ``[0, 1]`` (eq. (3)).
            img (Tensor): ``(N, C, H, W)`` float image (e.g. the
                normalised network input).
            labels (Tensor): ``(N, K)`` multi-hot image labels ``y``.

        Returns:
            Tensor: Scalar loss.
        """
        _check_tensor(cams, 'cams', 4)
        _check_tensor(img, 'img', 4)
        n, k, h, w = cams.shape
        if img.shape[0] != n:
            raise ValueError(f'img batch {img.shape[0]} != cams batch {n} '
                             f'(img {tuple(img.shape)}, cams '
                             f'{tuple(cams.shape)})')
        if not img.is_floating_point():
            raise ValueError(f'img must be a float tensor, got {img.dtype}')
        y = _check_labels(labels, 'labels', n, k).to(cams)[..., None, None]
        if cams.numel() == 0:
            return self.loss_weight * cams.sum() * 0
        s_img = self.image_support(img, (h, w)).to(cams.dtype)
        edges = self.cam_edges(cams)
        weak = (s_img < self.tau).to(cams.dtype)  # (N, 1, h, w)
        u = torch.relu(edges - (s_img + self.delta)) * weak * y
        count = (y * weak).sum()  # eq. (31), (N, K, 1, 1) x (N, 1, h, w)
        ug = torch.where(u > 0,
                         u.clamp_min(1e-12).pow(self.gamma),
                         torch.zeros_like(u))
        hard = u * (edges > self.tau2).to(u.dtype)
        total = ug.sum() + self.lambda_hard * hard.sum()
        if count.item() == 0:
            return self.loss_weight * cams.sum() * 0
        return self.loss_weight * total / count


@MODELS.register_module()
class WindowLocalConsistencyLoss(_CamGuideLoss):
    """Window local consistency ``L_loc``, CamGuide eqs. (35)-(39).

    ``K = cams / (sum_k cams + eps)`` per pixel (eq. (35)), ``Kbar`` its
    mean over the ``window x window`` neighbourhood (eq. (37)),
    ``S = sum_k K * Kbar`` (eq. (38)) and ``L = mean_{n, i, j} (1 - S) *
    max_k K`` (eq. (39), averaged over the batch too).

    Border handling: at the image border ``Kbar`` is the mean over the
    in-image pixels of the window (``avg_pool2d(...,
    count_include_pad=False)``), so ``sum_k Kbar = 1`` wherever the window
    holds an activated pixel and the border is not treated as background.
    Classes absent from ``labels`` are zeroed before the normalisation; the
    caller decides whether ``cams`` holds a background channel.
    Pixels where all classes are 0 have ``K = 0`` and contribute 0 (they
    still count in the mean, the ``1 / HW`` of eq. (39)).

    The window is in pixels of the CAM grid or relative to its side
    (``dict(rel=7 / 128)``: Table III's 7 on the 128-pixel stride-4 grid
    of a 512 crop), resolved per call to the nearest odd size, at least 3
    (a 1-pixel window compares a pixel with itself only).

    Args:
        window (int | dict): Odd window size. Defaults to 7.
        eps (float): ``epsilon`` of eq. (35). Defaults to 1e-6.
        loss_weight (float): ``lambda_loc``. Defaults to 1.0.
        loss_name (str): Defaults to ``'loss_loc'``.
    """

    def __init__(self,
                 window: SizeSpec = 7,
                 eps: float = 1e-6,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_loc') -> None:
        super().__init__(loss_weight, loss_name)
        if isinstance(window, bool) or not isinstance(window, (int, dict)):
            raise ValueError(f'window must be an odd positive int or '
                             f'dict(rel=...), got {window!r}')
        try:
            check_size(window, 'window', 'odd', 1)
        except ValueError as e:
            raise ValueError(f'window must be an odd positive int: '
                             f'{e}') from None
        self.window = window
        self.eps = eps

    def resolve_window(self, shape: Tuple[int, int]) -> int:
        """Window side in pixels on a CAM grid of spatial size ``shape``."""
        if isinstance(self.window, dict):
            return resolve_size(self.window, grid_side(shape), 'odd', 3,
                                'window')
        return int(self.window)

    def forward(self, cams: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            cams (Tensor): ``(N, K, h, w)`` non-negative class maps.
            labels (Tensor, optional): ``(N, K)`` multi-hot labels; None
                keeps every class.

        Returns:
            Tensor: Scalar loss.
        """
        _check_tensor(cams, 'cams', 4)
        n, k = cams.shape[:2]
        if cams.numel() == 0:
            return self.loss_weight * cams.sum() * 0
        if bool((cams < 0).any()):
            raise ValueError('cams must be non-negative (apply ReLU or the '
                             'CAM normalisation of eq. (3) first)')
        if labels is not None:
            y = _check_labels(labels, 'labels', n, k).to(cams)
            cams = cams * y[..., None, None]
        prob = cams / (cams.sum(dim=1, keepdim=True) + self.eps)
        window = self.resolve_window(cams.shape[-2:])
        mean = F.avg_pool2d(
            prob,
            window,
            stride=1,
            padding=window // 2,
            count_include_pad=False)
        agree = (prob * mean).sum(dim=1)
        conf = prob.max(dim=1).values
        return self.loss_weight * ((1 - agree) * conf).mean()


@MODELS.register_module()
class HeuristicTargetLoss(_CamGuideLoss):
    """Cross-entropy to a heuristic pseudo-label, CamGuide eqs. (27)-(29).

    ``L = CE(CAM_student, target)`` with ``target`` from a non-derivable
    refiner (``closure(dcrf(mask))`` for ``L_crf``, eq. (28);
    ``SLIC_RW(mask)`` for ``L_rw``, eq. (29)). ``scores`` holds a
    background channel 0 built by the caller and one channel per
    foreground class.

    - ``mode='prob'`` (default): ``scores`` are the non-negative normalised
      CAMs of eq. (3) (which are not logits: the paper names ``CAM_student``
      as the CE input). They are turned into per-pixel class probabilities
      by the sum normalisation of eq. (35), ``p = scores / (sum_c scores +
      eps)``, and ``L = mean over non-ignored pixels of -log(p_target +
      eps)``.
    - ``mode='logits'``: ``F.cross_entropy(scores, target,
      ignore_index=ignore_index)`` for callers passing logits.

    A target of another size is resized to the score grid with
    ``resize_mode`` interpolation (``'nearest'``; ``'nearest-exact'``
    samples block centres). An all-ignored batch gives ``0`` connected to
    ``scores``.

    Args:
        loss_weight (float): ``lambda_crf`` / ``lambda_rw``. Defaults to
            1.0.
        ignore_index (int): Defaults to 255.
        mode (str): ``'prob'`` or ``'logits'``.
        eps (float): Defaults to 1e-6.
        loss_name (str): Defaults to ``'loss_crf'``.
        resize_mode (str): ``'nearest'`` or ``'nearest-exact'``.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 mode: str = 'prob',
                 eps: float = 1e-6,
                 loss_name: str = 'loss_crf',
                 resize_mode: str = 'nearest') -> None:
        super().__init__(loss_weight, loss_name)
        if mode not in ('prob', 'logits'):
            raise ValueError(f"mode must be 'prob' or 'logits', got "
                             f'{mode!r}')
        if resize_mode not in ('nearest', 'nearest-exact'):
            raise ValueError(f"resize_mode must be 'nearest' or "
                             f"'nearest-exact', got {resize_mode!r}")
        self.ignore_index = ignore_index
        self.mode = mode
        self.eps = eps
        self.resize_mode = resize_mode

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            scores (Tensor): ``(N, C, h, w)`` class scores, channel 0 the
                background.
            target (Tensor): ``(N, H, W)`` or ``(N, 1, H, W)`` integer
                labels in ``[0, C - 1]`` or ``ignore_index``.

        Returns:
            Tensor: Scalar loss.
        """
        _check_tensor(scores, 'scores', 4)
        n, c, h, w = scores.shape
        if target.dim() == 4 and target.shape[1] == 1:
            target = target[:, 0]
        if target.dim() != 3 or target.shape[0] != n:
            raise ValueError(f'target must be ({n}, H, W), got '
                             f'{tuple(target.shape)} for scores '
                             f'{tuple(scores.shape)}')
        if target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(f'target must be an integer tensor, got '
                             f'{target.dtype}')
        target = target.long()
        if tuple(target.shape[1:]) != (h, w):
            target = F.interpolate(
                target[:, None].float(), size=(h, w),
                mode=self.resize_mode)[:, 0].long()
        valid = target != self.ignore_index
        bad = valid & ((target < 0) | (target >= c))
        if bool(bad.any()):
            raise ValueError(f'target values must be in [0, {c - 1}] or '
                             f'ignore_index={self.ignore_index}, got '
                             f'{torch.unique(target[bad]).tolist()}')
        if self.mode == 'prob' and bool((scores < 0).any()):
            raise ValueError("scores must be non-negative in mode='prob'")
        if not bool(valid.any()):
            return self.loss_weight * scores.sum() * 0
        if self.mode == 'logits':
            return self.loss_weight * F.cross_entropy(
                scores, target, ignore_index=self.ignore_index)
        prob = scores / (scores.sum(dim=1, keepdim=True) + self.eps)
        safe = torch.where(valid, target, torch.zeros_like(target))
        p_t = prob.gather(1, safe[:, None])[:, 0]
        nll = -torch.log(p_t + self.eps)
        return self.loss_weight * nll[valid].mean()
