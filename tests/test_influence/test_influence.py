# Copyright (c) mmwsss contributors.
"""Influence values, counterfactual refits, spatial maps and weights."""
import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from influence_testlib import make_net, per_image_loss
from scipy.optimize import brentq
from scipy.stats import pearsonr, spearmanr

from mmwsss.influence import (
    ClassifierCurvature, ClassifierInfluence, aggregate_scales,
    assert_disjoint, classifier_grads, classifier_influence,
    feature_grad_x_input, input_grad_maps, normalise_maps, resample_maps,
    sample_weights, select_val_subset, uniform_maps, unpack_classifier)

# --------------------------------------------------------------- references


def _per_sample_grads(fmap, w, b, y):
    """``(N, K * D [+ K])`` per-image gradients w.r.t. ``[w.flatten(), b]``
    by autograd through the real 1x1 conv + GAP, one image at a time."""
    rows = []
    for i in range(fmap.shape[0]):
        params = [w.detach().clone().requires_grad_(True)]
        if b is not None:
            params.append(b.detach().clone().requires_grad_(True))
        z = F.conv2d(fmap[i:i + 1], *params).mean(dim=(2, 3))
        grads = torch.autograd.grad(
            per_image_loss(z, y[i:i + 1]).sum(), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def _mean_loss_hessian(fmap, w, b, y):
    k = w.shape[0]

    def fn(flat):
        wp = flat[:-k].reshape(w.shape)
        z = F.conv2d(fmap, wp, flat[-k:]).mean(dim=(2, 3))
        return per_image_loss(z, y).mean()

    theta = torch.cat([w.detach().reshape(-1), b.detach()])
    return torch.autograd.functional.hessian(fn, theta)


def _to_packed(flat, k, d):
    """``[w.flatten(), b]`` rows -> packed ``(., K, D + 1)``."""
    return torch.cat(
        [flat[:, :k * d].reshape(-1, k, d), flat[:, k * d:, None]], 2)


def _split(t):
    with torch.no_grad():
        fmap = t.net.features(t.x)
    w = t.net.fc.weight.detach()
    b = t.net.fc.bias.detach()
    return fmap, w, b


# ------------------------------------------------------- influence values


def test_influence_equals_exact_formula(tiny):
    fmap, w, b, y = *_split(tiny), tiny.y
    tr, va = slice(0, 36), slice(36, 48)
    k, d = w.shape[:2]
    lam, wd, bd = 1e-3, 2e-3, 0.0
    inf = ClassifierInfluence(
        k,
        d,
        bias=True,
        momentum=1.0,
        damping=lam,
        weight_decay=wd,
        bias_decay=bd)
    f = fmap.mean(dim=(2, 3))
    logits = F.conv2d(fmap, w, b).mean(dim=(2, 3))
    inf.update(f[tr], logits[tr])
    info = inf.refresh(f[va], logits[va], y[va])
    assert info.residual < 1e-12
    got = inf.scores(f[tr], logits[tr], y[tr])  # (N, M)
    # exact: -g_v^T (H + diag(delta))^{-1} g_i, all by autograd
    h = _mean_loss_hessian(fmap[tr], w, b, y[tr])
    delta = torch.cat([
        torch.full((k * d, ), lam + wd, dtype=torch.float64),
        torch.full((k, ), lam + bd, dtype=torch.float64)
    ])
    g_tr = _per_sample_grads(fmap[tr], w, b, y[tr])
    g_va = _per_sample_grads(fmap[va], w, b, y[va])
    ref = -(g_tr @ torch.linalg.solve(h + torch.diag(delta), g_va.t()))
    assert got.shape == (36, 12)
    assert ref.abs().max() > 1e-2
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    # sign: a validation image's influence on itself as a training point is
    # negative (upweighting it lowers its own loss)
    self_inf = inf.scores(f[va], logits[va], y[va]).diagonal()
    assert (self_inf < 0).all()


def _fit_head(f, y, wd, weights=None, theta0=None):
    """Newton's method on mean_i c_i L_i + wd/2 ||theta||^2 (float64)."""
    n, d = f.shape
    k = y.shape[1]
    c = torch.ones(n, dtype=torch.float64) if weights is None else weights
    theta = torch.zeros(k * (d + 1), dtype=torch.float64) \
        if theta0 is None else theta0.clone()

    def obj(th):
        z = f @ th[:k * d].reshape(k, d).t() + th[k * d:]
        return (per_image_loss(z, y) * c).mean() + 0.5 * wd * (th * th).sum()

    for _ in range(50):
        g = torch.autograd.functional.jacobian(obj, theta)
        if g.norm() < 1e-14:
            break
        hmat = torch.autograd.functional.hessian(obj, theta)
        theta = theta - torch.linalg.solve(hmat, g)
    assert torch.autograd.functional.jacobian(obj, theta).norm() < 1e-12
    return theta


def _val_loss(theta, f, y):
    k, d = y.shape[1], f.shape[1]
    z = f @ theta[:k * d].reshape(k, d).t() + theta[k * d:]
    return float(per_image_loss(z, y).mean())


def test_counterfactual_refit_of_convex_head():
    """Upweight a training image by eps, refit the L2-regularised head to
    optimum, compare dL_val/d eps with the influence (weight decay enters
    as damping)."""
    t = make_net(seed=5, n=60)
    fmap, _, _ = _split(t)
    f = fmap.mean(dim=(2, 3))
    ftr, ytr, fva, yva = f[:44], t.y[:44], f[44:], t.y[44:]
    n, d = ftr.shape
    k = ytr.shape[1]
    wd = 1e-2
    theta = _fit_head(ftr, ytr, wd)
    w, b = theta[:k * d].reshape(k, d), theta[k * d:]
    curv = ClassifierCurvature(k, d, bias=True, momentum=1.0)
    curv.update(ftr, ftr @ w.t() + b)
    # validation loss = mean over validation images -> mean gradient
    g_val = classifier_grads(fva, fva @ w.t() + b, yva).mean(0, keepdim=True)
    s, _ = curv.solve(g_val, damping=0.0, weight_decay=wd)
    pred = classifier_influence(ftr, ftr @ w.t() + b, ytr, s)[:, 0]  # (N,)
    # (a) derivative by central differences of exact refits
    eps = 1e-4
    for i in (0, 7, 19, 31):
        vals = []
        for sgn in (1, -1):
            c = torch.ones(n, dtype=torch.float64)
            c[i] += sgn * eps * n  # mean_i c_i L_i = J + eps L_i
            th = _fit_head(ftr, ytr, wd, c, theta)
            vals.append(_val_loss(th, fva, yva))
        actual = (vals[0] - vals[1]) / (2 * eps)
        assert actual == pytest.approx(float(pred[i]), rel=1e-5, abs=1e-9)
    # (b) removal (eps = -1/N) of every image: -I/N tracks the refits
    base = _val_loss(theta, fva, yva)
    actual = []
    for i in range(n):
        c = torch.ones(n, dtype=torch.float64)
        c[i] = 0.0
        actual.append(
            _val_loss(_fit_head(ftr, ytr, wd, c, theta), fva, yva) - base)
    predicted = (-pred / n).tolist()
    assert pearsonr(predicted, actual)[0] > 0.95
    assert spearmanr(predicted, actual)[0] > 0.9


# ----------------------------------------------------------- spatial maps


@pytest.mark.parametrize('bias', [True, False])
def test_feature_grad_x_input_equals_finite_differences(tiny, bias):
    fmap, w, b = _split(tiny)
    b = b if bias else None
    fmap, y = fmap[:4], tiny.y[:4]
    k, d = w.shape[:2]
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(3, k, d + int(bias), generator=gen, dtype=torch.float64)
    maps = feature_grad_x_input(fmap, s, w, b, y, reduction='none')
    n, _, hh, ww = fmap.shape
    assert maps.shape == (n, 3, hh, ww)
    s_flat = torch.cat([s[..., :d].reshape(3, -1)] +
                       ([s[..., d]] if bias else []), 1)

    def influence(fm):  # (N, M), per-sample gradients by autograd
        return -(_per_sample_grads(fm, w, b, y) @ s_flat.t())

    step = 1e-5
    for u in range(hh * ww):
        r, c = divmod(u, ww)
        vals = []
        for sgn in (1, -1):
            fm = fmap.clone()
            fm[:, :, r, c] *= 1 + sgn * step
            vals.append(influence(fm))
        fd = (vals[0] - vals[1]) / (2 * step)
        torch.testing.assert_close(maps[:, :, r, c], fd, rtol=1e-6, atol=1e-10)
    assert maps.abs().max() > 1e-3
    # reduction: mean over validation vectors of |.|
    red = feature_grad_x_input(fmap, s, w, b, y)
    torch.testing.assert_close(red, maps.abs().mean(1, keepdim=True))
    with pytest.raises(ValueError):
        feature_grad_x_input(fmap, s[..., :d - 1], w, b, y)


def test_input_grad_maps_equal_finite_differences(tiny):
    net, x, y = tiny.net, tiny.x[:3], tiny.y[:3]
    w, b = net.fc.weight, net.fc.bias
    gen = torch.Generator().manual_seed(1)
    s_w = torch.randn(2, *w.shape, generator=gen, dtype=torch.float64)
    s_b = torch.randn(2, *b.shape, generator=gen, dtype=torch.float64)

    def loss_fn(inp):
        return per_image_loss(net(inp), y)

    maps = input_grad_maps(
        loss_fn, x, [w, b], [s_w, s_b], grid=None, reduction='none')
    assert maps.shape == (3, 2, 6, 6)

    def influence(inp):  # (N, M), loop over images
        out = []
        for i in range(inp.shape[0]):
            g = torch.autograd.grad(
                per_image_loss(net(inp[i:i + 1]), y[i:i + 1]).sum(), (w, b))
            out.append(-torch.stack([(g[0] * s_w[m]).sum() +
                                     (g[1] * s_b[m]).sum() for m in range(2)]))
        return torch.stack(out)

    step = 1e-5
    for r, c in [(0, 0), (2, 3), (5, 1), (4, 4)]:
        vals = []
        for sgn in (1, -1):
            xp = x.clone()
            xp[:, :, r, c] *= 1 + sgn * step
            vals.append(influence(xp))
        fd = (vals[0] - vals[1]) / (2 * step)
        torch.testing.assert_close(maps[:, :, r, c], fd, rtol=1e-6, atol=1e-10)
    # grid pooling of the signed maps, then |.| mean over vectors
    pooled = input_grad_maps(loss_fn, x, [w, b], [s_w, s_b], grid=3)
    ref = F.avg_pool2d(maps, 2).abs().mean(1, keepdim=True)
    torch.testing.assert_close(pooled, ref)
    assert not pooled.requires_grad


def test_resample_aggregate_and_uniform():
    gen = torch.Generator().manual_seed(2)
    big = torch.rand(2, 64, 64, generator=gen, dtype=torch.float64)
    # down to the grid: area mean of 2x2 blocks (brute force)
    ref = big.reshape(2, 32, 2, 32, 2).mean(dim=(2, 4))
    torch.testing.assert_close(resample_maps(big)[:, 0], ref)
    # bilinear reproduces constants exactly, at every stage
    const = torch.full((2, 1, 7, 7), 3.0, dtype=torch.float64)
    out = resample_maps(const, size=(50, 40))
    assert out.shape == (2, 1, 50, 40)
    torch.testing.assert_close(out, torch.full_like(out, 3.0))
    # multi-scale: mean of the upsampled maps
    other = torch.full((2, 1, 14, 14), 1.0, dtype=torch.float64)
    agg = aggregate_scales([const, other], size=24)
    torch.testing.assert_close(
        agg, torch.full((2, 1, 24, 24), 2.0, dtype=torch.float64))
    m1 = torch.rand(2, 1, 7, 7, generator=gen)
    m2 = torch.rand(2, 1, 14, 14, generator=gen)
    torch.testing.assert_close(
        aggregate_scales([m1, m2], 24),
        0.5 * (resample_maps(m1, 24) + resample_maps(m2, 24)))
    assert (resample_maps(m1, 24) >= 0).all()
    u = uniform_maps(3, (8, 8))
    assert u.shape == (3, 1, 8, 8) and bool((u == 1).all())
    n = normalise_maps(torch.cat([m1, torch.zeros_like(m1[:1])]))
    torch.testing.assert_close(n.mean(dim=(2, 3)), torch.ones(3, 1))


def test_sample_weights_mean_one_and_clamped():
    # spatial means 0.01, 1, 2, 3, 50, 0 -> some weights clamp at both ends
    means = torch.tensor([0.01, 1.0, 2.0, 3.0, 50.0, 0.0], dtype=torch.float64)
    maps = means[:, None, None, None] * torch.ones(
        6, 1, 4, 4, dtype=torch.float64)
    maps.requires_grad_(True)
    lo, hi, eps = 0.25, 4.0, 0.01
    w = sample_weights(maps, eps=eps, clamp=(lo, hi))
    assert not w.requires_grad
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-12)
    assert float(w.min()) >= lo and float(w.max()) <= hi
    assert w[4] == hi and w[5] == lo and w[0] == lo
    # independent reference: scalar root of mean(clip(c * r, lo, hi)) = 1
    r = (means / means.mean() + eps).numpy()
    c = brentq(
        lambda c: (c * r).clip(lo, hi).mean() - 1,
        1e-9,
        1e9,
        xtol=1e-15,
        rtol=1e-15)
    torch.testing.assert_close(
        w, torch.from_numpy((c * r).clip(lo, hi)), rtol=1e-10, atol=1e-12)
    # monotone in the map mean
    assert (torch.diff(w[:5]) >= 0).all()
    # no refresh yet / uniform / all-zero maps -> ones
    assert torch.equal(sample_weights(None, num=3), torch.ones(3))
    torch.testing.assert_close(
        sample_weights(uniform_maps(4, 8)), torch.ones(4))
    torch.testing.assert_close(
        sample_weights(torch.zeros(4, 1, 8, 8)), torch.ones(4))
    with pytest.raises(ValueError):
        sample_weights(maps, clamp=(1.5, 4.0))


def test_classifier_influence_state_and_before_refresh(tiny):
    fmap, w, b = _split(tiny)
    k, d = w.shape[:2]
    y = tiny.y
    f = fmap.mean(dim=(2, 3))
    logits = F.conv2d(fmap, w, b).mean(dim=(2, 3))
    inf = ClassifierInfluence(k, d, bias=True, momentum=0.1)
    assert not inf.valid
    m = inf.maps(fmap[:4], w, b, y[:4], size=12)
    assert torch.equal(m, torch.ones(4, 1, 12, 12, dtype=m.dtype))
    inf.update(f[:24], logits[:24])
    inf.update(f[24:], logits[24:])
    inf.refresh(f[40:], logits[40:], y[40:])
    assert inf.valid
    m = inf.maps(fmap[:4], w, b, y[:4], size=12)
    ref = resample_maps(
        feature_grad_x_input(fmap[:4], inf.s_val, w, b, y[:4]), 12)
    torch.testing.assert_close(m, ref)
    buf = io.BytesIO()
    torch.save(inf.state_dict(), buf)
    buf.seek(0)
    other = ClassifierInfluence(k, d, bias=True, momentum=0.1)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.valid and other.curvature.num_updates == 2
    torch.testing.assert_close(
        other.maps(fmap[:4], w, b, y[:4], size=12), m, rtol=0, atol=0)


def test_validation_subset_is_balanced_and_disjoint():
    gen = torch.Generator().manual_seed(3)
    labels = (torch.rand(200, 5, generator=gen) < 0.2).long()
    labels[:, 4] = 0
    labels[[11, 20, 30], 4] = 1  # a rare class, once outside the report
    report = set(range(0, 200, 2))  # pretend the even images are reported
    idx = select_val_subset(labels, num=32, exclude=report, seed=0)
    assert idx.numel() == 32 and idx.unique().numel() == 32
    assert not report & set(idx.tolist())
    counts = labels[idx].sum(0)
    assert counts[4] == 1  # the only allowed image of the rare class
    # round robin: every common class gets at least 32 / 5 images (a random
    # draw of 32 odd images has 3 to 6 per class here)
    assert (counts[:4] >= 7).all()
    assert torch.equal(idx, select_val_subset(labels, 32, report, seed=0))
    assert_disjoint(['a', 'b'], ['c'])
    with pytest.raises(ValueError, match='1 influence validation'):
        assert_disjoint(['a', 'b'], ['b', 'c'])


# ------------------------------------------------------------- toy task

SIZE, OBJ, NCLS = 24, 6, 3


def _toy_data(n, gen):
    """Noise images with one textured square (class = texture) each."""
    i = torch.arange(OBJ)
    tex = torch.stack([(i[:, None] % 2).expand(OBJ, OBJ),
                       (i[None, :] % 2).expand(OBJ, OBJ),
                       (i[:, None] + i[None, :]) % 2]).float()
    x = 0.3 * torch.randn(n, 1, SIZE, SIZE, generator=gen)
    y = torch.zeros(n, NCLS)
    boxes = []
    for j in range(n):
        c = int(torch.randint(NCLS, (1, ), generator=gen))
        r0, c0 = torch.randint(SIZE - OBJ + 1, (2, ), generator=gen).tolist()
        x[j, 0, r0:r0 + OBJ, c0:c0 + OBJ] += 2 * tex[c] - 1
        y[j, c] = 1
        boxes.append((r0, c0, r0 + OBJ, c0 + OBJ))
    return x, y, boxes


class _ToyNet(nn.Module):

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Conv2d(16, NCLS, 1)

    def features(self, x):
        return F.relu(self.c2(F.relu(self.c1(x))))

    def forward(self, x):
        return self.fc(self.features(x)).mean(dim=(2, 3))


def _pointing(maps, boxes):
    hits = 0
    for m, (r0, c0, r1, c1) in zip(maps, boxes):
        r, c = divmod(int(m.argmax()), m.shape[-1])
        hits += int(r0 <= r < r1 and c0 <= c < c1)
    return hits / len(boxes)


@pytest.fixture(scope='module')
def toy():
    gen = torch.Generator().manual_seed(0)
    xtr, ytr, _ = _toy_data(256, gen)
    xva, yva, _ = _toy_data(16, gen)  # influence validation, disjoint
    xte, yte, boxes = _toy_data(32, gen)  # images the maps are scored on
    torch.manual_seed(0)
    net = _ToyNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        idx = torch.randint(256, (32, ), generator=gen)
        opt.zero_grad()
        F.multilabel_soft_margin_loss(net(xtr[idx]), ytr[idx]).backward()
        opt.step()
    net = net.double().eval()
    xtr, ytr, xva, yva, xte, yte = (
        t.double() for t in (xtr, ytr, xva, yva, xte, yte))
    inf = ClassifierInfluence(NCLS, 16, bias=True, momentum=1.0, damping=1e-3)
    with torch.no_grad():
        inf.update(net.features(xtr).mean(dim=(2, 3)), net(xtr))
        inf.refresh(net.features(xva).mean(dim=(2, 3)), net(xva), yva)
        acc = float(((net(xte) > 0).double() == yte).all(1).double().mean())
    assert acc >= 0.9  # the toy net did learn the task
    return net, inf, xte, yte, boxes


def _occlusion(net, inf, x, y, grid, cell):
    """``mean_v |I_v(x) - I_v(x with the cell zeroed)|`` per cell."""
    with torch.no_grad():
        base = inf.scores(net.features(x).mean(dim=(2, 3)), net(x), y)
        occ = torch.zeros(x.shape[0], grid, grid, dtype=torch.float64)
        for u in range(grid * grid):
            r, c = divmod(u, grid)
            xo = x.clone()
            xo[:, :, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 0
            so = inf.scores(net.features(xo).mean(dim=(2, 3)), net(xo), y)
            occ[:, r, c] = (base - so).abs().mean(1)
    return occ


def _mean_spearman(a, b):
    return sum(
        spearmanr(p.flatten().numpy(),
                  q.flatten().numpy())[0] for p, q in zip(a, b)) / a.shape[0]


def test_toy_maps_point_at_objects_and_agree_with_occlusion(toy):
    net, inf, x, y, boxes = toy
    w, b = net.fc.weight, net.fc.bias
    with torch.no_grad():
        feat = inf.maps(net.features(x), w, b, y, size=SIZE)[:, 0]
    s_w, s_b = unpack_classifier(inf.s_val, w.shape, True)
    inp = input_grad_maps(
        lambda t: F.multilabel_soft_margin_loss(net(t), y, reduction='none'),
        x, [w, b], [s_w, s_b],
        grid=12)
    inp = resample_maps(inp, SIZE, grid=12)[:, 0]
    assert _pointing(feat, boxes) >= 0.8
    assert _pointing(inp, boxes) >= 0.8
    # control: random maps do not pass (chance is about 1/16)
    rnd = torch.rand(
        x.shape[0], SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    assert _pointing(rnd, boxes) < 0.3
    occ = _occlusion(net, inf, x, y, grid=6, cell=4)
    assert _mean_spearman(F.adaptive_avg_pool2d(feat[:, None], 6)[:, 0],
                          occ) > 0.2
    assert _mean_spearman(F.adaptive_avg_pool2d(inp[:, None], 6)[:, 0],
                          occ) > 0.2
    # weights from these maps are valid loss weights
    wts = sample_weights(feat[:, None])
    assert float(wts.mean()) == pytest.approx(1.0, abs=1e-12)
