# Copyright (c) mmwsss contributors.
"""Training step in channels-last memory format against contiguous NCHW.

:class:`mmwsss.engine.hooks.ChannelsLastHook` converts the model's 4-D
weights to ``torch.channels_last`` before a run. This script times
``model.train_step`` (what MMEngine's train loop runs: preprocessing,
forward, losses, backward, clipping, optimiser step) of the same configs
both ways, interleaved (A B A B ...) after a warm-up block each, on one
fixed batch of photo crops with 1-3 random image labels
(``bench_igcam_iter.make_batch``), and prints the median time per step and
the ratio channels-last / contiguous for each config. It also checks that
both formats give the same losses on the first step (float rounding).

Default configs: the demo CAM baseline, IG-CAM's "Full" row (its curvature
and influence maps on) and CamGuide's stage 3 (the heuristic targets on).

Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_channels_last.py --threads 1
"""
import argparse
import copy
import os.path as osp
import random
import statistics
import sys
import time

import numpy as np
import torch
from mmengine.optim import build_optim_wrapper

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_igcam_iter import (build_model, load_cfg, make_batch,  # noqa: E402
                              m_has_influence, prime_influence)

CONFIGS = [
    'configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py',
    'configs/igcam/igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py',
    'configs/camguide/camguide-stage3_effl0_1xb32-300it_demo-128x128.py',
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--configs', nargs='+', default=CONFIGS)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--iters', type=int, default=2,
                   help='steps per timed block')
    p.add_argument('--reps', type=int, default=3,
                   help='timed blocks per format')
    p.add_argument('--threads', type=int, default=None)
    return p.parse_args(argv)


def losses_of(model, batch) -> dict:
    """Losses of one batch with dropout off (eval mode: a dropout mask is
    drawn in memory order, so the same seed gives another mask in the
    other format) and the same other draws (CamGuide's thresholds)."""
    model.eval()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    with torch.no_grad():
        out = {
            k: float(v.detach().sum())
            for k, v in model.loss(data['inputs'],
                                   data['data_samples']).items()
            if 'loss' in k
        }
    model.train()
    return out


def bench(path: str, args) -> float:
    cfg = load_cfg(path)
    if cfg.model.type == 'CamGuideSegmentor':
        cfg.model.teacher_checkpoint = None
    torch.manual_seed(0)
    base = build_model(cfg)
    if cfg.model.type == 'CamGuideSegmentor':
        base.teacher_loaded.fill_(1.0)
    num_classes = base.num_classes
    models = {'contiguous': base, 'channels_last': copy.deepcopy(base)}
    models['channels_last'].to(memory_format=torch.channels_last)
    batch = make_batch(args.batch, args.size, num_classes)
    ref = {name: losses_of(m, batch)
           for name, m in models.items()}
    for k, v in ref['contiguous'].items():
        w = ref['channels_last'][k]
        if abs(v - w) > 1e-3 * max(1.0, abs(v)):
            raise SystemExit(f'{path}: {k} differs: {v} vs {w}')
    optims = {
        n: build_optim_wrapper(m, copy.deepcopy(cfg.optim_wrapper))
        for n, m in models.items()
    }
    for name, m in models.items():
        if m_has_influence(m):
            prime_influence(m)
            m.train()

    def block(name: str) -> float:
        t0 = time.perf_counter()
        for _ in range(args.iters):
            models[name].train_step(copy.deepcopy(batch), optims[name])
        return (time.perf_counter() - t0) / args.iters

    for name in models:
        block(name)  # warm-up
    times = {name: [] for name in models}
    for _ in range(args.reps):
        for name in models:
            times[name].append(block(name))
    med = {n: statistics.median(t) for n, t in times.items()}
    ratio = med['channels_last'] / med['contiguous']
    print(f'{osp.basename(path)}: contiguous {med["contiguous"]:.3f} s, '
          f'channels_last {med["channels_last"]:.3f} s per step '
          f'(batch {args.batch} x {args.size}); ratio {ratio:.3f}',
          flush=True)
    return ratio


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ratios = [bench(p, args) for p in args.configs]
    print('channels_last / contiguous: ' +
          ', '.join(f'{r:.3f}' for r in ratios))


if __name__ == '__main__':
    main()
