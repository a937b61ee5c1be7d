# Copyright (c) mmwsss contributors.
"""mIoU of label-map files (pseudo-labels) against ground-truth masks."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm



def label_map_confusion(pred: np.ndarray,
                        gt: np.ndarray,
                        num_classes: int,
                        ignore_index: int = 255) -> np.ndarray:
    """Confusion counts of one label map, as ``mmseg.IoUMetric`` counts.

    Ground-truth pixels equal to ``ignore_index`` are skipped. Predictions
    outside ``[0, num_classes)`` (e.g. 255 in a pseudo-label) on valid
    ground truth are booked in an extra last row: they enlarge the union of
    their true class and intersect nothing, as in mmseg (whose ``histc`` of
    predictions drops them).

    Args:
        pred (np.ndarray): ``(H, W)`` predicted class indices.
        gt (np.ndarray): ``(H, W)`` true class indices.
        num_classes (int): Number of classes including background.
        ignore_index (int): Ignored label. Defaults to 255.

    Returns:
        np.ndarray: ``(num_classes + 1, num_classes)`` int64 counts, rows
        prediction (last row: out-of-range prediction), columns truth.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'prediction shape {pred.shape} differs from '
                         f'ground truth shape {gt.shape}')
    pred = pred.astype(np.int64).ravel()
    gt = gt.astype(np.int64).ravel()
    valid = gt != ignore_index
    bad = np.unique(gt[valid & ((gt < 0) | (gt >= num_classes))])
    if bad.size:
        raise ValueError(f'ground truth holds class ids {bad.tolist()} '
                         f'outside [0, {num_classes - 1}]')
    pred, gt = pred[valid], gt[valid]
    pred = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)
    return np.bincount(
        pred * num_classes + gt,
        minlength=(num_classes + 1) * num_classes).reshape(
            num_classes + 1, num_classes)


def iou_from_counts(conf: np.ndarray) -> Tuple[float, np.ndarray]:
    """Per-class IoU and their NaN-mean from :func:`label_map_confusion`.

    Args:
        conf (np.ndarray): ``(C + 1, C)`` counts.

    Returns:
        tuple[float, np.ndarray]: mIoU and per-class IoU (NaN where a class
        is in neither prediction nor ground truth).
    """
    conf = np.asarray(conf, dtype=np.float64)
    num_classes = conf.shape[1]
    inter = np.diag(conf[:num_classes])
    union = conf[:num_classes].sum(1) + conf.sum(0) - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    miou = float(np.nanmean(iou)) if np.any(union > 0) else float('nan')
    return miou, iou


def read_label_png(path: str) -> np.ndarray:
    """Read an index (or palette) PNG as an ``(H, W)`` array."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'label map not found: {path}')
    try:
        with Image.open(path) as im:
            if im.mode not in ('P', 'L', 'I', 'I;16'):
                raise ValueError(f'{path}: expected an index or palette PNG, '
                                 f'got mode {im.mode}')
            return np.asarray(im)
    except (OSError, SyntaxError) as e:
        raise ValueError(f'cannot read label map {path}: {e}') from e


def evaluate_label_dirs(pred_dir: str,
                        gt_dir: str,
                        num_classes: int,
                        names: Optional[Sequence[str]] = None,
                        ignore_index: int = 255,
                        progress: bool = True) -> Dict[str, object]:
    """mIoU of ``pred_dir/<name>.png`` against ``gt_dir/<name>.png``.

    Args:
        pred_dir (str): Folder of predicted label PNGs.
        gt_dir (str): Folder of ground-truth label PNGs.
        num_classes (int): Number of classes including background.
        names (Sequence[str], optional): Image stems; default every PNG in
            ``pred_dir``.
        ignore_index (int): Ignored ground-truth label.
        progress (bool): Show a progress bar.

    Returns:
        dict: ``miou`` (fraction), ``iou`` (per class, NaN where a class is
        absent from both), ``confusion`` and ``num_images``.
    """
    if names is None:
        names = sorted(
            osp.splitext(f)[0] for f in os.listdir(pred_dir)
            if f.endswith('.png'))
    if not names:
        raise ValueError(f'no label map to evaluate in {pred_dir}')
    conf = np.zeros((num_classes + 1, num_classes), dtype=np.int64)
    for name in tqdm(names, desc='mIoU', unit='img', disable=not progress):
        pred = read_label_png(osp.join(pred_dir, name + '.png'))
        gt = read_label_png(osp.join(gt_dir, name + '.png'))
        try:
            conf += label_map_confusion(pred, gt, num_classes, ignore_index)
        except ValueError as e:
            raise ValueError(f'image "{name}": {e}') from e
    miou, iou = iou_from_counts(conf)
    return dict(miou=miou, iou=iou, confusion=conf, num_images=len(names))


__all__: List[str] = [
    'label_map_confusion', 'iou_from_counts', 'read_label_png',
    'evaluate_label_dirs'
]
