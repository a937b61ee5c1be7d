# Copyright (c) mmwsss contributors.
"""Precompute Selective Search object proposals (IG-CAM sec. 3.3, 4.1.1).

Examples::

    # the images of a config's training set
    python tools/generate_proposals.py \\
        configs/cam/cam_r18-w32_1xb32-600it_demo-128x128.py \\
        --out data/demo/proposals/ss-fast --workers 2

    # every image of a folder
    python tools/generate_proposals.py data/VOCdevkit/VOC2012/JPEGImages \\
        --out data/VOCdevkit/VOC2012/proposals/ss-fast --workers 8

Writes ``OUT/<stem>.npz`` (``boxes``: float32 ``(N, 4)`` ``x1, y1, x2,
y2`` in original image pixels, best ranked first, ``N <= 2000``;
``img_shape``) and ``OUT/meta.json``, read by the ``LoadProposals``
transform. Files are written atomically and images whose ``.npz`` exists
are skipped: after an interruption, run the same command again. Large sets
can be split over machines with ``--num-shards K --shard-id I`` into the
same OUT. See :mod:`mmwsss.apis.proposals` for details.
"""
import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import Config, DictAction

from mmwsss.apis.proposals import SPLITS, ProposalError, generate_proposals
from mmwsss.proposals import MODES


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Precompute Selective Search proposals of a dataset '
        'split or an image folder')
    parser.add_argument(
        'source', help='config file (its --split dataset) or image folder')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--split',
        choices=SPLITS,
        default='train',
        help='dataloader of a config source (default: train)')
    parser.add_argument(
        '--mode',
        choices=tuple(MODES),
        default='fast',
        help='Selective Search diversification (default: fast, 8 '
        'strategies as in R-CNN)')
    parser.add_argument(
        '--scale',
        type=float,
        nargs='+',
        default=None,
        help='override the k values of the mode')
    parser.add_argument(
        '--sigma', type=float, default=0.8, help='smoothing (default: 0.8)')
    parser.add_argument(
        '--min-size',
        type=int,
        default=None,
        help='minimum over-segmentation component (default: k)')
    parser.add_argument(
        '--similarities',
        nargs='+',
        default=None,
        help='override the similarity combinations of the mode, e.g. CTSF')
    parser.add_argument(
        '--max-proposals',
        type=int,
        default=2000,
        help='boxes kept per image after filtering (default: 2000)')
    parser.add_argument(
        '--min-area',
        type=float,
        default=100.,
        help='minimum box area in pixels (default: 100)')
    parser.add_argument(
        '--max-aspect',
        type=float,
        default=4.,
        help='maximum max(w/h, h/w); 0 disables the test (default: 4)')
    parser.add_argument(
        '--seed', type=int, default=0, help='ranking seed (default: 0)')
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='processes (default: 1 = in the main process)')
    parser.add_argument(
        '--num-shards', type=int, default=1, help='number of shards')
    parser.add_argument(
        '--shard-id', type=int, default=0, help='shard of this run')
    parser.add_argument(
        '--limit',
        type=int,
        default=None,
        help='only the first N images of the shard')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress output')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return the summary of ``generate_proposals``."""
    args = parse_args(argv)
    source = args.source
    if source.endswith('.py'):
        try:
            source = Config.fromfile(source)
        except FileNotFoundError:
            raise SystemExit(f'error: config not found: {args.source}')
        if args.cfg_options is not None:
            source.merge_from_dict(args.cfg_options)
    elif args.cfg_options is not None:
        raise SystemExit('error: --cfg-options needs a config source')
    try:
        return generate_proposals(
            source,
            args.out,
            split=args.split,
            mode=args.mode,
            scale=args.scale,
            sigma=args.sigma,
            min_size=args.min_size,
            similarities=args.similarities,
            max_proposals=args.max_proposals,
            min_area=args.min_area,
            max_aspect=args.max_aspect or None,
            seed=args.seed,
            workers=args.workers,
            num_shards=args.num_shards,
            shard_id=args.shard_id,
            limit=args.limit,
            progress=not args.no_progress)
    except (ProposalError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    except RuntimeError as e:
        raise SystemExit(f'error: {e}\nthe images done so far are kept; fix '
                         'the cause and run the same command again')
    except KeyboardInterrupt:
        raise SystemExit('interrupted; run the same command again to '
                         'finish the remaining images')


if __name__ == '__main__':
    main(sys.argv[1:])
