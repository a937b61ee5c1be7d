# Copyright (c) mmwsss contributors.
"""Quality of object proposals against masks (IG-CAM's instance guidance).

IG-CAM (sec. 3.4) uses Selective Search boxes as "instance-level priors ...
ensuring complete object coverage". Whether the boxes a model is given can
do that is measured here, with the demo's masks, for each selection rule
of :func:`~mmwsss.models.utils.select_boxes` (the head's own choice):

- **ABO** (average best overlap, Uijlings et al., IJCV 2013, the Selective
  Search paper's own measure): for every ground-truth object, the best IoU
  between its tight box and any selected proposal, averaged over objects;
- **recall@0.5**: the fraction of objects with a best overlap >= 0.5;
- **coverage AUC**: the foreground AUC
  (:func:`~mmwsss.evaluation.target_quality.foreground_auc`) of the
  coverage map ``sum_k M_k(u) / K``, the factor that IG-CAM's
  ``cam_mode='coverage'`` multiplies the dense CAM by when the proposal
  weights are uniform (the head's weights start uniform). 50 means the
  boxes pile up on objects no more than on background;
- **box area**: the mean area of a selected box as a fraction of the
  image, and the number of boxes kept.

Objects are read from a semantic mask: the 8-connected components of each
class (ignored pixels excluded). An object split by an occluder counts as
several objects, one merged with a touching object of its class as one.
Components smaller than ``min_area`` pixels (slivers left by occlusion)
are not counted as objects.

The measures are written here because no kept library has them for boxes
against a semantic mask: IoUs come from :func:`torchvision.ops.box_iou`,
components from :func:`cv2.connectedComponentsWithStats`, masks from
:func:`~mmwsss.models.utils.box_masks`.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from mmwsss.models.utils.box_ops import box_area, box_masks, select_boxes
from .label_maps import read_label_png
from .target_quality import foreground_auc

__all__ = [
    'mask_objects', 'coverage_map', 'ProposalQuality', 'evaluate_proposal_dir'
]


def mask_objects(gt: np.ndarray,
                 ignore_index: int = 255,
                 min_area: int = 1) -> np.ndarray:
    """Tight boxes of the objects of a semantic mask.

    Args:
        gt (np.ndarray): ``(H, W)`` mask, 0 background.
        ignore_index (int): Ignored value. Defaults to 255.
        min_area (int): Smallest component kept, in pixels. Defaults to 1.

    Returns:
        np.ndarray: ``(M, 4)`` float32 boxes ``x1, y1, x2, y2`` in
        pixel-edge coordinates (a component over columns 3..7 has
        ``x1 = 3, x2 = 8``), as the proposals are.
    """
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f'gt must be 2-D, got shape {gt.shape}')
    boxes: List[List[float]] = []
    for c in np.unique(gt):
        if c == 0 or c == ignore_index:
            continue
        n, _, stats, _ = cv2.connectedComponentsWithStats(
            (gt == c).astype(np.uint8), connectivity=8)
        for x, y, w, h, area in stats[1:n]:
            if area >= min_area:
                boxes.append([x, y, x + w, y + h])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def coverage_map(boxes: torch.Tensor, shape, chunk: int = 256) -> np.ndarray:
    """``sum_k M_k(u) / K``: the share of the boxes covering each pixel.

    Args:
        boxes (Tensor): ``(K, 4)`` boxes in pixel-edge coordinates.
        shape (tuple): ``(H, W)`` of the image.
        chunk (int): Boxes per dense block (bounds the memory).

    Returns:
        np.ndarray: ``(H, W)`` float32 map in [0, 1]; zeros without boxes.
    """
    h, w = int(shape[0]), int(shape[1])
    boxes = boxes.reshape(-1, 4).float()
    out = torch.zeros(h, w)
    for i in range(0, boxes.shape[0], chunk):
        out += box_masks(boxes[i:i + chunk], (h, w)).sum(0)
    return (out / max(boxes.shape[0], 1)).numpy()


class ProposalQuality:
    """Accumulates the proposal measures of the module, per selection name.

    Args:
        ignore_index (int): Ignored mask value. Defaults to 255.
        min_area (int): Smallest object component counted, in pixels.
        iou_thr (float): Overlap at which an object counts as recalled.
    """

    def __init__(self,
                 ignore_index: int = 255,
                 min_area: int = 1,
                 iou_thr: float = 0.5) -> None:
        self.ignore_index = int(ignore_index)
        self.min_area = int(min_area)
        self.iou_thr = float(iou_thr)
        self._best: Dict[str, List[float]] = {}
        self._auc: Dict[str, List[float]] = {}
        self._area: Dict[str, List[float]] = {}
        self._count: Dict[str, List[int]] = {}

    def add(self, name: str, boxes, gt: np.ndarray) -> None:
        """Book the selected ``(K, 4)`` boxes of one image against its
        ``(H, W)`` mask."""
        gt = np.asarray(gt)
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32))
        boxes = boxes.reshape(-1, 4)
        h, w = gt.shape
        objects = torch.from_numpy(
            mask_objects(gt, self.ignore_index, self.min_area))
        best = self._best.setdefault(name, [])
        if objects.shape[0]:
            if boxes.shape[0]:
                best.extend(box_iou(objects, boxes).max(1).values.tolist())
            else:
                best.extend([0.0] * objects.shape[0])
        auc = foreground_auc(
            coverage_map(boxes, (h, w)), gt, self.ignore_index)
        if auc is not None:
            self._auc.setdefault(name, []).append(auc)
        self._count.setdefault(name, []).append(int(boxes.shape[0]))
        if boxes.shape[0]:
            self._area.setdefault(name, []).extend(
                (box_area(boxes) / float(h * w)).tolist())

    def results(self) -> Dict[str, Dict[str, Optional[float]]]:
        """``{name: {abo, recall, coverage_auc, box_area, boxes,
        objects}}``, fractions in [0, 1]; None where nothing was booked."""

        def mean(v):
            return float(np.mean(v)) if v else None

        out = {}
        for name in self._count:
            best = self._best.get(name, [])
            out[name] = dict(
                abo=mean(best),
                recall=mean([b >= self.iou_thr for b in best]),
                coverage_auc=mean(self._auc.get(name, [])),
                box_area=mean(self._area.get(name, [])),
                boxes=mean(self._count[name]),
                objects=len(best))
        return out


def evaluate_proposal_dir(proposal_dir: str,
                          gt_dir: str,
                          names: Sequence[str],
                          top_k: Optional[int] = 64,
                          modes: Sequence[str] = ('rank', 'random', 'area'),
                          seed: int = 0,
                          ignore_index: int = 255,
                          min_area: int = 1) -> Dict[str, dict]:
    """Proposal measures of a folder of ``<id>.npz`` files, per rule.

    Every rule of :func:`~mmwsss.models.utils.select_boxes` in ``modes``
    picks ``top_k`` boxes of each image (``'all'`` books every box); the
    ``'random'`` rule draws with ``torch`` seeded by ``seed``.

    Args:
        proposal_dir (str): Folder of ``tools/generate_proposals.py``.
        gt_dir (str): Folder of ``<id>.png`` masks.
        names (Sequence[str]): Image ids.
        top_k (int, optional): Boxes kept per image; None keeps all.
        modes (Sequence[str]): Selection rules, plus ``'all'``.
        seed (int): Seed of the random rule.
        ignore_index (int): Ignored mask value.
        min_area (int): Smallest object component counted, in pixels.

    Returns:
        dict: :meth:`ProposalQuality.results`, keyed by rule.
    """
    from mmwsss.datasets.transforms.proposals import load_proposal_file
    quality = ProposalQuality(ignore_index, min_area)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for name in names:
            gt = read_label_png(osp.join(gt_dir, name + '.png'))
            boxes = torch.from_numpy(
                load_proposal_file(
                    osp.join(proposal_dir, name + '.npz'), gt.shape))
            for mode in modes:
                kept = boxes if mode == 'all' else select_boxes(
                    boxes, top_k, mode)
                quality.add(mode, kept, gt)
    return quality.results()
