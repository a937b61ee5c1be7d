# Copyright (c) mmwsss contributors.
"""MixUp / CutMix on preprocessed batches with soft multi-label targets.

Batch augments run in the data preprocessor after normalisation and
stacking (``mmseg.SegDataPreProcessor.batch_augments`` is called as
``inputs, data_samples = batch_augments(inputs, data_samples)`` in training
only). Image-level labels are mixed into soft multi-label targets::

    y~_i = lam y_i + (1 - lam) y_perm(i)

stored in the samples' meta information as ``img_labels`` (the union of
the labels with a positive target, sorted) and ``img_label_weights`` (the
target of each of them, aligned with ``img_labels``), which
:meth:`~mmwsss.models.heads.InstanceGuidedCAMHead.targets` (and
:class:`~mmwsss.models.heads.CAMHead`) turn into ``(N, K)`` soft targets for
the BCE losses. Losses that need a class set (consistency, boundary) use
the labels with a positive target. Samples that already carry weights
(an earlier augment) are mixed with their weights.

Proposals, ``gt_sem_seg`` and the other fields stay those of the base image
``i`` (the whole-image proposal of the IG-CAM head still covers a pasted
region). Both augments also write ``valid_shape``: the unpadded area of the
mixed image, the intersection of both images' ``valid_shape`` (default
``img_shape``; the data preprocessor pads at the bottom and right), so that
losses that must ignore the zero padding (the IG-CAM boundary loss) do not
see the padding of the partner either (:func:`mix_valid_shapes`).
Randomness comes from the global torch RNG of the main process, like
dropout, so a seeded run is reproducible.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmseg.utils import SampleList
from torch import Tensor

from mmwsss.registry import MODELS

Box = Tuple[int, int, int, int]


def _label_weights(sample) -> Dict[int, float]:
    meta = sample.metainfo
    if 'img_labels' not in meta:
        raise KeyError(
            f'data sample of {meta.get("img_path", "?")} has no img_labels; '
            'pack inputs with PackWSSSInputs')
    labels = [int(x) for x in meta['img_labels']]
    weights = meta.get('img_label_weights', None)
    if weights is None:
        weights = [1.0] * len(labels)
    return {lab: float(w) for lab, w in zip(labels, weights)}


def mix_labels(data_samples: SampleList, perm: Sequence[int],
               lam: float) -> None:
    """Write ``lam y_i + (1 - lam) y_perm(i)`` into the samples in place.

    Args:
        data_samples (list[SegDataSample]): Samples with ``img_labels``
            (and optionally ``img_label_weights``).
        perm (Sequence[int]): Partner index of every sample.
        lam (float): Weight of the sample's own labels, in ``[0, 1]``.
    """
    old = [_label_weights(ds) for ds in data_samples]
    for i, ds in enumerate(data_samples):
        own, other = old[i], old[int(perm[i])]
        mixed = {
            lab: lam * own.get(lab, 0.0) + (1 - lam) * other.get(lab, 0.0)
            for lab in set(own) | set(other)
        }
        labels = sorted(lab for lab, w in mixed.items() if w > 0)
        ds.set_metainfo(
            dict(
                img_labels=labels,
                img_label_weights=[float(mixed[lab]) for lab in labels]))


def valid_shape(sample) -> Optional[Tuple[int, int]]:
    """The unpadded ``(h, w)`` of a sample's input: ``valid_shape`` (set by
    the batch augments) or ``img_shape``; None when neither is known."""
    meta = sample.metainfo
    shape = meta.get('valid_shape', meta.get('img_shape', None))
    return None if shape is None else tuple(int(v) for v in shape[:2])


def mix_valid_shapes(data_samples: SampleList, perm: Sequence[int]) -> None:
    """Write the intersection of the valid areas of ``i`` and ``perm(i)``.

    Pixels outside either image's unpadded area hold (a blend with) zero
    padding after MixUp, or may after CutMix (the pasted box keeps its
    coordinates), so the mixed image is clean inside the intersection of
    the two top-left-anchored rectangles. Samples without a known shape
    are left alone.
    """
    old = [valid_shape(ds) for ds in data_samples]
    for i, ds in enumerate(data_samples):
        own, other = old[i], old[int(perm[i])]
        if own is None or other is None:
            continue
        ds.set_metainfo(
            dict(valid_shape=(min(own[0], other[0]), min(own[1],
                                                         other[1]))))


class _MixBase:
    """Shared sampling of ``lam`` ~ Beta(alpha, alpha) and the partners."""

    def __init__(self, alpha: float = 1.0) -> None:
        if not alpha > 0:
            raise ValueError(f'alpha must be > 0, got {alpha}')
        self.alpha = float(alpha)

    def sample_lam(self) -> float:
        """Draw ``lam`` from the global torch RNG."""
        a = torch.tensor(self.alpha)
        return float(torch.distributions.Beta(a, a).sample())

    @staticmethod
    def sample_perm(n: int) -> Tensor:
        """Random partners (a permutation) from the global torch RNG."""
        return torch.randperm(n)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(alpha={self.alpha})'


@MODELS.register_module()
class MultiLabelMixUp(_MixBase):
    """MixUp (Zhang et al., 2018) with soft multi-label targets.

    ``x~_i = lam x_i + (1 - lam) x_perm(i)`` with ``lam ~ Beta(alpha,
    alpha)`` per batch and ``perm`` a random permutation; targets as in
    :func:`mix_labels`.

    Args:
        alpha (float): Beta parameter. Defaults to 1.0.
    """

    def mix(self, inputs: Tensor, data_samples: SampleList, lam: float,
            perm: Sequence[int]) -> Tuple[Tensor, SampleList]:
        """Deterministic MixUp with given ``lam`` and partners."""
        perm_t = torch.as_tensor(perm, device=inputs.device)
        out = lam * inputs + (1 - lam) * inputs[perm_t]
        mix_labels(data_samples, [int(p) for p in perm], lam)
        mix_valid_shapes(data_samples, perm)
        return out, data_samples

    def __call__(self, inputs: Tensor,
                 data_samples: SampleList) -> Tuple[Tensor, SampleList]:
        """MixUp a preprocessed batch ``(N, C, H, W)``."""
        return self.mix(inputs, data_samples, self.sample_lam(),
                        self.sample_perm(inputs.shape[0]))


@MODELS.register_module()
class MultiLabelCutMix(_MixBase):
    """CutMix (Yun et al., 2019) with soft multi-label targets.

    A box of area about ``(1 - lam) H W`` (``lam ~ Beta(alpha, alpha)``,
    side ratio ``sqrt(1 - lam)``, centre uniform, clipped to the image) is
    pasted from the partner image; the label weight is the exact visible
    fraction ``lam = 1 - box area / (H W)`` after clipping (as timm's
    ``correct_lam``).

    Args:
        alpha (float): Beta parameter. Defaults to 1.0.
    """

    def sample_box(self, lam: float, h: int, w: int) -> Box:
        """Box ``(y1, y2, x1, x2)`` for a target ratio ``lam``."""
        ratio = math.sqrt(max(0.0, 1.0 - lam))
        ch, cw = int(h * ratio), int(w * ratio)
        cy = int(torch.randint(h, ()).item())
        cx = int(torch.randint(w, ()).item())
        y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        return y1, y2, x1, x2

    def mix(self, inputs: Tensor, data_samples: SampleList, box: Box,
            perm: Sequence[int]) -> Tuple[Tensor, SampleList]:
        """Deterministic CutMix with a given box and partners.

        Args:
            inputs (Tensor): ``(N, C, H, W)`` batch.
            data_samples (list[SegDataSample]): Its samples.
            box (tuple[int, int, int, int]): ``(y1, y2, x1, x2)`` pixels
                taken from the partner.
            perm (Sequence[int]): Partner index of every sample.

        Returns:
            tuple[Tensor, list]: Mixed inputs and the samples.
        """
        h, w = inputs.shape[-2:]
        y1, y2, x1, x2 = box
        perm_t = torch.as_tensor(perm, device=inputs.device)
        out = inputs.clone()
        out[..., y1:y2, x1:x2] = inputs[perm_t][..., y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / float(h * w)
        mix_labels(data_samples, [int(p) for p in perm], lam)
        if y2 > y1 and x2 > x1:
            mix_valid_shapes(data_samples, perm)
        return out, data_samples

    def __call__(self, inputs: Tensor,
                 data_samples: SampleList) -> Tuple[Tensor, SampleList]:
        """CutMix a preprocessed batch ``(N, C, H, W)``."""
        h, w = inputs.shape[-2:]
        box = self.sample_box(self.sample_lam(), h, w)
        return self.mix(inputs, data_samples, box,
                        self.sample_perm(inputs.shape[0]))


@MODELS.register_module()
class RandomBatchAugment:
    """Apply one randomly chosen batch augment per batch.

    Example (IG-CAM stage 2, MixUp or CutMix on every batch)::

        batch_augments = dict(
            type='RandomBatchAugment',
            augments=[
                dict(type='MultiLabelMixUp', alpha=1.0),
                dict(type='MultiLabelCutMix', alpha=1.0)
            ],
            probs=[0.5, 0.5])

    Args:
        augments (list[dict]): Augment configs (or callables).
        probs (list[float], optional): Probability of each augment; the
            rest (``1 - sum``) leaves the batch unchanged. Defaults to
            uniform over the augments (always one).
    """

    def __init__(self,
                 augments: Sequence,
                 probs: Optional[Sequence[float]] = None) -> None:
        self.augments: List = [
            MODELS.build(a) if isinstance(a, dict) else a for a in augments
        ]
        if not self.augments:
            raise ValueError('augments must not be empty')
        if probs is None:
            probs = [1.0 / len(self.augments)] * len(self.augments)
        probs = [float(p) for p in probs]
        if len(probs) != len(self.augments) or min(probs) < 0 or \
                sum(probs) > 1 + 1e-6:
            raise ValueError(f'probs {probs} must be {len(self.augments)} '
                             'non-negative numbers summing to at most 1')
        self.probs = probs

    def __call__(self, inputs: Tensor,
                 data_samples: SampleList) -> Tuple[Tensor, SampleList]:
        """Pick an augment (or none) with the global torch RNG; apply it."""
        u = float(torch.rand(()))
        acc = 0.0
        for aug, p in zip(self.augments, self.probs):
            acc += p
            if u < acc:
                return aug(inputs, data_samples)
        return inputs, data_samples

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(augments={self.augments}, '
                f'probs={self.probs})')
