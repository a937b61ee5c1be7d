# Copyright (c) mmwsss contributors.
"""Overhead of :class:`mmwsss.refine.DenseCRF` over calling pydensecrf.

Issue #6 must-show: our DenseCRF wrapper against pydensecrf called
directly on the same arrays; goal: <= 5% overhead.

Arrays: a scikit-image photograph (``astronaut``, via
:func:`mmwsss.datasets.demo_scenes.load_photos`) resized to ``--width`` x
``--height`` (default 512 x 384) as uint8 RGB, and ``(21, H, W)`` float32
scores: channel 0 the constant background score 0.15, three labelled
classes (3, 8, 15) with smooth blob maps in [0, 1] (normalised sums of
random Gaussians, ``--seed``), every other class uniform noise (which the
label restriction must ignore).

- **wrapper**: ``DenseCRF(preset)(img, scores, img_labels)`` (input checks,
  restriction to background + labels, unary, kernels, inference, argmax,
  mapping back to class indices);
- **direct**: the same steps written against pydensecrf as IRN's
  ``crf_inference_label`` / PSA's ``crf_inference`` do, without checks:
  ``keys = [0] + labels``, ``scores[keys]``, ``unary_from_labels(argmax,
  n, gt_prob, zero_unsure=False)`` (or ``unary_from_softmax`` for
  ``psa_softmax``), ``addPairwiseGaussian`` / ``addPairwiseBilateral`` with
  the preset constants, ``inference(n_iters)``, ``keys[argmax(q)]``.

The two alternate for ``--reps`` pairs after ``--warmup`` untimed pairs,
the order swapped every other pair (wrapper, direct, direct, wrapper,
wrapper, direct, ...) so that neither always runs first; medians are
reported, and the overhead is ``median(wrapper) / median(direct) - 1``
(the median of the per-pair ratios is printed too). On a loaded machine
the noise of one CRF call (a few percent) is far larger than the
wrapper's own work. ``densecrf_wrapper_checks_ms`` times the
wrapper's validation and restriction alone (``DenseCRF._prepare``, median
of 20 calls), the noise-free bound of what the wrapper adds. Labels of
both paths must be identical (asserted).

Prints ``name: value`` lines and the peak resident memory (``ru_maxrss``).
"""
import argparse
import os.path as osp
import resource
import statistics
import sys
import time
from typing import List, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import pydensecrf.densecrf as dcrf  # noqa: E402
from pydensecrf.utils import unary_from_labels  # noqa: E402
from pydensecrf.utils import unary_from_softmax  # noqa: E402

from mmwsss.refine import DenseCRF  # noqa: E402
from mmwsss.refine.densecrf import CRF_PRESETS, SOFTMAX_CLIP  # noqa: E402

NUM_CLASSES = 21
LABELS = (3, 8, 15)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--reps',
        type=int,
        default=16,
        help='timed (wrapper, direct) pairs (default 16)')
    p.add_argument(
        '--warmup',
        type=int,
        default=2,
        help='untimed pairs first (default 2)')
    p.add_argument(
        '--width', type=int, default=512, help='image width (default 512)')
    p.add_argument(
        '--height', type=int, default=384, help='image height (default 384)')
    p.add_argument(
        '--preset',
        choices=sorted(CRF_PRESETS),
        default='irn_label',
        help='CRF preset (default irn_label)')
    p.add_argument('--seed', type=int, default=0, help='score map seed')
    return p.parse_args(argv)


def make_arrays(width: int, height: int, seed: int):
    """The photo and the 21-class scores described in the docstring."""
    from mmwsss.datasets.demo_scenes import PHOTO_FILES, load_photos
    photos = load_photos()
    idx = next((i for i, f in enumerate(PHOTO_FILES) if 'astronaut' in f), 0)
    img = cv2.resize(
        photos[idx], (width, height), interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(img, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    scores = rng.random((NUM_CLASSES, height, width), dtype=np.float32)
    scores[0] = 0.15
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for c in LABELS:
        blob = np.zeros((height, width), np.float32)
        for _ in range(3):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            s = rng.uniform(0.05, 0.2) * min(height, width)
            blob += np.exp(-((yy - cy)**2 + (xx - cx)**2) / (2 * s * s))
        scores[c] = blob / blob.max()
    return img, scores


def direct(img: np.ndarray, scores: np.ndarray, labels: Sequence[int],
           p: dict) -> np.ndarray:
    """pydensecrf called directly (IRN / PSA style, no checks)."""
    keys = np.array([0] + sorted(labels), dtype=np.int64)
    sel = scores[keys]
    n = len(keys)
    h, w = img.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n)
    if p['unary'] == 'label':
        unary = unary_from_labels(
            np.argmax(sel, axis=0), n, gt_prob=p['gt_prob'], zero_unsure=False)
    else:
        unary = unary_from_softmax(sel, clip=SOFTMAX_CLIP)
    d.setUnaryEnergy(np.ascontiguousarray(unary))
    d.addPairwiseGaussian(sxy=p['gauss_sxy'], compat=p['gauss_compat'])
    d.addPairwiseBilateral(
        sxy=p['bi_sxy'], srgb=p['bi_srgb'], rgbim=img, compat=p['bi_compat'])
    q = d.inference(p['n_iters'])
    return keys[np.argmax(np.array(q).reshape((n, h, w)), axis=0)]


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.reps < 1 or args.warmup < 0:
        raise SystemExit('--reps must be >= 1 and --warmup >= 0')
    t_start = time.perf_counter()
    img, scores = make_arrays(args.width, args.height, args.seed)
    params = CRF_PRESETS[args.preset]
    crf = DenseCRF(preset=args.preset)
    labels = list(LABELS)

    out_w = crf(img, scores, labels)  # the label check
    out_d = direct(img, scores, labels, params)
    if not np.array_equal(out_w, out_d):
        raise AssertionError(
            f'labels differ: {100 * (out_w == out_d).mean():.4f}% agree')
    if len(np.unique(out_w)) < 2:
        raise AssertionError('the CRF labelled everything one class; the '
                             'comparison would be trivial')
    runs = {
        'wrapper': lambda: crf(img, scores, labels),
        'direct': lambda: direct(img, scores, labels, params)
    }
    for _ in range(args.warmup):
        for fn in runs.values():
            fn()
    times: dict = {'wrapper': [], 'direct': []}
    for i in range(args.reps):
        order = ('wrapper', 'direct') if i % 2 == 0 else ('direct', 'wrapper')
        for name in order:
            t = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t)
    checks: List[float] = []
    for _ in range(20):
        t = time.perf_counter()
        crf._prepare(img, scores, labels)
        checks.append(time.perf_counter() - t)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [a / b for a, b in zip(times['wrapper'], times['direct'])]
    over = med['wrapper'] / med['direct'] - 1
    print(f'setup: {args.width}x{args.height} image, {NUM_CLASSES}-class '
          f'scores, labels {labels}, preset {args.preset} '
          f'({params["n_iters"]} iterations), {args.reps} pairs')
    print(f'densecrf_wrapper_ms: {1000 * med["wrapper"]:.1f}')
    print(f'densecrf_direct_ms: {1000 * med["direct"]:.1f}')
    print(f'densecrf_overhead: {100 * over:.2f}% (goal <= 5%)')
    print('densecrf_overhead_pair_median: '
          f'{100 * (statistics.median(ratios) - 1):.2f}%')
    print('densecrf_wrapper_checks_ms: '
          f'{1000 * statistics.median(checks):.2f} (input checks and '
          f'class restriction, '
          f'{100 * statistics.median(checks) / med["direct"]:.2f}% of '
          'direct)')
    print('densecrf_label_agreement: 100% (asserted; classes in the map: '
          f'{np.unique(out_w).tolist()})')
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak_rss_mib: {rss:.0f}')
    print(f'total_s: {time.perf_counter() - t_start:.1f}')


if __name__ == '__main__':
    main()
