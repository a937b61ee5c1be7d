# Copyright (c) mmwsss contributors.
"""Instance-guided multi-scale CAM head of IG-CAM (sec. 3.3, eq. (5)-(8))."""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList
from torch import Tensor

from mmwsss.registry import MODELS
from ..utils.box_ops import (SELECT_MODES, axis_coverage, box_area, box_sums,
                             select_boxes, to_feature_boxes)
from .cam_head import check_classifier_rows, label_rows

BoxList = Sequence[Optional[Tensor]]


@dataclass
class IGCAMOutputs:
    """Outputs of :class:`InstanceGuidedCAMHead` for one batch.

    Attributes:
        cams (list[Tensor]): Per-scale dense ``CAM_s`` ``(N, K, h_s, w_s)``.
        logits (list[Tensor]): Per-scale image logits ``(N, K)``.
        pooled (list[Tensor]): Per-scale effective pooled features ``(N,
            C)``: ``logits[s] = W_s pooled[s] + b_s`` exactly (what the
            classifier curvature of :mod:`mmwsss.influence` needs).
        fused_cam (Tensor): Scales fused at the largest scale ``(N, K, h,
            w)``.
        fused_logits (Tensor): Fused image logits ``(N, K)``.
        proposal_weights (list[Tensor]): Per-scale ``omega_k`` ``(N, P)``
            (0 for padding).
        boxes (Tensor): ``(N, P, 4)`` boxes in input pixels (padded).
        valid (Tensor): ``(N, P)`` whether a box is real (not padding).
    """
    cams: List[Tensor]
    logits: List[Tensor]
    pooled: List[Tensor]
    fused_cam: Tensor
    fused_logits: Tensor
    proposal_weights: List[Tensor]
    boxes: Tensor
    valid: Tensor


@MODELS.register_module()
class InstanceGuidedCAMHead(BaseModule):
    """Multi-scale CAM head with proposal pooling, IG-CAM eq. (5)-(8).

    Notation: scale ``s`` with enhanced features ``F~_s`` (``C x h x w``),
    influence map ``I_s`` (spatial mean 1, all ones before the first
    refresh), per-scale 1x1 classifier ``(W_s, b_s)``, proposals ``p_k``
    with area-fraction masks ``M_k`` (:mod:`mmwsss.models.utils.box_ops`)
    and areas ``|p_k| = sum_u M_k(u)`` in feature cells.

    Per proposal (eq. (6), GAP read as the mean *inside* the box, so that
    small boxes are not diluted by the image area; ``pool_norm='image'``
    takes the literal GAP of the masked map over the whole image, ``/ (h
    w)`` instead of ``/ |p_k|``, which weights each proposal's logit by its
    area and makes the coverage CAM decompose the logit exactly,
    ``GAP(CAM_s) = z_s``)::

        h_k    = sum_u M_k(u) I_s(u) F~_s(u) / |p_k|
        z_k    = W_s h_k + b_s                           # CAM_s^(k)
        beta_k = sum_u M_k(u) I_s(u) / |p_k|             # eq. (8)

    Proposal weights (eq. (7)). ``alpha_k`` cannot be a free parameter per
    proposal (boxes differ per image); it is attention-based multiple
    instance pooling (Ilse et al., 2018): ``alpha = softmax_k(a(.))`` over
    the image's proposals, with the score ``a`` a learned linear function
    of the pooled feature ``h_k`` (``alpha_mode='feature'``), a small MLP on
    the box geometry (``'geometry'``: normalised corners and square root of
    the relative area) or constant (``'uniform'``). The score layer starts
    at zero, i.e. uniform ``alpha``. ``alpha_k`` is one weight per proposal
    shared by all classes, as the paper's single index suggests (unlike
    WSDDN's per-class softmax); this keeps the image logit linear in the
    classifier. The combined weight is normalised::

        omega_k = alpha_k beta_k / sum_j alpha_j beta_j   (= softmax_k(a_k +
                                                             log beta_k))

    so that the image logit stays on the scale of a single classifier
    output whatever the number of proposals (``use_beta=False``: ``omega =
    alpha``). The image logit of scale ``s`` is
    ``z_s = sum_k omega_k z_k = W_s hbar_s + b_s`` with ``hbar_s = sum_k
    omega_k h_k`` (``pooled``).

    Dense ``CAM_s``. "Upsample(CAM_s^(k))" of a pooled vector is read as
    putting the proposal's class evidence back on its support, with the
    classifier applied densely (``cam_mode='coverage'``, default)::

        CAM_s(u) = (sum_k omega_k M_k(u)) I_s(u) (W_s F~_s(u)) + b_s

    i.e. locations covered by heavily weighted proposals (and with high
    influence) keep their class scores, uncovered ones fall to the bias.
    ``cam_mode='attribution'`` uses ``omega_k M_k(u) h w / |p_k|`` instead,
    the exact spatial decomposition of the logit (``GAP(CAM_s) = z_s``), at
    the price of large values inside small boxes. Both equal ``W_s (I_s
    F~_s) + b_s`` for the single whole-image proposal. ``cam_mode='dense'``
    drops the coverage factor, ``CAM_s(u) = I_s(u) (W_s F~_s(u)) + b_s``:
    the proposals then act through training only (the proposal-pooled
    logits of eq. (6)-(7)). It is not a reading of eq. (7) but a diagnosis
    that splits the +Inst row's effect into training and inference; it can
    be set at test time on a checkpoint trained with another mode.

    Proposals: the boxes of ``data_sample.proposals`` (``InstanceData`` with
    ``bboxes`` and ``ranks`` from
    :class:`~mmwsss.datasets.transforms.PackWSSSInputs`, or an ``(K, 4)``
    tensor) in input pixels. At most ``num_proposals`` per image are kept:
    ``train_select`` in training, ``test_select`` otherwise (``'rank'``: best
    ranked first, ``'area'``: largest first, ``'random'``: uniformly at
    random with the global torch RNG). Both default to ``'rank'``: one rule
    for training and test, so that the classifiers and the proposal scorer
    are trained on the boxes they are tested on. A uniform random subset of
    up to 2000 Selective Search boxes is dominated by the many small regions
    of the first grouping steps, while the ranking favours late merges, i.e.
    larger boxes (the test boxes were 1.5-3x larger than the training ones
    on the demo scenes, issue #18): random in training and rank at test is
    a distribution shift between the two. The rank is the proposal method's
    own order, needs no RNG, and random crops already vary the boxes between
    epochs; ``train_select='random'`` keeps the earlier rule for the
    ablation. With ``add_whole_image`` the whole image is always one extra
    proposal (so every pixel is covered and the classifier always sees
    global context). Without proposals (or with
    ``num_proposals=0``) the whole image is the only proposal and the head
    is exactly a plain multi-scale CAM head: ``z_s = W_s GAP(I_s F~_s) +
    b_s``, ``CAM_s = W_s (I_s F~_s) + b_s``.

    Scale fusion. Every ``CAM_s`` is upsampled (bilinear) to the largest
    scale, then the scales are combined with the learned scale weights of
    IG-CAM sec. 4.1.1 (``scale_fusion='learned'``, default)::

        gamma = softmax(g)     # one parameter g_s per scale, zeros at init
        CAM   = sum_s gamma_s Upsample(CAM_s)
        z     = sum_s gamma_s z_s

    i.e. positive weights summing to 1, "initialized uniformly and learned
    during training" (uniform at init: the same as ``'mean'``). ``'mean'``
    (fixed ``gamma_s = 1 / S``) and ``'max'`` (element-wise maximum) turn
    them off for the ablation. The classification loss is applied to every
    scale's logits and averaged over scales (deep supervision: each
    classifier is a valid CAM classifier, which the per-scale influence
    estimate assumes). The fused logit ``z`` also enters a classification
    loss (``fused_loss``): ``'gamma'`` (default) computes it from the
    *detached* per-scale logits, so that it trains ``gamma`` only (the
    classifiers keep the deep-supervision loss whose closed-form curvature
    :mod:`mmwsss.influence` uses, exactly); ``'all'`` lets its gradient
    reach the classifiers and features too (the per-scale curvature then
    ignores that term); ``'none'`` adds no such loss (``gamma`` is then
    learned only through losses on the fused CAM, e.g. the boundary loss).
    The fused loss is reported as ``<loss_cls name>_fused``; with
    ``'gamma'`` it is left out when there is nothing to learn (the
    parameter-free fusions, or one scale, where ``gamma = 1``).

    Args:
        in_channels (int): Channels of every scale. Defaults to 256.
        num_classes (int): Classes including background (which has no
            channel).
        num_scales (int): Number of input scales. Defaults to 4.
        bias (bool): Classifier bias. Defaults to False (as IRN).
        num_proposals (int, optional): Top-K proposals per image; None keeps
            all. Defaults to 64.
        train_select (str): Selection in training. Defaults to ``'rank'``
            (the same rule as at test time, see above).
        test_select (str): Selection in eval mode. Defaults to ``'rank'``.
        add_whole_image (bool): Always add the whole image. Defaults to
            True.
        alpha_mode (str): ``'feature'``, ``'geometry'`` or ``'uniform'``.
            Defaults to ``'feature'``.
        use_beta (bool): Use the influence weights ``beta_k``. Defaults to
            True.
        cam_mode (str): ``'coverage'``, ``'attribution'`` or ``'dense'``.
            Defaults to ``'coverage'``.
        pool_norm (str): Denominator of the proposal pooling ``h_k`` of
            eq. (6): ``'box'`` (the mean inside the box, ``/ |p_k|``) or
            ``'image'`` (the literal GAP of the masked map over the whole
            image, ``/ (h w)``). Defaults to ``'box'``.
        scale_fusion (str): ``'learned'`` (``gamma_s``), ``'mean'`` or
            ``'max'``. Defaults to ``'learned'``.
        fused_loss (str): Classification loss on the fused logit:
            ``'gamma'``, ``'all'`` or ``'none'`` (see above). Defaults to
            ``'gamma'``.
        loss_cls (dict): Classification loss (``L_IG``).
        loss_consistency (dict, optional): Multi-scale consistency loss.
        loss_boundary (dict, optional): Boundary alignment loss.
        init_cfg (dict, optional): Initialisation config.
    """

    SELECT_MODES = SELECT_MODES
    ALPHA_MODES = ('feature', 'geometry', 'uniform')
    CAM_MODES = ('coverage', 'attribution', 'dense')
    POOL_NORMS = ('box', 'image')
    FUSIONS = ('learned', 'mean', 'max')
    FUSED_LOSSES = ('gamma', 'all', 'none')

    def __init__(self,
                 in_channels: int = 256,
                 num_classes: int = 21,
                 num_scales: int = 4,
                 bias: bool = False,
                 num_proposals: Optional[int] = 64,
                 train_select: str = 'rank',
                 test_select: str = 'rank',
                 add_whole_image: bool = True,
                 alpha_mode: str = 'feature',
                 use_beta: bool = True,
                 cam_mode: str = 'coverage',
                 pool_norm: str = 'box',
                 scale_fusion: str = 'learned',
                 fused_loss: str = 'gamma',
                 loss_cls: ConfigType = dict(
                     type='InfluenceWeightedBCELoss', loss_weight=1.0),
                 loss_consistency: OptConfigType = None,
                 loss_boundary: OptConfigType = None,
                 init_cfg: OptMultiConfig = dict(
                     type='Xavier', layer='Conv2d',
                     distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError('num_classes counts background and must be '
                             f'>= 2, got {num_classes}')
        for name, value, allowed in (
            ('train_select', train_select, self.SELECT_MODES),
            ('test_select', test_select, self.SELECT_MODES),
            ('alpha_mode', alpha_mode, self.ALPHA_MODES),
            ('cam_mode', cam_mode, self.CAM_MODES),
            ('pool_norm', pool_norm, self.POOL_NORMS),
            ('scale_fusion', scale_fusion, self.FUSIONS),
            ('fused_loss', fused_loss, self.FUSED_LOSSES),
        ):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, got '
                                 f'{value!r}')
        if num_proposals is not None and num_proposals < 0:
            raise ValueError('num_proposals must be >= 0 or None')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_scales = num_scales
        self.bias = bias
        self.num_proposals = num_proposals
        self.train_select = train_select
        self.test_select = test_select
        self.add_whole_image = add_whole_image
        self.alpha_mode = alpha_mode
        self.use_beta = use_beta
        self.cam_mode = cam_mode
        self.pool_norm = pool_norm
        self.scale_fusion = scale_fusion
        self.fused_loss = fused_loss
        if scale_fusion == 'learned':
            # gamma = softmax(scale_logits): uniform at init (sec. 4.1.1)
            self.scale_logits = nn.Parameter(torch.zeros(num_scales))
        else:
            self.register_parameter('scale_logits', None)
        self.classifiers = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes - 1, 1, bias=bias)
            for _ in range(num_scales))
        if alpha_mode == 'feature':
            self.scorers = nn.ModuleList(
                nn.Linear(in_channels, 1) for _ in range(num_scales))
        elif alpha_mode == 'geometry':
            self.scorers = nn.ModuleList(
                nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
                for _ in range(num_scales))
        else:
            self.scorers = None
        self._zero_scorers()
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_consistency = MODELS.build(loss_consistency) \
            if loss_consistency else None
        self.loss_boundary = MODELS.build(loss_boundary) \
            if loss_boundary else None

    def _zero_scorers(self) -> None:
        if self.scorers is None:
            return
        for scorer in self.scorers:
            last = scorer[-1] if isinstance(scorer, nn.Sequential) else scorer
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def init_weights(self) -> None:
        """Initialise, then reset the proposal scorers to uniform weights."""
        super().init_weights()
        self._zero_scorers()

    def _load_from_state_dict(self, state_dict, prefix, *args,
                              **kwargs) -> None:
        check_classifier_rows(state_dict, prefix, self.num_classes)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---------------------------------------------------------------- labels
    def targets(self, data_samples: SampleList, device=None) -> Tensor:
        """Foreground targets ``(N, K)`` from ``img_labels``.

        Multi-hot, or soft when the samples carry ``img_label_weights``
        (the value of each label, aligned with ``img_labels``, written by
        the MixUp / CutMix batch augments).
        """
        return label_rows(data_samples, self.num_classes, device)

    # ------------------------------------------------------------- proposals
    def select_proposals(self,
                         boxes: Tensor,
                         ranks: Optional[Tensor] = None,
                         mode: Optional[str] = None) -> Tensor:
        """Keep at most ``num_proposals`` non-empty boxes of one image.

        Args:
            boxes (Tensor): ``(K, 4)`` boxes.
            ranks (Tensor, optional): ``(K,)`` ranks (0 = best); None means
                the row order.
            mode (str, optional): Selection mode; None picks
                ``train_select`` in training and ``test_select`` otherwise.

        Returns:
            Tensor: ``(K', 4)`` selected boxes.
        """
        mode = mode or (self.train_select
                        if self.training else self.test_select)
        return select_boxes(boxes, self.num_proposals, mode, ranks)

    def gather_proposals(self, data_samples: Optional[SampleList],
                         device=None) -> Optional[List[Optional[Tensor]]]:
        """Selected proposals of every sample (None where it has none).

        Reads ``data_sample.proposals`` (``InstanceData`` with ``bboxes``
        and optional ``ranks``, or a ``(K, 4)`` tensor).
        """
        if data_samples is None:
            return None
        out: List[Optional[Tensor]] = []
        for ds in data_samples:
            props = ds.get('proposals', None) if hasattr(ds, 'get') else None
            if props is None:
                out.append(None)
                continue
            if isinstance(props, Tensor):
                boxes, ranks = props, None
            else:
                boxes = props.bboxes
                ranks = props.ranks if 'ranks' in props else None
            boxes = torch.as_tensor(boxes, dtype=torch.float32, device=device)
            out.append(self.select_proposals(boxes, ranks))
        return out

    def _pad_boxes(self, proposals: Optional[BoxList], n: int,
                   img_shape: Tuple[int, int],
                   device) -> Tuple[Tensor, Tensor]:
        """``(N, P, 4)`` boxes in input pixels and the ``(N, P)`` mask."""
        ih, iw = img_shape
        whole = torch.tensor([[0., 0., float(iw), float(ih)]], device=device)
        rows = []
        for i in range(n):
            b = None if proposals is None else proposals[i]
            b = whole[:0] if b is None else b.to(device, torch.float32)
            b = b.reshape(-1, 4)
            if self.add_whole_image or b.shape[0] == 0:
                b = torch.cat([whole, b])
            rows.append(b)
        p = max(r.shape[0] for r in rows)
        boxes = whole.new_zeros(n, p, 4)
        boxes[..., 2:] = whole[0, 2:]
        valid = torch.zeros(n, p, dtype=torch.bool, device=device)
        for i, r in enumerate(rows):
            boxes[i, :r.shape[0]] = r
            valid[i, :r.shape[0]] = True
        return boxes, valid

    # --------------------------------------------------------------- forward
    def _scores(self, s: int, pooled: Tensor, fboxes: Tensor,
                size: Tuple[int, int]) -> Tensor:
        if self.alpha_mode == 'uniform':
            return pooled.new_zeros(pooled.shape[:2])
        if self.alpha_mode == 'feature':
            return self.scorers[s](pooled).squeeze(-1)
        h, w = size
        norm = fboxes / fboxes.new_tensor([w, h, w, h])
        rel = (box_area(fboxes) / (h * w)).clamp_min(0).sqrt()
        geo = torch.cat([norm, rel.unsqueeze(-1)], dim=-1).to(pooled.dtype)
        return self.scorers[s](geo).squeeze(-1)

    @staticmethod
    def pool_proposals(feat: Tensor,
                       inf: Tensor,
                       boxes: Tensor,
                       img_shape: Tuple[int, int],
                       norm: str = 'box'
                       ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Masked average pooling inside proposals, eq. (6) and (8).

        Args:
            feat (Tensor): ``(N, C, h, w)`` features ``F~_s``.
            inf (Tensor): ``(N, 1, h, w)`` influence map ``I_s``.
            boxes (Tensor): ``(N, P, 4)`` boxes in input pixels.
            img_shape (tuple[int, int]): Input ``(H, W)``.
            norm (str): ``'box'`` divides ``h_k`` by ``|p_k|``, ``'image'``
                by ``h w`` (see ``pool_norm`` of the class).

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: ``h_k = sum M_k I F~ /
            |p_k|`` (or ``/ (h w)``) ``(N, P, C)``, ``beta_k = sum M_k I /
            |p_k|`` ``(N, P)``, the areas ``|p_k|`` in feature cells
            ``(N, P)`` and the boxes in feature cells ``(N, P, 4)``. Empty
            boxes give zeros.
        """
        n, c, h, w = feat.shape
        fboxes = to_feature_boxes(boxes, img_shape, (h, w)).to(feat.dtype)
        area = box_area(fboxes)
        x = torch.cat([feat * inf, inf.expand(n, 1, h, w)], dim=1)
        sums = box_sums(x, fboxes)  # (N, P, C + 1)
        safe = torch.where(area > 0, area, torch.ones_like(area))
        den = safe if norm == 'box' else torch.full_like(safe, h * w)
        pooled = sums[..., :c] / den.unsqueeze(-1)
        beta = (sums[..., c] / safe).clamp_min(0)
        return pooled, beta, area, fboxes

    def _scale_forward(self, s: int, feat: Tensor, inf: Tensor,
                       boxes: Tensor, valid: Tensor,
                       img_shape: Tuple[int, int]):
        n, c, h, w = feat.shape
        pooled, beta, area, fboxes = self.pool_proposals(
            feat, inf, boxes, img_shape, self.pool_norm)
        ok = valid & (area > 0)
        safe = torch.where(ok, area, torch.ones_like(area)).unsqueeze(-1)
        score = self._scores(s, pooled, fboxes, (h, w))
        score = score.masked_fill(~ok, torch.finfo(score.dtype).min)
        alpha = torch.softmax(score, dim=1) * ok
        if self.use_beta:
            u = alpha * beta
            den = u.sum(dim=1, keepdim=True)
            good = den > 1e-12
            omega = torch.where(good, u / torch.where(good, den,
                                                      torch.ones_like(den)),
                                alpha)
        else:
            omega = alpha
        hbar = torch.einsum('np,npc->nc', omega, pooled)
        cls = self.classifiers[s]
        wmat = cls.weight.reshape(cls.weight.shape[0], -1)
        logits = hbar @ wmat.t()
        dense = F.conv2d(feat, cls.weight)
        coef = omega
        if self.cam_mode == 'attribution':
            coef = omega * (h * w) / safe[..., 0]
        if self.cam_mode == 'dense':
            cam = inf * dense
        else:
            my = axis_coverage(fboxes[..., 1], fboxes[..., 3], h)
            mx = axis_coverage(fboxes[..., 0], fboxes[..., 2], w)
            cover = torch.einsum('np,nph,npw->nhw', coef, my,
                                 mx).unsqueeze(1)
            cam = cover * inf * dense
        if cls.bias is not None:
            logits = logits + cls.bias
            cam = cam + cls.bias[None, :, None, None]
        return cam, logits, hbar, omega

    @property
    def scale_weights(self) -> Optional[Tensor]:
        """``gamma`` ``(num_scales,)`` (softmax of ``scale_logits``), or
        None for the parameter-free fusions."""
        if self.scale_logits is None:
            return None
        return torch.softmax(self.scale_logits, dim=0)

    def fuse_logits(self, logits: Sequence[Tensor]) -> Tensor:
        """Fused image logits of per-scale logits ``(N, K)``."""
        lg = torch.stack(list(logits))
        if self.scale_fusion == 'learned':
            return torch.einsum('s,snk->nk', self.scale_weights.to(lg.dtype),
                                lg)
        if self.scale_fusion == 'mean':
            return lg.mean(0)
        return lg.max(0).values

    def _fuse(self, cams: Sequence[Tensor],
              logits: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        size = max((tuple(c.shape[-2:]) for c in cams),
                   key=lambda hw: hw[0] * hw[1])
        up = torch.stack([
            c if tuple(c.shape[-2:]) == size else F.interpolate(
                c, size=size, mode='bilinear', align_corners=False)
            for c in cams
        ])
        if self.scale_fusion == 'learned':
            cam = torch.einsum('s,snkhw->nkhw',
                               self.scale_weights.to(up.dtype), up)
        elif self.scale_fusion == 'mean':
            cam = up.mean(0)
        else:
            cam = up.max(0).values
        return cam, self.fuse_logits(logits)

    def forward(self,
                feats: Union[Tensor, Sequence[Tensor]],
                influence: Optional[Sequence[Optional[Tensor]]] = None,
                proposals: Optional[BoxList] = None,
                img_shape: Optional[Tuple[int, int]] = None) -> IGCAMOutputs:
        """Per-scale and fused CAMs and logits.

        Args:
            feats (Sequence[Tensor]): ``num_scales`` enhanced feature maps
                ``F~_s`` ``(N, C, h_s, w_s)``.
            influence (Sequence[Tensor], optional): Per-scale influence maps
                ``(N, 1, h, w)`` (resized if needed; None: ones).
            proposals (Sequence[Tensor], optional): Per image ``(K_i, 4)``
                selected boxes in input pixels, or None.
            img_shape (tuple[int, int], optional): Input ``(H, W)`` of the
                boxes; defaults to the largest feature map's size (only
                right when there are no proposals).

        Returns:
            IGCAMOutputs: See its attributes.
        """
        if isinstance(feats, Tensor):
            feats = [feats]
        if len(feats) != self.num_scales:
            raise ValueError(f'expected {self.num_scales} feature maps, got '
                             f'{len(feats)}')
        n = feats[0].shape[0]
        if img_shape is None:
            img_shape = max((tuple(f.shape[-2:]) for f in feats),
                            key=lambda hw: hw[0] * hw[1])
            if proposals is not None and any(p is not None
                                             for p in proposals):
                raise ValueError('img_shape is required with proposals')
        boxes, valid = self._pad_boxes(proposals, n, tuple(img_shape[:2]),
                                       feats[0].device)
        cams, logits, pooled, weights = [], [], [], []
        for s, feat in enumerate(feats):
            if feat.shape[1] != self.in_channels:
                raise ValueError(f'scale {s}: expected {self.in_channels} '
                                 f'channels, got {feat.shape[1]}')
            inf = None if influence is None else influence[s]
            if inf is None:
                inf = feat.new_ones(n, 1, *feat.shape[-2:])
            elif inf.shape[-2:] != feat.shape[-2:]:
                inf = F.interpolate(
                    inf,
                    size=feat.shape[-2:],
                    mode='bilinear',
                    align_corners=False)
            cam, logit, hbar, omega = self._scale_forward(
                s, feat, inf.to(feat.dtype), boxes, valid,
                tuple(img_shape[:2]))
            cams.append(cam)
            logits.append(logit)
            pooled.append(hbar)
            weights.append(omega)
        fused_cam, fused_logits = self._fuse(cams, logits)
        return IGCAMOutputs(cams, logits, pooled, fused_cam, fused_logits,
                            weights, boxes, valid)

    def logits(self, feats, **kwargs) -> Tuple[Tensor, Tensor]:
        """Return ``(fused cams, fused image logits)``."""
        out = self.forward(feats, **kwargs)
        return out.fused_cam, out.fused_logits

    # ------------------------------------------------------------------ loss
    @property
    def cls_loss_weight_per_scale(self) -> float:
        """Weight of the classification loss of each scale's classifier."""
        return float(self.loss_cls.loss_weight) / self.num_scales

    def loss_by_feat(self,
                     outputs: IGCAMOutputs,
                     targets: Tensor,
                     weight: Optional[Tensor] = None,
                     gates: Optional[Sequence[Tensor]] = None,
                     influence: Optional[Tensor] = None,
                     inputs: Optional[Tensor] = None,
                     valid_shapes: Optional[Sequence] = None) -> dict:
        """IG-CAM losses (eq. (10)-(13)) of a forward pass.

        Args:
            outputs (IGCAMOutputs): Head outputs.
            targets (Tensor): ``(N, K)`` multi-hot labels, or soft
                targets in ``[0, 1]`` (batch mixing); the consistency and
                boundary terms use the classes with a positive target.
            weight (Tensor, optional): ``(N,)`` influence sample weights.
            gates (Sequence[Tensor], optional): Attention gates ``W_s``.
            influence (Tensor, optional): Multi-scale influence map for the
                boundary weights.
            inputs (Tensor, optional): Network inputs (boundary loss; the
                loss is skipped without them).
            valid_shapes (Sequence, optional): Unpadded ``(h, w)`` of every
                input (boundary loss; None: the whole input).

        Returns:
            dict: ``loss_ig`` (or the classification loss's name), its
            ``_fused`` variant (see ``fused_loss``), ``loss_consistency``
            and ``loss_boundary`` when configured, ``acc_cls`` (exact-match
            accuracy of the fused logits against the targets rounded at
            0.5) and, with learned scale weights, ``gamma_s{s}`` (logged,
            not optimised).
        """
        targets = targets.to(outputs.fused_logits.dtype)
        cls = sum(
            self.loss_cls(z, targets, weight)
            for z in outputs.logits) / self.num_scales
        losses = {self.loss_cls.loss_name: cls}
        fused = None
        if self.fused_loss == 'all':
            fused = outputs.fused_logits
        elif self.fused_loss == 'gamma' and self.scale_logits is not None \
                and self.num_scales > 1:
            fused = self.fuse_logits([z.detach() for z in outputs.logits])
        if fused is not None:
            losses[self.loss_cls.loss_name + '_fused'] = self.loss_cls(
                fused, targets, weight)
        if self.loss_consistency is not None:
            losses[self.loss_consistency.loss_name] = self.loss_consistency(
                outputs.cams, targets, gates)
        if self.loss_boundary is not None and inputs is not None:
            losses[self.loss_boundary.loss_name] = self.loss_boundary(
                outputs.fused_cam,
                inputs,
                targets,
                influence,
                valid_shapes=valid_shapes)
        with torch.no_grad():
            acc = ((outputs.fused_logits > 0) == (targets > 0.5)).all(
                dim=1).float().mean()
            if self.scale_logits is not None and self.num_scales > 1:
                # logged next to the losses: do they leave uniform?
                for s, g in enumerate(self.scale_weights):
                    losses[f'gamma_s{s}'] = g.detach()
        losses['acc_cls'] = acc
        return losses

    def loss(self, feats, data_samples: SampleList, **kwargs) -> dict:
        """Forward without influence and compute the losses."""
        outputs = self.forward(
            feats,
            proposals=self.gather_proposals(data_samples,
                                            feats[0].device),
            img_shape=kwargs.pop('img_shape', None))
        targets = self.targets(data_samples, outputs.fused_logits.device)
        return self.loss_by_feat(outputs, targets, **kwargs)
