# Copyright (c) mmwsss contributors.
"""IG-CAM training iteration time against the baseline CAM, with FLOPs.

Issue #18 item 6: ``iteration time of full IG-CAM / the baseline CAM with
the same backbone, batch and input <= 1.10``, for the demo and for the
ResNet-101 VOC configs, with parameters and FLOPs printed beside it. Two
**families**, each timed like with like (the same backbone, batch, input
size and images for every model of the family; each model keeps its own
config's optimiser, losses and BN settings):

- ``demo``: EfficientNet-Lite0 at the demo rows' batch and crop
  (32 x 128 x 128, output stride 16). ``cam`` = ``configs/cam/cam_effl0-
  d16_1xb32-500it_demo-128x128.py`` (the demo's CAM baseline, IRN-style),
  ``igcam`` = ``configs/igcam/igcam-ablation-full_effl0-d16_1xb32-500it_
  demo-128x128.py`` (the "Full" row; without proposals the head pools the
  whole image), ``igcam+proposals`` the same fed ``--proposals`` random
  boxes per image.
  ``--demo-igcam`` / ``--demo-cam`` (and ``--voc-igcam`` / ``--voc-cam``)
  time other configs, e.g. the rows of a new demo bed;
- ``voc``: ResNet-101, ``cam`` = ``configs/cam/cam_r50-d16_1xb16-3k_
  voc12aug-512x512.py`` with ``depth=101`` (IRN's CAM classifier on
  IG-CAM's backbone), ``igcam`` = ``configs/igcam/igcam_r101-fpn_1xb16-20k_
  voc12aug-512x512.py`` (with ``--proposals`` boxes, as its pipelines load
  Selective Search proposals). A batch-16 step at 512 x 512 takes minutes
  on a 2-core CPU, so both sides run at ``--voc-batch`` x ``--voc-size``
  (default 2 x 256 x 256): the ratio is of the same work per image on a
  smaller problem; the FLOPs are also printed at 512 x 512.

Rows besides these: ``base`` (IG-CAM's code path with every part off:
one FPN level at 1/32, no proposals, no influence, no attention, one
scale; the "Base" ablation row), ``igcam-noinf`` (the full architecture,
influence and attention off: what the multi-scale head and proposals cost),
``igcam-k1`` (the eval-mode curvature forward every iteration instead of
every ``curvature_interval``: what that choice saves) and, on request,
``igcam-norm-eval`` (frozen BN statistics as IRN's CAM: then the training
forward is the eval state and the curvature needs no extra forward).

A **training iteration** is ``model.train_step(batch, optim_wrapper)``, what
MMEngine's ``IterBasedTrainLoop`` runs: data preprocessor (normalise, pad),
forward, losses, backward, gradient clipping and the optimiser step of the
config's ``optim_wrapper``, on one fixed batch of crops of the
scikit-image photographs with 1-3 random image labels each. All loss terms
of the config are on (stages 2-3; stage 1 turns some off).

Influence work: the curvature EMA (with its eval-mode forward every
``curvature_interval`` iterations, in the timed blocks: each block holds a
multiple of the interval and the update phase is reset before it), the
influence maps, the attention and the sample weights are inside every
timed iteration (the influence is refreshed once before timing, so the
maps are on, as for most of training). The periodic **solve refresh**
(``refresh_influence`` inside the hook's ``preserved_rng_state``) is timed
separately on ``num_samples x batch / config batch`` validation images
(32 for the demo; 32 x 2 / 16 = 4 for the reduced VOC batch: the same
validation images per training image as the config) and amortised over the
hook's ``interval``: ``iter = step + refresh / interval``.

Timing: blocks of ``iters`` iterations per model, interleaved (A B C A B
C ...) after one warm-up block each, ``reps`` blocks per model, median of
the per-iteration block times. ``--clock wall`` (default) measures elapsed
time; on a machine shared with other jobs use ``--clock cpu --threads 1``
(the CPU time of this single-threaded process, which other processes
barely change; elapsed time then swings several-fold between blocks).

Complexity: the FLOPs of one timed training step (forward + backward at
the bench's batch and size, ``FlopCounterMode`` around ``train_step``,
with a convolution-backward formula that counts grouped convolutions
right),
and parameters (M) and the FLOPs of the **inference forward**
``model._forward(x, data_samples)`` (eval mode, one image with image
labels and ``--proposals`` boxes where the model uses proposals, influence
state primed so that the maps are computed) counted by
``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2
FLOPs; convolutions and matrix products only: elementwise work and the box
sums are not counted). ``--ablation-table`` also prints them for every
``configs/igcam/igcam-ablation-*_demo*.py`` row.

Prints ``name: value`` lines and a ``peak memory`` line (``ru_maxrss``).
"""
import argparse
import glob
import logging
import math
import os.path as osp
import resource
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from mmwsss.registry import MODELS  # noqa: E402
from mmwsss.utils import register_all_modules  # noqa: E402

CFG_DIR = osp.join(ROOT, 'configs', 'igcam')
# the "Full" row of the demo ablation: the baseline CAM's budget (batch 32,
# output stride 16) plus every IG-CAM part
FULL_CFG = osp.join(CFG_DIR,
                    'igcam-ablation-full_effl0-d16_1xb32-500it_demo-128x128.py')
VOC_CFG = osp.join(CFG_DIR, 'igcam_r101-fpn_1xb16-20k_voc12aug-512x512.py')
CAM_D16_CFG = osp.join(ROOT, 'configs', 'cam',
                       'cam_effl0-d16_1xb32-500it_demo-128x128.py')
CAM_VOC_CFG = osp.join(ROOT, 'configs', 'cam',
                       'cam_r50-d16_1xb16-3k_voc12aug-512x512.py')
# IG-CAM with every part off (the "Base" ablation row's model changes)
BASE_OVERRIDES = {
    'model.neck.start_level': 3,
    'model.neck.num_outs': 1,
    'model.attention': None,
    'model.cam_head.num_scales': 1,
    'model.cam_head.num_proposals': 0,
    'model.influence_cfg': None,
    'model.test_cfg.use_influence': False,
}
# the full architecture without influence and attention
NOINF_OVERRIDES = {
    'model.attention': None,
    'model.influence_cfg': None,
    'model.test_cfg.use_influence': False,
}
GOAL = 1.10
ROWS = ('base', 'igcam-noinf', 'igcam-k1', 'igcam-norm-eval')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--families',
        nargs='+',
        default=['demo', 'voc'],
        choices=['demo', 'voc'],
        help='config families to time (default: both)')
    p.add_argument('--reps', type=int, default=5,
                   help='timed blocks per model, demo (default 5)')
    p.add_argument('--iters', type=int, default=2,
                   help='iterations per block, demo (default 2)')
    p.add_argument('--demo-igcam', default=FULL_CFG,
                   help='demo IG-CAM config (default: the full demo config)')
    p.add_argument('--demo-cam', default=CAM_D16_CFG,
                   help='demo baseline CAM config (default: '
                   'cam_effl0-d16_1xb32-500it_demo-128x128.py)')
    p.add_argument('--voc-igcam', default=VOC_CFG,
                   help='VOC IG-CAM config (default: the VOC recipe)')
    p.add_argument('--voc-cam', default=CAM_VOC_CFG,
                   help='VOC baseline CAM config, run with depth=101 '
                   '(default: cam_r50-d16_1xb16-3k_voc12aug-512x512.py)')
    p.add_argument('--batch', type=int, default=None,
                   help='demo batch (default: the demo IG-CAM config\'s)')
    p.add_argument('--size', type=int, default=None,
                   help='demo input size (default: the demo IG-CAM '
                   'config\'s data_preprocessor size)')
    p.add_argument('--voc-reps', type=int, default=3,
                   help='timed blocks per model, voc (default 3)')
    p.add_argument('--voc-iters', type=int, default=1,
                   help='iterations per block, voc (default 1)')
    p.add_argument('--voc-batch', type=int, default=2,
                   help='voc batch for both sides (default 2; configs: 16)')
    p.add_argument('--voc-size', type=int, default=256,
                   help='voc input size for both sides (default 256)')
    p.add_argument('--voc-flops-size', type=int, default=512,
                   help='voc FLOPs also at this size (default 512)')
    p.add_argument('--proposals', type=int, default=300,
                   help='random boxes per image where proposals are used '
                   '(default 300; 0: none)')
    p.add_argument('--rows', nargs='*',
                   default=['base', 'igcam-noinf', 'igcam-k1'],
                   choices=ROWS,
                   help='extra demo rows (default: all three)')
    p.add_argument('--voc-rows', nargs='*', default=['base'], choices=ROWS,
                   help='extra voc rows (default: base)')
    p.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                   help="'wall' (perf_counter, default) or 'cpu' (CPU time "
                   'of this process: steadier on a shared machine)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads (default: torch\'s choice)')
    p.add_argument('--ablation-table', action='store_true',
                   help='also print params / FLOPs of every demo ablation '
                   'config')
    return p.parse_args(argv)


# ------------------------------------------------------------------- data
def photo_images(n: int, size: int, seed: int = 0) -> List[torch.Tensor]:
    """``n`` random ``size`` x ``size`` crops of the scikit-image photos.

    Returns uint8 ``(3, size, size)`` tensors in BGR order (as
    ``mmseg.LoadImageFromFile`` gives them).
    """
    import cv2

    from mmwsss.datasets.demo_scenes import load_photos
    photos = load_photos()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = photos[int(rng.integers(len(photos)))]
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        crop = cv2.resize(
            img[y:y + side, x:x + side], (size, size),
            interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        bgr = np.ascontiguousarray(crop[..., ::-1])
        out.append(torch.from_numpy(bgr).permute(2, 0, 1).contiguous())
    return out


def random_boxes(rng: np.random.Generator, k: int, size: int) -> np.ndarray:
    """``k`` boxes ``(x1, y1, x2, y2)`` inside the image, area >= 100 px."""
    lo = min(10, size)
    wh = rng.integers(lo, size + 1, size=(k, 2))
    xy = rng.integers(0, size - wh + 1)
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def make_batch(n: int,
               size: int,
               num_classes: int,
               proposals: int = 0,
               seed: int = 0) -> dict:
    """A dataloader-like batch: images, image labels, optional proposals."""
    rng = np.random.default_rng(seed + 1)
    samples = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        labels = sorted(
            int(c) for c in rng.choice(
                np.arange(1, num_classes), size=k, replace=False))
        ds = SegDataSample(
            metainfo=dict(
                img_labels=labels,
                img_shape=(size, size),
                ori_shape=(size, size),
                img_path=f'photo_{seed}_{i}'))
        if proposals > 0:
            ds.proposals = InstanceData(
                bboxes=torch.from_numpy(random_boxes(rng, proposals, size)),
                ranks=torch.arange(proposals))
        samples.append(ds)
    return dict(inputs=photo_images(n, size, seed), data_samples=samples)


# ----------------------------------------------------------------- models
def load_cfg(path: str) -> Config:
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # no download
    cfg.model.pop('pretrained', None)
    return cfg


def build_model(cfg: Config):
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmwsss')):
        return MODELS.build(cfg.model)


def influence_hook_cfg(cfg: Config) -> Optional[dict]:
    for hook in cfg.get('custom_hooks', []) or []:
        if hook.get('type') == 'InfluenceHook':
            return hook
    return None


def prime_influence(model, num: int = 32, seed: int = 0) -> None:
    """Give every scale a (random) curvature and solve: maps are on.

    The state is meaningless but has the real shapes, which is all the
    FLOP counter needs.
    """
    if not getattr(model, 'influence', None):
        return
    gen = torch.Generator().manual_seed(seed)
    for inf in model.influence:
        k = inf.curvature.num_classes
        d = inf.curvature.in_channels
        feats = torch.randn(num, d, generator=gen)
        logits = torch.randn(num, k, generator=gen)
        labels = (torch.rand(num, k, generator=gen) < 0.3).float()
        inf.update(feats, logits, torch.ones(num))
        inf.refresh(feats, logits, labels)
    assert model.influence_valid


# ----------------------------------------------------------------- timing
def loads_proposals(cfg: Config) -> bool:
    """Whether the training pipeline of a config loads proposals."""
    pipe = cfg.train_dataloader.dataset.get('pipeline', None) or []
    return any('LoadProposals' in str(t.get('type', '')) for t in pipe)


def m_has_influence(model) -> bool:
    return bool(getattr(model, 'influence', None))


def family_entries(family: str, args) -> Tuple[Dict[str, tuple], int, int]:
    """``name -> (config, proposals per image)``, batch and size."""
    if family == 'demo':
        igcam, cam = load_cfg(args.demo_igcam), load_cfg(args.demo_cam)
        batch = args.batch or int(igcam.train_dataloader.batch_size)
        size = args.size or int(igcam.model.data_preprocessor.size[0])
    else:
        batch, size = args.voc_batch, args.voc_size
        igcam, cam = load_cfg(args.voc_igcam), load_cfg(args.voc_cam)
        cam.model.backbone.depth = 101
    props = args.proposals if loads_proposals(igcam) else 0
    entries = {'cam': (cam, 0), 'igcam': (igcam, props)}
    if family == 'demo' and args.proposals > 0 and props == 0:
        entries['igcam+proposals'] = (igcam, args.proposals)
    for row in (args.rows if family == 'demo' else args.voc_rows):
        cfg = load_cfg(igcam.filename)
        if row == 'base':
            cfg.merge_from_dict(BASE_OVERRIDES)
            entries[row] = (cfg, 0)
        elif row == 'igcam-noinf':
            cfg.merge_from_dict(NOINF_OVERRIDES)
            entries[row] = (cfg, props)
        elif row == 'igcam-k1':
            cfg.model.influence_cfg.curvature_interval = 1
            entries[row] = (cfg, props)
        elif row == 'igcam-norm-eval':
            # frozen BN statistics (as IRN's CAM): the training forward is
            # the eval state, so the curvature needs no extra forward
            cfg.model.backbone.norm_eval = True
            entries[row] = (cfg, props)
    for cfg, _ in entries.values():
        cfg.model.data_preprocessor.size = (size, size)
    return entries, batch, size


def time_family(family: str, args) -> Dict[str, float]:
    """Interleaved training-step timing of one family; prints its lines."""
    from mmwsss.engine.hooks import preserved_rng_state

    entries, batch, size = family_entries(family, args)
    reps = args.reps if family == 'demo' else args.voc_reps
    iters = args.iters if family == 'demo' else args.voc_iters
    full_cfg = entries['igcam'][0]
    num_classes = full_cfg.model.cam_head.num_classes
    hook = influence_hook_cfg(full_cfg) or {}
    interval = int(hook.get('interval', 100))
    cfg_batch = int(full_cfg.train_dataloader.batch_size)
    num_val = max(1, math.ceil(
        int(hook.get('num_samples', 32)) * batch / cfg_batch))
    torch.manual_seed(0)
    models, batches, optims, val, kint = {}, {}, {}, {}, {}
    for name, (cfg, props) in entries.items():
        models[name] = build_model(cfg)
        models[name].train()
        optims[name] = build_optim_wrapper(models[name], cfg.optim_wrapper)
        batches[name] = make_batch(batch, size, num_classes, proposals=props)
        if m_has_influence(models[name]):
            val[name] = make_batch(
                num_val, size, num_classes, proposals=props, seed=100)
            kint[name] = int(
                models[name].influence_cfg['curvature_interval'])
    # a block holds whole curvature periods (the eval forward included)
    for name, k in kint.items():
        if iters % k and k <= iters:
            raise SystemExit(f'{name}: iterations per block ({iters}) '
                             f'must be a multiple of curvature_interval {k}')

    def step(name: str) -> None:
        models[name].train_step(batches[name], optims[name])

    clock = time.process_time if args.clock == 'cpu' else time.perf_counter

    def refresh(name: str) -> float:
        t0 = clock()
        with preserved_rng_state():
            models[name].refresh_influence(val[name])
        return clock() - t0

    def block(name: str) -> float:
        model = models[name]
        if name in kint:
            k = kint[name]
            if iters < k:  # time one eval-forward step and k-1 plain ones
                model._curvature_calls = 0
                t0 = clock()
                step(name)
                t1 = clock()
                step(name)  # a step without the eval forward
                t2 = clock()
                return ((t1 - t0) + (k - 1) * (t2 - t1)) / k
            model._curvature_calls = 0
        t0 = clock()
        for _ in range(iters):
            step(name)
        return (clock() - t0) / iters

    # one curvature update, then a refresh: influence maps from here on
    for name in models:
        step(name)
        if name in val:
            refresh(name)
            assert models[name].influence_valid
            models[name].train()
    for name in models:  # warm-up
        block(name)
    times: Dict[str, List[float]] = {name: [] for name in models}
    refresh_times: Dict[str, List[float]] = {name: [] for name in val}
    for _ in range(reps):
        for name in models:
            times[name].append(block(name))
        for name in val:
            refresh_times[name].append(refresh(name))
            models[name].train()
    med = {n: statistics.median(v) for n, v in times.items()}
    ref = {n: statistics.median(v) for n, v in refresh_times.items()}
    total = {n: med[n] + ref.get(n, 0.0) / interval for n in med}

    backbone = 'EfficientNet-Lite0' if family == 'demo' else 'ResNet-101'
    print(f'[{family}] {backbone}, batch {batch} x {size}x{size} for every '
          f'model, torch threads {torch.get_num_threads()}, {args.clock} '
          f'clock, {reps} blocks x '
          f'{iters} iterations per model, interleaved ({" ".join(models)})')
    if family == 'voc':
        print(f'[{family}] reduced from the configs\' batch {cfg_batch} at '
              '512x512 on both sides of every ratio (CPU time)')
    for name in models:
        line = f'{family}_{name}_iter_ms: {1000 * total[name]:.1f}'
        if name in ref:
            line += (f' (step {1000 * med[name]:.1f} + refresh '
                     f'{1000 * ref[name]:.1f} on {num_val} images / '
                     f'{interval}; curvature every {kint[name]})')
        props = entries[name][1]
        if props:
            line += f' [{props} proposals]'
        print(line)
    for name in models:
        if name == 'cam':
            continue
        ratio = total[name] / total['cam']
        tail = ''
        if name == 'igcam':
            tail = (f' (goal <= {GOAL:.2f}: '
                    f'{"met" if ratio <= GOAL else "NOT met"})')
        print(f'{family}_{name}_over_cam_ratio: {ratio:.3f}{tail}')
    if 'base' in total:
        print(f'{family}_igcam_over_base_ratio: '
              f'{total["igcam"] / total["base"]:.3f} (against IG-CAM with '
              'every part off, one level at 1/32)')
    if 'igcam-noinf' in total:
        print(f'{family}_influence_share: '
              f'{total["igcam"] / total["igcam-noinf"]:.3f} (full / same '
              'architecture without influence and attention)')
    # complexity beside the times
    sizes = [size] if family == 'demo' else [size, args.voc_flops_size]
    for name in ('cam', 'base', 'igcam'):
        if name not in entries:
            continue
        cfg, props = entries[name]
        train_gflops = count_train(models[name], optims[name],
                                   batches[name])
        print(f'{family}_{name}_train_step: {train_gflops:.2f} GFLOPs '
              f'(forward + backward of batch {batch} at {size}x{size}'
              + (', without the 1-in-k curvature forward' if name in kint
                 else '') + ')')
        for sz in sizes:
            cfg.model.data_preprocessor.size = (sz, sz)
            torch.manual_seed(0)
            model = build_model(cfg)
            params, gflops = count(model, sz, num_classes, props)
            print(f'{family}_{name}_complexity: params {params:.3f} M, '
                  f'forward {gflops:.3f} GFLOPs at 1x3x{sz}x{sz}')
            del model
    return total


# ------------------------------------------------------------- complexity
def count(model, size: int, num_classes: int, proposals: int) -> tuple:
    """Parameters (M) and forward GFLOPs of ``model._forward``."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    prime_influence(model)
    model.eval()
    batch = make_batch(1, size, num_classes, proposals=proposals, seed=7)
    with torch.no_grad():
        data = model.data_preprocessor(batch, training=False)
        flops = FlopCounterMode(display=False)
        with flops:
            model._forward(data['inputs'], data['data_samples'])
    return params, flops.get_total_flops() / 1e9


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride,
                        _padding, _dilation, transposed, _output_padding,
                        _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward`` that respect ``groups``.

    torch 2.14's formula ignores ``groups``: a depthwise convolution's
    backward (EfficientNet) is counted about ``channels`` times too high.
    Each of the input and weight gradients costs the forward's ``2 x
    output elements x (C_in / groups) x kh x kw`` (the same as torch's for
    ``groups=1``).
    """
    elems = math.prod(x_shape if transposed else grad_out_shape)
    base = 2 * elems * math.prod(w_shape[1:])
    return base * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_train(model, optim_wrapper, batch: dict) -> float:
    """GFLOPs of one ``train_step`` (forward + backward; the optimiser's
    elementwise work is not counted), curvature forward left out."""
    if m_has_influence(model):
        k = int(model.influence_cfg['curvature_interval'])
        model._curvature_calls = 1 if k > 1 else 0
    model.train()
    flops = FlopCounterMode(
        display=False,
        custom_mapping={
            torch.ops.aten.convolution_backward: _conv_backward_flop
        })
    with flops:
        model.train_step(batch, optim_wrapper)
    return flops.get_total_flops() / 1e9


def complexity(args) -> None:
    """Print parameters and forward FLOPs of every ablation model."""
    paths = sorted(glob.glob(osp.join(CFG_DIR, 'igcam-ablation-*_demo*.py')))
    order = ['base', 'inst', 'ms', 'inst-ms', 'influence', 'crf']

    def row(path):
        stem = osp.basename(path).split('_')[0]
        name = stem.replace('igcam-ablation-', '')
        return order.index(name) if name in order else len(order)

    paths = sorted(paths, key=row) + [args.demo_igcam]
    print(f'complexity: model._forward (eval, one image, image labels, '
          f'{args.proposals} proposals, influence maps on), '
          'FlopCounterMode (multiply-add = 2 FLOPs)')
    runs = [(p, None) for p in paths] + [(args.voc_igcam, 'base'),
                                         (args.voc_igcam, None),
                                         (args.voc_cam, 'r101')]
    for path, variant in runs:
        size = args.voc_flops_size if path in (args.voc_igcam, args.voc_cam) \
            else (args.size or 128)
        cfg = load_cfg(path)
        name = osp.splitext(osp.basename(path))[0]
        if variant == 'base':
            cfg.merge_from_dict(BASE_OVERRIDES)
            name += ' (as ablation base: plain CAM)'
        elif variant == 'r101':
            cfg.model.backbone.depth = 101
            name += (' with depth=101 (IRN-style stride-16 CAM on the '
                     'IG-CAM backbone)')
        torch.manual_seed(0)
        model = build_model(cfg)
        params, gflops = count(model, size, cfg.model.cam_head.num_classes,
                               args.proposals)
        print(f'{name}: params {params:.3f} M, forward {gflops:.3f} GFLOPs '
              f'({gflops / 2:.3f} GMACs) at 1x3x{size}x{size}')
        del model


def main(argv=None) -> None:
    args = parse_args(argv)
    for v in (args.reps, args.iters, args.batch or 1, args.voc_reps,
              args.voc_iters, args.voc_batch):
        if v < 1:
            raise SystemExit('--reps, --iters and --batch (and the --voc-* '
                             'ones) must be >= 1')
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules()
    # build_optim_wrapper logs every parameter group at INFO
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    t0 = time.perf_counter()
    for family in args.families:
        time_family(family, args)
    if args.ablation_table:
        complexity(args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f'peak memory: {rss / 1024:.0f} MiB (ru_maxrss of this process)')
    print(f'bench_seconds: {time.perf_counter() - t0:.1f}')


if __name__ == '__main__':
    main()
