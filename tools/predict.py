# Copyright (c) mmwsss contributors.
"""Label maps of a trained model for new images (mmseg's inference API).

Example::

    python tools/predict.py \\
        configs/deeplabv3plus/deeplabv3plus_effl0-d16_1xb16-800it_folder-pseudo-128x128.py \\
        work_dirs/folder_seg/iter_800.pth data/shapes/new_images \\
        --out work_dirs/folder_predictions --overlay

Runs ``mmwsss.apis.init_model`` and ``mmseg.apis.inference_model`` on every
image of IMG_OR_DIR (``.jpg .jpeg .png .bmp .tif .tiff .webp``, any case)
and writes ``OUT/<stem>.png`` (palette PNG of the predicted classes) and,
with ``--overlay``, ``OUT/overlay/<stem>.png``. Works for any mmwsss or
MMSeg segmentation config, and for CAM configs (their seeds, with the
classes the model predicts). Files are written atomically; a re-run skips
finished images.
"""
import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import DictAction


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', help='model checkpoint')
    p.add_argument('images', help='an image file or a folder of images')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument(
        '--overlay',
        action='store_true',
        help='also write the labels blended over the image')
    p.add_argument(
        '--recursive', action='store_true', help='look into subfolders')
    p.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point."""
    from mmwsss.apis import init_model, predict_images
    from mmwsss.datasets.folder import list_images
    args = parse_args(argv)
    try:
        images = list_images(args.images, args.recursive)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    model = init_model(args.config, args.checkpoint, args.device,
                       args.cfg_options)
    result = predict_images(model, images, args.out, overlay=args.overlay)
    print(
        f'{result["written"]} written, {result["skipped"]} already done, '
        f'in {args.out}',
        file=sys.stderr)
    return result


if __name__ == '__main__':
    main()
