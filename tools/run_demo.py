# Copyright (c) mmwsss contributors.
"""The whole weakly supervised pipeline on the demo scenes, on a CPU.

Runs the same commands a user runs, one after the other, and prints them:

1. ``tools/dataset_converters/make_demo_dataset.py`` -- demo scenes;
2. ``tools/train.py`` -- CAM classifier from image-level labels;
3. ``tools/make_pseudo_labels.py --refine none --save-scores`` and
   ``tools/analysis_tools/sweep_thresholds.py`` -- seed mIoU on the train
   split at the config's background threshold (what ``tools/test.py``
   prints, read from the same scores), the best global and class-wise
   thresholds;
4. ``tools/make_pseudo_labels.py --refine irn_label`` -- DenseCRF
   pseudo-labels, scored with ``tools/analysis_tools/eval_label_maps.py``;
5. ``tools/train.py`` / ``tools/test.py`` -- the final segmentation model on
   the pseudo-labels, and the same model on the real masks (upper bound),
   both scored on the held-out val split.

It ends with one table and writes ``demo_results.{json,md}`` and
``demo_grid.png`` (image, CAM, seed, CRF pseudo-label, ground truth) to the
work dir. Every stage is skipped when its output exists, so an interrupted
demo continues where it stopped (``--force`` redoes everything). The
pipeline is :class:`mmwsss.experiments.demo.DemoPipeline`.
"""
import argparse
from typing import Optional, Sequence

from mmwsss.experiments.demo import DemoPipeline, DemoSettings
from mmwsss.experiments.runner import (CAM_CONFIG, GT_CONFIG, SEG_CONFIG,
                                       DataSpec, StageFailed)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/demo')
    p.add_argument('--seed', type=int, default=0, help='dataset seed')
    p.add_argument('--num-train', type=int, default=1000)
    p.add_argument('--num-val', type=int, default=200)
    p.add_argument('--img-size', type=int, default=128)
    p.add_argument('--num-aux', type=int, default=0,
                   help='images of the demo "aux" split (disjoint from '
                   'train and val)')
    p.add_argument('--generator-version', default=None,
                   help='demo scene generator version (default: newest)')
    p.add_argument('--difficulty', default=None,
                   help='JSON object of generator knobs (calibration)')
    p.add_argument('--cam-config', default=CAM_CONFIG)
    p.add_argument('--seg-config', default=SEG_CONFIG)
    p.add_argument('--gt-config', default=GT_CONFIG)
    p.add_argument('--cam-iters', type=int, default=None,
                   help='override the CAM config schedule length')
    p.add_argument('--seg-iters', type=int, default=None,
                   help='override the segmentation schedule length')
    p.add_argument('--batch-size', type=int, default=None,
                   help='override both training batch sizes')
    p.add_argument('--scales', default=None,
                   help='comma-separated CAM test scales (default: config)')
    p.add_argument('--workers', type=int, default=2,
                   help='DenseCRF worker processes and data workers')
    p.add_argument(
        '--seg-init',
        choices=['imagenet', 'cam'],
        default='cam',
        help='backbone init of the final models: the config\'s ImageNet '
        'weights, or the CAM classifier\'s backbone (trained on the same '
        'images with image-level labels only; same backbone type needed)')
    p.add_argument('--skip-gt', action='store_true',
                   help='do not train the fully supervised upper bound')
    p.add_argument('--force', action='store_true',
                   help='redo every stage even if its output exists')
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """The pipeline settings of the command-line arguments."""
    return DemoSettings(
        work_dir=args.work_dir,
        data_root=args.data_root,
        seed=args.seed,
        data=DataSpec(
            version=args.generator_version,
            num_train=args.num_train,
            num_val=args.num_val,
            num_aux=args.num_aux,
            img_size=args.img_size,
            difficulty=args.difficulty),
        cam_config=args.cam_config,
        seg_config=args.seg_config,
        gt_config=args.gt_config,
        cam_iters=args.cam_iters,
        seg_iters=args.seg_iters,
        batch_size=args.batch_size,
        scales=args.scales,
        workers=args.workers,
        seg_init=args.seg_init,
        skip_gt=args.skip_gt,
        force=args.force)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point; returns the results written to demo_results.json.

    Relative paths are relative to the current folder; the commands run
    from the repository root.
    """
    try:
        return DemoPipeline(settings_from_args(parse_args(argv))).main()
    except StageFailed as e:
        raise SystemExit(f'[demo] {e}') from e


if __name__ == '__main__':
    main()
