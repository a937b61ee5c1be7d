# Copyright (c) mmwsss contributors.
"""AffinityNet: learned pixel affinities and random-walk CAM refinement."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList)
from torch import Tensor

# the heads are imported for their registration too
from mmwsss.models.heads import AffinityHead  # noqa: F401
from mmwsss.models.heads import BoundaryAffinityHead  # noqa: F401
from mmwsss.models.heads.affinity_head import BaseAffinityHead
from mmwsss.refine.affinity_random_walk import (affinity_transition,
                                                check_walk_cfg, random_walk,
                                                resolve_walk)
from mmwsss.registry import MODELS
from .cam_segmentor import CAMSegmentor, merge_known_keys

BG_MODES = ('power', 'const')

DEFAULT_TEST_CFG = dict(
    cam_dir=None,
    flip=False,
    radius=5,
    beta=8.0,
    n_steps=256,
    bg_mode='power',
    bg_alpha=16.0,
    bg_thr=0.25,
    refine=None)


def load_cam_scores(path: str) -> Tuple[np.ndarray, Optional[List[int]]]:
    """Read a ``<stem>.npz`` score file of ``make_pseudo_labels``.

    Args:
        path (str): File with ``scores`` ``(C, H, W)`` (channel 0 the
            background score, channel ``c`` the normalised CAM of class
            ``c``) and optionally ``img_labels``.

    Returns:
        tuple: float32 scores and the sorted image labels (None when the
        file has none).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'CAM scores not found: {path} (write them with '
            'tools/make_pseudo_labels.py --save-scores and point '
            'test_cfg.cam_dir at the scores folder)')
    try:
        with np.load(path) as data:
            scores = np.asarray(data['scores'], dtype=np.float32)
            labels = None
            if 'img_labels' in data.files:
                labels = sorted(int(x) for x in np.ravel(data['img_labels']))
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f'cannot read CAM scores {path}: '
                         f'{type(e).__name__}: {e}') from None
    if scores.ndim != 3 or scores.shape[0] < 1:
        raise ValueError(f'{path}: scores must be a (C, H, W) array, got '
                         f'shape {scores.shape}')
    if not np.isfinite(scores).all():
        raise ValueError(f'{path}: scores contain NaN or infinite values')
    return scores, labels


@MODELS.register_module()
class AffinityNet(BaseSegmentor):
    """AffinityNet (Ahn & Kwak, CVPR 2018) for CamGuide's RW refinement.

    CamGuide Tables IV-VI, "RW: Random Walk with AffinityNet": an affinity
    network is trained on confident CAM labels and its affinities drive a
    random walk that propagates the CAMs (then dCRF).

    The head decides what an affinity is (a
    :class:`~mmwsss.models.heads.affinity_head.BaseAffinityHead`):

    - :class:`~mmwsss.models.heads.AffinityHead` (PSA): affinity features,
      ``a_ij = exp(-mean_d |f_i - f_j|)``;
    - :class:`~mmwsss.models.heads.BoundaryAffinityHead` (IRN, Ahn, Cho &
      Kwak, CVPR 2019): boundary logits, ``a_ij = 1 - max B`` over the
      straight path between the two nodes; with the head's default the
      walked CAMs are first multiplied by ``1 - B`` (IRN
      ``propagate_to_edge``). IRN's constants: ``beta=10``, 256 steps,
      ``radius=5`` at inference (10 in training), ``bg_mode='const'``
      with ``bg_thr=0.25``, ``flip=True``.

    **Training** (``loss``): backbone (+ neck) -> head; the ``gt_sem_seg``
    of each sample is the confident label map of
    ``tools/make_affinity_labels.py`` (0 background, ``1..K-1``
    foreground, 255 uncertain) at input resolution, which the head
    resizes to its grid with nearest neighbours; the pair loss
    ``bg/4 + fg/4 + neg/2`` of PSA and IRN on the head's affinities.

    **Inference** (``predict``), PSA ``infer_aff.py``:

    1. read the image's saved CAM scores ``<test_cfg.cam_dir>/<stem>.npz``
       (``scores`` at the original size, channel 0 a background score,
       channels ``1..`` normalised CAMs, zero outside ``img_labels``, as
       ``tools/make_pseudo_labels.py --save-scores`` writes them);
    2. ``bg_mode='power'`` (PSA): replace channel 0 by
       ``(1 - max_c cam_c) ** bg_alpha`` (alpha 16) and walk all channels;
       ``bg_mode='const'`` (IRN ``make_sem_seg_labels.py``): walk the
       foreground CAMs only;
    3. map the maps onto the network input (resize to ``img_shape``, pipeline
       flip, zero padding) and average-pool them to the affinity grid
       (PSA ``avg_pool2d(8, 8)``; adaptive pooling for other sizes);
    4. the head's outputs on the input (``flip=True`` averages them with
       those of the mirrored input: the features for PSA's head, the
       boundary logits before the sigmoid for IRN's, as IRN's
       ``EdgeDisplacement``); the head's pair affinities ``a ** beta``
       (``radius``, ``beta``) give the sparse transition ``T``
       (:func:`~mmwsss.refine.affinity_random_walk.affinity_transition`),
       the head may reweight the pooled maps (IRN: ``* (1 - B)``) and
       the walk is ``cams @ T ** n_steps``
       (:func:`~mmwsss.refine.affinity_random_walk.random_walk`);
       ``radius`` may be relative to the affinity grid's side
       (``dict(rel=5 / 128, min=2)``) and ``n_steps`` a reach
       (``dict(reach=0.41)``: the spread of IRN's 256 steps at radius 5
       on a 128-node grid), both resolved per image
       (:func:`~mmwsss.refine.affinity_random_walk.resolve_walk`);
    5. bilinear upsampling to the input size, removal of padding / flip /
       resize (:meth:`CAMSegmentor._to_original`); with ``'const'``
       division by the global maximum and a constant background
       ``bg_thr`` (IRN 0.25);
    6. argmax over the background and the image's classes, or the refiner
       (``refine``, e.g. ``dict(type='DenseCRF', preset='irn_label')``,
       called as ``refiner(img_uint8, scores, img_labels)``).

    ``seg_logits`` holds the ``(C, H0, W0)`` walked scores (background
    first, zero for classes outside the image's labels) and
    ``pred_sem_seg`` the labels, so ``tools/test.py`` scores them with
    ``mmseg.IoUMetric``.

    Args:
        backbone (dict): Backbone config with several ``out_indices``.
        affinity_head (dict): Head config, ``AffinityHead`` (PSA) or
            ``BoundaryAffinityHead`` (IRN).
        neck (dict, optional): Neck config.
        num_classes (int, optional): Classes including background; when
            given, score files with another channel count are refused.
        train_cfg (dict, optional): Unused; kept for MMSeg compatibility.
        test_cfg (dict, optional): Inference options, see
            ``DEFAULT_TEST_CFG``; unknown keys raise a ``KeyError``.
        data_preprocessor (dict, optional): ``mmseg.SegDataPreProcessor``.
        pretrained (str, optional): Backbone checkpoint (MMSeg style).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 affinity_head: ConfigType,
                 neck: OptConfigType = None,
                 num_classes: Optional[int] = None,
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
        self.affinity_head = MODELS.build(affinity_head)
        if not isinstance(self.affinity_head, BaseAffinityHead):
            raise TypeError(
                'affinity_head must be a BaseAffinityHead (AffinityHead, '
                'BoundaryAffinityHead), got '
                f'{type(self.affinity_head).__name__}')
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(f'num_classes must be >= 2 (background '
                             f'included), got {num_classes}')
        self.num_classes = None if num_classes is None else int(num_classes)
        self.align_corners = False
        self.train_cfg = train_cfg
        self.test_cfg = self._check_test_cfg(test_cfg)
        self.set_refiner(self.test_cfg['refine'])

    @staticmethod
    def _check_test_cfg(test_cfg: OptConfigType) -> dict:
        cfg = merge_known_keys(DEFAULT_TEST_CFG, test_cfg,
                               'AffinityNet test_cfg')
        if cfg['bg_mode'] not in BG_MODES:
            raise ValueError(f'test_cfg.bg_mode must be one of {BG_MODES}, '
                             f'got {cfg["bg_mode"]!r}')
        try:
            check_walk_cfg(cfg['radius'], cfg['n_steps'])
        except ValueError as e:
            raise ValueError(f'test_cfg: {e}') from None
        if not float(cfg['beta']) > 0:
            raise ValueError(f'test_cfg.beta must be > 0, got {cfg["beta"]}')
        if not float(cfg['bg_alpha']) > 0:
            raise ValueError('test_cfg.bg_alpha must be > 0, got '
                             f'{cfg["bg_alpha"]}')
        return cfg

    # shared with the CAM segmentor
    set_refiner = CAMSegmentor.set_refiner

    # ------------------------------------------------------------------
    # training
    extract_feat = CAMSegmentor.extract_feat

    def affinity_features(self, inputs: Tensor) -> Tensor:
        """Head outputs ``(N, D, h, w)`` of a batch (affinity features of
        PSA's head, ``D = 1`` boundary logits of IRN's)."""
        return self.affinity_head(self.extract_feat(inputs))

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """Head outputs ``(N, D, h, w)`` (``mode='tensor'``)."""
        return self.affinity_features(inputs)

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Head outputs; AffinityNet has no per-class decoder."""
        return self.affinity_features(inputs)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """The head's pair loss on the samples' confident labels."""
        labels = self.affinity_head.sample_labels(data_samples)
        return self.affinity_head.loss_by_feat(
            self.affinity_features(inputs), labels.to(inputs.device))

    # ------------------------------------------------------------------
    # inference
    _to_original = staticmethod(CAMSegmentor._to_original)
    rgb_image = CAMSegmentor.rgb_image

    @staticmethod
    def _from_original(x: Tensor, meta: dict,
                       in_shape: Sequence[int]) -> Tensor:
        """Inverse of :meth:`_to_original`: original size -> input layout.

        Resizes ``(C, H0, W0)`` maps to ``img_shape`` (bilinear), applies
        the pipeline flip and zero-pads them like the data preprocessor
        (``padding_size`` = left, right, top, bottom; else bottom/right up
        to ``in_shape``).
        """
        in_shape = tuple(int(s) for s in in_shape)
        img_shape = tuple(meta.get('img_shape', x.shape[-2:])[:2])
        if tuple(x.shape[-2:]) != img_shape:
            x = F.interpolate(
                x[None], size=img_shape, mode='bilinear',
                align_corners=False)[0]
        if meta.get('flip', False):
            direction = meta.get('flip_direction', 'horizontal')
            dims = dict(
                horizontal=(-1, ), vertical=(-2, ),
                diagonal=(-2, -1)).get(direction)
            if dims is None:
                raise ValueError(f'unknown flip_direction {direction!r}')
            x = x.flip(dims)
        pad = meta.get('img_padding_size', meta.get('padding_size', None))
        if pad is None:
            h, w = x.shape[-2:]
            pad = (0, in_shape[1] - w, 0, in_shape[0] - h)
        left, right, top, bottom = (int(p) for p in pad)
        if min(left, right, top, bottom) < 0:
            raise ValueError(
                f'{meta.get("img_path", "image")}: image of size '
                f'{tuple(x.shape[-2:])} does not fit the input {in_shape}')
        if left or right or top or bottom:
            x = F.pad(x, (left, right, top, bottom))
        if tuple(x.shape[-2:]) != in_shape:
            raise ValueError(
                f'{meta.get("img_path", "image")}: padded maps of size '
                f'{tuple(x.shape[-2:])} do not match the input {in_shape}')
        return x

    def _score_path(self, meta: dict) -> str:
        cam_dir = self.test_cfg['cam_dir']
        if not cam_dir:
            raise ValueError('AffinityNet.predict needs test_cfg.cam_dir, the '
                             'folder of <stem>.npz CAM scores')
        path = meta.get('img_path')
        if not path:
            raise KeyError('AffinityNet.predict needs img_path in the sample '
                           'meta information to find its CAM scores')
        stem = osp.splitext(osp.basename(path))[0]
        return osp.join(cam_dir, stem + '.npz')

    def _load_scores(self, meta: dict,
                     device) -> Tuple[Tensor, List[int], str]:
        """Saved scores ``(C, H0, W0)`` of a sample and its labels."""
        path = self._score_path(meta)
        scores, labels = load_cam_scores(path)
        c = scores.shape[0]
        if self.num_classes is not None and c != self.num_classes:
            raise ValueError(f'{path}: scores have {c} channels but the '
                             f'model has num_classes={self.num_classes}')
        ori = tuple(meta.get('ori_shape', scores.shape[1:])[:2])
        if tuple(scores.shape[1:]) != ori:
            raise ValueError(
                f'{path}: scores of size {scores.shape[1:]} do not match the '
                f'original image size {ori}')
        if labels is None:
            if 'img_labels' in meta:
                labels = sorted(int(x) for x in meta['img_labels'])
            else:
                labels = [k for k in range(1, c) if np.any(scores[k] != 0)]
        bad = [x for x in labels if not 1 <= x < c]
        if bad:
            raise ValueError(f'{path}: img_labels {labels} must lie in '
                             f'[1, {c - 1}] (background 0 is implicit)')
        return torch.from_numpy(scores).to(device), labels, path

    def walk_scores(self, feats: Tensor, meta: dict,
                    in_shape: Sequence[int]) -> Tuple[Tensor, List[int]]:
        """Random-walk refined scores of one image at ``ori_shape``.

        Args:
            feats (Tensor): ``(D, h, w)`` head outputs of the input.
            meta (dict): The sample's meta information.
            in_shape (tuple[int, int]): ``(H, W)`` of the network input.

        Returns:
            tuple[Tensor, list[int]]: ``(C, H0, W0)`` scores (background
            first) and the image's foreground classes.
        """
        cfg = self.test_cfg
        scores, labels, _ = self._load_scores(meta, feats.device)
        c = scores.shape[0]
        keep = torch.zeros(c, dtype=torch.bool, device=scores.device)
        keep[labels] = True
        fg = torch.where(keep[1:, None, None], scores[1:],
                         torch.zeros_like(scores[1:])).clamp(min=0)
        if cfg['bg_mode'] == 'power':
            top = fg.max(dim=0).values if c > 1 else \
                torch.zeros_like(scores[0])
            bg = (1 - top).clamp(min=0)**float(cfg['bg_alpha'])
            maps = torch.cat([bg[None], fg])
        else:
            maps = fg
        maps = self._from_original(maps, meta, in_shape)
        grid = feats.shape[-2:]
        pooled = F.adaptive_avg_pool2d(maps[None], grid)[0]
        radius, n_steps = resolve_walk(cfg['radius'], cfg['n_steps'], grid)
        head = self.affinity_head
        feats = feats.float()
        trans = affinity_transition(
            head.walk_affinities(feats, radius, cfg['beta']),
            grid,
            radius,
            dtype=feats.dtype,
            device=feats.device)
        pooled = head.walk_inputs(feats, pooled.float())
        walked = random_walk(trans, pooled, n_steps)
        up = F.interpolate(
            walked[None],
            size=tuple(in_shape),
            mode='bilinear',
            align_corners=False)[0]
        up = self._to_original(up, meta)
        if cfg['bg_mode'] == 'const':
            top = up.max()
            if top > 0:
                up = up / top
            bg = torch.full_like(up[:1], float(cfg['bg_thr']))
            up = torch.cat([bg, up])
        return up, labels

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Random-walk refined CAMs as segmentation predictions.

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` normalised images.
            data_samples (list[SegDataSample], optional): Samples with
                ``img_path`` (to find the score file) and the usual MMSeg
                meta information.

        Returns:
            list[SegDataSample]: Samples with ``seg_logits`` (walked class
            scores, background first) and ``pred_sem_seg``.
        """
        if data_samples is None:
            raise ValueError('AffinityNet.predict needs data_samples with '
                             'img_path to find the saved CAM scores')
        # fail before the forward pass when a score file is missing
        for ds in data_samples:
            path = self._score_path(ds.metainfo)
            if not osp.isfile(path):
                load_cam_scores(path)  # raises FileNotFoundError
        feats = self.affinity_features(inputs)
        if self.test_cfg['flip']:
            flipped = self.affinity_features(inputs.flip(-1)).flip(-1)
            feats = (feats + flipped) / 2
        in_shape = inputs.shape[2:]
        for i, ds in enumerate(data_samples):
            meta = ds.metainfo
            scores, labels = self.walk_scores(feats[i], meta, in_shape)
            if self.refiner is not None:
                pred = self.refiner(
                    self.rgb_image(inputs[i], meta),
                    scores.cpu().numpy(), labels)
                pred = torch.from_numpy(np.asarray(pred, dtype=np.int64))
                pred = pred.to(scores.device)
            else:
                keys = torch.tensor([0] + labels, device=scores.device)
                pred = keys[scores[keys].argmax(dim=0)]
            ds.set_data(
                dict(
                    seg_logits=PixelData(data=scores),
                    pred_sem_seg=PixelData(data=pred[None])))
        return data_samples


__all__ = ['AffinityNet', 'load_cam_scores']
