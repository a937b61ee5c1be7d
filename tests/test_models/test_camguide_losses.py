# Copyright (c) mmwsss contributors.
"""CamGuide losses (eqs. (23)-(39)) against independent references.

References are brute-force python loops over small numpy arrays, torch's
own ``multilabel_margin_loss`` / ``cross_entropy``, and OpenCV for the
filtering steps of the edge loss (``cv2.GaussianBlur`` / ``cv2.Scharr``
with ``BORDER_REPLICATE``, ``cv2.dilate``, ``cv2.resize``), a different
code path from the separable ``conv2d`` of the implementation.
"""
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmwsss.models.losses import (CAMDistillL1Loss, EdgeConsistencyLoss,
                                  HeuristicTargetLoss, MultiLabelMarginLoss,
                                  WindowLocalConsistencyLoss)
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------- registry / names


@pytest.mark.parametrize('cls, name', [
    ('MultiLabelMarginLoss', 'loss_cls'),
    ('CAMDistillL1Loss', 'loss_reg'),
    ('EdgeConsistencyLoss', 'loss_edge'),
    ('WindowLocalConsistencyLoss', 'loss_loc'),
    ('HeuristicTargetLoss', 'loss_crf'),
])
def test_registry_and_loss_name(cls, name):
    loss = MODELS.build(dict(type=cls, loss_weight=0.5))
    assert loss.loss_name == name and loss.loss_weight == 0.5
    renamed = MODELS.build(dict(type=cls, loss_name='loss_rw'))
    assert renamed.loss_name == 'loss_rw'
    with pytest.raises(ValueError, match='loss_name'):
        MODELS.build(dict(type=cls, loss_name='rw'))


# ------------------------------------------------------------ L_cls (23)


def margin_brute(x: np.ndarray, y: np.ndarray) -> float:
    n, k = x.shape
    total = 0.
    for b in range(n):
        s = 0.
        for j in range(k):
            if y[b, j] <= 0:
                continue
            for i in range(k):
                if y[b, i] > 0:
                    continue
                s += max(0., 1. - (x[b, j] - x[b, i]))
        total += s / k
    return total / n


def test_margin_matches_brute_force_and_torch():
    x = torch.randn(5, 6, generator=_gen(1), dtype=torch.float64)
    x[1] *= 0.1  # many active hinges
    y = torch.zeros(5, 6)
    y[0, [1, 3]] = 1
    y[1, 0] = 1
    y[2, :] = 1  # no negative -> 0
    # y[3] has no positive -> 0 (still counts in the mean)
    y[4, [0, 2, 4, 5]] = 1
    loss = MultiLabelMarginLoss(loss_weight=1.5)
    got = loss(x, y)
    expected = margin_brute(x.numpy(), y.numpy())
    assert expected > 0.1
    assert got.item() == pytest.approx(1.5 * expected, rel=1e-10)
    # torch's index-list form: positives first, then -1 terminator
    idx = torch.full((5, 6), -1, dtype=torch.long)
    for b in range(5):
        pos = torch.nonzero(y[b]).flatten()
        idx[b, :len(pos)] = pos
    ref = F.multilabel_margin_loss(x, idx)
    assert got.item() == pytest.approx(1.5 * ref.item(), rel=1e-10)
    per = MultiLabelMarginLoss(reduction='none')(x, y)
    ref_per = F.multilabel_margin_loss(x, idx, reduction='none')
    assert torch.allclose(per, ref_per)
    assert per[2] == 0 and per[3] == 0
    # gradient equals torch's
    xg = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    MultiLabelMarginLoss()(xg, y).backward()
    F.multilabel_margin_loss(xr, idx).backward()
    assert torch.allclose(xg.grad, xr.grad)


def test_margin_bad_input():
    loss = MultiLabelMarginLoss()
    with pytest.raises(ValueError, match='target'):
        loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='logits'):
        loss(torch.tensor([[0., float('nan')]]), torch.ones(1, 2))
    with pytest.raises(ValueError, match='logits'):
        loss(torch.zeros(2, 3, 1), torch.zeros(2, 3))
    with pytest.raises(ValueError, match='reduction'):
        MultiLabelMarginLoss(reduction='avg')


# ------------------------------------------------------- L_reg (24)-(25)


def test_distill_l1_brute_force_and_detach():
    s = torch.randn(2, 3, 4, 5, generator=_gen(2), dtype=torch.float64)
    t = torch.randn(2, 3, 4, 5, generator=_gen(3), dtype=torch.float64)
    sn, tn = s.numpy(), t.numpy()
    expected = 0.
    for idx in np.ndindex(*sn.shape):
        expected += abs(sn[idx] - tn[idx])
    expected /= sn.size
    s.requires_grad_(True)
    t.requires_grad_(True)
    got = CAMDistillL1Loss(loss_weight=0.65)(s, t)
    assert got.item() == pytest.approx(0.65 * expected, rel=1e-10)
    got.backward()
    assert t.grad is None and s.grad is not None
    assert torch.allclose(s.grad.abs(), torch.full_like(s, 0.65 / s.numel()))


def make_cam_np(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """PuzzleCAM ``make_cam``: relu(x - eps) / (max relu(x) + eps)."""
    out = np.zeros_like(x)
    for b in range(x.shape[0]):
        for k in range(x.shape[1]):
            m = max(np.maximum(x[b, k], 0).max(), 0.)
            out[b, k] = np.maximum(x[b, k] - eps, 0) / (m + eps)
    return out


def test_distill_l1_normalize_max():
    s = torch.randn(2, 2, 3, 3, generator=_gen(4), dtype=torch.float64)
    t = 3 * torch.randn(2, 2, 3, 3, generator=_gen(5), dtype=torch.float64)
    t[1, 1] = -torch.rand(3, 3, generator=_gen(6))  # all negative
    expected = np.abs(make_cam_np(s.numpy()) - make_cam_np(t.numpy()))
    got = CAMDistillL1Loss(normalize='max')(s, t)
    assert got.item() == pytest.approx(expected.mean(), rel=1e-8)
    # raw reading differs
    assert CAMDistillL1Loss()(s, t).item() != pytest.approx(got.item())


@pytest.mark.parametrize('resize_to', ['teacher', 'student'])
def test_distill_l1_resize(resize_to):
    s = torch.rand(1, 2, 3, 5, generator=_gen(7), dtype=torch.float64)
    t = torch.rand(1, 2, 6, 7, generator=_gen(8), dtype=torch.float64)
    sn, tn = s.numpy()[0], t.numpy()[0]
    diffs = []
    for k in range(2):
        if resize_to == 'teacher':
            a = cv2.resize(sn[k], (7, 6), interpolation=cv2.INTER_LINEAR)
            b = tn[k]
        else:
            a = sn[k]
            b = cv2.resize(tn[k], (5, 3), interpolation=cv2.INTER_LINEAR)
        diffs.append(np.abs(a - b))
    expected = np.mean(diffs)
    got = CAMDistillL1Loss(resize_to=resize_to)(s, t)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_distill_l1_bad_input():
    loss = CAMDistillL1Loss()
    with pytest.raises(ValueError, match='student'):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match='teacher'):
        t = torch.zeros(2, 3, 4, 4)
        t[0, 0, 0, 0] = float('nan')
        loss(torch.zeros(2, 3, 4, 4), t)
    with pytest.raises(ValueError, match='student'):
        loss(torch.zeros(3, 4, 4), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match='normalize'):
        CAMDistillL1Loss(normalize='minmax')
    with pytest.raises(ValueError, match='resize_to'):
        CAMDistillL1Loss(resize_to='both')


# ------------------------------------------------------ L_edge (30)-(34)


def adaptive_avg_pool_np(x: np.ndarray, h: int, w: int) -> np.ndarray:
    H, W = x.shape
    out = np.zeros((h, w))
    for i in range(h):
        r0, r1 = (i * H) // h, -((-(i + 1) * H) // h)
        for j in range(w):
            c0, c1 = (j * W) // w, -((-(j + 1) * W) // w)
            out[i, j] = x[r0:r1, c0:c1].mean()
    return out


def scharr_np(x: np.ndarray) -> np.ndarray:
    gx = cv2.Scharr(x, cv2.CV_64F, 1, 0, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Scharr(x, cv2.CV_64F, 0, 1, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def edge_loss_np(cams,
                 img,
                 labels,
                 tau=0.1,
                 delta=0.05,
                 gamma=2.0,
                 tau2=0.35,
                 lambda_hard=2.0,
                 eps=1e-6):
    """Eqs. (30)-(34) with explicit loops.

    Returns:
        dict: ``loss``, ``num`` (N), ``usum``, ``hard`` and the maps
        ``s`` (N, h, w) and ``e`` (N, K, h, w).
    """
    n, k, h, w = cams.shape
    num = focal = hard = usum = 0.
    s_all, e_all = np.zeros((n, h, w)), np.zeros((n, k, h, w))
    for b in range(n):
        mags = []
        for c in range(img.shape[1]):
            blur = cv2.GaussianBlur(
                img[b, c], (9, 9), 3.0, borderType=cv2.BORDER_REPLICATE)
            mags.append(scharr_np(blur))
        s = np.mean(mags, axis=0)
        s = s / s.max() if s.max() > 0 else np.zeros_like(s)
        s = cv2.dilate(s, np.ones((3, 3), np.uint8))
        s = s_all[b] = adaptive_avg_pool_np(s, h, w)
        for c in range(k):
            blur = cv2.GaussianBlur(
                cams[b, c], (5, 5), 1.5, borderType=cv2.BORDER_REPLICATE)
            e = scharr_np(blur)
            e = e_all[b, c] = e / (e.max() + eps)
            if labels[b, c] <= 0:
                continue
            for i in range(h):
                for j in range(w):
                    if s[i, j] >= tau:
                        continue
                    num += 1
                    u = max(0., e[i, j] - (s[i, j] + delta))
                    usum += u
                    focal += u**gamma
                    if e[i, j] > tau2:
                        hard += u
    loss = (focal + lambda_hard * hard) / num if num else 0.
    return dict(loss=loss, num=num, usum=usum, hard=hard, s=s_all, e=e_all)


def step_image(size: int = 32,
               col: int = 16,
               noise: float = 0.0,
               seed: int = 0) -> np.ndarray:
    img = np.zeros((1, 3, size, size))
    img[..., col:] = 1.0
    img[0, 1] *= 0.5
    if noise:
        img += noise * np.random.default_rng(seed).standard_normal(img.shape)
    return (img - 0.45) / 0.225  # affine "normalised input"


def blob_image(size: int = 24) -> np.ndarray:
    """Smooth blob: the edge support takes a continuum of values."""
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - 9.)**2 + (xx - 14.)**2) / (2 * 4.5**2))
    return 50 * np.stack([blob, 0.5 * blob, 1 - blob])[None] - 20


def test_edge_loss_matches_numpy_reference():
    rng = np.random.default_rng(0)
    img = np.concatenate([step_image(24, 10, 0.02, 1), blob_image(24)])
    cams = np.clip(
        cv2.resize(
            rng.random((4, 4, 6)), (12, 12), interpolation=cv2.INTER_LINEAR),
        0, 1)
    cams = cams.transpose(2, 0, 1).reshape(2, 3, 12, 12)
    labels = np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float64)
    ref = edge_loss_np(cams, img, labels)
    # the configuration exercises every term and every threshold, away
    # from ties that float rounding could flip
    assert ref['num'] > 0 and ref['usum'] > 0 and ref['hard'] > 0
    s, e = ref['s'], ref['e']
    assert np.abs(s - 0.1).min() > 1e-4 and np.abs(e - 0.35).min() > 1e-4
    assert ((s >= 0.1) & (s < 0.2)).any() and ((s > 0) & (s < 0.1)).any()
    assert edge_loss_np(cams, img, labels, tau=0.2)['loss'] != \
        pytest.approx(ref['loss'])
    loss = EdgeConsistencyLoss(loss_weight=0.7)
    got = loss(
        torch.from_numpy(cams), torch.from_numpy(img),
        torch.from_numpy(labels))
    assert got.item() == pytest.approx(0.7 * ref['loss'], rel=1e-6)
    s_t = loss.image_support(torch.from_numpy(img), (12, 12))
    assert np.allclose(s_t[:, 0].numpy(), s, atol=1e-6)
    e_t = loss.cam_edges(torch.from_numpy(cams))
    assert np.allclose(e_t.numpy(), e, atol=1e-9)
    # float32 path agrees too
    got32 = loss(
        torch.from_numpy(cams).float(),
        torch.from_numpy(img).float(),
        torch.from_numpy(labels).float())
    assert got32.item() == pytest.approx(0.7 * ref['loss'], rel=1e-4)


def step_cam(col: int, size: int = 16) -> torch.Tensor:
    cam = torch.zeros(1, 1, size, size, dtype=torch.float64)
    cam[..., col:] = 1.0
    return cam


def test_edge_loss_behaviour():
    img = torch.from_numpy(step_image(32, 16))
    loss = EdgeConsistencyLoss()
    y = torch.ones(1, 1)
    on_edge = loss(step_cam(8), img, y).item()
    off_edge = loss(step_cam(3), img, y).item()
    assert off_edge > 0.05
    assert on_edge < 0.02 * off_edge
    # a class outside the image labels contributes nothing
    cams = torch.cat([step_cam(8), step_cam(3)], dim=1)
    two = loss(cams, img, torch.tensor([[1., 0.]])).item()
    assert two == pytest.approx(on_edge, abs=1e-12)
    swapped = loss(cams, img, torch.tensor([[0., 1.]])).item()
    assert swapped == pytest.approx(off_edge, rel=1e-9)


def test_edge_loss_grad_only_to_cams_and_empty_count():
    img = torch.from_numpy(step_image(32, 16)).requires_grad_(True)
    cams = step_cam(3).clone() * 0.8 + 0.1
    cams.requires_grad_(True)
    loss = EdgeConsistencyLoss()
    out = loss(cams, img, torch.ones(1, 1))
    out.backward()
    assert img.grad is None
    assert cams.grad is not None and cams.grad.abs().sum() > 0
    assert torch.isfinite(cams.grad).all()
    # N == 0: no labelled class -> 0, still differentiable
    cams.grad = None
    zero = loss(cams, img, torch.zeros(1, 1))
    assert zero.item() == 0 and zero.requires_grad
    zero.backward()
    assert torch.all(cams.grad == 0)
    # a flat image: support 0 everywhere, flat CAM: E 0 -> loss 0, no NaN
    flat = torch.zeros(1, 1, 8, 8, requires_grad=True)
    out = loss(flat, torch.ones(1, 3, 16, 16), torch.ones(1, 1))
    out.backward()
    assert out.item() == 0 and torch.isfinite(flat.grad).all()


def test_edge_loss_detach_max_is_a_frozen_normaliser():
    """``detach_max``: same value; the gradient is the finite difference of
    the loss with the edge normaliser frozen at its current value."""
    rng = np.random.default_rng(1)
    img = torch.from_numpy(np.concatenate([step_image(24, 10, 0.02, 1)]))
    base = torch.from_numpy(np.clip(cv2.resize(
        rng.random((4, 4)), (12, 12), interpolation=cv2.INTER_LINEAR), 0,
        1)).reshape(1, 1, 12, 12)
    y = torch.ones(1, 1, dtype=torch.float64)
    full, frozen = EdgeConsistencyLoss(), EdgeConsistencyLoss(detach_max=True)
    grads = {}
    for name, loss in (('full', full), ('frozen', frozen)):
        c = base.clone().requires_grad_(True)
        out = loss(c, img, y)
        out.backward()
        grads[name] = c.grad
        assert out.item() == pytest.approx(full(base, img, y).item())
    assert not torch.allclose(grads['full'], grads['frozen'])
    # the normaliser of E at ``base``, as a constant
    from mmwsss.models.losses.camguide_loss import (gaussian_blur,
                                                   scharr_magnitude)
    sizes = full.resolved_sizes((12, 12), (12, 12))
    emax = scharr_magnitude(
        gaussian_blur(base, sizes['cam_blur_kernel'],
                      sizes['cam_blur_sigma'])).flatten(2).max(2).values

    class Fixed(EdgeConsistencyLoss):

        def cam_edges(self, cams):
            e = scharr_magnitude(
                gaussian_blur(cams, sizes['cam_blur_kernel'],
                              sizes['cam_blur_sigma']))
            return e / (emax[..., None, None] + self.eps)

    fixed = Fixed()
    h = 1e-6
    for idx in [(0, 0, 3, 4), (0, 0, 6, 6), (0, 0, 9, 2)]:
        plus, minus = base.clone(), base.clone()
        plus[idx] += h
        minus[idx] -= h
        fd = (fixed(plus, img, y) - fixed(minus, img, y)).item() / (2 * h)
        assert grads['frozen'][idx].item() == pytest.approx(
            fd, rel=1e-4, abs=1e-8)


def test_edge_loss_bad_input():
    loss = EdgeConsistencyLoss()
    cams, img = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match='labels'):
        loss(cams, img, torch.ones(2, 4))
    with pytest.raises(ValueError, match='img'):
        loss(cams, torch.rand(1, 3, 16, 16), torch.ones(2, 3))
    with pytest.raises(ValueError, match='cams'):
        bad = cams.clone()
        bad[0, 0, 0, 0] = float('nan')
        loss(bad, img, torch.ones(2, 3))
    with pytest.raises(ValueError, match='img'):
        bad = img.clone()
        bad[1, 2, 3, 3] = float('nan')
        loss(cams, bad, torch.ones(2, 3))
    with pytest.raises(ValueError, match='img_blur_kernel'):
        EdgeConsistencyLoss(img_blur_kernel=4)
    with pytest.raises(ValueError, match='gamma'):
        EdgeConsistencyLoss(gamma=0)


# ------------------------------------------------------- L_loc (35)-(39)


def loc_loss_np(cams: np.ndarray, window: int, eps: float = 1e-6) -> float:
    n, k, h, w = cams.shape
    r = window // 2
    total = 0.
    for b in range(n):
        prob = np.zeros((k, h, w))
        for i in range(h):
            for j in range(w):
                s = sum(cams[b, c, i, j] for c in range(k))
                for c in range(k):
                    prob[c, i, j] = cams[b, c, i, j] / (s + eps)
        for i in range(h):
            for j in range(w):
                agree = 0.
                for c in range(k):
                    vals = [
                        prob[c, u, v]
                        for u in range(max(0, i - r), min(h, i + r + 1))
                        for v in range(max(0, j - r), min(w, j + r + 1))
                    ]
                    agree += prob[c, i, j] * sum(vals) / len(vals)
                total += (1 - agree) * max(prob[:, i, j])
    return total / (n * h * w)


@pytest.mark.parametrize('window', [3, 5])
def test_loc_loss_brute_force(window):
    cams = torch.rand(2, 3, 6, 7, generator=_gen(9), dtype=torch.float64)
    cams[0, :, 0, 0] = 0  # an all-zero pixel
    got = WindowLocalConsistencyLoss(window=window, loss_weight=2.0)(cams)
    expected = loc_loss_np(cams.numpy(), window)
    assert expected > 0.05
    assert got.item() == pytest.approx(2.0 * expected, rel=1e-10)
    # labels zero the absent classes before the normalisation
    labels = torch.tensor([[1, 0, 1], [1, 1, 0]])
    masked = cams.numpy().copy()
    masked[0, 1] = 0
    masked[1, 2] = 0
    got = WindowLocalConsistencyLoss(window=window)(cams, labels)
    assert got.item() == pytest.approx(loc_loss_np(masked, window), rel=1e-10)


def test_loc_loss_closed_forms_and_grad():
    loss = WindowLocalConsistencyLoss(window=3, eps=0.)
    one = torch.zeros(1, 2, 5, 5, dtype=torch.float64)
    one[:, 0] = 0.7  # one class everywhere: K = 1, Kbar = 1, S = 1
    assert loss(one).item() == pytest.approx(0., abs=1e-12)
    # checkerboard of two classes, interior 3x3 window: the centre class
    # covers 5 of 9 pixels -> S = 5/9, max K = 1
    board = torch.zeros(1, 2, 5, 5, dtype=torch.float64)
    ii, jj = torch.meshgrid(torch.arange(5), torch.arange(5), indexing='ij')
    board[0, 0] = ((ii + jj) % 2 == 0).double()
    board[0, 1] = 1 - board[0, 0]
    per = torch.zeros(5, 5, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            rows = range(max(0, i - 1), min(5, i + 2))
            cols = range(max(0, j - 1), min(5, j + 2))
            same = sum((u + v) % 2 == (i + j) % 2 for u in rows for v in cols)
            per[i, j] = 1 - same / (len(rows) * len(cols))
    assert loss(board).item() == pytest.approx(per.mean().item(), rel=1e-12)
    assert per[2, 2] == pytest.approx(4 / 9)
    x = torch.rand(1, 3, 4, 4, generator=_gen(10), dtype=torch.float64)
    x = (x + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(
        WindowLocalConsistencyLoss(window=3), (x, ), eps=1e-6, atol=1e-5)


def test_loc_loss_bad_input():
    loss = WindowLocalConsistencyLoss()
    with pytest.raises(ValueError, match='non-negative'):
        loss(-torch.ones(1, 2, 4, 4))
    with pytest.raises(ValueError, match='labels'):
        loss(torch.ones(1, 2, 4, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match='cams'):
        loss(torch.full((1, 2, 4, 4), float('nan')))
    with pytest.raises(ValueError, match='cams'):
        loss(torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match='window'):
        WindowLocalConsistencyLoss(window=4)


# ------------------------------------------------- L_crf / L_rw (27)-(29)


def ce_prob_np(scores, target, ignore=255, eps=1e-6):
    n, c, h, w = scores.shape
    total, count = 0., 0
    for b in range(n):
        for i in range(h):
            for j in range(w):
                t = target[b, i, j]
                if t == ignore:
                    continue
                s = sum(scores[b, k, i, j] for k in range(c))
                total += -math.log(scores[b, t, i, j] / (s + eps) + eps)
                count += 1
    return total / count


def ce_logits_np(scores, target, ignore=255):
    n, c, h, w = scores.shape
    total, count = 0., 0
    for b in range(n):
        for i in range(h):
            for j in range(w):
                t = target[b, i, j]
                if t == ignore:
                    continue
                lse = math.log(
                    sum(math.exp(scores[b, k, i, j]) for k in range(c)))
                total += lse - scores[b, t, i, j]
                count += 1
    return total / count


def _scores_target(seed=11):
    scores = torch.rand(2, 4, 3, 5, generator=_gen(seed), dtype=torch.float64)
    target = torch.randint(0, 4, (2, 3, 5), generator=_gen(seed + 1))
    target[0, 0, :3] = 255
    target[1, 2, 4] = 255
    return scores, target


def test_heuristic_prob_and_logits_brute_force():
    scores, target = _scores_target()
    scores[1, :, 1, 1] = 0  # all-zero pixel: -log(eps)
    loss = HeuristicTargetLoss(loss_weight=0.3)
    got = loss(scores, target)
    expected = ce_prob_np(scores.numpy(), target.numpy())
    assert got.item() == pytest.approx(0.3 * expected, rel=1e-10)
    logits = torch.randn(2, 4, 3, 5, generator=_gen(12), dtype=torch.float64)
    got = HeuristicTargetLoss(mode='logits')(logits, target)
    assert got.item() == pytest.approx(
        ce_logits_np(logits.numpy(), target.numpy()), rel=1e-10)
    x = (scores + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(
        HeuristicTargetLoss(), (x, target), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize('resize_mode, offset', [('nearest', 0),
                                                 ('nearest-exact', 1)])
def test_heuristic_target_resize(resize_mode, offset):
    scores, _ = _scores_target()
    big = torch.randint(0, 4, (2, 6, 10), generator=_gen(13))
    big[0, 0, 0] = 255
    small = big[:, offset::2, offset::2].numpy()
    got = HeuristicTargetLoss(resize_mode=resize_mode)(scores, big[:, None])
    assert got.item() == pytest.approx(
        ce_prob_np(scores.numpy(), small), rel=1e-10)


@pytest.mark.parametrize('mode', ['prob', 'logits'])
def test_heuristic_all_ignored(mode):
    scores = torch.rand(1, 3, 4, 4, requires_grad=True)
    out = HeuristicTargetLoss(mode=mode)(scores, torch.full((1, 4, 4), 255))
    assert out.item() == 0 and out.requires_grad
    out.backward()
    assert torch.all(scores.grad == 0)


def test_heuristic_bad_input():
    loss = HeuristicTargetLoss()
    scores = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match='target values'):
        loss(scores, torch.full((2, 4, 4), 3))
    with pytest.raises(ValueError, match='target'):
        loss(scores, torch.zeros(3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='integer'):
        loss(scores, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match='scores'):
        loss(-scores, torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='scores'):
        bad = scores.clone()
        bad[0, 0, 0, 0] = float('nan')
        loss(bad, torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='mode'):
        HeuristicTargetLoss(mode='softmax')


def test_edge_loss_relative_sizes():
    # relative specs resolving to the paper's pixel sizes at this image
    # (24) and CAM (12) size give the numpy reference's loss exactly
    rng = np.random.default_rng(0)
    img = np.concatenate([step_image(24, 10, 0.02, 1), blob_image(24)])
    cams = np.clip(
        cv2.resize(
            rng.random((4, 4, 6)), (12, 12), interpolation=cv2.INTER_LINEAR),
        0, 1)
    cams = cams.transpose(2, 0, 1).reshape(2, 3, 12, 12)
    labels = np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float64)
    ref = edge_loss_np(cams, img, labels)
    loss = EdgeConsistencyLoss(
        img_blur_kernel=dict(rel=9 / 24),
        img_blur_sigma=dict(rel=3 / 24),
        dilate_kernel=dict(rel=3 / 24),
        cam_blur_kernel=dict(rel=5 / 12),
        cam_blur_sigma=dict(rel=1.5 / 12))
    got = loss(
        torch.from_numpy(cams), torch.from_numpy(img),
        torch.from_numpy(labels))
    assert got.item() == pytest.approx(ref['loss'], rel=1e-6)
    # the paper's sizes as fractions of a 512 crop / its 128 stride-4 grid
    paper = EdgeConsistencyLoss(
        img_blur_kernel=dict(rel=9 / 512),
        img_blur_sigma=dict(rel=3 / 512),
        dilate_kernel=dict(rel=3 / 512),
        cam_blur_kernel=dict(rel=5 / 128),
        cam_blur_sigma=dict(rel=1.5 / 128))
    assert paper.resolved_sizes((512, 512), (128, 128)) == dict(
        img_blur_kernel=9,
        img_blur_sigma=3.0,
        dilate_kernel=3,
        cam_blur_kernel=5,
        cam_blur_sigma=1.5)
    # a 128 demo crop and its 32 grid: odd kernels nearest to 2.25, 0.75,
    # 1.25 (>= 1), sigmas scaled by 1/4
    assert paper.resolved_sizes((128, 128), (32, 32)) == dict(
        img_blur_kernel=3,
        img_blur_sigma=0.75,
        dilate_kernel=1,
        cam_blur_kernel=1,
        cam_blur_sigma=0.375)
    with pytest.raises(ValueError, match='cam_blur_sigma'):
        EdgeConsistencyLoss(cam_blur_sigma=dict(rel=0))


def test_loc_loss_relative_window():
    cams = torch.rand(2, 3, 32, 32, generator=_gen(3), dtype=torch.float64)
    rel = WindowLocalConsistencyLoss(window=dict(rel=7 / 128))
    assert rel.resolve_window((128, 128)) == 7
    assert rel.resolve_window((64, 64)) == 3
    # 1.75 on a 32 grid: nearest odd 1, raised to the minimum of 3
    assert rel.resolve_window((32, 32)) == 3
    assert WindowLocalConsistencyLoss(window=dict(rel=7 /
                                                  128, min=1)).resolve_window(
                                                      (32, 32)) == 1
    assert rel(cams).item() == pytest.approx(
        WindowLocalConsistencyLoss(window=3)(cams).item(), rel=1e-12)
    big = torch.rand(1, 3, 128, 128, generator=_gen(4), dtype=torch.float64)
    assert rel(big).item() == pytest.approx(
        WindowLocalConsistencyLoss(window=7)(big).item(), rel=1e-12)
    with pytest.raises(ValueError, match='window'):
        WindowLocalConsistencyLoss(window=dict(rel=0.1, foo=1))
