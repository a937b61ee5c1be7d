# Copyright (c) mmwsss contributors.
"""Tests of ASPPSumHead (DeepLab v2's ASPP classifier).

The reference is an independent computation: the sum over the branches of
``torch.nn.functional.conv2d`` with each branch's weight and bias, padding
and dilation equal to the rate.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmwsss.models.heads import ASPPSumHead
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()


def _head(**kwargs) -> ASPPSumHead:
    cfg = dict(type='ASPPSumHead', in_channels=6, num_classes=5)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


@pytest.mark.parametrize('dilations', [(6, 12, 18, 24), (1, 3)])
def test_forward_is_the_sum_of_dilated_convs(dilations):
    torch.manual_seed(0)
    head = _head(dilations=dilations)
    with torch.no_grad():  # non-zero biases make the check meaningful
        for conv in head.aspp:
            conv.bias.normal_()
    x = torch.randn(2, 6, 29, 33)
    ref = sum(
        F.conv2d(x, conv.weight, conv.bias, padding=d, dilation=d)
        for conv, d in zip(head.aspp, dilations))
    out = head([x])
    assert out.shape == (2, 5, 29, 33)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # each branch sees the border through zero padding of exactly `d`
    for conv, d in zip(head.aspp, dilations):
        assert conv.kernel_size == (3, 3)
        assert conv.dilation == (d, d) and conv.padding == (d, d)


def test_in_index_picks_the_level():
    torch.manual_seed(1)
    head = _head(in_channels=4, in_index=1, dilations=(2, ))
    feats = [torch.randn(1, 3, 8, 8), torch.randn(1, 4, 8, 8)]
    ref = F.conv2d(
        feats[1],
        head.aspp[0].weight,
        head.aspp[0].bias,
        padding=2,
        dilation=2)
    torch.testing.assert_close(head(feats), ref)


def test_no_norm_no_activation_no_conv_seg():
    head = _head()
    assert not hasattr(head, 'conv_seg')
    # the base class's classifier step is refused with a clear message
    with pytest.raises(NotImplementedError, match='no conv_seg'):
        head.cls_seg(torch.zeros(1, 6, 4, 4))
    kinds = {type(m) for m in head.modules()} - {ASPPSumHead}
    # the loss module and the branches only
    assert nn.Conv2d in kinds
    for m in head.modules():
        assert not isinstance(m, nn.modules.batchnorm._NormBase)
        assert not isinstance(
            m, (nn.ReLU, nn.GroupNorm, nn.LayerNorm, nn.Dropout2d))
    names = [n for n, _ in head.named_parameters()]
    assert names == [
        f'aspp.{i}.{k}' for i in range(4) for k in ('weight', 'bias')
    ]
    assert [c.in_channels for c in head.aspp] == [6] * 4
    assert [c.out_channels for c in head.aspp] == [5] * 4


def test_init_normal_001_zero_bias():
    torch.manual_seed(2)
    head = _head(in_channels=256, num_classes=21)
    w = torch.cat([c.weight.flatten() for c in head.aspp])
    assert abs(float(w.std()) - 0.01) < 5e-4  # 193,536 draws
    assert abs(float(w.mean())) < 2e-4
    for conv in head.aspp:
        assert torch.count_nonzero(conv.bias) == 0


def test_loss_backward_reaches_every_branch():
    torch.manual_seed(3)
    head = _head(num_classes=3)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.set_metainfo(dict(img_shape=(32, 32), pad_shape=(32, 32)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 32, 32)))
        samples.append(s)
    losses = head.loss([torch.randn(2, 6, 8, 8)], samples, train_cfg={})
    assert torch.isfinite(losses['loss_ce'])
    losses['loss_ce'].backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_arguments():
    with pytest.raises(ValueError, match='at least one dilation'):
        ASPPSumHead(in_channels=4, num_classes=2, dilations=())
    with pytest.raises(TypeError, match='in_channels'):
        ASPPSumHead(num_classes=2)
