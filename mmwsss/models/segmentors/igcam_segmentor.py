# Copyright (c) mmwsss contributors.
"""IG-CAM segmentor: FPN CAMs with influence guidance and proposals."""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine import dist
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList)
from torch import Tensor

from mmwsss.influence import (ClassifierInfluence, SolveInfo, aggregate_scales,
                              cam_magnitude_maps, normalise_maps,
                              resample_maps)
from mmwsss.registry import MODELS
from ..utils import valid_shape
from .cam_segmentor import CAMSegmentor, merge_known_keys

DEFAULT_INFLUENCE_CFG = dict(
    momentum=0.01,
    damping=1e-3,
    weight_decay=0.0,
    bias_decay=None,
    grid=32,
    mix=1.0,
    sample_weights=True,
    curvature_mode='eval',
    curvature_interval=10,
    map_source='influence')
CURVATURE_MODES = ('eval', 'train')
MAP_SOURCES = ('influence', 'cam_magnitude')

IG_TEST_DEFAULTS = dict(use_influence=True)


@MODELS.register_module()
class IGCAMSegmentor(CAMSegmentor):
    """IG-CAM (Torabi et al.): backbone + FPN + influence-guided attention +
    instance-guided multi-scale CAM head, with per-scale influence state.

    Forward (training and inference)::

        F_s = neck(backbone(x))                        # 4 scales, 1/4..1/32
        I_s = influence map of scale s                 # no grad, see below
        F~_s, W_s = attention(F_s, I_s)                # eq. (3)-(4)
        CAM_s, z_s = cam_head(F~_s, I_s, proposals)    # eq. (5)-(8)

    Influence (:class:`~mmwsss.influence.ClassifierInfluence`, one per scale
    classifier ``(W_s, b_s)``):

    - **curvature**: :meth:`loss` folds a training batch into the EMA of
      the closed-form classifier Hessian every ``curvature_interval``
      training iterations (the first one included), using the features
      the classifier actually sees (``outputs.pooled[s]``, for which ``z_s
      = W_s hbar_s + b_s`` exactly), the logits and the sample weights,
      under ``torch.no_grad``. The Hessian is that of the classification
      loss only (``loss_weight / num_scales`` per scale); the consistency,
      boundary and fused-logit terms are ignored. **Model state**: with
      ``curvature_mode='eval'`` (default) these features come from an extra
      no-grad forward of the training batch in eval mode (BN running
      statistics; the same proposals, inputs and targets), i.e. the model
      state of the validation gradients of the solve, which
      :meth:`refresh_influence` also takes in eval mode: ``H`` and ``g_val``
      of ``s = (H + lambda I)^-1 g_val`` then belong to one function of
      ``theta``. The paper does not say which BN mode it uses; eval is the
      deterministic one (no dependence on the batch composition) and the
      one the CAMs are extracted with. ``'train'`` reuses the training
      forward's features (BN batch statistics, no extra forward, but a
      different model state than the validation gradients). The extra
      forward costs about a third of a training step, so it is amortised
      with ``curvature_interval = k``: one update every ``k`` iterations,
      with the EMA momentum per update raised to ``1 - (1 - momentum)^k`` so
      that the memory of the EMA in iterations (about ``1 / momentum``) does
      not depend on ``k``. When no module in training mode behaves
      differently from eval mode (:meth:`train_forward_is_eval`: every BN
      frozen, e.g. ``norm_eval=True``, no active dropout or drop path), the
      training forward already is that state and its features are used,
      without the extra forward. The paper keeps "a running approximation" and
      updates it "each iteration" (sec. 3.4, 3.7); ``k > 1`` keeps the
      running EMA and its memory but sees fewer training batches;
    - **solve**: :meth:`refresh_influence` (called by a hook every N
      iterations) runs a validation batch in eval mode, computes the
      validation gradients of every classifier and solves the damped system;
    - **maps**: in every forward with image labels, the feature grad x input
      map of the influence (eq. (9), ``mean_v |.|`` over the validation
      vectors) of every scale, computed in closed form from that scale's
      *pre-attention* features ``F_s`` and the current classifier (the map
      is an input of the attention, so it cannot depend on its output; the
      curvature and ``s`` are those of the real classifier). Maps pass
      through the 32 x 32 grid, are resized to the scale and normalised to
      spatial mean 1 for the attention and the head (uniform before the
      first refresh, or without labels, or with ``influence_cfg=None``);
      ``influence_cfg.mix = rho`` blends them with the uniform map, ``1 -
      rho + rho I`` (default 1: the paper's maps; a hook can ramp it to
      avoid a jump in the pooled features at the first refresh);
    - **sample weights** (eq. (10)): every scale's raw maps divided by their
      batch mean, averaged over scales on the grid, then
      ``loss_cls.sample_weights`` (normalised to batch mean 1, clamped,
      detached); ones before the first refresh;
    - **saliency control** (issue #18): ``map_source='cam_magnitude'``
      replaces every scale's influence map by the ``|CAM|`` of the labelled
      classes (:func:`~mmwsss.influence.cam_magnitude_maps`, same features,
      classifier and grid) and changes nothing else: the maps switch on at
      the first refresh as the influence maps do (so the hook, its schedule
      and the ``mix`` ramp stay), and feed the attention, the head, the
      sample weights and the boundary weights alike. The difference between
      the two rows is what the influence adds beyond saliency.

    Inference (``predict``) is :class:`CAMSegmentor`'s multi-scale + flip
    procedure on the fused CAMs; proposals of the samples are rescaled and
    flipped with every view; influence maps are used when
    ``test_cfg.use_influence`` and the samples have ``img_labels``. The
    paper's 5-scale test is ``test_cfg=dict(scales=(0.5, 0.75, 1.0, 1.25,
    1.5), scale_fusion='mean')``.

    The influence state is not part of ``state_dict``: a hook saves it with
    :meth:`influence_state_dict` and restores it with
    :meth:`load_influence_state_dict`.

    Args:
        backbone (dict): Backbone config (e.g. ``mmseg.ResNetV1c``).
        cam_head (dict): :class:`InstanceGuidedCAMHead` config.
        neck (dict, optional): Neck config (e.g. ``mmseg.FPN``).
        attention (dict, optional): :class:`InfluenceGuidedAttention`
            config; None disables the attention.
        influence_cfg (dict, optional): Influence options (see
            ``DEFAULT_INFLUENCE_CFG``: EMA ``momentum``, ``damping``
            lambda, the classifier's ``weight_decay`` / ``bias_decay`` in the
            optimiser, map ``grid``, ``mix`` with the uniform map in [0, 1],
            ``sample_weights``, ``curvature_mode`` ``'eval'`` / ``'train'``,
            ``curvature_interval`` ``k >= 1``, ``map_source``
            ``'influence'`` / ``'cam_magnitude'``); None disables influence
            (uniform maps, unit weights).
        train_cfg (dict, optional): Unused.
        test_cfg (dict, optional): :class:`CAMSegmentor` options plus
            ``use_influence``.
        data_preprocessor (dict, optional): ``mmseg.SegDataPreProcessor``.
        pretrained (str, optional): Backbone checkpoint.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 cam_head: ConfigType,
                 neck: OptConfigType = None,
                 attention: OptConfigType = None,
                 influence_cfg: OptConfigType = DEFAULT_INFLUENCE_CFG,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            backbone=backbone,
            cam_head=cam_head,
            neck=neck,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.attention = MODELS.build(attention) if attention else None
        if influence_cfg is None:
            self.influence_cfg = None
        else:
            self.influence_cfg = merge_known_keys(DEFAULT_INFLUENCE_CFG,
                                                  influence_cfg,
                                                  'influence_cfg')
        self.influence: List[ClassifierInfluence] = []
        self._influence_device = torch.device('cpu')
        self._curvature_calls = 0
        if self.influence_cfg is not None:
            cfg = self.influence_cfg
            checks = (('curvature_mode', CURVATURE_MODES),
                      ('map_source', MAP_SOURCES))
            for key, allowed in checks:
                value = cfg[key]
                if value not in allowed:
                    raise ValueError(f'influence_cfg.{key} must be one of '
                                     f'{allowed}, got {value!r}')
            k = int(cfg['curvature_interval'])
            if k < 1:
                raise ValueError('influence_cfg.curvature_interval must be '
                                 f'>= 1, got {k}')
            head = self.cam_head
            self.influence = [
                ClassifierInfluence(
                    head.num_classes - 1,
                    head.in_channels,
                    bias=head.bias,
                    momentum=self.curvature_momentum,
                    damping=self.influence_cfg['damping'],
                    weight_decay=self.influence_cfg['weight_decay'],
                    bias_decay=self.influence_cfg['bias_decay'],
                    loss_weight=head.cls_loss_weight_per_scale)
                for _ in range(head.num_scales)
            ]

    @staticmethod
    def _check_test_cfg(test_cfg: OptConfigType) -> dict:
        cfg = dict(test_cfg or {})
        extra = {k: cfg.pop(k, v) for k, v in IG_TEST_DEFAULTS.items()}
        out = CAMSegmentor._check_test_cfg(cfg)
        out.update(extra)
        return out

    # ------------------------------------------------------------- influence
    @property
    def curvature_momentum(self) -> float:
        """EMA momentum per curvature update: ``1 - (1 - m)^k`` for the
        per-iteration ``momentum`` ``m`` and ``curvature_interval`` ``k``."""
        m = float(self.influence_cfg['momentum'])
        k = int(self.influence_cfg['curvature_interval'])
        return 1.0 - (1.0 - m)**k

    def train_forward_is_eval(self) -> bool:
        """Whether a forward now computes what an eval-mode forward would.

        False when a module in training mode has running statistics (BN
        that is not frozen: ``running_mean`` is not None) or drops
        activations (``torch.nn`` dropouts with ``p > 0``, mmcv / timm
        ``DropPath`` with ``drop_prob > 0``). The proposal choice of the
        head depends on the mode too, but :meth:`update_curvature` gets the
        proposals already chosen.
        """
        for m in self.modules():
            if not m.training:
                continue
            if getattr(m, 'running_mean', None) is not None:
                return False
            if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
                return False
            if float(getattr(m, 'drop_prob', 0) or 0) > 0:
                return False
        return True

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Every module in eval mode inside; training flags restored."""
        modes = {m: m.training for m in self.modules()}
        try:
            self.eval()
            yield
        finally:
            for m, mode in modes.items():
                m.training = mode

    @property
    def influence_valid(self) -> bool:
        """Whether every scale has been refreshed."""
        return bool(self.influence) and all(i.valid for i in self.influence)

    def _influence_to(self, device: torch.device) -> None:
        """Keep the influence state on the model's device."""
        device = torch.device(device)
        if device == self._influence_device:
            return
        for j, inf in enumerate(self.influence):
            new = ClassifierInfluence(
                inf.curvature.num_classes,
                inf.curvature.in_channels,
                bias=inf.curvature.bias,
                momentum=inf.curvature.momentum,
                damping=inf.damping,
                weight_decay=inf.weight_decay,
                bias_decay=inf.bias_decay,
                loss_weight=inf.loss_weight,
                device=device)
            new.load_state_dict(inf.state_dict())
            if new.s_val is not None:
                new.s_val = new.s_val.to(device)
            new.last_info = inf.last_info
            self.influence[j] = new
        self._influence_device = device

    @torch.no_grad()
    def influence_maps(self, feats: Sequence[Tensor],
                       labels: Optional[Tensor]) -> Optional[List[Tensor]]:
        """Raw per-scale influence maps ``(N, 1, h_s, w_s)`` or None.

        None (uniform influence) when influence is disabled, not refreshed
        yet or ``labels`` is None. With ``map_source='cam_magnitude'`` the
        maps are the ``|CAM|`` of the labelled classes instead (the
        saliency control), under the same conditions.

        Args:
            feats (Sequence[Tensor]): Pre-attention features ``F_s``.
            labels (Tensor, optional): ``(N, K)`` multi-hot labels.

        Returns:
            list[Tensor] | None: Non-negative maps (not normalised).
        """
        if labels is None or not self.influence_valid:
            return None
        self._influence_to(feats[0].device)
        return self._scale_maps(feats, labels,
                                self.influence_cfg['map_source'])

    def _scale_maps(self, feats: Sequence[Tensor], labels: Tensor,
                    source: str) -> List[Tensor]:
        """Per-scale maps of ``source`` (``'influence'``: eq. (9) with the
        current solve; ``'cam_magnitude'``: the ``|CAM|`` of the labelled
        classes), each through the influence grid at its scale's size,
        whatever the refresh state."""
        grid = (self.influence_cfg or DEFAULT_INFLUENCE_CFG)['grid']
        maps = []
        for s, feat in enumerate(feats):
            cls = self.cam_head.classifiers[s]
            size = tuple(feat.shape[-2:])
            if source == 'cam_magnitude':
                m = resample_maps(
                    cam_magnitude_maps(feat, cls.weight, cls.bias, labels),
                    size, grid)
            else:
                m = self.influence[s].maps(
                    feat.detach(),
                    cls.weight,
                    cls.bias,
                    labels,
                    size=size,
                    grid=grid)
            maps.append(m.to(feat.dtype))
        return maps

    @torch.no_grad()
    def quality_maps(self, inputs: Tensor,
                     data_samples: SampleList) -> Dict[str, Tensor]:
        """Continuous maps to score against masks (``TargetQualityHook``).

        Both maps are computed whatever ``map_source`` says, from the same
        forward (pre-attention features ``F_s``, the current classifiers,
        the image labels), each scale passed through the influence grid and
        averaged over scales at the input size (``I_multi`` of sec. 3.4, as
        :meth:`refine_kwargs` builds it):

        - ``'influence'``: the influence map (eq. (9)), only once every
          scale has been refreshed (before that the model uses uniform
          maps, which say nothing);
        - ``'cam_magnitude'``: the ``|CAM|`` of the labelled classes, the
          saliency control's map (issue #18), always.

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` preprocessed images.
            data_samples (list): Samples with ``img_labels``.

        Returns:
            dict[str, Tensor]: ``(N, H, W)`` non-negative float maps.
        """
        labels = self.cam_head.targets(data_samples, inputs.device)
        feats = list(self.extract_feat(inputs))
        size = tuple(inputs.shape[-2:])
        grid = (self.influence_cfg or DEFAULT_INFLUENCE_CFG)['grid']
        out = dict(cam_magnitude=aggregate_scales(
            self._scale_maps(feats, labels, 'cam_magnitude'), size, grid))
        if self.influence_cfg is not None and self.influence_valid:
            self._influence_to(inputs.device)
            out['influence'] = aggregate_scales(
                self._scale_maps(feats, labels, 'influence'), size, grid)
        return {k: v[:, 0].float() for k, v in out.items()}

    def sample_weights(self, raw_maps: Optional[Sequence[Tensor]],
                       num: int, device) -> Tensor:
        """Per-image weights of eq. (10) from the raw per-scale maps."""
        fn = getattr(self.cam_head.loss_cls, 'sample_weights', None)
        if raw_maps is None or fn is None or self.influence_cfg is None or \
                not self.influence_cfg['sample_weights']:
            return torch.ones(num, device=device)
        rel = [m / m.mean().clamp_min(1e-30) for m in raw_maps]
        grid = self.influence_cfg['grid']
        return fn(aggregate_scales(rel, grid, grid)).to(device)

    # ---------------------------------------------------------------- core
    def _run(self, inputs: Tensor, labels: Optional[Tensor],
             proposals, img_shape: Tuple[int, int]):
        feats = list(self.extract_feat(inputs))
        raw = self.influence_maps(feats, labels)
        maps = None
        if raw is not None:
            rho = float(self.influence_cfg['mix'])
            maps = [1 - rho + rho * normalise_maps(m) for m in raw]
        gates = None
        if self.attention is not None:
            feats, gates = self.attention(feats, maps)
        out = self.cam_head(feats, maps, proposals, img_shape)
        return out, raw, maps, gates

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """IG-CAM losses; also updates the curvature EMA of every scale
        (every ``curvature_interval`` calls, see the class)."""
        head = self.cam_head
        labels = head.targets(data_samples, inputs.device)
        proposals = head.gather_proposals(data_samples, inputs.device)
        img_shape = tuple(inputs.shape[-2:])
        out, raw, maps, gates = self._run(inputs, labels, proposals,
                                          img_shape)
        weight = self.sample_weights(raw, inputs.shape[0], inputs.device)
        multi = None
        if maps is not None:
            multi = aggregate_scales(maps, tuple(out.fused_cam.shape[-2:]),
                                     self.influence_cfg['grid'])
        losses = head.loss_by_feat(
            out,
            labels,
            weight=weight,
            gates=gates,
            influence=multi,
            inputs=inputs,
            valid_shapes=[valid_shape(ds) for ds in data_samples])
        if self.influence:
            self._influence_to(inputs.device)
            k = int(self.influence_cfg['curvature_interval'])
            if self._curvature_calls % k == 0:
                self.update_curvature(inputs, labels, proposals, weight, out)
            self._curvature_calls += 1
        return losses

    @torch.no_grad()
    def update_curvature(self,
                         inputs: Tensor,
                         labels: Tensor,
                         proposals,
                         weight: Tensor,
                         train_out=None) -> None:
        """Fold a training batch into every scale's curvature EMA.

        Args:
            inputs (Tensor): The preprocessed training batch.
            labels (Tensor): ``(N, K)`` targets of the loss.
            proposals: The proposals the training forward selected.
            weight (Tensor): ``(N,)`` sample weights of the loss.
            train_out (IGCAMOutputs, optional): The training forward's
                outputs, used with ``curvature_mode='train'``.
        """
        if train_out is None or (
                self.influence_cfg['curvature_mode'] == 'eval'
                and not self.train_forward_is_eval()):
            with self._eval_mode():
                out, _, _, _ = self._run(inputs, labels, proposals,
                                         tuple(inputs.shape[-2:]))
        else:
            out = train_out
        lw = self.cam_head.cls_loss_weight_per_scale
        for s, inf in enumerate(self.influence):
            inf.loss_weight = inf.curvature.loss_weight = lw
            inf.update(out.pooled[s].detach(), out.logits[s].detach(),
                       weight)

    @torch.no_grad()
    def refresh_influence(self,
                          data: dict,
                          preprocessed: bool = False,
                          sync: bool = True) -> List[SolveInfo]:
        """Solve the influence systems for a validation batch.

        Runs the batch through the model in eval mode (BN running statistics
        untouched, no dropout, ``test_select`` proposal choice, so no RNG is
        consumed) with the current influence maps, then calls
        :meth:`ClassifierInfluence.refresh` for every scale with the pooled
        features, logits and labels. The training flags of all modules are
        restored afterwards; parameters and buffers are not modified.

        Args:
            data (dict): ``dict(inputs=..., data_samples=...)`` as from a
                dataloader (run through ``data_preprocessor`` with
                ``training=False``, so the images must share one size), or
                already preprocessed with ``preprocessed=True``.
            preprocessed (bool): Skip the data preprocessor.
            sync (bool): Average the curvature EMA over distributed ranks
                first (the EMA is linear, so this is the EMA of the global
                batches). The solve is then identical on every rank only if
                the validation batch *and* the BN running statistics are:
                MMEngine's DDP wrapper does not broadcast buffers, so
                :class:`~mmwsss.engine.hooks.InfluenceHook` also broadcasts
                rank 0's influence state after the refresh.

        Returns:
            list[SolveInfo]: Diagnostics per scale (residual, condition
            number, damping).
        """
        if not self.influence:
            raise RuntimeError('influence is disabled (influence_cfg=None)')
        with self._eval_mode():
            if not preprocessed:
                data = self.data_preprocessor(data, training=False)
            inputs, samples = data['inputs'], data['data_samples']
            labels = self.cam_head.targets(samples, inputs.device)
            proposals = self.cam_head.gather_proposals(samples, inputs.device)
            out, _, _, _ = self._run(inputs, labels, proposals,
                                     tuple(inputs.shape[-2:]))
            self._influence_to(inputs.device)
            if sync and dist.is_distributed():
                for inf in self.influence:
                    state = inf.curvature.state_dict()
                    dist.all_reduce(state['acc'], op='mean')
                    inf.curvature.load_state_dict(state)
            infos = [
                inf.refresh(out.pooled[s], out.logits[s], labels)
                for s, inf in enumerate(self.influence)
            ]
        return infos

    def influence_state_dict(self) -> Dict[str, Tensor]:
        """Influence state of all scales (``scale{s}.<key>``), on the CPU."""
        state = {}
        for s, inf in enumerate(self.influence):
            for k, v in inf.state_dict().items():
                state[f'scale{s}.{k}'] = v.detach().cpu()
        if self.influence:
            # the phase of the curvature_interval schedule
            state['curvature_calls'] = torch.tensor(self._curvature_calls)
        return state

    def load_influence_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Restore a state saved by :meth:`influence_state_dict`."""
        for s, inf in enumerate(self.influence):
            prefix = f'scale{s}.'
            sub = {
                k[len(prefix):]: v
                for k, v in state.items() if k.startswith(prefix)
            }
            if not sub:
                raise KeyError(f'no influence state for scale {s}')
            inf.load_state_dict(sub)
            if inf.s_val is not None:
                inf.s_val = inf.s_val.to(self._influence_device)
        if 'curvature_calls' in state:
            self._curvature_calls = int(state['curvature_calls'])

    # ------------------------------------------------------------- inference
    def _view_cams(self, x: Tensor, data_samples: OptSampleList,
                   in_shape: Tuple[int, int],
                   flip: bool) -> Tuple[Tensor, Tensor]:
        """Fused CAMs and logits of one view, with proposals and influence."""
        head = self.cam_head
        labels, proposals = None, None
        if data_samples is not None:
            if self.test_cfg['use_influence'] and all(
                    'img_labels' in ds.metainfo for ds in data_samples):
                labels = head.targets(data_samples, x.device)
            proposals = head.gather_proposals(data_samples, x.device)
        h, w = x.shape[-2:]
        if proposals is not None:
            sx, sy = w / in_shape[1], h / in_shape[0]
            scale = torch.tensor([sx, sy, sx, sy], device=x.device)
            proposals = [
                None if p is None else p * scale for p in proposals
            ]
            if flip:
                proposals = proposals + [
                    None if p is None else torch.stack(
                        [w - p[:, 2], p[:, 1], w - p[:, 0], p[:, 3]], dim=1)
                    for p in proposals
                ]
        if labels is not None and flip:
            labels = torch.cat([labels, labels])
        if labels is not None and labels.shape[0] != x.shape[0]:
            labels = None
        if proposals is not None and len(proposals) != x.shape[0]:
            raise ValueError(f'{len(proposals)} proposal sets for '
                             f'{x.shape[0]} images')
        out, _, _, _ = self._run(x, labels, proposals, (h, w))
        return out.fused_cam, out.fused_logits

    @torch.no_grad()
    def refine_kwargs(self, inputs: Tensor,
                      data_samples: SampleList) -> List[dict]:
        """Influence maps for an influence-aware refiner.

        When the refiner declares ``accepts_influence`` (e.g.
        :class:`~mmwsss.refine.InfluenceCRF`), ``test_cfg.use_influence``
        is set, the influence has been refreshed and every sample has
        ``img_labels``, each image gets ``influence``: the multi-scale map
        ``I_multi`` (mean of the per-scale raw maps through the grid, sec.
        3.4) of one extra forward at scale 1.0 without flip, at
        ``ori_shape`` (float32 numpy ``(H0, W0)``). Otherwise no extra
        arguments (the refiner sees uniform influence).
        """
        n = inputs.shape[0]
        if not (getattr(self.refiner, 'accepts_influence', False)
                and self.test_cfg['use_influence'] and self.influence_cfg
                is not None and self.influence_valid and all(
                    'img_labels' in ds.metainfo for ds in data_samples)):
            return [dict() for _ in range(n)]
        labels = self.cam_head.targets(data_samples, inputs.device)
        raw = self.influence_maps(list(self.extract_feat(inputs)), labels)
        multi = aggregate_scales(raw, tuple(inputs.shape[-2:]),
                                 self.influence_cfg['grid'])
        return [
            dict(
                influence=self._to_original(multi[i].float(),
                                            ds.metainfo)[0].cpu().numpy())
            for i, ds in enumerate(data_samples)
        ]

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """Fused raw CAMs ``(N, K, h, w)`` of a single forward pass."""
        return self._view_cams(inputs, data_samples,
                               tuple(inputs.shape[-2:]), False)[0]
