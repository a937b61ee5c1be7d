# Copyright (c) mmwsss contributors.
"""How well object proposals cover the objects of a split (IG-CAM +Inst).

Example (the demo's Selective Search boxes, the head's 64 per image)::

    python tools/analysis_tools/proposal_quality.py \\
        data/demo/proposals/ss-fast data/demo/SegmentationClass \\
        --split data/demo/ImageSets/Segmentation/train.txt --top-k 64

Prints, per selection rule (``rank``, ``random``, ``area`` and ``all``),
the average best overlap (ABO) and recall@0.5 of the mask's objects, the
foreground AUC of the box coverage map and the mean box area
(:mod:`mmwsss.evaluation.proposal_quality`).
"""
import argparse
import json
import os
import os.path as osp
from typing import Optional, Sequence

from mmwsss.datasets.splits import read_split
from mmwsss.evaluation import evaluate_proposal_dir
from mmwsss.utils.io import atomic_write_bytes


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description='proposal quality vs masks')
    p.add_argument('proposal_dir', help='folder of <id>.npz proposals')
    p.add_argument('gt_dir', help='folder of ground-truth <id>.png')
    p.add_argument('--split', required=True, help='image-id list')
    p.add_argument('--limit', type=int, help='first N ids of the split')
    p.add_argument(
        '--top-k', type=int, default=64, help='boxes kept per image (0: all)')
    p.add_argument(
        '--modes',
        nargs='+',
        default=['rank', 'random', 'area', 'all'],
        choices=['rank', 'random', 'area', 'all'])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--min-area',
        type=int,
        default=16,
        help='smallest object component counted, in pixels')
    p.add_argument('--ignore-index', type=int, default=255)
    p.add_argument('--out', help='write the result as JSON')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Evaluate and print one line per selection rule."""
    args = parse_args(argv)
    for d in (args.proposal_dir, args.gt_dir):
        if not osp.isdir(d):
            raise SystemExit(f'folder not found: {d}')
    try:
        names = read_split(args.split)[:args.limit]
        res = evaluate_proposal_dir(args.proposal_dir, args.gt_dir, names,
                                    args.top_k or None, args.modes, args.seed,
                                    args.ignore_index, args.min_area)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e))
    print(f'{len(names)} images, top {args.top_k or "all"} boxes')
    print('rule    boxes  box area  ABO   recall@0.5  coverage AUC')
    for mode, r in res.items():
        print(f'{mode:<7} {r["boxes"]:6.1f}  {100 * r["box_area"]:6.1f} %  '
              f'{100 * r["abo"]:5.1f}  {100 * r["recall"]:6.1f}      '
              f'{100 * r["coverage_auc"]:5.1f}')
    out = dict(
        results=res,
        top_k=args.top_k,
        images=len(names),
        proposal_dir=osp.abspath(args.proposal_dir))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        atomic_write_bytes(args.out, json.dumps(out, indent=2).encode())
    return out


if __name__ == '__main__':
    main()
