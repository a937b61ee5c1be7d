# Copyright (c) mmwsss contributors.
"""Tests of :class:`CAMSegmentor`, :class:`CAMHead` and the multi-label loss.

The backbone is a parameter-free module whose output at column ``j`` of a
``W``-wide input is ``x[..., j] * (2 j - 1)``; it is *not* flip-equivariant
and it turns some activations negative, so that a missing flip-back, a ReLU
taken after instead of before the flip fusion, or a wrong fusion mode all
change the result. The head is a 1x1 convolution with the fixed weight
``HEAD_W``. All expected numbers below are worked out by hand in the
comments.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.structures import SegDataSample

import mmwsss.models  # noqa: F401
from mmwsss.models import CAMSegmentor
from mmwsss.models.losses import MultiLabelSoftMarginLoss


class ColumnRamp(nn.Module):
    """``f(x)[..., j] = x[..., j] * (2 j - 1)``; returns a 1-tuple."""

    def forward(self, x):
        w = x.shape[-1]
        ramp = 2 * torch.arange(w, dtype=x.dtype) - 1
        return (x * ramp, )


class Identity(nn.Module):

    def forward(self, x):
        return (x, )


# classes 1..3 (num_classes=4 with background): c1 = x0, c2 = x1 + x2,
# c3 = x0 - x1
HEAD_W = torch.tensor([[1., 0., 0.], [0., 1., 1.], [1., -1., 0.]])

# the asymmetric 1x3 image used throughout
#   x0 = [3, 1, 0], x1 = [0, 1, 2], x2 = [1, 1, 1]
IMG = torch.tensor([[[3., 1., 0.]], [[0., 1., 2.]], [[1., 1., 1.]]])[None]
# backbone ramp for W=3: [-1, 1, 3]
# unflipped features: x0 [-3, 1, 0], x1 [0, 1, 6], x2 [-1, 1, 3]
#   raw cams: c1 [-3, 1, 0], c2 [-1, 2, 9], c3 [-3, 0, -6]
#   relu:     c1 [ 0, 1, 0], c2 [ 0, 2, 9], c3 [ 0, 0,  0]
# flipped input: x0 [0, 1, 3], x1 [2, 1, 0], x2 [1, 1, 1]
#   features: x0 [0, 1, 9], x1 [-2, 1, 0], x2 [-1, 1, 3]
#   raw cams: c1 [0, 1, 9], c2 [-3, 2, 3], c3 [2, 0, 9]
#   relu, flipped back: c1 [9, 1, 0], c2 [3, 2, 0], c3 [9, 0, 2]
RELU_PLAIN = [[0., 1., 0.], [0., 2., 9.], [0., 0., 0.]]
FUSED = {
    'sum': [[9., 2., 0.], [3., 4., 9.], [9., 0., 2.]],
    'max': [[9., 1., 0.], [3., 2., 9.], [9., 0., 2.]],
    'mean': [[4.5, 1., 0.], [1.5, 2., 4.5], [4.5, 0., 1.]],
}
# image logits (GAP of raw cams): unflipped [-2/3, 10/3, -3],
# flipped [10/3, 2/3, 11/3]; flip-averaged [4/3, 2, 1/3]
LOGITS_PLAIN = [-2 / 3, 10 / 3, -3.]
LOGITS_FLIP = [10 / 3, 2 / 3, 11 / 3]


def build(backbone=ColumnRamp, **test_cfg):
    cfg = dict(scales=(1.0, ), flip=True, norm='max', bg_mode='const')
    cfg.update(test_cfg)
    model = CAMSegmentor(
        backbone=dict(type=backbone),
        cam_head=dict(
            type='CAMHead', in_channels=3, num_classes=4, init_cfg=None),
        test_cfg=cfg)
    with torch.no_grad():
        model.cam_head.classifier.weight.copy_(HEAD_W[:, :, None, None])
    return model.eval()


def sample(labels=(), **meta):
    meta.setdefault('ori_shape', (1, 3))
    meta.setdefault('img_shape', (1, 3))
    return SegDataSample(metainfo=dict(img_labels=list(labels), **meta))


def predict(model, img, labels=(), **meta):
    with torch.no_grad():
        out = model.predict(img, [sample(labels, **meta)])[0]
    return out.seg_logits.data, out.pred_sem_seg.data


def row(*vals):
    """(C, 1, W) tensor from per-channel rows."""
    return torch.tensor(vals, dtype=torch.float32)[:, None, :]


# ----------------------------------------------------------------------
# training loss


def softplus(x):
    return math.log1p(math.exp(x))


def test_loss_matches_multilabel_soft_margin_by_hand():
    model = build().train()
    imgs = torch.cat([IMG, IMG.flip(-1)])
    samples = [sample([1, 3]), sample([1, 2, 3])]
    losses = model.loss(imgs, samples)
    # closed form: mean_c softplus(-x) if y_c = 1 else softplus(x)
    l0 = (softplus(2 / 3) + softplus(10 / 3) + softplus(3.)) / 3
    l1 = (softplus(-10 / 3) + softplus(-2 / 3) + softplus(-11 / 3)) / 3
    assert losses['loss_cls'].item() == pytest.approx((l0 + l1) / 2, 1e-6)
    ref = F.multilabel_soft_margin_loss(
        torch.tensor([LOGITS_PLAIN, LOGITS_FLIP]),
        torch.tensor([[1., 0., 1.], [1., 1., 1.]]))
    torch.testing.assert_close(losses['loss_cls'], ref)
    # exact match: image 0 predicts {2} for {1, 3}, image 1 is right
    assert losses['acc_cls'].item() == pytest.approx(0.5)
    # gradient reaches the classifier
    losses['loss_cls'].backward()
    assert model.cam_head.classifier.weight.grad.abs().sum() > 0


def test_loss_weights_and_reductions():
    logits = torch.tensor([[-2 / 3, 10 / 3, -3.], [10 / 3, 2 / 3, 11 / 3]])
    target = torch.tensor([[1., 0., 1.], [0., 1., 1.]])
    per_img = F.multilabel_soft_margin_loss(logits, target, reduction='none')
    l1 = (softplus(10 / 3) + softplus(-2 / 3) + softplus(-11 / 3)) / 3
    assert per_img[1].item() == pytest.approx(l1, 1e-6)
    w = torch.tensor([0.25, 2.0])
    loss = MultiLabelSoftMarginLoss(loss_weight=3.0)
    torch.testing.assert_close(
        loss(logits, target, w), 3.0 * (per_img * w).mean())
    torch.testing.assert_close(loss(logits, target), 3.0 * per_img.mean())
    torch.testing.assert_close(
        MultiLabelSoftMarginLoss(reduction='sum')(logits, target, w),
        (per_img * w).sum())
    torch.testing.assert_close(
        MultiLabelSoftMarginLoss(reduction='none')(logits, target), per_img)
    with pytest.raises(ValueError, match='differ in shape'):
        loss(logits, target[:, :2])
    with pytest.raises(ValueError, match='reduction'):
        MultiLabelSoftMarginLoss(reduction='avg')
    assert MultiLabelSoftMarginLoss(loss_name='loss_x').loss_name == 'loss_x'


def test_loss_needs_img_labels():
    model = build().train()
    ds = SegDataSample(metainfo=dict(ori_shape=(1, 3)))
    with pytest.raises(KeyError, match='img_labels'):
        model.loss(IMG, [ds])


# ----------------------------------------------------------------------
# inference: flips, relu order, logits


@pytest.mark.parametrize('fusion', ['sum', 'max', 'mean'])
def test_flip_fusion_by_hand(fusion):
    model = build(flip_fusion=fusion, norm='none')
    cams, logits = model.multi_scale_cams(IMG)
    torch.testing.assert_close(cams[0], row(*FUSED[fusion]))
    torch.testing.assert_close(
        logits[0], torch.tensor([4 / 3, 2., 1 / 3]), rtol=0, atol=1e-6)
    # norm 'none': seg_logits are the fused ReLU CAMs of the labelled
    # classes after a constant background of 0.15
    scores, _ = predict(model, IMG, [1, 2, 3])
    torch.testing.assert_close(
        scores, torch.cat([torch.full((1, 1, 3), .15),
                           row(*FUSED[fusion])]))


def test_no_flip_by_hand():
    model = build(flip=False, norm='none')
    cams, logits = model.multi_scale_cams(IMG)
    torch.testing.assert_close(cams[0], row(*RELU_PLAIN))
    torch.testing.assert_close(
        logits[0], torch.tensor(LOGITS_PLAIN), rtol=0, atol=1e-6)


def test_batch_images_are_independent():
    model = build(flip_fusion='max', norm='none')
    cams, logits = model.multi_scale_cams(torch.cat([IMG, IMG.flip(-1)]))
    torch.testing.assert_close(cams[0], row(*FUSED['max']))
    # the flipped image gives the mirrored CAMs
    torch.testing.assert_close(cams[1], row(*FUSED['max']).flip(-1))


# ----------------------------------------------------------------------
# inference: labels, normalisation, background, argmax


def test_max_norm_const_bg_by_hand():
    model = build(flip_fusion='sum', bg_thr=0.15)
    scores, pred = predict(model, IMG, [1, 3])
    e = 1e-5
    # c1 [9, 2, 0] / 9, c2 unlabelled -> 0, c3 [9, 0, 2] / 9
    expected = row([.15] * 3, [9 / (9 + e), 2 / (9 + e), 0.], [0.] * 3,
                   [9 / (9 + e), 0., 2 / (9 + e)])
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-6)
    # column 0: tie c1 = c3 -> the lower class index, 2/9 > 0.15 -> class
    assert pred.tolist() == [[[1, 1, 3]]]
    assert pred.dtype == torch.int64


def test_minmax_norm_by_hand():
    model = build(flip_fusion='sum', norm='minmax', norm_eps=0.0)
    scores, pred = predict(model, IMG, [2])
    # c2 [3, 4, 9]: (x - 3) / 6 = [0, 1/6, 1]; 'max' would give [1/3, 4/9, 1]
    torch.testing.assert_close(
        scores, row([.15] * 3, [0.] * 3, [0., 1 / 6, 1.], [0.] * 3))
    assert pred.tolist() == [[[0, 2, 2]]]


def test_power_background_by_hand():
    model = build(
        flip_fusion='sum', bg_mode='power', bg_alpha=2.0, norm_eps=0.0)
    scores, pred = predict(model, IMG, [1, 3])
    # max over labelled classes [1, 2/9, 2/9] -> bg [0, (7/9)^2, (7/9)^2]
    bg = (7 / 9)**2
    torch.testing.assert_close(
        scores, row([0., bg, bg], [1., 2 / 9, 0.], [0.] * 3, [1., 0., 2 / 9]))
    assert pred.tolist() == [[[1, 0, 0]]]
    # only class 2: c2 [3, 4, 9] / 9 = [1/3, 4/9, 1]
    # bg [(2/3)^2, (5/9)^2, 0] = [.444, .309, 0]
    scores, pred = predict(model, IMG, [2])
    torch.testing.assert_close(scores[0], row([4 / 9, 25 / 81, 0.])[0])
    assert pred.tolist() == [[[0, 2, 2]]]


def test_ties_go_to_background():
    model = build(flip_fusion='sum', norm_eps=0.0, bg_thr=1.0)
    scores, pred = predict(model, IMG, [1, 3])
    # column 0: bg = c1 = c3 = 1 exactly
    assert scores[:, 0, 0].tolist() == [1., 1., 0., 1.]
    assert pred.tolist() == [[[0, 0, 0]]]
    model = build(flip_fusion='sum', norm_eps=0.0, bg_thr=0.0)
    _, pred = predict(model, IMG, [1, 3])
    # column 1: c1 = 2/9 > 0; column 2: c3 = 2/9 > 0
    assert pred.tolist() == [[[1, 1, 3]]]
    # unlabelled class 2 is strongest in column 2 but is zeroed, and a
    # zero score ties with a zero background
    _, pred = predict(model, IMG, [1])
    assert pred.tolist() == [[[1, 1, 0]]]


@pytest.mark.parametrize('bg_mode,bg', [('const', .15), ('power', 1.)])
def test_no_labels(bg_mode, bg):
    model = build(bg_mode=bg_mode)
    scores, pred = predict(model, IMG, [])
    assert scores.shape == (4, 1, 3)
    torch.testing.assert_close(
        scores, torch.cat([torch.full((1, 1, 3), bg),
                           torch.zeros(3, 1, 3)]))
    assert pred.tolist() == [[[0, 0, 0]]]


def test_labels_from_logits():
    # flip=False: logits [-2/3, 10/3, -3] -> only class 2 is kept although
    # c1 [0, 1, 0] is positive
    model = build(flip=False, use_img_labels=False, norm_eps=0.0)
    scores, pred = predict(model, IMG, [1, 3])  # img_labels are ignored
    torch.testing.assert_close(
        scores, row([.15] * 3, [0.] * 3, [0., 2 / 9, 1.], [0.] * 3))
    assert pred.tolist() == [[[0, 2, 2]]]
    # no positive logit: x0 = [1, 0, 0] -> logits [-1/3, 0, -1/3]; the top
    # one (class 2) is used
    img = torch.zeros(1, 3, 1, 3)
    img[0, 0, 0, 0] = 1.
    cams, logits = model.multi_scale_cams(img)
    _, labels = model.cam_scores(cams[0], logits[0], dict(ori_shape=(1, 3)))
    assert labels == [2]


def test_missing_img_labels_raises():
    model = build()
    ds = SegDataSample(metainfo=dict(ori_shape=(1, 3), img_path='a.jpg'))
    with pytest.raises(KeyError, match='a.jpg.*img_labels'):
        model.predict(IMG, [ds])


def test_predict_without_samples():
    model = build(use_img_labels=False, flip=False, norm_eps=0.0)
    with torch.no_grad():
        out = model.predict(IMG)
    assert out[0].pred_sem_seg.data.tolist() == [[[0, 2, 2]]]


def test_nan_cams_raise():
    model = build()
    img = IMG.clone()
    img[0, 0, 0, 1] = float('nan')
    with pytest.raises(FloatingPointError, match='NaN'):
        predict(model, img, [1])


# ----------------------------------------------------------------------
# inference: scales


def test_scales_by_hand():
    """Constant image x0 = 1 (2x2): resizing keeps it constant.

    Per scale the ReLU CAM of class 1 is relu(2 j - 1) over the resized
    width, without flip:
      s=1   (2x2): [0, 1]
      s=2   (4x4): [0, 1, 3, 5] -> bilinear down to 2: [.5, 4]
      s=0.5 (1x1): [0]          -> up to 2: [0, 0]
    """
    img = torch.zeros(1, 3, 2, 2)
    img[:, 0] = 1.
    ref = {'sum': [.5, 5.], 'max': [.5, 4.], 'mean': [.5 / 3, 5 / 3]}
    for fusion, vals in ref.items():
        model = build(
            flip=False,
            scales=(1.0, 2.0, 0.5),
            scale_fusion=fusion,
            norm='none')
        cams, logits = model.multi_scale_cams(img)
        exp = torch.tensor(vals).expand(2, 2)
        torch.testing.assert_close(cams[0, 0], exp)
        torch.testing.assert_close(cams[0, 2], exp)  # c3 = x0 - x1
        assert cams[0, 1].abs().max() == 0
        # logits: GAP of c1 = mean(2j - 1) = [0, 2, -1] -> mean 1/3
        torch.testing.assert_close(logits[0, 0], torch.tensor(1 / 3))
    # with flips (sum): s=1 [0, 1] + [1, 0] = [1, 1];
    # s=2 [0, 1, 3, 5] + [5, 3, 1, 0] = [5, 4, 4, 5] -> [4.5, 4.5]; s=.5: 0
    model = build(
        scales=(1.0, 2.0, 0.5),
        flip_fusion='sum',
        scale_fusion='sum',
        norm='none')
    cams, _ = model.multi_scale_cams(img)
    torch.testing.assert_close(cams[0, 0], torch.full((2, 2), 5.5))


# ----------------------------------------------------------------------
# inference: padding, pipeline flip, resize to the original shape


def test_padding_and_pipeline_flip_are_undone():
    """The pipeline flipped IMG and the preprocessor padded it.

    With an identity backbone and no test flip, CAMs of the original image
    are c1 = [3, 1, 0], c2 = [1, 2, 3], c3 = relu([3, 0, -2]) = [3, 0, 0].
    """
    model = build(Identity, flip=False, norm='none')
    padded = torch.zeros(1, 3, 3, 5)  # padding: right 2, bottom 2
    padded[..., :1, :3] = IMG.flip(-1)
    padded[..., 2:, :] = 50.  # garbage in the padding must not leak
    expected = row([.15] * 3, [3., 1., 0.], [1., 2., 3.], [3., 0., 0.])
    for meta in (dict(padding_size=[0, 2, 0, 2]),
                 dict(img_padding_size=(0, 2, 0, 2)),
                 dict(pad_shape=(3, 5))):  # crop by img_shape
        scores, pred = predict(
            model,
            padded, [1, 2, 3],
            img_shape=(1, 3),
            ori_shape=(1, 3),
            flip=True,
            flip_direction='horizontal',
            **meta)
        torch.testing.assert_close(scores, expected)
        assert pred.tolist() == [[[1, 2, 2]]]
    # without the flip flag the map stays mirrored
    scores, _ = predict(model, padded, [1, 2, 3], padding_size=[0, 2, 0, 2])
    torch.testing.assert_close(scores, expected.flip(-1))


def test_left_top_padding_and_vertical_flip():
    model = build(Identity, flip=False, norm='none')
    # original 3x1 column image (transpose of IMG), flipped vertically and
    # padded 1 left, 1 top
    col = IMG.transpose(-1, -2)
    padded = torch.full((1, 3, 4, 2), 7.)
    padded[..., 1:, 1:] = col.flip(-2)
    scores, _ = predict(
        model,
        padded, [1, 2, 3],
        padding_size=[1, 0, 1, 0],
        img_shape=(3, 1),
        ori_shape=(3, 1),
        flip=True,
        flip_direction='vertical')
    expected = row([.15] * 3, [3., 1., 0.], [1., 2., 3.], [3., 0., 0.])
    torch.testing.assert_close(scores, expected.transpose(-1, -2))


def test_diagonal_pipeline_flip():
    # mmcv RandomFlip's 'diagonal' flips both axes
    model = build(Identity, flip=False, norm='none')
    img = torch.cat([IMG, IMG + 1], dim=-2)  # 2x3, rows differ
    scores, _ = predict(
        model,
        img.flip(-1, -2), [1],
        img_shape=(2, 3),
        ori_shape=(2, 3),
        flip=True,
        flip_direction='diagonal')
    # c1 = x0: [[3, 1, 0], [4, 2, 1]]
    torch.testing.assert_close(scores[1],
                               torch.tensor([[3., 1., 0.], [4., 2., 1.]]))
    with pytest.raises(ValueError, match='flip_direction'):
        predict(
            model,
            img, [1],
            img_shape=(2, 3),
            ori_shape=(2, 3),
            flip=True,
            flip_direction='sideways')


def test_resize_to_ori_shape_by_hand():
    model = build(Identity, flip=False, norm='none')
    scores, _ = predict(model, IMG, [1], ori_shape=(2, 6))
    # 3 -> 6 columns, align_corners=False: source x = (j + .5) / 2 - .5
    # = [-.25, .25, .75, 1.25, 1.75, 2.25] (clamped at the borders);
    # c1 = [3, 1, 0] -> [3, 2.5, 1.5, .75, .25, 0]
    exp = torch.tensor([3., 2.5, 1.5, .75, .25, 0.]).expand(2, 6)
    assert scores.shape == (4, 2, 6)
    torch.testing.assert_close(scores[1], exp)
    assert scores[2:].abs().max() == 0


# ----------------------------------------------------------------------
# config


def test_test_cfg_checks():
    with pytest.raises(KeyError, match='flip_mode'):
        build(flip_mode='max')
    with pytest.raises(ValueError, match='scales'):
        build(scales=())
    model = build()
    assert model.test_cfg['bg_thr'] == 0.15  # defaults filled in
    assert model.refiner is None
