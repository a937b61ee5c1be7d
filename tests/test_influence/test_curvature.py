# Copyright (c) mmwsss contributors.
"""Closed-form classifier curvature vs torch's autograd Hessian (float64)."""
import io

import pytest
import torch
import torch.nn.functional as F
from influence_testlib import make_net

from mmwsss.influence import (ClassifierCurvature, classifier_grads,
                              classifier_hessian, pack_classifier,
                              unpack_classifier)
from mmwsss.models.losses import MultiLabelSoftMarginLoss


def _head_problem(bias, seed=0):
    """Frozen features of a tiny trained CNN and its 1x1-conv classifier."""
    t = make_net(seed=seed, bias=bias)
    with torch.no_grad():
        fmap = t.net.features(t.x)
    w = t.net.fc.weight.detach().clone()
    b = None if t.net.fc.bias is None else t.net.fc.bias.detach().clone()
    return fmap, w, b, t.y


def _autograd_hessian(fmap, w, b, y, loss, weight=None):
    """Full Hessian of the batch loss w.r.t. (weight, bias), ordered as
    ``[weight.flatten(), bias]``, through the real 1x1 conv + GAP."""

    def fn(*params):
        wp = params[0]
        bp = params[1] if len(params) > 1 else None
        logits = F.conv2d(fmap, wp, bp).mean(dim=(2, 3))
        return loss(logits, y, weight)

    params = (w, ) if b is None else (w, b)
    hs = torch.autograd.functional.hessian(fn, params)
    sizes = [p.numel() for p in params]
    rows = []
    for i in range(len(params)):
        rows.append(
            torch.cat([
                hs[i][j].reshape(sizes[i], sizes[j])
                for j in range(len(params))
            ], 1))
    return torch.cat(rows, 0)


def _blocks_to_full(blocks, k, d, bias):
    """Place per-class blocks at the ``[weight.flatten(), bias]`` indices."""
    idx = torch.stack([
        torch.cat([torch.arange(c * d, (c + 1) * d)] +
                  ([torch.tensor([k * d + c])] if bias else []))
        for c in range(k)
    ])
    n = k * d + (k if bias else 0)
    full = torch.zeros(n, n, dtype=blocks.dtype)
    for c in range(k):
        full[idx[c][:, None], idx[c][None, :]] = blocks[c]
    return full


def torch_loss(logits, y, weight=None):
    """``multilabel_soft_margin_loss`` averaged over the batch."""
    if weight is None:
        return F.multilabel_soft_margin_loss(logits, y)
    per = F.multilabel_soft_margin_loss(logits, y, reduction='none')
    return (per * weight).mean()


@pytest.mark.parametrize('bias', [True, False])
def test_closed_form_hessian_equals_autograd(bias):
    fmap, w, b, y = _head_problem(bias)
    k, d = w.shape[:2]
    h_ref = _autograd_hessian(fmap, w, b, y, torch_loss)
    f = fmap.mean(dim=(2, 3))
    logits = F.conv2d(fmap, w, b).mean(dim=(2, 3))
    h = classifier_hessian(f, logits, bias=bias)
    full = _blocks_to_full(h, k, d, bias)
    assert h_ref.abs().max() > 1e-3  # non-trivial
    torch.testing.assert_close(full, h_ref, rtol=0, atol=1e-14)
    # blocks are PSD: the GGN of a convex loss in the logits
    assert torch.linalg.eigvalsh(h).min() > -1e-14


def test_hessian_matches_project_loss_with_weights():
    """Same for the loss the CAM head optimises, with image weights and a
    loss weight (IG-CAM eq. (10))."""
    fmap, w, b, y = _head_problem(True, seed=1)
    k, d = w.shape[:2]
    loss_mod = MultiLabelSoftMarginLoss(loss_weight=0.7)
    wts = torch.linspace(0.3, 2.0, y.shape[0], dtype=torch.float64)
    h_ref = _autograd_hessian(fmap, w, b, y,
                              lambda z, t, s: loss_mod(z, t, weight=s), wts)
    f = fmap.mean(dim=(2, 3))
    logits = F.conv2d(fmap, w, b).mean(dim=(2, 3))
    h = classifier_hessian(f, logits, bias=True, weight=wts, loss_weight=0.7)
    torch.testing.assert_close(
        _blocks_to_full(h, k, d, True), h_ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize('bias', [True, False])
def test_per_sample_grads_equal_autograd(bias):
    fmap, w, b, y = _head_problem(bias, seed=2)
    f = fmap.mean(dim=(2, 3))
    logits = F.conv2d(fmap, w, b).mean(dim=(2, 3))
    g = classifier_grads(f, logits, y, bias=bias, loss_weight=1.5)
    for i in range(0, y.shape[0], 7):
        wp = w.clone().requires_grad_(True)
        params = [wp]
        bp = None
        if bias:
            bp = b.clone().requires_grad_(True)
            params.append(bp)
        zi = F.conv2d(fmap[i:i + 1], wp, bp).mean(dim=(2, 3))
        li = 1.5 * F.multilabel_soft_margin_loss(zi, y[i:i + 1])
        grads = torch.autograd.grad(li, params)
        ref = pack_classifier(grads[0], grads[1] if bias else None)
        torch.testing.assert_close(g[i], ref, rtol=0, atol=1e-15)
    # unpack inverts pack
    wb, bb = unpack_classifier(g[:2], w.shape, bias)
    assert wb.shape == (2, *w.shape)
    assert (bb is None) == (not bias)


def test_ema_bias_corrected_average_and_state():
    fmap, w, b, y = _head_problem(True, seed=3)
    k, d = w.shape[:2]
    f = fmap.mean(dim=(2, 3))
    logits = F.conv2d(fmap, w, b).mean(dim=(2, 3))
    batches = [slice(0, 16), slice(16, 32), slice(32, 48)]
    m = 0.3
    curv = ClassifierCurvature(k, d, bias=True, momentum=m)
    with pytest.raises(RuntimeError):
        curv.hessian()
    for sl in batches:
        curv.update(f[sl], logits[sl])
    # reference: autograd Hessians of each batch, weighted m (1 - m)^(t - j)
    coef = torch.tensor([m * (1 - m)**(2 - j) for j in range(3)],
                        dtype=torch.float64)
    refs = [
        _autograd_hessian(fmap[sl], w, b, y[sl], torch_loss) for sl in batches
    ]
    ref = sum(c * r for c, r in zip(coef / coef.sum(), refs))
    full = _blocks_to_full(curv.hessian(), k, d, True)
    torch.testing.assert_close(full, ref, rtol=0, atol=1e-14)
    # momentum 1: exactly the last batch; float32 inputs accumulate in f64
    last = ClassifierCurvature(k, d, bias=True, momentum=1.0)
    last.update(f[:16], logits[:16])
    last.update(f[16:32].float(), logits[16:32].float())
    assert last.hessian().dtype == torch.float64
    torch.testing.assert_close(
        _blocks_to_full(last.hessian(), k, d, True),
        refs[1],
        rtol=0,
        atol=1e-7)
    # tensors-only state survives a weights-only round trip
    buf = io.BytesIO()
    torch.save(curv.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    other = ClassifierCurvature(k, d, bias=True, momentum=m)
    other.load_state_dict(state)
    assert other.num_updates == 3
    torch.testing.assert_close(other.hessian(), curv.hessian(), rtol=0, atol=0)
    with pytest.raises(ValueError):
        ClassifierCurvature(k, d + 1).load_state_dict(state)


@pytest.mark.parametrize('bias', [True, False])
def test_damped_solve_equals_linalg_solve(bias):
    fmap, w, b, y = _head_problem(bias, seed=4)
    k, d = w.shape[:2]
    f = fmap.mean(dim=(2, 3))
    logits = F.conv2d(fmap, w, b).mean(dim=(2, 3))
    curv = ClassifierCurvature(k, d, bias=bias, momentum=1.0)
    curv.update(f, logits)
    h_ref = _autograd_hessian(fmap, w, b, y, torch_loss)
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(5, k, d + int(bias), generator=gen, dtype=torch.float64)
    lam, wd, bd = 1e-3, 5e-4, 0.0
    s, info = curv.solve(
        g, damping=lam, weight_decay=wd, bias_decay=bd, cond='exact')
    # reference system in the [weight.flatten(), bias] order
    diag = torch.full((k * d, ), lam + wd, dtype=torch.float64)
    if bias:
        diag = torch.cat(
            [diag, torch.full((k, ), lam + bd, dtype=torch.float64)])
    a = h_ref + torch.diag(diag)
    rhs = torch.stack([
        torch.cat([gi[:, :d].reshape(-1)] + ([gi[:, d]] if bias else []))
        for gi in g
    ], 1)
    ref = torch.linalg.solve(a, rhs)
    got = torch.stack([
        torch.cat([si[:, :d].reshape(-1)] + ([si[:, d]] if bias else []))
        for si in s
    ], 1)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=0)
    assert info.residual < 1e-12
    ev = torch.linalg.eigvalsh(a)
    # block-diagonal: the worst class block, not the whole matrix
    blocks = [
        torch.linalg.eigvalsh(curv.hessian()[c] + torch.diag(
            diag.reshape(-1)[torch.cat([torch.arange(c * d, (c + 1) * d)] + (
                [torch.tensor([k * d + c])] if bias else []))]))
        for c in range(k)
    ]
    cond_ref = max(float(e[-1] / e[0]) for e in blocks)
    assert info.cond == pytest.approx(cond_ref, rel=1e-9)
    assert float(ev[-1] / ev[0]) >= info.cond * (1 - 1e-9)
    _, est = curv.solve(g[0], damping=lam, weight_decay=wd, bias_decay=bd)
    assert 0.5 * cond_ref <= est.cond <= cond_ref * (1 + 1e-9)
    # a single right-hand side keeps its shape
    s0, _ = curv.solve(g[0], damping=lam, weight_decay=wd, bias_decay=bd)
    torch.testing.assert_close(s0, s[0], rtol=1e-12, atol=0)
