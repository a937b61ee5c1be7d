# Copyright (c) mmwsss contributors.
"""IG-CAM model components: box pooling, influence-guided attention, the
instance-guided CAM head and :class:`IGCAMSegmentor`.

References are independent of the code under test: per-box means by
slicing, plain :class:`CAMHead` outputs, softmax / weighted sums written
out per image, autograd Hessians and finite differences.
"""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import InstanceData
from mmseg.structures import SegDataSample
from torch.func import functional_call

from mmwsss.influence import classifier_hessian
from mmwsss.models import (CAMHead, IGCAMSegmentor, InfluenceGuidedAttention,
                           InstanceGuidedCAMHead)
from mmwsss.models.utils import (axis_coverage, box_area, box_masks, box_sums,
                                 to_feature_boxes)
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()
D64 = torch.float64


# --------------------------------------------------------------- box ops


def test_box_sums_match_slices_and_dense_masks():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 7, generator=gen, dtype=D64)
    # integer boxes: sums over slices
    ints = torch.tensor([[[0, 0, 7, 6], [1, 2, 4, 5], [6, 5, 7, 6]],
                         [[2, 0, 3, 6], [0, 3, 7, 4], [3, 1, 6, 3]]],
                        dtype=D64)
    got = box_sums(x, ints)
    for i in range(2):
        for k in range(3):
            x1, y1, x2, y2 = (int(v) for v in ints[i, k])
            ref = x[i, :, y1:y2, x1:x2].sum(dim=(1, 2))
            assert torch.allclose(got[i, k], ref, atol=1e-12)
    # fractional boxes (also smaller than a cell): area-weighted masks
    frac = torch.tensor([[[0.3, 0.2, 6.9, 5.5], [2.25, 1.5, 2.75, 1.75]],
                         [[0., 0., 0.5, 0.5], [4.1, 3.3, 7., 6.]]],
                        dtype=D64)
    m = box_masks(frac, (6, 7))
    ref = torch.einsum('nkhw,nchw->nkc', m, x)
    assert torch.allclose(box_sums(x, frac), ref, atol=1e-12)
    assert torch.allclose(m.sum(dim=(-2, -1)), box_area(frac))
    # the first mask, written cell by cell
    row = torch.tensor([.8, 1, 1, 1, 1, .5], dtype=D64)
    col = torch.tensor([.7, 1, 1, 1, 1, 1, .9], dtype=D64)
    assert torch.allclose(m[0, 0], row[:, None] * col[None, :])
    # half precision: summed in float32, returned in float16
    half = box_sums(x.half(), frac.half())
    assert half.dtype == torch.float16
    assert torch.allclose(half.double(), ref, atol=2e-2)
    # gradients reach the features
    xg = x.clone().requires_grad_(True)
    box_sums(xg, frac).sum().backward()
    assert torch.allclose(xg.grad, m.sum(1, keepdim=True).expand_as(x))


def test_to_feature_boxes_and_coverage():
    boxes = torch.tensor([[-4., 8., 20., 40.]])
    fb = to_feature_boxes(boxes, (32, 64), (8, 16))  # stride 4
    assert fb.tolist() == [[0., 2., 5., 8.]]
    cov = axis_coverage(torch.tensor([1.5]), torch.tensor([3.25]), 4)
    assert cov.tolist() == [[0., .5, 1., .25]]


# ------------------------------------------------------------- attention


def test_attention_alpha_zero_is_identity_and_alpha_gets_gradient():
    torch.manual_seed(0)
    att = InfluenceGuidedAttention(in_channels=4, num_scales=2)
    feats = [torch.randn(2, 4, 6, 6), torch.randn(2, 4, 3, 3)]
    infs = [torch.rand(2, 1, 6, 6) * 3, torch.rand(2, 1, 5, 5)]
    out, gates = att(feats, infs)
    for f, o in zip(feats, out):
        assert torch.equal(o, f)
    assert gates[0].shape == (2, 4, 6, 6) and gates[1].shape == (2, 4, 3, 3)
    loss = sum((o * o.detach().sign()).sum() for o in out)
    loss.backward()
    # dL/dalpha_s = sum F_s W_s sign(F_s) = sum |F_s| W_s
    for s in range(2):
        ref = (feats[s].abs() * gates[s].detach()).sum()
        assert torch.allclose(att.alpha.grad[s], ref, rtol=1e-5)
    # with alpha = 0 the convolutions get no gradient yet
    assert float(att.convs[0].weight.grad.abs().max()) == 0


def test_attention_formula_and_spatial_mode():
    torch.manual_seed(1)
    att = InfluenceGuidedAttention(
        in_channels=3, num_scales=1, mode='spatial', alpha_init=0.7)
    f = torch.randn(1, 3, 4, 4)
    inf = torch.rand(1, 1, 4, 4) + 0.5
    (out, ), (gate, ) = att([f], [inf])
    conv = att.convs[0]
    conv_out = torch.einsum('oc,nchw->nohw', conv.weight[:, :, 0, 0], f) \
        + conv.bias[None, :, None, None]
    ref_gate = torch.sigmoid(conv_out * inf)
    assert gate.shape == (1, 1, 4, 4)
    assert torch.allclose(gate, ref_gate, atol=1e-6)
    assert torch.allclose(out, f * (1 + 0.7 * ref_gate), atol=1e-6)
    # no influence -> ones
    (out1, ), _ = att([f], None)
    (out2, ), _ = att([f], [torch.ones(1, 1, 4, 4)])
    assert torch.allclose(out1, out2)
    with pytest.raises(ValueError):
        InfluenceGuidedAttention(mode='both')


# ------------------------------------------------------------------ head

SIZES = ((8, 8), (4, 4), (2, 2), (1, 1))  # input 32 x 32, strides 4..32


def _feats(n=2, c=5, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, *hw, generator=gen, dtype=dtype) for hw in SIZES]


def _head(**kw):
    cfg = dict(
        type='InstanceGuidedCAMHead',
        in_channels=5,
        num_classes=4,
        num_scales=4,
        bias=True)
    cfg.update(kw)
    head = MODELS.build(cfg)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for cls in head.classifiers:
            cls.weight.copy_(torch.randn(cls.weight.shape, generator=gen))
            if cls.bias is not None:
                cls.bias.copy_(torch.randn(cls.bias.shape, generator=gen))
    return head


def test_head_without_proposals_equals_plain_cam_heads():
    feats = _feats()
    plain = CAMHead(in_channels=5, num_classes=4, bias=True)
    for kw in (dict(), dict(alpha_mode='geometry'), dict(use_beta=False),
               dict(cam_mode='attribution'), dict(cam_mode='dense')):
        head = _head(**kw)
        if head.scorers is not None:  # non-zero scores: softmax of one = 1
            for p in head.scorers.parameters():
                nn.init.normal_(p)
        out = head(feats)
        for s, f in enumerate(feats):
            plain.classifier.load_state_dict(
                head.classifiers[s].state_dict())
            cams, logits = plain.logits(f)
            assert torch.allclose(out.logits[s], logits, atol=1e-5)
            assert torch.allclose(out.cams[s], cams, atol=1e-5)
            # the curvature's premise: z_s = W_s hbar_s + b_s
            assert torch.allclose(
                out.pooled[s], f.mean(dim=(2, 3)), atol=1e-6)
        ref = torch.stack([
            F.interpolate(c, size=(8, 8), mode='bilinear',
                          align_corners=False) for c in out.cams
        ]).mean(0)
        assert torch.allclose(out.fused_cam, ref, atol=1e-6)
        assert torch.allclose(out.fused_logits,
                              torch.stack(out.logits).mean(0))
    # an explicit whole-image proposal, or num_proposals=0, is the same
    head = _head()
    base = head(feats)
    whole = [torch.tensor([[0., 0., 32., 32.]])] * 2
    alt = _head(add_whole_image=False)(feats, proposals=whole,
                                       img_shape=(32, 32))
    zero = _head(num_proposals=0)
    none = zero(
        feats,
        proposals=[zero.select_proposals(torch.tensor([[0., 0., 8., 8.]])),
                   None],
        img_shape=(32, 32))
    for s in range(4):
        assert torch.allclose(alt.logits[s], base.logits[s], atol=1e-5)
        assert torch.allclose(none.logits[s], base.logits[s], atol=1e-5)
    # max fusion
    mx = _head(scale_fusion='max')(feats)
    assert torch.allclose(mx.fused_logits, torch.stack(mx.logits).max(0)[0])


# boxes aligned to the stride-8 grid of a 32 x 32 input (so to the
# feature cells of scales 0 and 1); image 1 has no proposals (padding)
BOXES = [torch.tensor([[8., 8., 24., 32.], [0., 0., 16., 8.]]), None]


# ----------------------------------------------------------- gamma_s


def test_learned_scale_weights_closed_form():
    """gamma = softmax(g): uniform at init (= the mean), and for given g
    the fused CAM and logit are the hand-computed weighted sums."""
    feats = _feats()
    gen = torch.Generator().manual_seed(11)
    infs = [torch.rand(2, 1, *hw, generator=gen) * 2 for hw in SIZES]
    head = _head()
    assert head.scale_fusion == 'learned'
    assert torch.equal(head.scale_logits.detach(), torch.zeros(4))
    out = head(feats, infs, BOXES, (32, 32))
    assert torch.allclose(out.fused_logits, torch.stack(out.logits).mean(0),
                          atol=1e-6)
    g = [1.0, -0.5, 0.25, 2.0]
    with torch.no_grad():
        head.scale_logits.copy_(torch.tensor(g))
    out = head(feats, infs, BOXES, (32, 32))
    den = sum(math.exp(v) for v in g)
    gamma = [math.exp(v) / den for v in g]
    assert torch.allclose(head.scale_weights,
                          torch.tensor(gamma), atol=1e-7)
    ref_z = sum(gamma[s] * out.logits[s] for s in range(4))
    ref_cam = sum(gamma[s] * F.interpolate(
        out.cams[s], size=(8, 8), mode='bilinear', align_corners=False)
                  for s in range(4))
    assert torch.allclose(out.fused_logits, ref_z, atol=1e-6)
    assert torch.allclose(out.fused_cam, ref_cam, atol=1e-5)
    # not the mean any more (the comparison above can fail)
    assert not torch.allclose(out.fused_logits,
                              torch.stack(out.logits).mean(0), atol=1e-3)
    # switched off: fixed mean / max, no parameter, no fused loss
    for fusion in ('mean', 'max'):
        off = _head(scale_fusion=fusion)
        assert off.scale_logits is None and off.scale_weights is None
        o = off(feats)
        lg = torch.stack(o.logits)
        ref = lg.mean(0) if fusion == 'mean' else lg.max(0).values
        assert torch.allclose(o.fused_logits, ref)
        t = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
        assert set(off.loss_by_feat(o, t)) == {'loss_ig', 'acc_cls'}
    # one scale: gamma = 1, nothing to learn or log
    one = _head(num_scales=1)
    t = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    assert set(one.loss_by_feat(one([feats[0]]), t)) == {'loss_ig', 'acc_cls'}
    with pytest.raises(ValueError):
        _head(scale_fusion='sum')
    with pytest.raises(ValueError):
        _head(fused_loss='logits')


def test_learned_scale_weights_gradients():
    """``loss_ig_fused`` = BCE(sum_s gamma_s z_s) trains gamma only (the
    per-scale logits are detached), with the closed-form gradient
    ``dL/dg_s = gamma_s sum_nk dL/dz_nk (z_s,nk - z_nk)``; the fused CAM
    (boundary loss) sends gradients to gamma too."""
    feats = [f.double() for f in _feats()]
    head = _head(loss_boundary=dict(type='BoundaryAlignmentLoss')).double()
    with torch.no_grad():
        head.scale_logits.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
    targets = torch.tensor([[1., 0., 1.], [0., 1., 0.]], dtype=D64)
    weight = torch.tensor([0.5, 1.5], dtype=D64)
    out = head(feats, None, BOXES, (32, 32))
    losses = head.loss_by_feat(out, targets, weight)
    head.zero_grad()
    losses['loss_ig_fused'].backward()
    assert all(c.weight.grad is None or float(c.weight.grad.abs().max())
               == 0 for c in head.classifiers)
    gamma = torch.softmax(head.scale_logits.detach(), 0)
    z = torch.stack([zz.detach() for zz in out.logits])  # (S, N, K)
    zf = torch.einsum('s,snk->nk', gamma, z)
    # MultiLabelSoftMarginLoss: mean_n w_n mean_k BCE -> dL/dz
    dz = weight[:, None] * (torch.sigmoid(zf) - targets) / (2 * 3)
    ref = gamma * torch.einsum('nk,snk->s', dz, z - zf)
    assert torch.allclose(head.scale_logits.grad, ref, atol=1e-10)
    assert float(ref.abs().min()) > 0
    # fused_loss='all': the classifiers get the fused loss's gradient too
    head_all = _head(fused_loss='all').double()
    o = head_all(feats, None, BOXES, (32, 32))
    head_all.loss_by_feat(o, targets)['loss_ig_fused'].backward()
    assert float(head_all.classifiers[0].weight.grad.abs().max()) > 0
    assert float(head_all.scale_logits.grad.abs().max()) > 0
    # the boundary loss on the fused CAM reaches gamma
    head.zero_grad()
    imgs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(
        1), dtype=D64)
    out = head(feats, None, BOXES, (32, 32))
    head.loss_by_feat(out, targets, inputs=imgs)['loss_boundary'].backward()
    assert float(head.scale_logits.grad.abs().max()) > 0


# --------------------------------------------------- proposal selection


def test_one_selection_rule_for_training_and_test():
    """Default: the top ``num_proposals`` by rank in training and at test
    time; ``train_select='random'`` is the old rule (differs)."""
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(40, 2, generator=gen) * 40
    boxes = torch.cat([xy, xy + 4 + torch.rand(40, 2, generator=gen) * 20],
                      1)
    ranks = torch.randperm(40, generator=gen)
    ds = SegDataSample()
    ds.proposals = InstanceData(bboxes=boxes, ranks=ranks)
    head = _head(num_proposals=8)
    assert head.train_select == head.test_select == 'rank'
    head.train()
    train = head.gather_proposals([ds])[0]
    head.eval()
    test = head.gather_proposals([ds])[0]
    ref = boxes[torch.argsort(ranks)[:8]]
    assert torch.equal(train, ref) and torch.equal(test, ref)
    old = _head(num_proposals=8, train_select='random')
    torch.manual_seed(0)
    assert not torch.equal(old.gather_proposals([ds])[0], ref)



def _brute_scale(head, s, feat, inf, boxes, alpha_mode):
    """Per-image loop: slice means, scores, softmax, beta, omega, logits."""
    n, c, h, w = feat.shape
    stride = 32 // h
    cls = head.classifiers[s]
    wmat, bias = cls.weight[:, :, 0, 0], cls.bias
    logits, omegas, cams = [], [], []
    for i in range(n):
        rows = [torch.tensor([0., 0., 32., 32.])]
        if boxes[i] is not None:
            rows += list(boxes[i])
        hs, betas, masks = [], [], []
        for b in rows:
            x1, y1, x2, y2 = (int(v) for v in b / stride)
            region = (feat[i] * inf[i])[:, y1:y2, x1:x2]
            hs.append(region.mean(dim=(1, 2)))
            betas.append(inf[i, 0, y1:y2, x1:x2].mean())
            mask = torch.zeros(h, w)
            mask[y1:y2, x1:x2] = 1
            masks.append(mask)
        hk = torch.stack(hs)
        if alpha_mode == 'feature':
            score = hk @ head.scorers[s].weight[0] + head.scorers[s].bias
        else:
            score = torch.zeros(len(rows))
        alpha = torch.exp(score) / torch.exp(score).sum()
        u = alpha * torch.stack(betas)
        omega = u / u.sum()
        logits.append(wmat @ (omega @ hk) + bias)
        cover = (omega[:, None, None] * torch.stack(masks)).sum(0)
        dense = torch.einsum('kc,chw->khw', wmat, feat[i])
        cams.append(cover * inf[i, 0] * dense + bias[:, None, None])
        omegas.append(omega)
    return torch.stack(logits), omegas, torch.stack(cams)


@pytest.mark.parametrize('alpha_mode', ['feature', 'uniform'])
def test_head_with_proposals_matches_brute_force(alpha_mode):
    feats = _feats()
    gen = torch.Generator().manual_seed(5)
    infs = [torch.rand(2, 1, *hw, generator=gen) * 2 for hw in SIZES]
    head = _head(alpha_mode=alpha_mode)
    if alpha_mode == 'feature':
        for p in head.scorers.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen))
    out = head(feats, infs, BOXES, (32, 32))
    for s in (0, 1):
        logits, omegas, cams = _brute_scale(head, s, feats[s], infs[s],
                                            BOXES, alpha_mode)
        assert torch.allclose(out.logits[s], logits, atol=1e-5)
        assert torch.allclose(out.cams[s], cams, atol=1e-5)
        assert torch.allclose(out.proposal_weights[s][0], omegas[0],
                              atol=1e-6)
        assert torch.allclose(out.proposal_weights[s][1, :1], omegas[1])
        assert float(out.proposal_weights[s][1, 1:].detach().abs().max()) \
            == 0
        # z_s = W_s hbar_s + b_s exactly
        cls = head.classifiers[s]
        assert torch.allclose(
            out.logits[s],
            out.pooled[s] @ cls.weight[:, :, 0, 0].t() + cls.bias,
            atol=1e-5)
    # the proposals change the result (the test above can fail)
    assert not torch.allclose(head(feats, infs).logits[0], out.logits[0])


def _pool_case():
    """Float64 features, a scale-0 influence map and two boxes per image
    aligned to its stride-4 cells."""
    feats = _feats(dtype=D64)
    gen = torch.Generator().manual_seed(6)
    inf = torch.rand(2, 1, 8, 8, generator=gen, dtype=D64)
    boxes = torch.tensor([[[4., 8., 20., 28.], [0., 0., 32., 32.]],
                          [[28., 28., 32., 32.], [8., 0., 16., 32.]]],
                         dtype=D64)
    return feats, inf, boxes


def _view_case():
    """Per-scale influence maps and unaligned proposals of two images."""
    gen = torch.Generator().manual_seed(7)
    infs = [torch.rand(2, 1, *hw, generator=gen) for hw in SIZES]
    boxes = [torch.tensor([[3., 5., 17., 30.], [0., 0., 9., 9.]]),
             torch.tensor([[10., 2., 31., 12.]])]
    return infs, boxes


def test_pooling_and_beta_equal_box_means():
    feats, inf, boxes = _pool_case()
    pooled, beta, area, _ = InstanceGuidedCAMHead.pool_proposals(
        feats[0], inf, boxes, (32, 32))
    for i in range(2):
        for k in range(2):
            x1, y1, x2, y2 = (int(v) // 4 for v in boxes[i, k])
            region = feats[0][i, :, y1:y2, x1:x2] * inf[i, :, y1:y2, x1:x2]
            assert torch.allclose(pooled[i, k], region.mean(dim=(1, 2)))
            assert torch.allclose(beta[i, k], inf[i, 0, y1:y2,
                                                   x1:x2].mean())
            assert area[i, k] == (x2 - x1) * (y2 - y1)


def test_attribution_cam_decomposes_logits():
    feats = _feats()
    infs, boxes = _view_case()
    out = _head(cam_mode='attribution')(feats, infs, boxes, (32, 32))
    for s in range(4):
        assert torch.allclose(
            out.cams[s].mean(dim=(2, 3)), out.logits[s], atol=1e-5)


def test_image_pooling_is_the_literal_gap_and_decomposes_logits():
    feats, inf, boxes = _pool_case()
    pooled, beta, _, _ = InstanceGuidedCAMHead.pool_proposals(
        feats[0], inf, boxes, (32, 32), 'image')
    _, beta_box, _, _ = InstanceGuidedCAMHead.pool_proposals(
        feats[0], inf, boxes, (32, 32))
    for i in range(2):
        for k in range(2):
            x1, y1, x2, y2 = (int(v) // 4 for v in boxes[i, k])
            masked = torch.zeros_like(feats[0][i])
            masked[:, y1:y2, x1:x2] = (feats[0][i] * inf[i])[:, y1:y2, x1:x2]
            assert torch.allclose(pooled[i, k], masked.mean(dim=(1, 2)))
    assert torch.allclose(beta, beta_box)  # eq. (8) keeps / |p_k|
    # with the literal GAP the coverage CAM decomposes the logit
    infs, props = _view_case()
    out = _head(pool_norm='image')(_feats(), infs, props, (32, 32))
    box = _head()(_feats(), infs, props, (32, 32))
    for s in range(4):
        assert torch.allclose(
            out.cams[s].mean(dim=(2, 3)), out.logits[s], atol=1e-5)
        assert not torch.allclose(
            box.cams[s].mean(dim=(2, 3)), box.logits[s], atol=1e-3)
    with pytest.raises(ValueError, match='pool_norm'):
        _head(pool_norm='sum')


def test_dense_cam_drops_the_coverage_factor():
    feats = _feats()
    infs, boxes = _view_case()
    cov = _head()
    dense = _head(cam_mode='dense')
    dense.load_state_dict(cov.state_dict())
    a = cov(feats, infs, boxes, (32, 32))
    b = dense(feats, infs, boxes, (32, 32))
    for s, f in enumerate(feats):
        cls = dense.classifiers[s]
        ref = infs[s] * F.conv2d(f, cls.weight)
        if cls.bias is not None:
            ref = ref + cls.bias[None, :, None, None]
        assert torch.allclose(b.cams[s], ref, atol=1e-5)
        # the logits (training signal) are the coverage mode's
        assert torch.allclose(b.logits[s], a.logits[s], atol=1e-6)
        assert not torch.allclose(b.cams[s], a.cams[s], atol=1e-3)


def test_head_gradients_and_batch_independence():
    feats = [f.requires_grad_(True) for f in _feats()]
    head = _head()
    out = head(feats, None, BOXES, (32, 32))
    (sum(z.sum() for z in out.logits) + out.fused_cam.sum()).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert head.scorers[0].weight.grad.abs().sum() > 0
    # padding does not change image 0
    one = head([f[:1].detach() for f in feats], None, BOXES[:1], (32, 32))
    for s in range(4):
        assert torch.allclose(one.logits[s], out.logits[s][:1], atol=1e-5)


def test_proposal_selection():
    head = _head(num_proposals=2)
    boxes = torch.tensor([[0., 0., 4., 4.], [0., 0., 10., 10.],
                          [0., 0., 6., 6.], [5., 5., 5., 9.]])
    ranks = torch.tensor([2, 0, 1, 3])
    assert head.select_proposals(boxes, ranks, 'rank').tolist() == \
        [[0., 0., 10., 10.], [0., 0., 6., 6.]]
    assert head.select_proposals(boxes, None, 'rank').tolist() == \
        [[0., 0., 4., 4.], [0., 0., 10., 10.]]
    assert head.select_proposals(boxes, ranks, 'area').tolist() == \
        [[0., 0., 10., 10.], [0., 0., 6., 6.]]
    torch.manual_seed(0)
    rand = head.select_proposals(boxes, ranks, 'random')
    assert rand.shape == (2, 4)
    assert all(r.tolist() in boxes[:3].tolist() for r in rand)  # no empty
    # data samples: InstanceData with ranks; eval mode uses test_select
    ds = SegDataSample()
    ds.proposals = InstanceData(bboxes=boxes, ranks=ranks)
    head.eval()
    got = head.gather_proposals([ds, SegDataSample()])
    assert got[0].tolist() == [[0., 0., 10., 10.], [0., 0., 6., 6.]]
    assert got[1] is None
    with pytest.raises(ValueError):
        _head(alpha_mode='free')


# ------------------------------------------------------------- segmentor


def _model_cfg(**kw):
    cfg = dict(
        type='IGCAMSegmentor',
        data_preprocessor=dict(
            type='mmseg.SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            size=(64, 64)),
        backbone=dict(
            type='mmseg.ResNetV1c',
            depth=18,
            stem_channels=8,
            base_channels=8,
            out_indices=(0, 1, 2, 3),
            strides=(1, 2, 2, 2),
            dilations=(1, 1, 1, 1)),
        neck=dict(
            type='mmseg.FPN',
            in_channels=[8, 16, 32, 64],
            out_channels=8,
            num_outs=4),
        attention=dict(type='InfluenceGuidedAttention', in_channels=8),
        cam_head=dict(
            type='InstanceGuidedCAMHead',
            in_channels=8,
            num_classes=4,
            num_proposals=3,
            loss_consistency=dict(type='MultiScaleConsistencyLoss'),
            loss_boundary=dict(type='BoundaryAlignmentLoss')),
        test_cfg=dict(scales=(1.0, ), flip=False))
    cfg.update(kw)
    return cfg


def _samples(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        s = SegDataSample()
        s.set_metainfo(
            dict(
                img_labels=[1 + i % 3, 1 + (i + 1) % 3][:1 + i % 2],
                img_shape=(64, 64),
                ori_shape=(64, 64),
                pad_shape=(64, 64)))
        xy = torch.rand(4, 2, generator=gen) * 40
        wh = torch.rand(4, 2, generator=gen) * 20 + 4
        s.proposals = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1), ranks=torch.arange(4))
        out.append(s)
    return out


def _batch(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return dict(
        inputs=[
            torch.randint(0, 255, (3, 64, 64), generator=gen).float()
            for _ in range(n)
        ],
        data_samples=_samples(n, seed))


def _train_steps(model, steps=2):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for it in range(steps):
        data = model.data_preprocessor(_batch(2, it), training=True)
        losses = model.loss(data['inputs'], data['data_samples'])
        opt.zero_grad()
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        opt.step()
    return losses


@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_segmentor_loss_alpha_gradient_and_curvature(mode):
    torch.manual_seed(0)
    model = MODELS.build(
        _model_cfg(influence_cfg=dict(momentum=1.0, curvature_mode=mode)))
    model.cam_head.num_proposals = None  # all boxes, as in the replay below
    assert isinstance(model, IGCAMSegmentor)
    model.train()
    bn = next(m for m in model.backbone.modules()
              if isinstance(m, nn.BatchNorm2d))
    bn_before = (bn.running_mean.clone(), int(bn.num_batches_tracked))
    data = model.data_preprocessor(_batch(2), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {
        'loss_ig', 'loss_ig_fused', 'loss_consistency', 'loss_boundary',
        'acc_cls', 'gamma_s0', 'gamma_s1', 'gamma_s2', 'gamma_s3'
    }
    assert float(losses['gamma_s2']) == pytest.approx(0.25)  # uniform
    # the eval-mode curvature forward leaves BN statistics and the modes
    # as the training forward alone does (one batch tracked)
    assert int(bn.num_batches_tracked) == bn_before[1] + 1
    assert model.training and model.backbone.training
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert bool((model.attention.alpha.grad != 0).all())
    # one update with momentum 1 = the batch Hessian of each classifier at
    # the pooled features it saw in the chosen BN mode (eval: running
    # statistics, as the validation gradients of the solve; train: batch
    # statistics of the training forward), loss weight 1 / num_scales
    labels = model.cam_head.targets(data['data_samples'])
    boxes = [p.bboxes for p in (d.proposals for d in data['data_samples'])]
    with torch.no_grad():
        if mode == 'eval':
            model.eval()
        # else: replay the training forward (BN batch statistics)
        out, raw, _, _ = model._run(data['inputs'], labels, boxes, (64, 64))
        model.train()
        other, _, _, _ = model._run(data['inputs'], labels, boxes, (64, 64))
        if mode == 'train':
            model.eval()
            other, _, _, _ = model._run(data['inputs'], labels, boxes,
                                        (64, 64))
            model.train()
    assert raw is None  # uniform before the first refresh
    for s, inf in enumerate(model.influence):
        assert inf.curvature.num_updates == 1
        ref = classifier_hessian(
            out.pooled[s].double(), out.logits[s].double(), False,
            loss_weight=0.25)
        assert torch.allclose(inf.curvature.hessian(), ref, atol=1e-6)
        # the two BN modes give different curvatures (the test can fail)
        wrong = classifier_hessian(
            other.pooled[s].double(), other.logits[s].double(), False,
            loss_weight=0.25)
        assert not torch.allclose(inf.curvature.hessian(), wrong, atol=1e-6)


def test_classifier_curvature_equals_autograd_hessian():
    """The head's classification loss is exactly the BCE of ``W hbar``:
    its autograd Hessian w.r.t. one scale classifier equals the
    closed-form curvature built from ``outputs.pooled`` (with proposals,
    influence, learned proposal weights and sample weights)."""
    head = _head(bias=False, alpha_mode='feature').double()
    gen = torch.Generator().manual_seed(8)
    for p in head.scorers.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=D64))
    feats = _feats(dtype=D64)
    infs = [torch.rand(2, 1, *hw, generator=gen, dtype=D64) for hw in SIZES]
    boxes = [torch.tensor([[3., 5., 17., 30.], [0., 0., 9., 9.]]),
             torch.tensor([[10., 2., 31., 12.]])]
    targets = torch.tensor([[1., 0., 1.], [0., 1., 0.]], dtype=D64)
    weight = torch.tensor([0.5, 1.5], dtype=D64)
    s = 1
    name = f'classifiers.{s}.weight'
    w0 = head.classifiers[s].weight.detach().clone()

    def fn(wflat):
        out = functional_call(head, {name: wflat.view_as(w0)},
                              (feats, infs, boxes, (32, 32)))
        return head.loss_by_feat(out, targets, weight)['loss_ig']

    hess = torch.autograd.functional.hessian(fn, w0.flatten())
    out = head(feats, infs, boxes, (32, 32))
    ref = classifier_hessian(
        out.pooled[s], out.logits[s], False, weight=weight,
        loss_weight=head.cls_loss_weight_per_scale)
    k, d = 3, 5
    full = torch.zeros(k * d, k * d, dtype=D64)
    for c in range(k):
        full[c * d:(c + 1) * d, c * d:(c + 1) * d] = ref[c]
    assert torch.allclose(hess, full, atol=1e-10)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_refresh_influence_is_pure_and_deterministic():
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg())
    model.train()
    _train_steps(model, 2)
    model.backbone.layer1.eval()  # a module in eval mode stays so
    twin = copy.deepcopy(model)
    before = _snapshot(model)
    rng = torch.get_rng_state()
    val = _batch(3, seed=10)
    infos = model.refresh_influence(val)
    assert torch.equal(torch.get_rng_state(), rng)
    first = [i.s_val.clone() for i in model.influence]
    after = _snapshot(model)
    assert before.keys() == after.keys()
    for k in before:  # parameters and BN buffers untouched
        assert torch.equal(before[k], after[k]), k
    assert model.training and model.backbone.training
    assert not model.backbone.layer1.training
    assert model.influence_valid and len(infos) == 4
    assert all(i.residual < 1e-8 for i in infos)
    # deterministic: the twin's refreshes give identical solves (the
    # second one runs with the maps of the first, so it differs from it)
    twin.refresh_influence(val)
    for a, b in zip(first, twin.influence):
        assert torch.equal(a, b.s_val)
    model.refresh_influence(val)
    twin.refresh_influence(val)
    for a, b, c in zip(model.influence, twin.influence, first):
        assert torch.equal(a.s_val, b.s_val)
        assert not torch.equal(a.s_val, c)


def test_influence_maps_weights_and_state_round_trip():
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg())
    _train_steps(model, 1)
    data = model.data_preprocessor(_batch(2, 3), training=True)
    labels = model.cam_head.targets(data['data_samples'])
    feats = model.extract_feat(data['inputs'])
    assert model.influence_maps(feats, labels) is None
    assert torch.equal(model.sample_weights(None, 2, 'cpu'), torch.ones(2))
    model.refresh_influence(_batch(3, seed=10))
    raw = model.influence_maps(feats, labels)
    assert [tuple(m.shape) for m in raw] == [(2, 1, 16, 16), (2, 1, 8, 8),
                                            (2, 1, 4, 4), (2, 1, 2, 2)]
    assert all(bool((m >= 0).all()) and m.std() > 0 for m in raw)
    w = model.sample_weights(raw, 2, 'cpu')
    assert w.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert bool(((w >= 0.25) & (w <= 4)).all()) and w.std() > 0
    # a fresh model with the saved states gives the same maps
    other = MODELS.build(_model_cfg())
    other.load_state_dict(model.state_dict())
    other.load_influence_state_dict(model.influence_state_dict())
    raw2 = other.influence_maps(feats, labels)
    for a, b in zip(raw, raw2):
        assert torch.allclose(a, b)
    # the loss uses them (w != 1): the loss changes after the refresh
    model.eval()
    with torch.no_grad():
        losses = model.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses['loss_ig'])
    with pytest.raises(KeyError):
        other.load_influence_state_dict({})
    # mix = 0 blends the maps away: same outputs as uniform influence
    other.influence_cfg['mix'] = 0.0
    other.eval()
    model.eval()
    with torch.no_grad():
        blended, _, maps, _ = other._run(data['inputs'], labels, None,
                                         (64, 64))
        uniform, _, _, _ = model._run(data['inputs'], None, None, (64, 64))
    assert all(torch.equal(m, torch.ones_like(m)) for m in maps)
    assert torch.allclose(blended.fused_cam, uniform.fused_cam, atol=1e-6)


def test_cam_magnitude_control_swaps_the_map():
    """``map_source='cam_magnitude'``: from the first refresh on, every
    scale's map is the mean |W_c F_s(u) + b_c| over the labelled classes
    (through the 32 grid), and that map, not the influence one, reaches the
    attention and the head."""
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg())
    _train_steps(model, 1)
    ctrl = MODELS.build(_model_cfg(influence_cfg=dict(
        map_source='cam_magnitude')))
    ctrl.load_state_dict(model.state_dict())
    ctrl.load_influence_state_dict(model.influence_state_dict())
    model.eval()  # no BN update from here on: the twins stay equal
    ctrl.eval()
    data = model.data_preprocessor(_batch(2, 3), training=True)
    labels = model.cam_head.targets(data['data_samples'])
    feats = model.extract_feat(data['inputs'])
    assert ctrl.influence_maps(feats, labels) is None  # before a refresh
    val = _batch(3, seed=10)
    model.refresh_influence(val)
    ctrl.refresh_influence(val)
    got = ctrl.influence_maps(feats, labels)
    inf = model.influence_maps(feats, labels)
    for s, feat in enumerate(feats):
        w = ctrl.cam_head.classifiers[s].weight[:, :, 0, 0]
        ref = torch.zeros(2, 1, *feat.shape[-2:])
        for i in range(2):
            cls = [c for c in range(3) if labels[i, c] > 0]
            for c in cls:  # bias=False in this head
                ref[i, 0] += (w[c][:, None, None] * feat[i]).sum(0).abs()
            ref[i, 0] /= len(cls)
        ref = F.interpolate(
            F.interpolate(ref, size=(32, 32), mode='bilinear',
                          align_corners=False),
            size=feat.shape[-2:], mode='bilinear', align_corners=False)
        assert torch.allclose(got[s], ref, rtol=1e-5, atol=1e-6)
        # a different map than the influence one
        assert not torch.allclose(got[s] / got[s].mean(),
                                  inf[s] / inf[s].mean(), atol=1e-2)
    # the swapped map is what the head sees: same weights, same state,
    # different fused CAMs; the control equals the influence model whose
    # maps are monkey-patched with |CAM|
    with torch.no_grad():
        a, _, maps_a, _ = ctrl._run(data['inputs'], labels, None, (64, 64))
        b, _, maps_b, _ = model._run(data['inputs'], labels, None, (64, 64))
        model.influence_maps = lambda f, y: ctrl.influence_maps(f, y)
        c, _, _, _ = model._run(data['inputs'], labels, None, (64, 64))
    assert not torch.allclose(a.fused_cam, b.fused_cam, atol=1e-4)
    assert torch.allclose(a.fused_cam, c.fused_cam, atol=1e-6)
    with pytest.raises(ValueError, match='map_source'):
        MODELS.build(_model_cfg(influence_cfg=dict(map_source='saliency')))


def test_frozen_bn_needs_no_extra_curvature_forward():
    """With every BN frozen (norm_eval) the training forward is the eval
    state: the curvature uses it (one forward per loss call, not two) and
    equals the eval-mode replay; with BN training there are two."""
    for norm_eval, forwards in ((True, 1), (False, 2)):
        torch.manual_seed(0)
        cfg = _model_cfg(influence_cfg=dict(momentum=1.0))
        cfg['backbone'] = dict(cfg['backbone'], norm_eval=norm_eval)
        model = MODELS.build(cfg)
        model.cam_head.num_proposals = None
        model.train()
        assert model.train_forward_is_eval() == norm_eval
        calls = []
        run = model._run
        model._run = lambda *a: calls.append(1) or run(*a)
        data = model.data_preprocessor(_batch(2), training=True)
        model.loss(data['inputs'], data['data_samples'])
        assert len(calls) == forwards
        labels = model.cam_head.targets(data['data_samples'])
        boxes = [d.proposals.bboxes for d in data['data_samples']]
        model.eval()
        with torch.no_grad():
            out, _, _, _ = run(data['inputs'], labels, boxes, (64, 64))
        for s, inf in enumerate(model.influence):
            ref = classifier_hessian(
                out.pooled[s].double(), out.logits[s].double(), False,
                loss_weight=0.25)
            assert torch.allclose(inf.curvature.hessian(), ref, atol=1e-6)
    # an active dropout in training mode is mode-dependent too
    cfg['backbone'] = dict(cfg['backbone'], norm_eval=True)
    model = MODELS.build(cfg)
    model.cam_head.drop = nn.Dropout(0.1)
    model.train()
    assert not model.train_forward_is_eval()
    model.cam_head.drop.p = 0.0
    assert model.train_forward_is_eval()


def test_curvature_interval_updates_every_k_with_scaled_momentum():
    torch.manual_seed(0)
    model = MODELS.build(
        _model_cfg(influence_cfg=dict(momentum=0.1, curvature_interval=3)))
    # per-update momentum keeps the EMA memory in iterations: 1 - 0.9^3
    assert model.influence[0].curvature.momentum == pytest.approx(0.271)
    calls = []
    orig = model.update_curvature
    model.update_curvature = lambda *a, **k: calls.append(1) or orig(*a, **k)
    _train_steps(model, 7)
    assert len(calls) == 3  # calls 0, 3 and 6
    assert model.influence[0].curvature.num_updates == 3
    state = model.influence_state_dict()
    assert int(state['curvature_calls']) == 7
    other = MODELS.build(
        _model_cfg(influence_cfg=dict(momentum=0.1, curvature_interval=3)))
    other.load_influence_state_dict(state)
    assert other._curvature_calls == 7
    with pytest.raises(ValueError, match='curvature_interval'):
        MODELS.build(_model_cfg(influence_cfg=dict(curvature_interval=0)))
    with pytest.raises(ValueError, match='curvature_mode'):
        MODELS.build(_model_cfg(influence_cfg=dict(curvature_mode='both')))


def test_boundary_loss_gets_the_unpadded_shapes():
    model = MODELS.build(_model_cfg())
    batch = _batch(2)
    batch['inputs'][1] = batch['inputs'][1][:, :48, :40]  # padded to 64
    for ds, x in zip(batch['data_samples'], batch['inputs']):
        ds.set_metainfo(dict(img_shape=tuple(x.shape[-2:])))
    data = model.data_preprocessor(batch, training=True)
    assert data['inputs'].shape[-2:] == (64, 64)
    seen = []
    forward = model.cam_head.loss_boundary.forward

    def spy(*args, **kwargs):
        seen.append(kwargs['valid_shapes'])
        return forward(*args, **kwargs)

    model.cam_head.loss_boundary.forward = spy
    model.loss(data['inputs'], data['data_samples'])
    assert seen == [[(64, 64), (48, 40)]]


def test_disabled_influence():
    model = MODELS.build(_model_cfg(influence_cfg=None, attention=None))
    data = model.data_preprocessor(_batch(2), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses['loss_ig'])
    assert model.influence == []
    with pytest.raises(RuntimeError):
        model.refresh_influence(_batch(2))


def test_views_scale_and_flip_proposals():
    model = MODELS.build(
        _model_cfg(test_cfg=dict(scales=(1.0, 0.5), flip=True)))
    model.eval()
    seen = []
    forward = model.cam_head.forward

    def spy(feats, influence=None, proposals=None, img_shape=None):
        seen.append((proposals, img_shape))
        return forward(feats, influence, proposals, img_shape)

    model.cam_head.forward = spy
    samples = _samples(1)
    boxes = samples[0].proposals.bboxes[:3]  # rank top-3
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model.predict(inputs, samples)
    assert out[0].pred_sem_seg.data.shape == (1, 64, 64)
    (p1, s1), (p2, s2) = seen
    assert s1 == (64, 64) and s2 == (32, 32)
    assert torch.allclose(p1[0], boxes)
    flipped = torch.stack(
        [64 - boxes[:, 2], boxes[:, 1], 64 - boxes[:, 0], boxes[:, 3]], 1)
    assert torch.allclose(p1[1], flipped)
    assert torch.allclose(p2[0], boxes / 2)
    assert torch.allclose(p2[1], flipped / 2)


@MODELS.register_module(name='_IGCAMTestPyramid', force=True)
class _Pyramid(nn.Module):
    """Parameter-free, flip-equivariant 4-scale features (8 channels)."""

    def forward(self, x):
        f = torch.cat([x, x.abs(), x.pow(2)[:, :2]], dim=1)
        return [F.avg_pool2d(f, 2**(s + 2)) for s in range(4)]


def test_flip_inference_is_consistent_with_flipped_boxes():
    """With a flip-equivariant network the flipped view, with its boxes
    mirrored, gives the mirrored CAM: flip-averaged = unflipped CAMs."""
    cfg = _model_cfg(
        backbone=dict(type='_IGCAMTestPyramid'),
        neck=None,
        cam_head=dict(
            type='InstanceGuidedCAMHead',
            in_channels=8,
            num_classes=4,
            num_proposals=3),
        test_cfg=dict(scales=(1.0, ), flip=False))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    with torch.no_grad():
        model.attention.alpha.fill_(0.5)
    _train_steps(model, 1)
    model.refresh_influence(_batch(2, seed=4))
    model.eval()
    inputs = torch.randn(1, 3, 64, 64)
    samples = _samples(1, seed=2)
    with torch.no_grad():
        plain, _ = model.multi_scale_cams(inputs, samples)
        model.test_cfg.update(flip=True, flip_fusion='mean')
        both, _ = model.multi_scale_cams(inputs, samples)
        bare = _samples(1, seed=2)
        del bare[0].proposals
        no_boxes, _ = model.multi_scale_cams(inputs, bare)
    assert torch.allclose(plain, both, atol=1e-4)
    assert not torch.allclose(plain, no_boxes, atol=1e-3)


class _RecordingRefiner:
    """Refiner stub recording its calls; argmax labels."""
    accepts_influence = True

    def __init__(self):
        self.calls = []

    def __call__(self, img, scores, img_labels, **kwargs):
        self.calls.append((img, scores, list(img_labels), kwargs))
        return np.argmax(scores, axis=0)


def test_predict_passes_influence_to_refiner():
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg())
    _train_steps(model, 1)
    model.eval()
    data = model.data_preprocessor(_batch(2, 3), training=False)
    inputs, samples = data['inputs'], data['data_samples']
    rec = _RecordingRefiner()
    model.refiner = rec
    with torch.no_grad():
        model.predict(inputs, samples)
    # before the first refresh: the 3-argument call, no influence
    assert [c[3] for c in rec.calls] == [{}, {}]
    model.refresh_influence(_batch(3, seed=10))
    model.eval()
    rec.calls.clear()
    with torch.no_grad():
        model.predict(inputs, samples)
    labels = model.cam_head.targets(samples)
    raw = model.influence_maps(model.extract_feat(inputs), labels)
    # reference: mean over scales of the raw maps resized to the 32 grid,
    # then to the 64 x 64 input (= ori_shape here)
    ref = torch.stack([
        F.interpolate(
            F.interpolate(m, size=(32, 32), mode='bilinear',
                          align_corners=False),
            size=(64, 64), mode='bilinear', align_corners=False)
        for m in raw
    ]).mean(0)
    for i, (_, _, _, kw) in enumerate(rec.calls):
        assert kw['influence'].shape == (64, 64)
        np.testing.assert_allclose(kw['influence'], ref[i, 0].numpy(),
                                   rtol=1e-5, atol=1e-7)
        assert kw['influence'].std() > 0
    # a refiner without accepts_influence keeps the 3-argument call
    rec.calls.clear()
    _RecordingRefiner.accepts_influence = False
    try:
        with torch.no_grad():
            model.predict(inputs, samples)
    finally:
        _RecordingRefiner.accepts_influence = True
    assert [c[3] for c in rec.calls] == [{}, {}]
