# Copyright (c) mmwsss contributors.
"""Write a toy "own images" folder: shapes, labels.csv, a few masks.

Example::

    python tools/dataset_converters/make_shapes_folder.py data/shapes \\
        --num-images 200 --img-size 128 --num-masks 20 --num-new 8

Writes ``OUT/images/`` (mixed suffixes .jpg .png .JPEG .bmp .webp .tif),
``OUT/labels.csv`` (``image,labels`` with class names circle, square,
triangle), ``OUT/masks/<stem>.png`` for the first ``--num-masks`` images
and ``OUT/new_images/`` (unlabelled, for predictions): the layout of
``docs/en/user_guides/own_data.md``. Deterministic per ``--seed``; written
to a temporary folder renamed onto OUT when complete.
"""
import argparse
import sys
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('out', help='output folder (must not exist or be empty)')
    p.add_argument('--num-images', type=int, default=200)
    p.add_argument('--img-size', type=int, default=128)
    p.add_argument('--num-masks', type=int, default=20)
    p.add_argument('--num-new', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point."""
    from mmwsss.datasets.shapes_folder import write_shapes_folder
    a = parse_args(argv)
    try:
        info = write_shapes_folder(a.out, a.num_images, a.img_size, a.seed,
                                   a.num_masks, a.num_new)
    except (FileExistsError, ValueError) as e:
        raise SystemExit(f'error: {e}') from None
    print(
        f'{len(info["images"])} images, {min(a.num_masks, a.num_images)} '
        f'masks, {a.num_new} new images in {a.out}; classes '
        f'{info["classes"]}',
        file=sys.stderr)
    return info


if __name__ == '__main__':
    main()
