# Copyright (c) mmwsss contributors.
"""Heap reuse (:mod:`mmwsss.utils.heap`): speed and peak memory, mixed sizes.

``bench_pseudo_labels.py`` measures the pseudo-label path on images of one
size. Real datasets mix sizes, and a heap that keeps freed memory then
fragments: this script measures what :func:`mmwsss.utils.heap.reuse_heap`
gains and costs over a stream of images of several sizes.

Workload: the demo EfficientNet-Lite0 CAM (``configs/cam/
cam_effl0-d16_1xb32-500it_demo-128x128.py``, random weights: time and
memory do not depend on them) runs ``CAMSegmentor.multi_scale_cams`` with
4 scales (1.0, 0.5, 1.5, 2.0) + flip, under ``torch.inference_mode``, on
``--images`` random normal images whose sizes are drawn (seeded) from
``--sizes``:

- ``voc`` (default): the common PASCAL VOC shapes (500 x 375, 375 x 500,
  500 x 333, 333 x 500, 500 x 500, 500 x 400, 400 x 500, 500 x 281);
- ``random``: height and width uniform in [250, 500] (the worst case for
  fragmentation).

Each run is a **fresh Python process** (the heap's history is what is
measured) with ``--threads`` torch threads (default 1, as one process of
``make_pseudo_labels --procs auto``); ``on`` (inside ``reuse_heap``) and
``off`` (glibc defaults) alternate for ``--reps`` repetitions; medians are
reported. Printed: seconds per image, minor page faults per image, peak
resident memory (``ru_maxrss``) of each mode, and the ratios
``heap_reuse_speedup`` (off / on time) and ``heap_reuse_peak_rss_ratio``
(on / off). The default run takes about 3 minutes on 2 CPU cores.
"""
import argparse
import json
import os.path as osp
import resource
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG = osp.join(ROOT, 'configs', 'cam',
               'cam_effl0-d16_1xb32-500it_demo-128x128.py')
SCALES = (1.0, 0.5, 1.5, 2.0)
VOC_SHAPES = ((375, 500), (500, 375), (333, 500), (500, 333), (500, 500),
              (400, 500), (500, 400), (281, 500))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--images', type=int, default=16, help='images per run (default 16)')
    p.add_argument(
        '--reps',
        type=int,
        default=2,
        help='repetitions of each mode (default 2)')
    p.add_argument(
        '--sizes',
        choices=('voc', 'random'),
        default='voc',
        help='image size distribution (default voc)')
    p.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch threads per run (default 1)')
    p.add_argument('--seed', type=int, default=0, help='size and data seed')
    p.add_argument('--child', choices=('on', 'off'), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def shapes(kind: str, n: int, seed: int) -> list:
    """The (height, width) of every image of a run."""
    import numpy as np
    rng = np.random.default_rng(seed)
    if kind == 'voc':
        return [VOC_SHAPES[int(i)] for i in rng.integers(len(VOC_SHAPES),
                                                         size=n)]
    return [(int(h), int(w)) for h, w in rng.integers(250, 501, size=(n, 2))]


def child(args: argparse.Namespace) -> None:
    """One timed run; prints a ``CHILD_RESULT`` JSON line."""
    import torch
    sys.path.insert(0, ROOT)
    from mmengine.config import Config

    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    from mmwsss.utils.heap import reuse_heap
    torch.set_num_threads(args.threads)
    register_all_modules()
    cfg = Config.fromfile(CFG)
    cfg.model.backbone.init_cfg = None  # no download
    cfg.model.test_cfg.update(
        scales=SCALES, flip=True, flip_fusion='sum', scale_fusion='sum')
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model).eval()
    gen = torch.Generator().manual_seed(args.seed)
    sizes = shapes(args.sizes, args.images, args.seed)
    flt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    with reuse_heap(args.child == 'on') as on, torch.inference_mode():
        for h, w in sizes:
            model.multi_scale_cams(torch.randn(1, 3, h, w, generator=gen))
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print('CHILD_RESULT ' + json.dumps(
        dict(
            on=on,
            seconds=seconds,
            faults=usage.ru_minflt - flt,
            peak_mib=usage.ru_maxrss / 1024)), flush=True)


def run_child(args: argparse.Namespace, mode: str) -> dict:
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--child', mode, '--images',
        str(args.images), '--sizes', args.sizes, '--threads',
        str(args.threads), '--seed',
        str(args.seed)
    ]
    from bench_pseudo_labels import child_result
    return child_result(cmd, mode)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    if args.images < 1 or args.reps < 1 or args.threads < 1:
        raise SystemExit('--images, --reps and --threads must be >= 1')
    t0 = time.perf_counter()
    runs = {'on': [], 'off': []}
    for rep in range(args.reps):
        for mode in ('on', 'off'):
            runs[mode].append(run_child(args, mode))
        print(f'rep {rep}: ' + ', '.join(
            f'{m} {runs[m][-1]["seconds"]:.1f} s / '
            f'{runs[m][-1]["peak_mib"]:.0f} MiB' for m in runs),
              flush=True)
    if not runs['on'][0]['on']:
        print('note: reuse_heap has no effect here (not glibc)')

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    n = args.images
    print(f'setup: {n} images per run, sizes {args.sizes}, scales {SCALES} '
          f'+ flip, torch threads {args.threads}, {args.reps} reps, fresh '
          'process per run')
    for mode in runs:
        print(f'heap_{mode}_s_per_img: {med(mode, "seconds") / n:.3f} '
              f'({med(mode, "faults") / n:.0f} minor page faults per image; '
              f'peak RSS {med(mode, "peak_mib"):.0f} MiB)')
    print(f'heap_reuse_speedup: '
          f'{med("off", "seconds") / med("on", "seconds"):.2f}')
    print(f'heap_reuse_peak_rss_ratio: '
          f'{med("on", "peak_mib") / med("off", "peak_mib"):.2f} (the memory '
          'price: the heap keeps its peak and its fragmentation)')
    print(f'total_s: {time.perf_counter() - t0:.1f}')


if __name__ == '__main__':
    main()
