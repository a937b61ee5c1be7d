# Copyright (c) mmwsss contributors.
"""Precision of confident affinity labels against ground-truth masks.

AffinityNet (PSA) and IRN learn pixel affinities from *confident* CAM
labels (``tools/make_affinity_labels.py``: 0 background, class ids,
``255`` uncertain). What the network learns is bounded by how often those
labels are right. Two views are measured:

- **pixels**: of the confident foreground pixels, the share whose class is
  the true class (``fg_precision``); of the confident background pixels,
  the share that is true background (``bg_precision``); and ``coverage``
  (confident share of the valid pixels);
- **pairs**, what the affinity loss actually trains on: both maps are
  brought to the affinity grid (nearest neighbour, ``stride``, as
  :meth:`~mmwsss.models.heads.AffinityHead.downsample_labels`), and every
  pair of grid nodes closer than ``radius``
  (:func:`~mmwsss.refine.affinity_random_walk.pair_offsets`) with two
  confident labels is a positive (same label; split into background and
  foreground positives) or a negative (different labels) pair. A positive
  pair is correct when the two true labels are equal, a negative one when
  they differ (``pos_bg_precision``, ``pos_fg_precision``,
  ``neg_precision``). Pairs touching an ignored true label are skipped.

:class:`AffinityLabelPrecision` accumulates counts over images;
:func:`evaluate_affinity_label_dir` scores a folder of label PNGs.
"""
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from mmwsss.refine.affinity_random_walk import pair_offsets, pair_slices
from .label_maps import read_label_png

__all__ = ['AffinityLabelPrecision', 'evaluate_affinity_label_dir']

_COUNTS = ('fg_conf', 'fg_ok', 'bg_conf', 'bg_ok', 'valid', 'confident',
           'pos_bg', 'pos_bg_ok', 'pos_fg', 'pos_fg_ok', 'neg', 'neg_ok')


def _grid(labels: np.ndarray, stride: int) -> np.ndarray:
    """Nearest-neighbour labels on the ``ceil(H / stride)`` grid."""
    if stride == 1:
        return labels
    h, w = labels.shape
    size = (-(-h // stride), -(-w // stride))
    out = F.interpolate(
        torch.from_numpy(labels.astype(np.float32))[None, None],
        size=size,
        mode='nearest')
    return out[0, 0].numpy().round().astype(np.int64)


class AffinityLabelPrecision:
    """Accumulates pixel and pair precision counts over images.

    Args:
        radius (int): Pair radius on the affinity grid. Defaults to 5.
        stride (int): Stride of the affinity grid (4 for AffinityNet on
            stride-4 features). Defaults to 4.
        ignore_index (int): The uncertain label and the ignored true label.
            Defaults to 255.
    """

    def __init__(self,
                 radius: int = 5,
                 stride: int = 4,
                 ignore_index: int = 255) -> None:
        pair_offsets(radius)  # validates
        if int(stride) < 1:
            raise ValueError(f'stride must be >= 1, got {stride}')
        self.radius = int(radius)
        self.stride = int(stride)
        self.ignore_index = int(ignore_index)
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.images = 0

    def add(self, conf: np.ndarray, gt: np.ndarray) -> None:
        """Book one confident label map against its mask (same size)."""
        conf = np.asarray(conf).astype(np.int64)
        gt = np.asarray(gt).astype(np.int64)
        if conf.shape != gt.shape or conf.ndim != 2:
            raise ValueError(f'confident labels {conf.shape} and mask '
                             f'{gt.shape} must be 2-D of one size')
        ign = self.ignore_index
        c = self.counts
        valid = gt != ign
        fg = valid & (conf != ign) & (conf != 0)
        bg = valid & (conf == 0)
        c['valid'] += int(valid.sum())
        c['confident'] += int((valid & (conf != ign)).sum())
        c['fg_conf'] += int(fg.sum())
        c['fg_ok'] += int((fg & (conf == gt)).sum())
        c['bg_conf'] += int(bg.sum())
        c['bg_ok'] += int((bg & (gt == 0)).sum())
        lc, lg = _grid(conf, self.stride), _grid(gt, self.stride)
        h, w = lc.shape
        for dy, dx in pair_offsets(self.radius):
            (fy, fx), (ty, tx) = pair_slices(h, w, dy, dx)
            a, b = lc[fy, fx], lc[ty, tx]
            ga, gb = lg[fy, fx], lg[ty, tx]
            ok = (a != ign) & (b != ign) & (ga != ign) & (gb != ign)
            same_gt = ga == gb
            pos = ok & (a == b)
            pos_bg, pos_fg, neg = pos & (a == 0), pos & (a != 0), ok & (a != b)
            c['pos_bg'] += int(pos_bg.sum())
            c['pos_bg_ok'] += int((pos_bg & same_gt).sum())
            c['pos_fg'] += int(pos_fg.sum())
            c['pos_fg_ok'] += int((pos_fg & same_gt).sum())
            c['neg'] += int(neg.sum())
            c['neg_ok'] += int((neg & ~same_gt).sum())
        self.images += 1

    def results(self) -> Dict[str, float]:
        """Precisions and coverage in [0, 1] (NaN when nothing counted),
        plus the raw counts."""
        c = self.counts

        def ratio(a: str, b: str) -> float:
            return c[a] / c[b] if c[b] else float('nan')

        out = dict(
            images=self.images,
            fg_precision=ratio('fg_ok', 'fg_conf'),
            bg_precision=ratio('bg_ok', 'bg_conf'),
            coverage=ratio('confident', 'valid'),
            pos_bg_precision=ratio('pos_bg_ok', 'pos_bg'),
            pos_fg_precision=ratio('pos_fg_ok', 'pos_fg'),
            neg_precision=ratio('neg_ok', 'neg'))
        out.update({f'n_{k}': v for k, v in c.items()})
        return out


def evaluate_affinity_label_dir(label_dir: str,
                                gt_dir: str,
                                gt_suffix: str = '.png',
                                radius: int = 5,
                                stride: int = 4,
                                ignore_index: int = 255,
                                limit: Optional[int] = None,
                                missing: str = 'raise') -> Dict[str, float]:
    """Precision of every ``<stem>.png`` of ``label_dir`` vs ``gt_dir``.

    Args:
        label_dir (str): Confident label PNGs (``make_affinity_labels``).
        gt_dir (str): Masks ``<stem><gt_suffix>``.
        gt_suffix (str): Mask file suffix. Defaults to ``'.png'``.
        radius (int): Pair radius on the affinity grid.
        stride (int): Affinity grid stride.
        ignore_index (int): Uncertain / ignored label.
        limit (int, optional): Score only the first ``limit`` files.
        missing (str): A label map without a mask: ``'raise'`` or
            ``'skip'`` (masks of a subset of the images).

    Returns:
        dict: See :meth:`AffinityLabelPrecision.results`.

    Raises:
        FileNotFoundError: A mask is missing (``missing='raise'``) or no
            label map has one (the message names the folders).
        ValueError: A label map and its mask differ in size.
    """
    if missing not in ('raise', 'skip'):
        raise ValueError(f"missing must be 'raise' or 'skip', got "
                         f'{missing!r}')
    stems = sorted(f[:-4] for f in os.listdir(label_dir)
                   if f.endswith('.png') and not f.startswith('.'))
    if limit:
        stems = stems[:int(limit)]
    if not stems:
        raise FileNotFoundError(f'no label PNGs in {label_dir}')
    acc = AffinityLabelPrecision(radius, stride, ignore_index)
    for stem in stems:
        gt_path = osp.join(gt_dir, stem + gt_suffix)
        if not osp.isfile(gt_path):
            if missing == 'skip':
                continue
            raise FileNotFoundError(f'mask not found: {gt_path}')
        conf = read_label_png(osp.join(label_dir, stem + '.png'))
        gt = read_label_png(gt_path)
        if conf.shape != gt.shape:
            raise ValueError(f'{stem}: labels {conf.shape} and mask '
                             f'{gt.shape} differ in size')
        acc.add(conf, gt)
    if not acc.images:
        raise FileNotFoundError(f'no mask in {gt_dir} matches a label map '
                                f'of {label_dir} (suffix {gt_suffix!r})')
    return acc.results()
