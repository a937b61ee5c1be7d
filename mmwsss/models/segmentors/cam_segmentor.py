# Copyright (c) mmwsss contributors.
"""CAM baseline as an MMSegmentation segmentor."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.structures import SegDataSample
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList)
from torch import Tensor

from mmwsss.cams.cam_ops import (background_scores, fuse_maps, label_mask,
                                 normalize_cams)
from mmwsss.registry import MODELS, TASK_UTILS

DEFAULT_TEST_CFG = dict(
    scales=(1.0, 0.5, 1.5, 2.0),
    flip=True,
    flip_fusion='sum',
    scale_fusion='sum',
    norm='max',
    norm_eps=1e-5,
    use_img_labels=True,
    bg_mode='const',
    bg_thr=0.15,
    bg_alpha=4.0,
    refine=None)


def merge_known_keys(defaults: dict, given: OptConfigType,
                     owner: str) -> dict:
    """``defaults`` updated with ``given``; unknown keys are refused.

    Args:
        defaults (dict): Every known key with its default value.
        given (dict, optional): The user's settings.
        owner (str): Named in the error, e.g. ``'CAMSegmentor test_cfg'``.

    Raises:
        KeyError: ``given`` has a key that ``defaults`` lacks (a typo would
            otherwise be ignored silently).
    """
    cfg = dict(defaults)
    for key, value in dict(given or {}).items():
        if key not in cfg:
            raise KeyError(f'unknown {owner} key "{key}"; known keys: '
                           f'{sorted(cfg)}')
        cfg[key] = value
    return cfg


@MODELS.register_module()
class CAMSegmentor(BaseSegmentor):
    """Class activation map segmentor trained from image-level labels.

    Training: backbone (+ optional neck) -> :class:`CAMHead` -> multi-label
    soft-margin loss on the global average of the CAMs (IRN
    ``resnet50_cam.Net``). Inference (``predict``) computes CAM seeds the
    way IRN's ``make_cam.py`` does and fills ``seg_logits`` and
    ``pred_sem_seg``, so ``tools/test.py`` scores the seeds with
    ``mmseg.IoUMetric`` directly:

    1. for every scale ``s`` in ``test_cfg.scales`` resize the input
       bilinearly (IRN uses PIL bicubic on the image; the difference is
       below the CAM resolution), run the image and its horizontal flip in
       one batch, ReLU the CAMs, fuse the flip pair (``flip_fusion``) and
       upsample to the input size;
    2. fuse scales (``scale_fusion``); remove padding, undo a pipeline flip
       and resize to the original image size;
    3. keep only the image's labelled classes (``use_img_labels``; if
       False, the classes whose fused logit is positive, or the top one);
    4. normalise each class map (``norm``: ``max`` or ``minmax``);
    5. prepend a background channel (``bg_mode``: constant ``bg_thr``,
       ``(1 - max) ** bg_alpha`` or the image's Otsu threshold of ``max``,
       see :func:`~mmwsss.cams.cam_ops.background_scores`) and take the
       argmax (ties go to background), or run the refiner (``refine``,
       e.g. DenseCRF).

    ``seg_logits`` holds the ``(num_classes, H, W)`` scores: channel 0 the
    background score, channel ``c`` the normalised CAM of class ``c`` (zero
    for classes outside the label set).

    Args:
        backbone (dict): Backbone config (e.g. ``mmseg.ResNetV1c``).
        cam_head (dict): CAM head config (:class:`CAMHead`).
        neck (dict, optional): Neck config.
        train_cfg (dict, optional): Unused; kept for MMSeg compatibility.
        test_cfg (dict, optional): Inference options, see
            ``DEFAULT_TEST_CFG``; unknown keys raise a ``KeyError``.
        data_preprocessor (dict, optional): ``mmseg.SegDataPreProcessor``.
        pretrained (str, optional): Backbone checkpoint (MMSeg style).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 cam_head: ConfigType,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pretrained is not None:
            backbone.init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.cam_head = MODELS.build(cam_head)
        self.num_classes = self.cam_head.num_classes
        self.align_corners = False
        self.train_cfg = train_cfg
        self.test_cfg = self._check_test_cfg(test_cfg)
        self.set_refiner(self.test_cfg['refine'])

    @staticmethod
    def _check_test_cfg(test_cfg: OptConfigType) -> dict:
        cfg = merge_known_keys(DEFAULT_TEST_CFG, test_cfg,
                               'CAMSegmentor test_cfg')
        if not cfg['scales']:
            raise ValueError('test_cfg.scales must not be empty')
        return cfg

    def set_refiner(self, refine: OptConfigType) -> None:
        """Set (or, with None, remove) the refinement step of ``predict``."""
        self.test_cfg['refine'] = refine
        self.refiner = TASK_UTILS.build(refine) if refine else None

    # ------------------------------------------------------------------
    # training
    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Backbone (+ neck) features."""
        x = self.backbone(inputs)
        if self.neck is not None:
            x = self.neck(x)
        return x

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Image-level classification loss."""
        return self.cam_head.loss(self.extract_feat(inputs), data_samples)

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """Raw CAMs ``(N, K, h, w)`` of a single forward pass."""
        return self.cam_head(self.extract_feat(inputs))

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Single-scale ReLU CAMs upsampled to the input size."""
        cams = torch.relu(self._forward(inputs))
        return F.interpolate(
            cams, size=inputs.shape[2:], mode='bilinear', align_corners=False)

    # ------------------------------------------------------------------
    # inference
    def _view_cams(self, x: Tensor, data_samples: OptSampleList,
                   in_shape: Tuple[int, int],
                   flip: bool) -> Tuple[Tensor, Tensor]:
        """Raw CAMs and image logits of one inference view.

        Args:
            x (Tensor): The resized inputs, followed by their horizontal
                flips when ``flip``.
            data_samples (list[SegDataSample], optional): The samples of the
                unflipped inputs (unused here; subclasses read proposals or
                labels from them).
            in_shape (tuple[int, int]): ``(H, W)`` of the unresized inputs.
            flip (bool): Whether the second half of ``x`` is flipped.

        Returns:
            tuple[Tensor, Tensor]: ``(2N or N, K, h, w)`` CAMs and logits.
        """
        return self.cam_head.logits(self.extract_feat(x))

    def multi_scale_cams(
            self,
            inputs: Tensor,
            data_samples: OptSampleList = None,
            scales: Optional[Sequence[float]] = None,
            flip: Optional[bool] = None) -> Tuple[Tensor, Tensor]:
        """Fused multi-scale (+ flip) CAMs at the input size.

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` normalised images.
            data_samples (list[SegDataSample], optional): Their samples,
                passed to :meth:`_view_cams`.
            scales (Sequence[float], optional): Input scales instead of
                ``test_cfg.scales``.
            flip (bool, optional): Whether to add flipped views, instead of
                ``test_cfg.flip``.

        Returns:
            tuple[Tensor, Tensor]: ReLU CAMs ``(N, K, H, W)`` fused over
            flips and scales (not normalised), and image logits ``(N, K)``
            averaged over all views.
        """
        cfg = self.test_cfg
        scales = cfg['scales'] if scales is None else tuple(scales)
        flip = cfg['flip'] if flip is None else bool(flip)
        if not scales:
            raise ValueError('multi_scale_cams needs at least one scale')
        n, _, h, w = inputs.shape
        per_scale, logits = [], []
        for scale in scales:
            if scale == 1.0:
                x = inputs
            else:
                size = (max(1, round(h * scale)), max(1, round(w * scale)))
                x = F.interpolate(
                    inputs, size=size, mode='bilinear', align_corners=False)
            if flip:
                x = torch.cat([x, x.flip(-1)], dim=0)
            cams, logit = self._view_cams(x, data_samples, (h, w), flip)
            cams = torch.relu(cams)
            if flip:
                cams = fuse_maps([cams[:n], cams[n:].flip(-1)],
                                 cfg['flip_fusion'])
                logit = (logit[:n] + logit[n:]) / 2
            per_scale.append(
                F.interpolate(
                    cams, size=(h, w), mode='bilinear', align_corners=False))
            logits.append(logit)
        return (fuse_maps(per_scale, cfg['scale_fusion']),
                torch.stack(logits).mean(0))

    @staticmethod
    def _to_original(x: Tensor, meta: dict, mode: str = 'bilinear') -> Tensor:
        """Crop padding, undo a pipeline flip, resize to ``ori_shape``."""
        h, w = x.shape[-2:]
        pad = meta.get('img_padding_size', meta.get('padding_size', None))
        if pad is not None:
            left, right, top, bottom = pad
            x = x[..., top:h - bottom, left:w - right]
        elif 'img_shape' in meta:
            ih, iw = meta['img_shape'][:2]
            x = x[..., :ih, :iw]
        if meta.get('flip', False):
            direction = meta.get('flip_direction', 'horizontal')
            dims = dict(
                horizontal=(-1, ), vertical=(-2, ),
                diagonal=(-2, -1)).get(direction)
            if dims is None:
                raise ValueError(f'unknown flip_direction {direction!r}')
            x = x.flip(dims)
        ori = tuple(meta.get('ori_shape', x.shape[-2:])[:2])
        if tuple(x.shape[-2:]) != ori:
            x = F.interpolate(
                x[None], size=ori, mode=mode,
                align_corners=False if mode == 'bilinear' else None)[0]
        return x

    def rgb_image(self, inputs: Tensor, meta: dict) -> np.ndarray:
        """Recover the uint8 RGB image ``(H, W, 3)`` at ``ori_shape``.

        Undoes the data preprocessor's normalisation (and BGR order when it
        did not convert), then padding, flip and resize, so that a
        refinement step sees the image the CAMs describe.
        """
        pp = self.data_preprocessor
        x = inputs.float()
        if getattr(pp, '_enable_normalize', False):
            x = x * pp.std + pp.mean
        if not getattr(pp, 'channel_conversion', False):
            x = x[[2, 1, 0]]
        x = self._to_original(x, meta)
        img = x.clamp(0, 255).round().byte().permute(1, 2, 0)
        return np.ascontiguousarray(img.cpu().numpy())

    def cam_scores(self, cams: Tensor, logits: Tensor,
                   meta: dict) -> Tuple[Tensor, List[int]]:
        """Class scores with background for one image at ``ori_shape``.

        Args:
            cams (Tensor): ``(K, H, W)`` fused ReLU CAMs at the input size.
            logits (Tensor): ``(K,)`` image logits.
            meta (dict): The sample's meta information.

        Returns:
            tuple[Tensor, list[int]]: ``(num_classes, H0, W0)`` scores and
            the foreground classes used: the sample's ``img_labels`` when
            ``test_cfg.use_img_labels``, else (or when the sample was
            packed with ``img_labels_unknown``) the classes of positive
            ``logits``, or the top one when none is positive.

        Raises:
            KeyError: ``use_img_labels`` and the sample has neither
                ``img_labels`` nor ``img_labels_unknown``.
        """
        cfg = self.test_cfg
        cams = self._to_original(cams, meta)
        # packed without labels on purpose (PackWSSSInputs with
        # allow_missing_labels, e.g. mmseg.apis.inference_model on a new
        # image): the predicted classes, as with use_img_labels=False
        unknown = 'img_labels' not in meta and bool(
            meta.get('img_labels_unknown', False))
        if cfg['use_img_labels'] and not unknown:
            if 'img_labels' not in meta:
                raise KeyError(
                    f'{meta.get("img_path", "image")}: test_cfg.'
                    'use_img_labels=True but the sample has no img_labels; '
                    'pack with PackWSSSInputs or set use_img_labels=False')
            labels = sorted(int(x) for x in meta['img_labels'])
        else:
            labels = [int(i) + 1 for i in torch.nonzero(logits > 0)[:, 0]]
            if not labels:
                labels = [int(logits.argmax()) + 1]
        try:
            keep = label_mask(labels, self.num_classes, cams.device)
        except ValueError as e:
            raise ValueError(f'{meta.get("img_path", "image")}: {e}') \
                from None
        if not torch.isfinite(cams).all():
            raise FloatingPointError(
                f'{meta.get("img_path", "image")}: CAMs contain NaN/Inf '
                '(diverged model or corrupt checkpoint)')
        cams = normalize_cams(cams, cfg['norm'], cfg['norm_eps'])
        cams = cams * keep[:, None, None]
        if labels:
            present = cams[[lab - 1 for lab in labels]]
        else:
            present = cams[:0]
        bg = background_scores(present, cfg['bg_mode'], cfg['bg_thr'],
                               cfg['bg_alpha'])
        return torch.cat([bg, cams], dim=0), labels

    def refine_kwargs(self, inputs: Tensor,
                      data_samples: SampleList) -> List[dict]:
        """Extra keyword arguments of the refiner, one dict per image.

        None here; subclasses pass e.g. influence maps.
        """
        return [dict() for _ in range(inputs.shape[0])]

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """CAM seeds (optionally refined) as segmentation predictions.

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` normalised images.
            data_samples (list[SegDataSample], optional): Samples with
                ``img_labels`` and the usual MMSeg meta information.

        Returns:
            list[SegDataSample]: Samples with ``seg_logits`` (class scores,
            background first), ``pred_sem_seg`` and ``pred_img_logits``:
            the ``(num_classes - 1,)`` foreground image logits (before
            sigmoid) of :meth:`multi_scale_cams`, i.e. averaged over the
            ``test_cfg`` scales and flips, read by
            :class:`~mmwsss.evaluation.MultiLabelClsMetric`.
        """
        if data_samples is None:
            h, w = inputs.shape[2:]
            data_samples = [
                SegDataSample(
                    metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
                for _ in range(inputs.shape[0])
            ]
        cams, logits = self.multi_scale_cams(inputs, data_samples)
        extra = (
            self.refine_kwargs(inputs, data_samples)
            if self.refiner is not None else None)
        for i, ds in enumerate(data_samples):
            meta = ds.metainfo
            scores, labels = self.cam_scores(cams[i], logits[i], meta)
            if self.refiner is not None:
                pred = self.refiner(
                    self.rgb_image(inputs[i], meta),
                    scores.cpu().numpy(), labels, **extra[i])
                pred = torch.from_numpy(np.asarray(pred, dtype=np.int64))
                pred = pred.to(scores.device)
            else:
                pred = scores.argmax(dim=0)
            ds.set_data(
                dict(
                    seg_logits=PixelData(data=scores),
                    pred_sem_seg=PixelData(data=pred[None])))
            # image-level logits for mmwsss.MultiLabelClsMetric
            ds.set_field(logits[i].detach(), 'pred_img_logits')
        return data_samples
