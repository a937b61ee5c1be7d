# Copyright (c) mmwsss contributors.
"""HVPs, CG and LiSSA vs ``torch.autograd.functional.hessian`` (float64)."""
import math

import pytest
import torch
import torch.nn.functional as F
from influence_testlib import per_image_loss
from torch.func import functional_call

from mmwsss.influence import (StochasticHVP, conjugate_gradient, flat_hvp,
                              lissa, top_eigenvalue)


def _flat_loss(net, x, y):
    """Batch-mean loss as a function of one flat parameter vector."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [math.prod(s) for s in shapes]

    def fn(flat):
        parts = torch.split(flat, sizes)
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes)}
        return per_image_loss(functional_call(net, params, (x, )), y).mean()

    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    return fn, theta


def _exact_hessian(net, x, y):
    fn, theta = _flat_loss(net, x, y)
    return torch.autograd.functional.hessian(fn, theta)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


class Head:
    """Multi-label logistic head on frozen random features (convex).

    Feature scales spread over two decades, so that Hessian eigenvalues span
    7e-6 .. 9e-2, like a real CAM classifier's (flat directions matter).
    """

    def __init__(self, n=256, d=6, k=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        spread = torch.logspace(0, -2, d, dtype=torch.float64)
        self.f = torch.randn(n, d, generator=g, dtype=torch.float64) * spread
        teacher = torch.randn(k, d, generator=g, dtype=torch.float64)
        p = torch.sigmoid(self.f @ teacher.t())
        self.y = (torch.rand(n, k, generator=g, dtype=torch.float64)
                  < p).double()
        self.w = (0.5 * teacher).requires_grad_(True)
        self.b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        self.n = n

    def loss(self, idx, w=None, b=None):
        w = self.w if w is None else w
        b = self.b if b is None else b
        return F.multilabel_soft_margin_loss(self.f[idx] @ w.t() + b,
                                             self.y[idx])

    def params(self):
        return [self.w, self.b]

    def exact_hessian(self, idx=None):
        idx = torch.arange(self.n) if idx is None else idx
        k, d = self.w.shape

        def fn(flat):
            return self.loss(idx, flat[:k * d].reshape(k, d), flat[k * d:])

        theta = torch.cat([self.w.detach().reshape(-1), self.b.detach()])
        return torch.autograd.functional.hessian(fn, theta)


def test_flat_hvp_equals_exact_hessian_product(tiny):
    h = _exact_hessian(tiny.net, tiny.x, tiny.y)
    p = h.shape[0]
    assert p == sum(q.numel() for q in tiny.net.parameters())
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(3, p, generator=gen, dtype=torch.float64)
    params = list(tiny.net.parameters())
    loss = per_image_loss(tiny.net(tiny.x), tiny.y).mean()
    hv = flat_hvp(loss, params, v)
    assert hv.shape == v.shape
    assert _rel(hv, v @ h) < 1e-12
    loss = per_image_loss(tiny.net(tiny.x), tiny.y).mean()
    assert _rel(flat_hvp(loss, params, v[0]), h @ v[0]) < 1e-12


def test_stochastic_hvp_uses_the_drawn_batch(tiny):
    net, x, y = tiny.net, tiny.x, tiny.y
    op = StochasticHVP(
        lambda idx: per_image_loss(net(x[idx]), y[idx]).mean(),
        net.parameters(),
        num_samples=x.shape[0],
        batch_size=16,
        generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(op.dim, generator=gen, dtype=torch.float64)
    hv1 = op(v)
    idx1 = op.last_indices
    hv2 = op(v)
    idx2 = op.last_indices
    assert idx1.unique().numel() == 16
    assert not torch.equal(idx1, idx2)
    assert _rel(hv1, _exact_hessian(net, x[idx1], y[idx1]) @ v) < 1e-12
    assert _rel(hv2, _exact_hessian(net, x[idx2], y[idx2]) @ v) < 1e-12
    # a fixed-batch operator reuses one graph for many products
    fixed = op.batch_operator(idx1)
    h1 = _exact_hessian(net, x[idx1], y[idx1])
    for _ in range(2):
        assert _rel(fixed(v), h1 @ v) < 1e-12


def test_cg_solves_damped_full_network_system(tiny):
    """CG over all 184 parameters of the tiny CNN. lambda is chosen above
    the most negative Hessian eigenvalue so the system is SPD."""
    net, x, y = tiny.net, tiny.x, tiny.y
    h = _exact_hessian(net, x, y)
    ev = torch.linalg.eigvalsh(h)
    lam = max(0.05, -float(ev[0]) + 0.05)
    op = StochasticHVP(lambda idx: per_image_loss(net(x[idx]), y[idx]).mean(),
                       net.parameters(),
                       x.shape[0]).batch_operator(torch.arange(x.shape[0]))
    gen = torch.Generator().manual_seed(3)
    b = torch.randn(2, h.shape[0], generator=gen, dtype=torch.float64)
    ref = torch.linalg.solve(
        h + lam * torch.eye(h.shape[0], dtype=torch.float64), b.t()).t()
    sol, info = conjugate_gradient(op, b, damping=lam, max_iter=h.shape[0])
    assert info.converged and not info.negative_curvature
    assert info.iters <= h.shape[0]
    assert _rel(sol, ref) < 1e-8
    # the result is not that of another damping
    wrong = torch.linalg.solve(
        h + 2 * lam * torch.eye(h.shape[0], dtype=torch.float64), b.t()).t()
    assert _rel(sol, wrong) > 1e-2


def test_cg_reports_negative_curvature():
    a = torch.diag(torch.tensor([-1.0, 2.0, 3.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    _, info = conjugate_gradient(lambda v: v @ a, b, damping=0.1)
    assert info.negative_curvature and not info.converged
    _, info = conjugate_gradient(lambda v: v @ a, b, damping=1.5)
    assert info.converged and not info.negative_curvature


def test_cg_warm_start_after_parameter_drift():
    head = Head()
    full = torch.arange(head.n)
    lam = 1e-3
    b = torch.randn(
        21, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    h0 = head.exact_hessian()
    x_old = torch.linalg.solve(h0 + lam * torch.eye(21, dtype=torch.float64),
                               b)
    opt = torch.optim.SGD(head.params(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        head.loss(full).backward()
        opt.step()
    h1 = head.exact_hessian()
    ref = torch.linalg.solve(h1 + lam * torch.eye(21, dtype=torch.float64), b)
    assert _rel(x_old, ref) > 1e-3  # the system did change
    op = StochasticHVP(head.loss, head.params(), head.n).batch_operator(full)
    cold, _ = conjugate_gradient(op, b, damping=lam, max_iter=3, tol=0)
    warm, _ = conjugate_gradient(
        op, b, damping=lam, x0=x_old, max_iter=3, tol=0)
    assert _rel(warm, ref) < 0.1 * _rel(cold, ref)
    full_sol, info = conjugate_gradient(op, b, damping=lam, max_iter=100)
    assert info.converged and _rel(full_sol, ref) < 1e-8


def _lissa_setup(lam):
    head = Head()
    full = torch.arange(head.n)
    h = head.exact_hessian()
    ev = torch.linalg.eigvalsh(h)
    b = torch.randn(
        2, 21, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = torch.linalg.solve(h + lam * torch.eye(21, dtype=torch.float64),
                             b.t()).t()
    op = StochasticHVP(head.loss, head.params(), head.n).batch_operator(full)
    return head, h, ev, b, ref, op


def test_lissa_full_batch_meets_its_documented_bound():
    """Error <= rho^T * initial error, rho = max |1 - (mu + lambda)/scale|."""
    lam = 1e-2
    head, h, ev, b, ref, op = _lissa_setup(lam)
    scale = 1.5 * float(ev[-1] + lam)
    rho = max(abs(1 - (float(e) + lam) / scale) for e in (ev[0], ev[-1]))
    x0 = b / scale  # LiSSA's h_0 = b
    for depth in (10, 100, 400):
        sol, info = lissa(op, b, damping=lam, scale=scale, depth=depth)
        assert info.iters == depth
        err = (sol - ref).norm(dim=1)
        bound = rho**depth * (x0 - ref).norm(dim=1)
        floor = 1e-12 * ref.norm(dim=1)  # float64 rounding
        assert (err <= bound * (1 + 1e-9) + floor).all()
    assert _rel(sol, ref) < 1e-8
    # early stop on the relative residual
    sol, info = lissa(op, b, damping=lam, scale=scale, depth=2000, tol=1e-10)
    assert info.converged and info.iters < 2000
    assert _rel(sol, ref) < 1e-8


def test_truncated_lissa_acts_like_extra_damping():
    """Documented: with lambda = 1e-3 and T = 100 steps LiSSA is far from
    (H + lambda I)^{-1} b and near the solve with damping lambda + ln(2)
    scale / T."""
    lam = 1e-3
    head, h, ev, b, ref, op = _lissa_setup(lam)
    scale = 1.5 * float(ev[-1] + lam)
    sol, info = lissa(op, b, damping=lam, scale=scale, depth=100)
    assert _rel(sol, ref) > 0.2
    eye = torch.eye(21, dtype=torch.float64)
    extra = torch.linalg.solve(h + (lam + math.log(2) * scale / 100) * eye,
                               b.t()).t()
    assert _rel(sol, extra) < 0.5 * _rel(sol, ref)


def _koh_liang_lissa(op, b, damp, scale, depth):
    """The (1 - damp) recursion of Koh & Liang / nimarb / dattri."""
    h = b.clone()
    for _ in range(depth):
        h = b + (1 - damp) * h - op(h) / scale
    return h / scale


def test_lissa_damping_convention_regression():
    """LiSSA must solve (H + lambda I), for every scale, and divide by
    scale; the (1 - damp) form solves (H + scale * lambda I) instead."""
    lam = 0.05
    head, h, ev, b, ref, op = _lissa_setup(lam)
    eye = torch.eye(21, dtype=torch.float64)
    sols = []
    for scale in (1.0, 3.0):
        assert scale > (float(ev[-1]) + lam) / 2
        depth = int(40 * scale / (float(ev[0]) + lam))
        sol, _ = lissa(op, b, damping=lam, scale=scale, depth=depth)
        assert _rel(sol, ref) < 1e-8
        wrong = torch.linalg.solve(h + scale * lam * eye, b.t()).t()
        assert _rel(sol, wrong) > 0.05 or scale == 1.0
        sols.append(sol)
    assert _rel(sols[0], sols[1]) < 1e-8
    # the reference recursion really converges to the other system, so this
    # test would catch that convention
    scale = 3.0
    kl = _koh_liang_lissa(op, b, lam, scale, 600)
    wrong = torch.linalg.solve(h + scale * lam * eye, b.t()).t()
    assert _rel(kl, wrong) < 1e-8
    assert _rel(kl, ref) > 0.05


def test_lissa_stochastic_batches_and_warm_start():
    """Batch-32 HVPs out of 256 samples: the documented fluctuation (a few
    percent), reduced by repeats; warm start."""
    lam = 1e-2
    head, h, ev, b, ref, _ = _lissa_setup(lam)

    def op(seed):
        return StochasticHVP(
            head.loss,
            head.params(),
            head.n,
            batch_size=32,
            generator=torch.Generator().manual_seed(seed))

    scale = 1.5 * float(ev[-1] + lam)
    errs = [
        _rel(lissa(op(seed), b, damping=lam, scale=scale, depth=300)[0], ref)
        for seed in range(4)
    ]
    assert max(errs) < 0.06
    avg, _ = lissa(op(7), b, damping=lam, scale=scale, depth=300, repeat=4)
    assert _rel(avg, ref) < 0.75 * sum(errs) / len(errs)
    # warm start at the exact solution stays within the same fluctuation,
    # a cold start of the same length does not get there
    warm, _ = lissa(op(8), b, damping=lam, scale=scale, depth=20, x0=ref)
    cold, _ = lissa(op(8), b, damping=lam, scale=scale, depth=20)
    assert _rel(warm, ref) < 0.06
    assert _rel(cold, ref) > 3 * _rel(warm, ref)


def test_lissa_divergence_raises():
    lam = 1e-2
    head, h, ev, b, ref, op = _lissa_setup(lam)
    with pytest.raises(FloatingPointError):
        lissa(op, b, damping=lam, scale=0.3 * float(ev[-1]), depth=5000)


def test_top_eigenvalue_equals_eigvalsh():
    head, h, ev, b, ref, op = _lissa_setup(1e-3)
    lam = top_eigenvalue(
        op, 21, iters=200, generator=torch.Generator().manual_seed(0))
    assert lam == pytest.approx(float(ev[-1]), rel=1e-6)
