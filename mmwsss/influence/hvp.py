# Copyright (c) mmwsss contributors.
"""Hessian-vector products and iterative damped solves.

These are the options for a parameter subset wider than the CAM classifier,
where :class:`~mmwsss.influence.curvature.ClassifierCurvature` does not
apply. Everything solves

``(H + lambda I) x = b``

where ``H`` is the Hessian of the **batch-mean** training loss over the
chosen parameters. Caveat: beyond the classifier the Hessian of a CNN is
generally indefinite (a tiny trained CNN already has eigenvalues below
``-1e-3``), so with ``lambda = 1e-3`` neither CG nor LiSSA is guaranteed to
converge; :func:`conjugate_gradient` stops and reports negative curvature.

Vector convention: a vector is a flat tensor ``(P,)`` or a batch of flat
vectors ``(M, P)`` (one system per row). ``hvp_fn`` maps a tensor shaped like
``b`` to ``H`` times it (row-wise for a batch).
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch
from torch import Tensor

__all__ = [
    'CGInfo', 'LiSSAInfo', 'StochasticHVP', 'conjugate_gradient', 'flat_hvp',
    'flatten', 'lissa', 'top_eigenvalue', 'unflatten'
]

HVPFn = Callable[[Tensor], Tensor]


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate tensors into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vec: Tensor, like: Sequence[Tensor]) -> List[Tensor]:
    """Split a flat vector into tensors shaped like ``like``."""
    out, i = [], 0
    for t in like:
        out.append(vec[i:i + t.numel()].view_as(t))
        i += t.numel()
    if i != vec.numel():
        raise ValueError(f'vector of length {vec.numel()} does not match '
                         f'{i} parameters')
    return out


def _rows(v: Tensor) -> Tensor:
    return v.unsqueeze(0) if v.dim() == 1 else v


def flat_hvp(loss: Tensor, params: Sequence[Tensor], v: Tensor) -> Tensor:
    """Hessian-vector product by double backward (reverse over reverse).

    Args:
        loss (Tensor): Scalar loss with a graph to ``params``.
        params (Sequence[Tensor]): Parameters (``requires_grad``).
        v (Tensor): ``(P,)`` or ``(M, P)`` flat vector(s).

    Returns:
        Tensor: ``H v`` with the shape of ``v``. The graph of ``loss`` is
        freed.
    """
    grads = torch.autograd.grad(loss, params, create_graph=True)
    return _GradOperator(params, flatten(grads))(v, free=True)


class _GradOperator:
    """``v -> H v`` from a flat gradient that carries its graph."""

    def __init__(self, params: Sequence[Tensor], grad: Tensor) -> None:
        self.params = list(params)
        self.grad = grad

    def __call__(self, v: Tensor, free: bool = False) -> Tensor:
        rows = _rows(v)
        out = []
        for j, row in enumerate(rows):
            last = free and j == rows.shape[0] - 1
            hv = torch.autograd.grad(
                self.grad,
                self.params,
                grad_outputs=row.detach().to(self.grad),
                retain_graph=not last,
                allow_unused=True)
            hv = [
                torch.zeros_like(p) if h is None else h
                for h, p in zip(hv, self.params)
            ]
            out.append(flatten(hv).to(v.dtype))
        res = torch.stack(out)
        return res[0] if v.dim() == 1 else res


class StochasticHVP:
    """Stochastic Hessian-vector products over mini-batches.

    Each call draws a fresh mini-batch (``batch_size`` distinct indices out
    of ``num_samples``) and returns ``H_B v``, the Hessian of
    ``loss_fn(indices)`` (a batch-**mean** loss) times ``v``. Use
    :meth:`batch_operator` for a fixed batch, e.g. for CG, which needs a fixed
    operator; it differentiates once and reuses the graph for every product.

    Args:
        loss_fn (Callable[[Tensor], Tensor]): Maps a ``LongTensor`` of sample
            indices to the scalar mean loss over those samples, with a graph
            to ``params``. Run the model in eval mode (batch statistics would
            couple samples and change BN buffers).
        params (Sequence[Tensor]): The parameter subset ``theta``.
        num_samples (int): Size of the pool the indices are drawn from.
        batch_size (int): Mini-batch size. Defaults to 32.
        generator (torch.Generator, optional): RNG for the batches.
    """

    def __init__(self,
                 loss_fn: Callable[[Tensor], Tensor],
                 params: Sequence[Tensor],
                 num_samples: int,
                 batch_size: int = 32,
                 generator: Optional[torch.Generator] = None) -> None:
        if batch_size < 1 or num_samples < 1:
            raise ValueError('batch_size and num_samples must be positive')
        self.loss_fn = loss_fn
        self.params = list(params)
        self.num_samples = num_samples
        self.batch_size = min(batch_size, num_samples)
        self.generator = generator
        self.last_indices: Optional[Tensor] = None

    @property
    def dim(self) -> int:
        """Number of parameters ``P``."""
        return sum(p.numel() for p in self.params)

    def sample_indices(self) -> Tensor:
        """Draw a mini-batch of distinct indices."""
        idx = torch.randperm(
            self.num_samples, generator=self.generator)[:self.batch_size]
        self.last_indices = idx
        return idx

    def batch_operator(self, indices: Optional[Tensor] = None) -> HVPFn:
        """Fixed-batch operator ``v -> H_B v``.

        Args:
            indices (Tensor, optional): The batch; None draws one.

        Returns:
            Callable[[Tensor], Tensor]: The operator (keeps the graph alive).
        """
        if indices is None:
            indices = self.sample_indices()
        loss = self.loss_fn(indices)
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        return _GradOperator(self.params, flatten(grads))

    def __call__(self, v: Tensor) -> Tensor:
        """``H_B v`` on a freshly drawn mini-batch."""
        loss = self.loss_fn(self.sample_indices())
        return flat_hvp(loss, self.params, v)


@dataclass
class CGInfo:
    """Diagnostics of :func:`conjugate_gradient`.

    Attributes:
        iters (int): Iterations run.
        residual (float): Largest relative recursive residual ``||b - (H +
            lambda I) x|| / ||b||`` over rows (equal to the true residual in
            exact arithmetic for a fixed operator).
        converged (bool): Whether every row reached ``tol``.
        negative_curvature (bool): Whether some direction had ``p^T (H +
            lambda I) p <= 0`` (the damped system is not positive definite);
            the affected rows stop there.
    """
    iters: int
    residual: float
    converged: bool
    negative_curvature: bool


def conjugate_gradient(hvp_fn: HVPFn,
                       b: Tensor,
                       damping: float = 1e-3,
                       x0: Optional[Tensor] = None,
                       max_iter: int = 100,
                       tol: float = 1e-10) -> tuple:
    """Conjugate gradient for ``(H + damping I) x = b``.

    Needs a fixed symmetric operator (a full-data or fixed-batch HVP, see
    :meth:`StochasticHVP.batch_operator`); with exact arithmetic and positive
    definite ``H + damping I`` it converges in at most ``P`` iterations.

    Args:
        hvp_fn (Callable[[Tensor], Tensor]): ``v -> H v`` (row-wise).
        b (Tensor): ``(P,)`` or ``(M, P)`` right-hand side(s).
        damping (float): ``lambda``. Defaults to 1e-3.
        x0 (Tensor, optional): Warm start (e.g. the previous refresh's
            solution); zeros if None.
        max_iter (int): Iteration cap. Defaults to 100.
        tol (float): Relative residual to stop at. Defaults to 1e-10.

    Returns:
        tuple[Tensor, CGInfo]: Solution with the shape of ``b`` and
        diagnostics.
    """
    bb = _rows(b)
    x = torch.zeros_like(bb) if x0 is None else _rows(x0).clone().to(bb)

    def op(v):
        return hvp_fn(v if b.dim() == 2 else v[0]).reshape_as(v) + damping * v

    bnorm = bb.norm(dim=1)
    r = bb - op(x) if x0 is not None else bb.clone()
    p = r.clone()
    rs = (r * r).sum(1)
    active = torch.ones(bb.shape[0], dtype=torch.bool, device=bb.device)
    negative = False
    it = 0

    def rel():
        return torch.where(bnorm > 0,
                           rs.sqrt() / bnorm.clamp_min(1e-300), rs.sqrt())

    active &= rel() > tol
    while it < max_iter and bool(active.any()):
        ap = op(p)
        pap = (p * ap).sum(1)
        bad = active & (pap <= 0)
        if bool(bad.any()):
            negative = True
            active &= ~bad
        alpha = torch.where(
            active, rs / torch.where(active, pap, torch.ones_like(pap)),
            torch.zeros_like(rs))
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * ap
        rs_new = (r * r).sum(1)
        beta = torch.where(active, rs_new / rs.clamp_min(1e-300),
                           torch.zeros_like(rs))
        rs = torch.where(active, rs_new, rs)
        p = torch.where(active[:, None], r + beta[:, None] * p, p)
        it += 1
        active &= rel() > tol
    res = float(rel().max())
    info = CGInfo(
        iters=it,
        residual=res,
        converged=bool((rel() <= tol).all()) and not negative,
        negative_curvature=negative)
    return (x if b.dim() == 2 else x[0]), info


@dataclass
class LiSSAInfo:
    """Diagnostics of :func:`lissa`.

    Attributes:
        iters (int): Recursion steps run (per repeat, the last repeat's).
        residual (float): Largest relative residual ``||b - (H_B + lambda I)
            x|| / ||b||`` of the last step, measured with that step's
            (stochastic) batch operator and the iterate before the step.
        converged (bool): Whether ``tol`` was reached (False if no ``tol``).
    """
    iters: int
    residual: float
    converged: bool


def lissa(hvp_fn: HVPFn,
          b: Tensor,
          damping: float = 1e-3,
          scale: float = 10.0,
          depth: int = 100,
          x0: Optional[Tensor] = None,
          repeat: int = 1,
          tol: Optional[float] = None) -> tuple:
    """LiSSA (truncated Neumann series) for ``(H + damping I) x = b``.

    Recursion (torch-influence's form): ``h_0 = b`` (or ``scale * x0``),
    ``h_{t+1} = b + h_t - (H_t h_t + damping h_t) / scale``, result
    ``x = h_T / scale``. In terms of ``x_t = h_t / scale`` this is Richardson
    iteration ``x_{t+1} = x_t + (b - (H_t + damping I) x_t) / scale``, whose
    fixed point is ``(H + damping I)^{-1} b`` for **any** scale.

    Not the ``h <- b + (1 - damping) h - H h / scale`` form of Koh & Liang,
    nimarb and dattri, which solves ``H + scale * damping I`` (and nimarb
    also omits the division by ``scale``).

    Tolerance: with a fixed operator the error contracts per step by
    ``rho = max_i |1 - (mu_i + damping) / scale|`` over the eigenvalues
    ``mu_i`` of ``H``, i.e. ``||x_T - x*|| <= rho^T ||x_0 - x*||``; convergence
    needs ``scale > (mu_max + damping) / 2`` (use ``scale`` about
    ``1.5 mu_max``, see :func:`top_eigenvalue`) and takes about
    ``scale / (mu_min + damping)`` steps per factor ``e``. Truncated after
    ``T`` steps it acts like extra damping of about ``ln(2) scale / T``
    (the filter ``1 - (1 - mu / scale)^T`` passes half of an eigenvalue
    ``mu = ln(2) scale / T``): with ``lambda = 1e-3`` and ``T = 100`` the
    relative error is 0.4 on a head whose eigenvalues span 7e-6 .. 9e-2. With
    a stochastic ``hvp_fn`` the iterate does not converge but fluctuates;
    measured on that head with batch 32 of 256 samples and ``lambda = 1e-2``:
    3-4 % relative error at ``scale = 1.5 mu_max`` after 300 steps, 1-2 % at
    ``5 mu_max`` after 1000, about halved by ``repeat = 4``.

    Args:
        hvp_fn (Callable[[Tensor], Tensor]): ``v -> H v`` (row-wise);
            typically a :class:`StochasticHVP`, drawing a batch per call.
        b (Tensor): ``(P,)`` or ``(M, P)`` right-hand side(s).
        damping (float): ``lambda``. Defaults to 1e-3.
        scale (float): Step ``1 / scale``. Defaults to 10.
        depth (int): Recursion steps ``T``. Defaults to 100.
        x0 (Tensor, optional): Warm start (previous solution).
        repeat (int): Independent runs averaged. Defaults to 1.
        tol (float, optional): Stop when the relative residual of a step
            falls below it.

    Returns:
        tuple[Tensor, LiSSAInfo]: Solution with the shape of ``b`` and
        diagnostics.

    Raises:
        FloatingPointError: If the recursion diverges to inf/NaN (increase
            ``scale``).
    """
    if scale <= 0 or depth < 0 or repeat < 1:
        raise ValueError('need scale > 0, depth >= 0, repeat >= 1')
    bb = _rows(b)
    bnorm = bb.norm(dim=1)
    total = torch.zeros_like(bb)
    it, res, done = 0, float('nan'), False
    for _ in range(repeat):
        h = bb.clone() if x0 is None else scale * _rows(x0).clone().to(bb)
        done = False
        for it in range(1, depth + 1):
            hh = hvp_fn(h if b.dim() == 2 else h[0]).reshape_as(h)
            step = bb - (hh + damping * h) / scale  # residual of x = h/scale
            rel = torch.where(bnorm > 0,
                              step.norm(dim=1) / bnorm.clamp_min(1e-300),
                              step.norm(dim=1))
            res = float(rel.max())
            if not torch.isfinite(step).all():
                raise FloatingPointError(
                    f'LiSSA diverged at step {it}; increase scale ({scale})')
            if tol is not None and res <= tol:
                done = True
                it -= 1
                break
            h = h + step
        total += h / scale
    x = total / repeat
    return (x if b.dim() == 2 else x[0]), LiSSAInfo(
        iters=it, residual=res, converged=done)


def top_eigenvalue(hvp_fn: HVPFn,
                   dim: int,
                   iters: int = 50,
                   generator: Optional[torch.Generator] = None,
                   dtype: torch.dtype = torch.float64,
                   device: Optional[torch.device] = None) -> float:
    """Largest-magnitude eigenvalue of ``H`` by power iteration.

    Useful to choose the LiSSA ``scale``. The Rayleigh quotient converges
    from below (in magnitude) at rate ``(mu_2 / mu_1)^(2 t)``.

    Args:
        hvp_fn (Callable[[Tensor], Tensor]): ``v -> H v`` on ``(P,)``.
        dim (int): ``P``.
        iters (int): Iterations. Defaults to 50.
        generator (torch.Generator, optional): RNG of the start vector.
        dtype (torch.dtype): dtype of the iterate. Defaults to float64.
        device (torch.device, optional): Device of the iterate.

    Returns:
        float: The Rayleigh quotient of the last iterate.
    """
    v = torch.randn(dim, generator=generator, dtype=dtype).to(device)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        hv = hvp_fn(v).to(dtype)
        lam = float(v @ hv)
        n = hv.norm()
        if n == 0:
            return 0.0
        v = hv / n
    return lam
