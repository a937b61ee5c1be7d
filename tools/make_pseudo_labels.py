# Copyright (c) mmwsss contributors.
"""Write CAM pseudo labels of a dataset split as palette PNGs.

Example::

    python tools/make_pseudo_labels.py \\
        configs/cam/cam_r18-w32_1xb32-600it_demo-128x128.py \\
        work_dirs/cam/iter_600.pth \\
        --out data/demo/pseudo_labels/cam_r18-w32_crf \\
        --split train --refine irn_label --workers 2 --save-scores

Writes ``OUT/<stem>.png`` (dataset palette), with ``--save-scores``
``OUT/scores/<stem>.npz`` (``scores`` (C, H, W) and ``img_labels``, the
input of ``tools/analysis_tools/sweep_thresholds.py``) and
``OUT/meta.json``. With an IG-CAM checkpoint, influence-aware refiners
(``model.test_cfg.refine=dict(type='InfluenceCRF', ...)``) get the
model's influence maps as in ``tools/test.py``; ``--save-scores`` also
saves them (npz key ``influence``) for ``--from-scores``. Files are
written atomically and images whose outputs exist are skipped: after an
interruption, run the same command again.
Large sets can be split over machines/GPUs with ``--num-shards K
--shard-id I`` (image ``i`` goes to shard ``i % K``) into the same OUT.
See :mod:`mmwsss.apis.pseudo_labels` for details.
"""
import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import Config, DictAction

from mmwsss.apis.pseudo_labels import (REFINE_CHOICES, SCORE_DTYPES, SPLITS,
                                       PseudoLabelError, make_pseudo_labels)
from mmwsss.datasets.folder import LabelFileError


def resolve_procs(procs: str, device: Optional[str]) -> int:
    """``--procs`` as a number: ``auto`` is one per usable CPU on a CPU."""
    import os

    import torch
    if procs != 'auto':
        try:
            n = int(procs)
        except ValueError:
            raise SystemExit(f'--procs must be "auto" or an integer, got '
                             f'{procs!r}') from None
        return n
    dev = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if torch.device(dev).type != 'cpu':
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Write (CRF-refined) CAM pseudo labels of a dataset')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='model checkpoint')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--split',
        choices=SPLITS,
        default='test',
        help='dataloader whose dataset is labelled (default: test; train '
        'uses the test pipeline)')
    parser.add_argument(
        '--refine',
        choices=REFINE_CHOICES,
        default='config',
        help='label assignment: config = model.test_cfg.refine (argmax if '
        'None), none = argmax of the scores, irn_label / psa_softmax = '
        'DenseCRF preset (default: config)')
    parser.add_argument(
        '--crf-scale-factor',
        type=float,
        default=1.0,
        help='divide the spatial stds of the irn_label / psa_softmax '
        'DenseCRF by this (their constants are pixels of ~500-pixel VOC '
        'photographs; 4 for 128-pixel images; default 1)')
    parser.add_argument(
        '--bg-thr',
        type=float,
        default=None,
        help='override model.test_cfg.bg_thr (background score)')
    parser.add_argument(
        '--save-scores',
        action='store_true',
        help='also write OUT/scores/<stem>.npz (scores, img_labels; '
        'influence for an IG-CAM model with a refreshed influence state)')
    parser.add_argument(
        '--scores-dtype',
        choices=SCORE_DTYPES,
        default='float32',
        help='dtype of the saved scores (default: float32)')
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='processes for label assignment (CRF) and writing, overlapped '
        'with inference; 1 = in the main process (default)')
    parser.add_argument(
        '--fuse-conv-bn',
        action='store_true',
        help='fold BatchNorm into the convolutions (checked on the first '
        'image against the unfused model)')
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='channels-last memory format (faster CPU convolutions; checked '
        'the same way)')
    parser.add_argument(
        '--no-reuse-heap',
        action='store_true',
        help='leave glibc malloc as it is (default: every allocation from '
        'the heap, freed memory kept for the next image; see '
        'mmwsss.utils.heap)')
    parser.add_argument(
        '--procs',
        default='auto',
        help='CPU inference: label the images in this many forked processes '
        'of one thread each, every one refining its own images (the fast '
        'CPU path; --workers is then unused). "auto" (default): one per '
        'usable CPU on a CPU, 1 on a GPU')
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
        '--device',
        default=None,
        help='inference device (default: cuda if '
        'available, else cpu)')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress output')
    parser.add_argument(
        '--from-scores',
        default=None,
        help='folder of <stem>.npz scores saved by an earlier --save-scores '
        'run of the same checkpoint: assign labels (e.g. DenseCRF at a tuned '
        '--bg-thr) without running the model again; an influence-aware '
        'refiner gets the saved influence maps (uniform without them)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return the summary of ``make_pseudo_labels``."""
    args = parse_args(argv)
    try:
        cfg = Config.fromfile(args.config)
    except FileNotFoundError:
        raise SystemExit(f'error: config not found: {args.config}')
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:
        return make_pseudo_labels(
            cfg,
            args.checkpoint,
            args.out,
            split=args.split,
            refine=args.refine,
            bg_thr=args.bg_thr,
            save_scores=args.save_scores,
            scores_dtype=args.scores_dtype,
            workers=args.workers,
            procs=resolve_procs(args.procs, args.device),
            fuse_conv_bn=args.fuse_conv_bn,
            channels_last=args.channels_last,
            reuse_heap=not args.no_reuse_heap,
            num_shards=args.num_shards,
            shard_id=args.shard_id,
            limit=args.limit,
            device=args.device,
            progress=not args.no_progress,
            from_scores=args.from_scores,
            crf_scale_factor=args.crf_scale_factor)
    except (PseudoLabelError, FileNotFoundError, LabelFileError) as e:
        raise SystemExit(f'error: {e}')
    except KeyboardInterrupt:
        raise SystemExit('interrupted; run the same command again to '
                         'finish the remaining images')


if __name__ == '__main__':
    main(sys.argv[1:])
