# Copyright (c) mmwsss contributors.
"""IG-CAM training iteration cost against plain CAM, and model complexity.

Issue #3 must-show: the full IG-CAM training iteration time divided by the
plain CAM iteration (same backbone, batch and size; the paper claims
1.15-1.20 ("approximately 15-20% computation relative to standard CAM
baselines", sec. 3.8), goal <= 1.10 with the default schedule), and the
parameters and FLOPs of every ablation model (paper Table 4 / Table 8).

Models (backbone ``init_cfg=None``: no download, random weights; the cost
does not depend on the weights):

- ``cam``: ``igcam-ablation-base_effl0-fpn_1xb16-300it_demo-128x128.py``
  (Table 3 "Base": EfficientNet-Lite0, one scale, no proposals, no
  influence, no attention);
- ``cam-d16``: ``configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py``,
  the toolbox's IRN-style CAM classifier on the same backbone with the last
  stages dilated (output stride 16, CAMs at 1/16; batch and size forced to
  the bench's). Two denominators because "plain CAM" reads two ways: the
  ``cam`` row is IG-CAM with its parts removed (stride 32, CAMs at 1/32:
  the goal line ``igcam_iter_ratio``), this one the classifier that
  IRN / SEAM / AMN-style baselines train (``igcam_over_cam_d16_ratio``;
  at the paper's ResNet-101 and 512 x 512 the dilated last stage costs
  about what the FPN adds);
- ``igcam``: ``igcam_effl0-fpn_1xb16-300it_demo-128x128.py`` as configured
  (4 FPN scales, influence-guided attention, instance-guided head,
  influence-weighted losses, curvature EMA, InfluenceHook refreshes). Its
  pipelines load no proposals, so its head pools the whole image only;
- ``igcam+proposals`` (``--proposals K``, default 300; 0 skips it): the
  same model fed ``K`` random boxes per image (area >= 100 px, ranked), of
  which the head keeps ``num_proposals`` (64, random choice in training),
  as the proposal configs (ablation rows ``inst``, ``influence``, VOC
  recipe) do;
- ``row-<name>`` (``--rows``, default ``ms``): ablation rows also timed,
  e.g. ``ms`` (4 scales, no attention / influence) separates the cost of
  the multi-scale architecture from that of the influence
  (``igcam_over_ms_ratio``).

A **training iteration** is ``model.train_step(batch, optim_wrapper)``, what
MMEngine's ``IterBasedTrainLoop`` runs: data preprocessor (normalise, pad),
forward, losses, backward, gradient clipping and the AdamW step of the
config's ``optim_wrapper`` (lr multipliers included), on one fixed batch of
``--batch`` crops of the scikit-image photographs at ``--size`` with 1-3
random image labels each. All loss terms of the config are on (the
consistency and boundary weights of stages 2-3; stage 1 turns them off for
both models alike; MixUp / CutMix are batch augments shared by both).

The influence work is counted as follows: the curvature EMA runs inside
``IGCAMSegmentor.loss`` at every iteration (so it is in the timed blocks);
before timing, the influence is refreshed once so that every timed
iteration computes the influence maps, the attention with them and the
sample weights (the state after the first refresh, i.e. most of training).
The periodic **solve refresh** is timed separately: ``refresh_influence``
on a batch of the InfluenceHook's ``num_samples`` (32) validation images
inside the hook's ``preserved_rng_state``, exactly the hook's per-refresh
work, and amortised as ``refresh_ms / interval`` with the hook's configured
``interval`` (50). ``igcam_iter_ms`` already includes that share. The two
refreshes at the stage switches (100, 200) add ``2 / 300`` refreshes per
iteration more; that variant is printed as ``..._with_switches``.

Timing: blocks of ``--iters`` iterations per model, alternating (A B C A B
C ...) after one warm-up block each, ``--reps`` blocks per model; the
median of the per-iteration block times is reported.

Complexity: parameters (M) of every ablation config
``configs/igcam/igcam-ablation-*_demo*.py`` and of the full demo config,
and the FLOPs of the **inference forward** ``model._forward(x,
data_samples)`` (eval mode, one ``1 x 3 x size x size`` image with image
labels and 300 proposals, influence state primed so that the influence
maps are computed: the single-scale forward of ``predict`` without the
flip / multi-scale views) counted by ``torch.utils.flop_counter.
FlopCounterMode`` (a multiply-add counts 2 FLOPs; GMACs = GFLOPs / 2 is
printed too, the unit the paper's ResNet-101 numbers look like). The
influence state is primed with random features (FLOPs depend on shapes
only). The VOC paper config (ResNet-101 + FPN at 512 x 512) is counted the
same way, without timing, both as configured and with the "base"
ablation's model changes (plain single-scale CAM; the paper's Table 4
"Baseline CAM" vs "IG-CAM (Full)" pair at 512 x 512), and so is the VOC
CAM config (``cam_r50-d16``) with ``depth=101``: the stride-16 CAM
classifier on IG-CAM's backbone. The counter covers
convolutions and matrix products; elementwise work and the proposal box
sums (cumulative sums) are not counted. DenseCRF (row ``crf``) runs
outside torch: its cost is not in the FLOPs either.

Prints ``name: value`` lines and a ``peak memory`` line (``ru_maxrss`` of
this process).
"""
import argparse
import glob
import logging
import os.path as osp
import resource
import statistics
import sys
import time
from typing import Dict, List, Optional

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
BASE_CFG = osp.join(
    CFG_DIR, 'igcam-ablation-base_effl0-fpn_1xb16-300it_demo-128x128.py')
FULL_CFG = osp.join(CFG_DIR, 'igcam_effl0-fpn_1xb16-300it_demo-128x128.py')
VOC_CFG = osp.join(CFG_DIR, 'igcam_r101-fpn_1xb16-20k_voc12aug-512x512.py')
# The toolbox's IRN-style CAM classifier on the same backbone (output
# stride 16), as the CAM baselines of the demo train it; the VOC one is
# counted with ResNet-101 for the paper-setting pair.
CAM_D16_CFG = osp.join(ROOT, 'configs', 'cam',
                       'cam_effl0-d16_1xb32-500it_demo-128x128.py')
CAM_VOC_CFG = osp.join(ROOT, 'configs', 'cam',
                       'cam_r50-d16_1xb16-3k_voc12aug-512x512.py')
ROWS = ('base', 'inst', 'ms', 'inst-ms', 'influence', 'crf')
# The "base" ablation's model changes (single-scale CAM, no proposals, no
# influence, no attention), applied to the VOC config for a Table 4 pair.
BASE_OVERRIDES = {
    'model.neck.start_level': 3,
    'model.neck.num_outs': 1,
    'model.attention': None,
    'model.cam_head.num_scales': 1,
    'model.cam_head.num_proposals': 0,
    'model.influence_cfg': None,
    'model.test_cfg.use_influence': False,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--reps',
        type=int,
        default=5,
        help='timed blocks per model (default 5)')
    p.add_argument(
        '--iters',
        type=int,
        default=2,
        help='training iterations per block (default 2)')
    p.add_argument(
        '--batch',
        type=int,
        default=16,
        help='training batch (default 16, as the configs)')
    p.add_argument(
        '--size',
        type=int,
        default=128,
        help='training / FLOPs input size (default 128)')
    p.add_argument(
        '--proposals',
        type=int,
        default=300,
        help='random boxes per image for the igcam+proposals '
        'variant; 0 skips it (default 300)')
    p.add_argument(
        '--rows',
        nargs='*',
        default=['ms'],
        choices=ROWS,
        help='ablation rows also timed (default: ms, the '
        'multi-scale architecture without influence)')
    p.add_argument(
        '--voc-size',
        type=int,
        default=512,
        help='input size for the VOC config FLOPs (default 512)')
    p.add_argument(
        '--no-complexity',
        action='store_true',
        help='skip the parameter / FLOPs table')
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


def switch_refreshes(cfg: Config) -> int:
    """Refreshes at stage switches (``StageSwitchHook.switch_at``)."""
    for hook in cfg.get('custom_hooks', []) or []:
        if hook.get('type') == 'StageSwitchHook':
            return len(hook.get('switch_at', []) or [])
    return 0


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
def row_cfg(row: str) -> str:
    return osp.join(
        CFG_DIR, f'igcam-ablation-{row}_effl0-fpn_1xb16-300it_'
        'demo-128x128.py')


def loads_proposals(cfg: Config) -> bool:
    """Whether the training pipeline of a config loads proposals."""
    pipe = cfg.train_dataloader.dataset.get('pipeline', None) or []
    return any('LoadProposals' in str(t.get('type', '')) for t in pipe)


def time_training(args) -> Dict[str, float]:
    """Interleaved training-step timing; prints the ratio lines."""
    from mmwsss.engine.hooks import preserved_rng_state

    full_cfg = load_cfg(FULL_CFG)
    num_classes = full_cfg.model.cam_head.num_classes
    # name -> (config, proposals per image)
    entries = {
        'cam': (load_cfg(BASE_CFG), 0),
        'igcam': (full_cfg, 0),
        'cam-d16': (load_cfg(CAM_D16_CFG), 0)
    }
    if args.proposals > 0:
        entries['igcam+proposals'] = (full_cfg, args.proposals)
    for row in args.rows:
        cfg = load_cfg(row_cfg(row))
        entries[f'row-{row}'] = (cfg,
                                 args.proposals if loads_proposals(cfg) else 0)
    torch.manual_seed(0)
    models, batches, optims, val = {}, {}, {}, {}
    for name, (cfg, props) in entries.items():
        models[name] = build_model(cfg)
        models[name].train()
        optims[name] = build_optim_wrapper(models[name], cfg.optim_wrapper)
        # the same images and labels for every model (seed 0)
        batches[name] = make_batch(
            args.batch, args.size, num_classes, proposals=props)
    hook = influence_hook_cfg(full_cfg)
    interval = int(hook.get('interval', 100))
    num_val = int(hook.get('num_samples', 32))
    with_influence = [n for n, m in models.items() if m_has_influence(m)]
    for name in with_influence:
        val[name] = make_batch(
            num_val,
            args.size,
            num_classes,
            proposals=entries[name][1],
            seed=100)

    def step(name: str) -> None:
        models[name].train_step(batches[name], optims[name])

    def refresh(name: str) -> float:
        t0 = time.perf_counter()
        with preserved_rng_state():
            models[name].refresh_influence(val[name])
        return time.perf_counter() - t0

    # one curvature update, then a refresh: influence maps from here on
    for name in models:
        step(name)
        if name in val:
            refresh(name)
            assert models[name].influence_valid
            models[name].train()

    def block(name: str) -> float:
        t0 = time.perf_counter()
        for _ in range(args.iters):
            step(name)
        return (time.perf_counter() - t0) / args.iters

    for name in models:  # warm-up
        block(name)
    times: Dict[str, List[float]] = {name: [] for name in models}
    refresh_times: Dict[str, List[float]] = {name: [] for name in val}
    for _ in range(args.reps):
        for name in models:
            times[name].append(block(name))
        for name in val:
            refresh_times[name].append(refresh(name))
            models[name].train()
    med = {name: statistics.median(v) for name, v in times.items()}
    ref = {name: statistics.median(v) for name, v in refresh_times.items()}
    max_iters = int(full_cfg.train_cfg.get('max_iters', 0) or 0)
    n_switch = switch_refreshes(full_cfg)

    print(f'device: cpu, torch threads {torch.get_num_threads()}, batch '
          f'{args.batch} x {args.size}x{args.size}, EfficientNet-Lite0, '
          f'{args.reps} blocks x {args.iters} iterations per model, '
          f'interleaved ({" ".join(models)})')
    print(f'cam_iter_ms: {1000 * med["cam"]:.1f}')
    goal = '(goal <= 1.10; paper claims 1.15-1.20)'
    for name in models:
        if name in ('cam', 'cam-d16'):
            continue
        key = name.replace('+', '_').replace('-', '_')
        props = entries[name][1]
        if name not in ref:
            print(f'{key}_iter_ms: {1000 * med[name]:.1f} ({props} '
                  'proposals, no influence)')
            print(f'{key}_iter_ratio: {med[name] / med["cam"]:.3f}')
            continue
        amort = ref[name] / interval
        total = med[name] + amort
        print(f'{key}_train_step_ms: {1000 * med[name]:.1f} ({props} '
              'proposals; curvature EMA and influence maps included, '
              'refreshes not)')
        print(f'{key}_refresh_ms: {1000 * ref[name]:.1f} (InfluenceHook '
              f'refresh on {num_val} validation images)')
        print(f'{key}_refresh_interval: {interval}')
        print(f'{key}_iter_ms: {1000 * total:.1f} (train step + refresh / '
              'interval)')
        print(f'{key}_iter_ratio: {total / med["cam"]:.3f}' +
              (f' {goal}' if name == 'igcam' else ''))
        if max_iters and n_switch:
            per_iter = (max_iters // interval + n_switch) / max_iters
            with_sw = med[name] + ref[name] * per_iter
            print(f'{key}_iter_ratio_with_switches: '
                  f'{with_sw / med["cam"]:.3f} ({max_iters // interval} '
                  f'interval + {n_switch} stage-switch refreshes in '
                  f'{max_iters} iterations)')
    if 'igcam' in ref:
        total = med['igcam'] + ref['igcam'] / interval
        print(f'cam_d16_iter_ms: {1000 * med["cam-d16"]:.1f} (the IRN-style '
              'CAM classifier of configs/cam, output stride 16)')
        print(f'igcam_over_cam_d16_ratio: {total / med["cam-d16"]:.3f} '
              '(IG-CAM against the stride-16 CAM that WSSS baselines train; '
              'the goal line above divides by the stride-32 "Base" row)')
    if 'row-ms' in med and 'igcam' in ref:
        # the same 4-scale architecture without attention and influence
        total = med['igcam'] + ref['igcam'] / interval
        print(f'igcam_over_ms_ratio: {total / med["row-ms"]:.3f} (cost of '
              'the influence work and the attention alone)')
    return med


def m_has_influence(model) -> bool:
    return bool(getattr(model, 'influence', None))


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


def complexity(args) -> None:
    """Print parameters and forward FLOPs of every ablation model."""
    paths = sorted(glob.glob(osp.join(CFG_DIR, 'igcam-ablation-*_demo*.py')))
    order = ['base', 'inst', 'ms', 'inst-ms', 'influence', 'crf']

    def row(path):
        stem = osp.basename(path).split('_')[0]
        name = stem.replace('igcam-ablation-', '')
        return order.index(name) if name in order else len(order)

    paths = sorted(paths, key=row) + [FULL_CFG]
    print(f'complexity: model._forward (eval, one image, image labels, '
          f'{args.proposals} proposals, influence maps on), '
          'FlopCounterMode (multiply-add = 2 FLOPs)')
    runs = [(p, None) for p in paths] + [(VOC_CFG, 'base'), (VOC_CFG, None),
                                         (CAM_VOC_CFG, 'r101')]
    for path, variant in runs:
        size = args.voc_size if path in (VOC_CFG, CAM_VOC_CFG) else args.size
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
    if args.reps < 1 or args.iters < 1 or args.batch < 1:
        raise SystemExit('--reps, --iters and --batch must be >= 1')
    register_all_modules()
    # build_optim_wrapper logs every parameter group at INFO
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    t0 = time.perf_counter()
    time_training(args)
    if not args.no_complexity:
        complexity(args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f'peak memory: {rss / 1024:.0f} MiB (ru_maxrss of this process)')
    print(f'bench_seconds: {time.perf_counter() - t0:.1f}')


if __name__ == '__main__':
    main()
