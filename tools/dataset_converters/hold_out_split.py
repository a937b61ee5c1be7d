# Copyright (c) mmwsss contributors.
"""Cut a held-out split (e.g. IG-CAM's influence images) out of a split.

Example (64 demo validation images for the influence batch; the final
model is then scored on the other ones)::

    python tools/dataset_converters/hold_out_split.py \\
        data/demo/ImageSets/Segmentation/val.txt --num 64 \\
        --held data/demo/ImageSets/Segmentation/influence.txt \\
        --rest data/demo/ImageSets/Segmentation/val_report.txt

Works on any split list (one image id per line), whichever tool wrote it.
Both outputs are written atomically; existing files are kept unless
``--force``.
"""
import argparse
import os.path as osp
import sys

from mmwsss.datasets.splits import hold_out_split, read_split, write_split


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('split', help='split file to cut (one id per line)')
    p.add_argument('--num', type=int, required=True, help='ids to hold out')
    p.add_argument('--held', required=True, help='output: held-out ids')
    p.add_argument('--rest', required=True, help='output: the other ids')
    p.add_argument('--seed', type=int, default=0, help='seed (default 0)')
    p.add_argument(
        '--force', action='store_true', help='replace existing outputs')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = {osp.abspath(p) for p in (args.split, args.held, args.rest)}
    if len(paths) != 3:
        print('error: SPLIT, --held and --rest must be three different '
              'files', file=sys.stderr)
        return 2
    for path in (args.held, args.rest):
        if osp.exists(path) and not args.force:
            print(f'error: {path} exists; use --force to replace it',
                  file=sys.stderr)
            return 2
    try:
        held, rest = hold_out_split(read_split(args.split), args.num,
                                    args.seed)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    write_split(args.held, held)
    write_split(args.rest, rest)
    print(f'{len(held)} ids -> {args.held}, {len(rest)} ids -> {args.rest}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
