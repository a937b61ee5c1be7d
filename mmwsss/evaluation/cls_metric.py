# Copyright (c) mmwsss contributors.
"""Image-level multi-label classification metric (validation loss, mAP, F1).

Both methods select or switch on classification quantities measured with
image-level labels only, never masks: IG-CAM switches training stages when
the validation loss plateaus for 5 validations and stops early with
patience 10 (IG-CAM sec. 3.6, suppl. 6.7.2), CamGuide selects its stage 1
and 2 checkpoints "by classification metrics on train" (CamGuide sec. III,
"Model Selection").
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from mmwsss.registry import METRICS

ALL_METRICS = ('cls_loss', 'mAP', 'F1')


def bce_with_logits(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Element-wise binary cross-entropy of logits, numerically stable.

    ``max(x, 0) - x y + log(1 + exp(-|x|))``, which equals ``-y log s(x) -
    (1 - y) log(1 - s(x))`` with ``s`` the sigmoid.

    Args:
        logits (np.ndarray): Logits of any shape.
        targets (np.ndarray): Targets in ``[0, 1]``, same shape.

    Returns:
        np.ndarray: The losses, same shape, float64.
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one class, ``sum_n (R_n - R_{n-1}) P_n``.

    The non-interpolated step-wise area under the precision-recall curve,
    as ``sklearn.metrics.average_precision_score``: one operating point per
    *distinct* score (tied images enter together), so the value does not
    depend on the order of tied images (mmpretrain's ``AveragePrecision``
    ranks ties by ``argsort`` order instead).

    Args:
        scores (np.ndarray): ``(N,)`` scores (logits or probabilities).
        targets (np.ndarray): ``(N,)`` binary targets.

    Returns:
        float: AP in ``[0, 1]``; NaN when there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel() > 0
    num_pos = int(targets.sum())
    if num_pos == 0:
        return float('nan')
    order = np.argsort(-scores, kind='stable')
    scores, targets = scores[order], targets[order]
    # last index of every run of equal scores: the operating points
    last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    tp = np.cumsum(targets)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / num_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@METRICS.register_module()
class MultiLabelClsMetric(BaseMetric):
    """Image-level multi-label classification metric of CAM segmentors.

    Reads from every predicted sample the image logits ``pred_img_logits``
    (``(num_classes - 1,)`` foreground logits before sigmoid, filled by
    :meth:`~mmwsss.models.CAMSegmentor.predict` and so by
    ``IGCAMSegmentor`` and ``CamGuideSegmentor``, which inherit it) and the
    image labels ``img_labels`` (foreground ids in ``[1, num_classes - 1]``,
    packed by ``PackWSSSInputs``). No mask is read, so the metric can run
    on any image-level split without touching a split whose masks results
    are reported on. Over the whole split it computes:

    - ``cls_loss``: the mean binary cross-entropy with logits over images
      and foreground classes, ``mean_{i,c} BCE(z_ic, y_ic)``. This is the
      classification term ``L_cls`` of IG-CAM eq. (13) *without* the
      influence sample weights ``w_i`` of eq. (10) (they are a training
      device, and would make the validation loss depend on the current
      influence state) and without ``loss_weight``: the quantity the
      IG-CAM plateau rule and early stopping monitor as "validation loss".
      It equals ``MultiLabelSoftMarginLoss`` (the CAM baseline's loss);
      CamGuide's ``L_cls`` (eq. (23)) is a margin loss, so for CamGuide
      select on ``mAP`` instead;
    - ``mAP``: the mean over classes of :func:`average_precision` of the
      logits (rank-based, so the same as on probabilities), in percent;
      classes with no positive image in the split are skipped (NaN with a
      warning when no class has one);
    - ``F1``: the micro F1 score of the decisions ``sigmoid(z) >=
      threshold`` over all (image, class) pairs, ``2 TP / (2 TP + FP +
      FN)``, in percent (0 when the split has no positive and no positive
      decision, as scikit-learn's ``zero_division=0``).

    Percentages follow ``mmseg.IoUMetric`` and mmpretrain's metrics. Keys
    get ``'<prefix>/'`` in front when ``prefix`` is set (then monitor e.g.
    ``'cls/cls_loss'`` in ``StageSwitchHook`` / ``EarlyStoppingHook``).
    The hooks receive the exact values, but MMEngine's ``LogProcessor``
    logs (and sends to the visualiser) every key matching ``loss`` as the
    mean over its window of past validations; the plateau configs add
    ``log_processor=dict(custom_cfg=[dict(data_src='cls_loss',
    method_name='mean', window_size=1)])`` to log the current value.

    What the logits are: those of ``predict``, i.e. the model's fused image
    logits averaged over the ``test_cfg`` scales and flips (the VOC IG-CAM
    config's single-scale, no-flip ``test_cfg`` gives the plain forward).
    For ``IGCAMSegmentor`` with ``test_cfg.use_influence=True`` the forward
    uses the sample's ``img_labels`` to build the influence maps, exactly
    as the training forward does, so ``cls_loss`` is the training objective
    on held-out images; ``mAP`` and ``F1`` of such a label-conditioned
    forward are optimistic as pure classification scores (set
    ``use_influence=False`` for label-free logits).

    Args:
        metrics (str | Sequence[str]): Any of ``'cls_loss'``, ``'mAP'``,
            ``'F1'``. Defaults to all three.
        threshold (float): Probability threshold of the F1 decisions, in
            ``(0, 1)``. Defaults to 0.5.
        num_classes (int, optional): Classes including background. Defaults
            to the length of ``dataset_meta['classes']`` (set by the
            runner), else the length of the first logits plus one.
        logits_key (str): Field of the predicted sample that holds the
            logits. Defaults to ``'pred_img_logits'``.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for collecting results
            from ranks. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            None.
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 metrics: Sequence[str] = ALL_METRICS,
                 threshold: float = 0.5,
                 num_classes: Optional[int] = None,
                 logits_key: str = 'pred_img_logits',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(metrics, str):
            metrics = (metrics, )
        metrics = tuple(metrics)
        unknown = [m for m in metrics if m not in ALL_METRICS]
        if not metrics or unknown:
            raise ValueError(f'metrics must be a non-empty subset of '
                             f'{ALL_METRICS}, got {metrics}')
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f'threshold must be in (0, 1), got {threshold}')
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(f'num_classes must be >= 2 (background and one '
                             f'foreground class), got {num_classes}')
        self.metrics = metrics
        self.threshold = float(threshold)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.logits_key = logits_key

    def _num_classes(self, num_logits: int) -> int:
        if self.num_classes is not None:
            return self.num_classes
        meta = self.dataset_meta or {}
        if meta.get('classes'):
            return len(meta['classes'])
        return num_logits + 1

    def _sample_pair(self, sample: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Logits and multi-hot targets of one predicted sample."""
        if isinstance(sample, BaseDataElement):
            sample = sample.to_dict()
        sample = dict(sample)
        where = sample.get('img_path', 'a sample without img_path')
        if self.logits_key not in sample:
            raise KeyError(
                f'MultiLabelClsMetric: no {self.logits_key!r} in the '
                f'prediction of {where}. CAMSegmentor.predict (and '
                'IGCAMSegmentor / CamGuideSegmentor, which inherit it) '
                "stores the image logits as 'pred_img_logits'; AffinityNet "
                'and mmseg segmentors have no image classifier')
        logits = sample[self.logits_key]
        if isinstance(logits, torch.Tensor):
            logits = logits.detach().float().cpu().numpy()
        logits = np.asarray(logits, dtype=np.float64)
        k = self._num_classes(logits.size)
        if logits.shape != (k - 1, ):
            raise ValueError(
                f'MultiLabelClsMetric: {where}: {self.logits_key} has shape '
                f'{tuple(logits.shape)}, expected ({k - 1},) (num_classes '
                f'{k} minus background)')
        if not np.isfinite(logits).all():
            raise ValueError(
                f'MultiLabelClsMetric: {where}: {self.logits_key} contains '
                'NaN/Inf (diverged model or corrupt checkpoint)')
        if 'img_labels' not in sample:
            raise KeyError(
                f'MultiLabelClsMetric: {where} has no img_labels; pack the '
                'samples with PackWSSSInputs')
        target = np.zeros(k - 1, dtype=np.uint8)
        for lab in sample['img_labels']:
            lab = int(lab)
            if not 1 <= lab <= k - 1:
                raise ValueError(
                    f'MultiLabelClsMetric: {where}: img_labels holds {lab}, '
                    f'outside the foreground ids [1, {k - 1}]')
            target[lab - 1] = 1
        return logits, target

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep the logits and targets of a batch of predicted samples.

        Args:
            data_batch (Any): The batch from the dataloader (unused).
            data_samples (Sequence[dict | SegDataSample]): The predicted
                samples (``Evaluator`` passes them as dicts).
        """
        for sample in data_samples:
            logits, target = self._sample_pair(sample)
            self.results.append(dict(logits=logits, target=target))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """The metrics of the whole split.

        Args:
            results (list[dict]): ``logits`` and ``target`` per image.

        Returns:
            dict[str, float]: The requested metrics.
        """
        if not results:
            raise ValueError('MultiLabelClsMetric: no predicted sample')
        sizes = {r['logits'].size for r in results}
        if len(sizes) != 1:
            raise ValueError(f'MultiLabelClsMetric: logits of different '
                             f'lengths {sorted(sizes)} in one split')
        logits = np.stack([r['logits'] for r in results])
        target = np.stack([r['target'] for r in results])
        out: Dict[str, float] = {}
        if 'cls_loss' in self.metrics:
            out['cls_loss'] = float(bce_with_logits(logits, target).mean())
        if 'mAP' in self.metrics:
            aps = [
                average_precision(logits[:, c], target[:, c])
                for c in range(logits.shape[1]) if target[:, c].any()
            ]
            if not aps:
                print_log(
                    'MultiLabelClsMetric: no class has a positive image; '
                    'mAP is NaN',
                    logger='current',
                    level=30)
            out['mAP'] = 100.0 * float(np.mean(aps)) if aps \
                else float('nan')
        if 'F1' in self.metrics:
            thr = math.log(self.threshold / (1.0 - self.threshold))
            pred = logits >= thr
            pos = target > 0
            tp = int((pred & pos).sum())
            fp = int((pred & ~pos).sum())
            fn = int((~pred & pos).sum())
            denom = 2 * tp + fp + fn
            out['F1'] = 100.0 * 2 * tp / denom if denom else 0.0
        return out
