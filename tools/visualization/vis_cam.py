# Copyright (c) mmwsss contributors.
"""CAM pictures of an image or a folder: per-class CAMs, seed, refined label.

Examples::

    # run the model (CAM, IG-CAM or CamGuide config)
    python tools/visualization/vis_cam.py \\
        configs/cam/cam_effl0-d16_1xb16-500it_folder-128x128.py \\
        work_dirs/folder_cam/iter_500.pth data/shapes/images \\
        --labels data/shapes/labels.csv --gt-dir data/shapes/masks \\
        --out work_dirs/vis_cam

    # no model: the scores saved by make_pseudo_labels.py --save-scores
    python tools/visualization/vis_cam.py CONFIG - data/shapes/images \\
        --scores-dir work_dirs/folder_cam/seeds/scores --out work_dirs/vis

One PNG per image in OUT (``<stem>.png``): the image, the CAM of each
class (``--classes``, else the image's labels from ``--labels``, else the
classes the model predicts or the saved ones), IG-CAM influence map and
proposals or CamGuide coarse / refined maps when the model has them, the
seed, the refined label map (``--refine``) and the ground truth when
``--gt-dir`` has a mask. See :mod:`mmwsss.apis.cam_viewer`.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

from mmengine.config import DictAction


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    from mmwsss.apis.inference import CAM_REFINE_CHOICES
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='CAM / IG-CAM / CamGuide config')
    p.add_argument(
        'checkpoint', help='checkpoint (ignored with --scores-dir; "-")')
    p.add_argument('images', help='an image file or a folder of images')
    p.add_argument(
        '--classes',
        default=None,
        help='comma-separated class names of the image(s): with a model '
        'they are the image labels, with --scores-dir the CAMs drawn')
    p.add_argument(
        '--labels',
        default=None,
        help='CSV/JSON label table (image,labels by class name) giving '
        'each image its classes')
    p.add_argument(
        '--out',
        default=None,
        help='output folder (default: work_dirs/vis_cam/<config name>)')
    p.add_argument(
        '--scores-dir',
        default=None,
        help='folder of <stem>.npz scores written by make_pseudo_labels.py '
        '--save-scores; no model is run')
    p.add_argument(
        '--gt-dir', default=None, help='folder of <stem>.png masks to draw')
    p.add_argument(
        '--refine',
        choices=CAM_REFINE_CHOICES,
        default='auto',
        help='refined label map: auto = the config refiner, else DenseCRF '
        '(IRN label unary); none to skip (default: auto)')
    p.add_argument(
        '--bg-thr',
        type=float,
        default=None,
        help='background threshold: replaces the saved background score '
        '(--scores-dir) or sets model.test_cfg bg_mode=const, bg_thr')
    p.add_argument('--tile', type=int, default=160, help='panel size (px)')
    p.add_argument(
        '--max-bytes',
        type=int,
        default=None,
        help='save larger pictures as 256-colour palette PNGs')
    p.add_argument(
        '--recursive', action='store_true', help='look into subfolders')
    p.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Entry point; returns the pictures written."""
    from mmwsss.apis.cam_viewer import CamViewerError, visualize_cams
    from mmwsss.datasets.folder import LabelFileError
    args = parse_args(argv)
    out = args.out or osp.join('work_dirs', 'vis_cam',
                               osp.splitext(osp.basename(args.config))[0])
    options = dict(args.cfg_options or {})
    if args.bg_thr is not None and args.scores_dir is None:
        options.update({
            'model.test_cfg.bg_mode': 'const',
            'model.test_cfg.bg_thr': args.bg_thr
        })
    try:
        written = visualize_cams(
            args.config,
            None if args.scores_dir else args.checkpoint,
            args.images,
            out,
            classes=args.classes,
            labels_file=args.labels,
            scores_dir=args.scores_dir,
            gt_dir=args.gt_dir,
            refine=args.refine,
            bg_thr=args.bg_thr if args.scores_dir else None,
            device=args.device,
            cfg_options=options,
            tile=args.tile,
            recursive=args.recursive,
            max_bytes=args.max_bytes)
    except (CamViewerError, LabelFileError, FileNotFoundError) as e:
        raise SystemExit(f'vis_cam: {e}') from None
    print(f'{len(written)} picture(s) in {out}', file=sys.stderr)
    return written


if __name__ == '__main__':
    main()
