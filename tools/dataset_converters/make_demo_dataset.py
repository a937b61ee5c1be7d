# Copyright (c) mmwsss contributors.
"""Write the synthetic WSSS demo dataset (VOC layout).

Example::

    python tools/dataset_converters/make_demo_dataset.py data/demo \\
        --seed 0 --num-train 400 --num-val 100

The dataset is generated into ``OUT.tmp-<pid>`` and renamed onto ``OUT``
only when complete, so an interrupted run never leaves a half-written
dataset at ``OUT``.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

from mmwsss.datasets.demo_scenes import (DEMO_CLASSES, DIFFICULTY_PRESETS,
                                         GENERATOR_VERSION,
                                         generate_demo_dataset)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse command-line arguments.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Generate the synthetic shape-scene WSSS dataset.')
    parser.add_argument('out', help='output folder (VOC layout)')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed')
    parser.add_argument(
        '--num-train', type=int, default=400, help='training images')
    parser.add_argument(
        '--num-val', type=int, default=100, help='validation images')
    parser.add_argument(
        '--num-aux',
        type=int,
        default=0,
        help='images of the extra "aux" split (own random stream, disjoint '
        'from train and val; e.g. the IG-CAM influence batch)')
    parser.add_argument(
        '--img-size', type=int, default=128, help='image side in pixels')
    parser.add_argument(
        '--version',
        default=GENERATOR_VERSION,
        choices=sorted(DIFFICULTY_PRESETS),
        help='generator version (older versions stay reproducible)')
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='worker processes (the output does not depend on it)')
    parser.add_argument(
        '--difficulty',
        default=None,
        help='JSON object of difficulty knobs overriding the defaults, '
        'e.g. \'{"clutter": [0, 1]}\'')
    parser.add_argument(
        '--force',
        action='store_true',
        help='replace OUT when it exists and is not empty')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run the generator.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        int: Process exit status.
    """
    args = parse_args(argv)
    out = osp.abspath(args.out.rstrip('/\\') or args.out)
    if osp.exists(out) and not osp.isdir(out):
        print(f'error: {out} exists and is not a folder', file=sys.stderr)
        return 2
    if osp.isdir(out) and os.listdir(out) and not args.force:
        print(
            f'error: {out} exists and is not empty; use --force to '
            'replace it',
            file=sys.stderr)
        return 2
    difficulty = None
    if args.difficulty:
        try:
            difficulty = json.loads(args.difficulty)
        except json.JSONDecodeError as e:
            print(
                f'error: --difficulty is not valid JSON: {e}', file=sys.stderr)
            return 2
        if not isinstance(difficulty, dict):
            print('error: --difficulty must be a JSON object', file=sys.stderr)
            return 2

    os.makedirs(osp.dirname(out) or '.', exist_ok=True)
    tmp = f'{out}.tmp-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        summary = generate_demo_dataset(
            tmp,
            seed=args.seed,
            num_train=args.num_train,
            num_val=args.num_val,
            img_size=args.img_size,
            difficulty=difficulty,
            workers=args.workers,
            version=args.version,
            num_aux=args.num_aux)
        if osp.isdir(out) and os.listdir(out):
            # --force: move the old dataset aside, then drop it.
            old = f'{out}.old-{os.getpid()}'
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    n = summary['num_train'] + summary['num_val']
    print(f'wrote {n} images ({summary["num_train"]} train, '
          f'{summary["num_val"]} val, {summary["img_size"]} px) to {out} '
          f'in {summary["seconds"]:.1f} s '
          f'({n / max(summary["seconds"], 1e-9):.1f} images/s)')
    print(f'classes: {", ".join(DEMO_CLASSES[1:])}')
    for split in summary['class_freq']:
        freq = summary['class_freq'][split]
        print(f'{split}: images per class ' +
              ', '.join(f'{k}={v}' for k, v in freq.items()) +
              f'; mean labels/image {summary["mean_labels"][split]:.2f}')
    print(f'foreground pixel fraction: {summary["fg_fraction"]:.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
