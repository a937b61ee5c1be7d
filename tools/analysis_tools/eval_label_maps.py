# Copyright (c) mmwsss contributors.
"""mIoU of a folder of label maps (e.g. pseudo-labels) against masks.

Example::

    python tools/analysis_tools/eval_label_maps.py \\
        data/demo/pseudo_labels/crf data/demo/SegmentationClass \\
        --split data/demo/ImageSets/Segmentation/train.txt --num-classes 8

Counts pixels as ``mmseg.IoUMetric`` does (255 in the ground truth is
ignored; predictions outside the class range count as misses).
"""
import argparse
import json
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np

from mmwsss.evaluation import evaluate_label_dirs
from mmwsss.utils.io import atomic_write_bytes


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description='mIoU of label-map PNGs')
    p.add_argument('pred_dir', help='folder of predicted <id>.png')
    p.add_argument('gt_dir', help='folder of ground-truth <id>.png')
    p.add_argument('--split', help='image-id list (default: every PNG in '
                   'pred_dir)')
    p.add_argument('--num-classes', type=int, required=True,
                   help='number of classes including background')
    p.add_argument('--ignore-index', type=int, default=255)
    p.add_argument('--out', help='write the result as JSON')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Evaluate and print per-class IoU and mIoU."""
    args = parse_args(argv)
    for d in (args.pred_dir, args.gt_dir):
        if not osp.isdir(d):
            raise SystemExit(f'folder not found: {d}')
    names = None
    if args.split:
        if not osp.isfile(args.split):
            raise SystemExit(f'split file not found: {args.split}')
        with open(args.split) as f:
            names = [ln.strip() for ln in f if ln.strip()]
    try:
        res = evaluate_label_dirs(args.pred_dir, args.gt_dir,
                                  args.num_classes, names, args.ignore_index)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e))
    for c, v in enumerate(res['iou']):
        print(f'class {c:>3}: IoU {"nan" if np.isnan(v) else f"{100*v:.2f}"}')
    print(f'mIoU {100 * res["miou"]:.2f} over {res["num_images"]} images')
    out = dict(
        miou=res['miou'],
        iou=[None if np.isnan(v) else float(v) for v in res['iou']],
        num_images=res['num_images'],
        pred_dir=osp.abspath(args.pred_dir),
        gt_dir=osp.abspath(args.gt_dir))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        atomic_write_bytes(args.out, json.dumps(out, indent=2).encode())
    return out


if __name__ == '__main__':
    main()
