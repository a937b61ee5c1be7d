# Copyright (c) mmwsss contributors.
"""Sweep global and class-wise CAM background thresholds on saved scores.

Example::

    python tools/analysis_tools/sweep_thresholds.py \\
        --scores-dir work_dirs/cams/scores \\
        --gt-dir data/VOC2012/SegmentationClass \\
        --labels data/VOC2012/image_labels.json --out sweep.json

``--scores-dir`` holds ``<id>.npz`` files with ``scores`` (C, H, W; channel 0
background, channels 1.. normalised CAMs) and ``img_labels``; ``--gt-dir``
holds ``<id>.png`` index masks (255 ignored). Every ``.npz`` in the scores
folder is evaluated. The decision rule and mIoU convention are those of
:mod:`mmwsss.cams.thresholds`. The label-free per-image Otsu rule
(``bg_mode='otsu'``) is scored alongside, to decide whether the swept
constant is worth using.
"""
import argparse
import json
import os
import os.path as osp
import sys
import zipfile
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from mmwsss.cams.cam_ops import otsu_background
from mmwsss.cams.thresholds import (ThresholdAccumulator, apply_thresholds,
                                   iou_from_confusion, threshold_grid)

VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle',
               'bus', 'car', 'cat', 'chair', 'cow', 'diningtable', 'dog',
               'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
               'train', 'tvmonitor')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='mIoU of CAM seeds for global and class-wise '
        'background thresholds')
    parser.add_argument(
        '--scores-dir', required=True, help='folder of <id>.npz scores')
    parser.add_argument(
        '--gt-dir', required=True, help='folder of <id>.png masks')
    parser.add_argument(
        '--labels',
        default=None,
        help='JSON image-label file {"<id>": [class index or name, ...]}; '
        'if omitted, the img_labels stored in each .npz are used')
    parser.add_argument(
        '--out',
        default=None,
        help='result JSON (default: <scores-dir>/threshold_sweep.json)')
    parser.add_argument(
        '--step',
        type=float,
        default=0.05,
        help='step of the global thresholds step..1-step (default 0.05)')
    parser.add_argument(
        '--bins',
        type=int,
        default=100,
        help='histogram resolution; thresholds lie on k/bins (default 100)')
    parser.add_argument(
        '--rounds',
        type=int,
        default=3,
        help='coordinate-ascent rounds of the class-wise search')
    parser.add_argument(
        '--ignore-index', type=int, default=255, help='ignored gt label')
    parser.add_argument(
        '--class-names',
        default=None,
        help='comma-separated class names, background first (default: '
        'VOC names for 21 classes, else class_<i>)')
    return parser.parse_args(argv)


def class_names_for(num_classes: int, names: Optional[str]) -> List[str]:
    """Class names from the command line or the defaults."""
    if names:
        out = [x.strip() for x in names.split(',')]
        if len(out) != num_classes:
            raise SystemExit(f'--class-names gives {len(out)} names but the '
                             f'scores have {num_classes} classes')
        return out
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return ['background'] + [f'class_{i}' for i in range(1, num_classes)]


def load_labels(path: str, classes: Sequence[str]) -> dict:
    """Read the JSON image-label file (indices or class names)."""
    from mmwsss.datasets.wsss_dataset import load_label_file
    return load_label_file(path, classes)


def read_npz(path: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read ``scores`` and (if saved) ``img_labels`` of one ``.npz`` file.

    Args:
        path (str): Path of a file written by ``make_pseudo_labels.py
            --save-scores``.

    Returns:
        tuple: The ``(C, H, W)`` scores and the saved image labels (None
        when the file has none).

    Raises:
        SystemExit: The file is corrupt or has no ``scores`` array; the
            message names the file.
    """
    try:
        with np.load(path) as data:
            scores = data['scores']
            saved = data['img_labels'] if 'img_labels' in data else None
    except KeyError:
        raise SystemExit(f'{path} has no "scores" array') from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SystemExit(f'cannot read scores file {path}: '
                         f'{type(e).__name__}: {e}') from None
    return scores, saved


def fmt(x: float) -> str:
    """Percent with 2 decimals, 'nan' for NaN."""
    return 'nan' if x is None or np.isnan(x) else f'{100 * x:.2f}'


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the sweep; return the result dictionary."""
    args = parse_args(argv)
    if not osp.isdir(args.scores_dir):
        raise SystemExit(f'--scores-dir not found: {args.scores_dir}')
    if not osp.isdir(args.gt_dir):
        raise SystemExit(f'--gt-dir not found: {args.gt_dir}')
    if not 0 < args.step < 1:
        raise SystemExit(f'--step must be in (0, 1), got {args.step}')
    ids = sorted(
        osp.splitext(f)[0] for f in os.listdir(args.scores_dir)
        if f.endswith('.npz'))
    if not ids:
        raise SystemExit(f'no .npz file in {args.scores_dir}')

    num_classes = int(
        read_npz(osp.join(args.scores_dir, ids[0] + '.npz'))[0].shape[0])
    classes = class_names_for(num_classes, args.class_names)
    table = load_labels(args.labels, classes) if args.labels else None

    acc = ThresholdAccumulator(
        num_classes, bins=args.bins, ignore_index=args.ignore_index)
    # the label-free rule (bg_mode='otsu'), to compare with the sweep
    otsu_conf = np.zeros((num_classes, num_classes), np.int64)
    mismatch = []
    for name in tqdm(ids, desc='accumulating', unit='img'):
        scores, saved = read_npz(osp.join(args.scores_dir, name + '.npz'))
        if table is not None:
            if name not in table:
                raise SystemExit(f'image "{name}" has no entry in '
                                 f'{args.labels}')
            labels = table[name]
            if saved is not None and sorted(
                    int(x) for x in np.ravel(saved)) != labels:
                mismatch.append(name)
        elif saved is None:
            raise SystemExit(f'{name}.npz has no img_labels; pass --labels')
        else:
            labels = [int(x) for x in np.ravel(saved)]
        gt_path = osp.join(args.gt_dir, name + '.png')
        if not osp.isfile(gt_path):
            raise SystemExit(f'ground truth not found: {gt_path}')
        try:
            with Image.open(gt_path) as im:
                gt = np.asarray(im)
        except OSError as e:
            raise SystemExit(f'cannot read ground truth {gt_path}: {e}')
        try:
            acc.update(scores, gt, labels)
        except ValueError as e:
            raise SystemExit(f'image "{name}": {e}')
        thr = otsu_background(scores[labels].max(0), 0.5) if labels else 1.0
        pred = apply_thresholds(scores, labels, thr)
        keep = gt != args.ignore_index
        otsu_conf += np.bincount(
            pred[keep] * num_classes + gt[keep].astype(np.int64),
            minlength=num_classes**2).reshape(num_classes, num_classes)
    if mismatch:
        print(f'warning: {len(mismatch)} image(s) have img_labels in the '
              f'.npz that differ from {args.labels} (first: '
              f'"{mismatch[0]}"); the label file was used')

    sweep = acc.sweep_global(threshold_grid(args.step))
    best_t, best_m = max(sweep, key=lambda x: (x[1], -x[0]))
    _, iou_global = acc.miou_for_thresholds(best_t)
    cw_thr, cw_miou = acc.best_classwise(init=best_t, rounds=args.rounds)
    _, iou_cw = acc.miou_for_thresholds(cw_thr)

    print(f'\n{len(ids)} images, {num_classes} classes, bins={args.bins}')
    print(f'{"thr":>6}  {"mIoU":>6}')
    for t, m in sweep:
        mark = '  <- best' if t == best_t else ''
        print(f'{t:6.2f}  {fmt(m):>6}{mark}')
    otsu_miou, iou_otsu = iou_from_confusion(otsu_conf)
    print(f'\nbest global threshold: {best_t:.2f} (mIoU {fmt(best_m)})')
    print(f'class-wise thresholds: mIoU {fmt(cw_miou)}')
    print(f'per-image Otsu (bg_mode=otsu, label-free): mIoU '
          f'{fmt(otsu_miou)}')
    width = max(len(c) for c in classes)
    print(f'{"class":<{width}}  {"thr":>5}  {"IoU":>6}  '
          f'{"IoU@" + format(best_t, ".2f"):>8}')
    for c, name in enumerate(classes):
        thr = '-' if c == 0 else f'{cw_thr[c]:.2f}'
        print(f'{name:<{width}}  {thr:>5}  {fmt(iou_cw[c]):>6}  '
              f'{fmt(iou_global[c]):>8}')

    def num(x):
        return None if np.isnan(x) else float(x)

    result = dict(
        num_images=len(ids),
        num_classes=num_classes,
        bins=args.bins,
        ignore_index=args.ignore_index,
        rule='label c*=argmax_{labelled c} cam_c if cam_{c*} > t_{c*}, '
        'else background',
        global_sweep=[dict(thr=t, miou=num(m)) for t, m in sweep],
        best_global=dict(
            thr=best_t,
            miou=num(best_m),
            per_class_iou={
                n: num(v)
                for n, v in zip(classes, iou_global)
            }),
        classwise=dict(
            miou=num(cw_miou),
            thresholds={
                n: num(cw_thr[c])
                for c, n in enumerate(classes) if c > 0
            },
            thr_vector=[num(x) for x in cw_thr],
            per_class_iou={
                n: num(v)
                for n, v in zip(classes, iou_cw)
            }),
        otsu=dict(
            rule="per image, threshold = Otsu of max_{labelled c} cam_c "
            "(bg_mode='otsu')",
            miou=num(otsu_miou),
            per_class_iou={
                n: num(v)
                for n, v in zip(classes, iou_otsu)
            }),
    )
    out = args.out or osp.join(args.scores_dir, 'threshold_sweep.json')
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    with open(out, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    print(f'\nresults written to {out}')
    return result


if __name__ == '__main__':
    main(sys.argv[1:])
