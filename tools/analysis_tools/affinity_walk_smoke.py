# Copyright (c) mmwsss contributors.
"""Walk-only smoke test of the AffinityNet random walk on saved CAM scores.

For the first ``--num-images`` images of a split, the saved CAM scores
(``<stem>.npz`` of ``make_pseudo_labels --save-scores``, or of
``--simulate``) are walked by :meth:`AffinityNet.walk_scores` (the code
path of ``tools/test.py``) with the transition built from

- ``net``: the affinity features of a trained AffinityNet
  (``--config`` + ``--checkpoint``), and
- ``gt``: ground-truth affinities: one-hot mask features scaled so that
  two nodes of different classes have affinity ``exp(-2 * 50 / C)`` (about
  0; the same class: 1), the walk's upper bound for the given CAMs,

for each ``--settings`` entry ``RADIUS:STEPS:BETA`` (``RADIUS`` an integer
or ``rel`` = 5/128 of the grid side, at least 2; ``STEPS`` an integer or
``reach`` = IRN's spread 0.41 of the side). Every map is scored at its
best global background threshold (``ThresholdAccumulator``), the seeds
too. ``--simulate DIR`` first writes CAM scores simulated from the masks
(:func:`mmwsss.cams.simulate.simulate_cams`, stride 16) to ``DIR``.

Example::

    python tools/analysis_tools/affinity_walk_smoke.py \\
        --data-root work_dirs/h19/demo_v1 --simulate work_dirs/h19/sim \\
        --num-images 50 --settings 5:256:8 5:16:8 rel:reach:8
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmwsss.cams.simulate import simulate_cams
from mmwsss.cams.thresholds import ThresholdAccumulator
from mmwsss.evaluation.label_maps import read_label_png
from mmwsss.models.segmentors.camguide_segmentor import make_cam
from mmwsss.refine.affinity_random_walk import resolve_walk
from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules
from mmwsss.utils.io import atomic_write_bytes

DEMO_CFG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'camguide', 'affinitynet_effl0_1xb16-300it_demo-128x128.py')
IRN_REACH = 0.4127


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data-root', required=True)
    p.add_argument('--split', default='train')
    p.add_argument(
        '--scores-dir', default=None, help='saved CAM scores (<stem>.npz)')
    p.add_argument(
        '--simulate',
        default=None,
        help='write simulated CAM scores to this folder first')
    p.add_argument('--config', default=DEMO_CFG)
    p.add_argument(
        '--checkpoint',
        default=None,
        help='AffinityNet checkpoint (net rows); none: gt only')
    p.add_argument('--num-images', type=int, default=50)
    p.add_argument('--num-classes', type=int, default=8)
    p.add_argument(
        '--settings', nargs='+', default=['5:256:8', '5:16:8', 'rel:reach:8'])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None)
    return p.parse_args(argv)


def write_simulated(root: str, split: str, out: str, num_classes: int,
                    seed: int, n: int) -> str:
    """Simulated CAM scores in the ``--save-scores`` format."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    for stem in read_ids(root, split)[:n]:
        gt = read_label_png(osp.join(root, 'SegmentationClass', stem + '.png'))
        labels = [int(c) for c in np.unique(gt) if 0 < c < 255]
        coarse = torch.from_numpy(simulate_cams(gt, num_classes, rng=rng))
        up = F.interpolate(
            coarse[None], size=gt.shape, mode='bilinear', align_corners=False)
        cams = make_cam(up)[0].numpy()
        keep = np.zeros(num_classes - 1, bool)
        keep[[c - 1 for c in labels]] = True
        cams[~keep] = 0
        scores = np.concatenate([np.zeros((1, ) + gt.shape), cams])
        path = osp.join(out, stem + '.npz')
        tmp = path + '.tmp.npz'
        np.savez_compressed(
            tmp,
            scores=scores.astype(np.float32),
            img_labels=np.asarray(labels, np.int64))
        os.replace(tmp, path)
    return out


def read_ids(root: str, split: str) -> List[str]:
    path = osp.join(root, 'ImageSets', 'Segmentation', split + '.txt')
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def parse_setting(text: str):
    r, s, b = text.split(':')
    radius = dict(rel=5 / 128, min=2) if r == 'rel' else int(r)
    steps = dict(reach=IRN_REACH) if s == 'reach' else int(s)
    return radius, steps, float(b)


def gt_features(gt: np.ndarray, grid, num_classes: int) -> torch.Tensor:
    """One-hot mask features on the affinity grid (nearest)."""
    g = torch.from_numpy(gt.astype(np.int64))
    g = torch.where(g == 255, torch.full_like(g, num_classes), g)
    g = F.interpolate(
        g[None, None].float(), size=grid, mode='nearest')[0, 0].long()
    onehot = F.one_hot(g, num_classes + 1).permute(2, 0, 1).float()
    return onehot * 50.0


def run(args: argparse.Namespace) -> dict:
    t0 = time.time()
    register_all_modules()
    torch.set_num_threads(1)
    scores_dir = args.scores_dir
    if args.simulate:
        scores_dir = write_simulated(args.data_root, args.split, args.simulate,
                                     args.num_classes, args.seed,
                                     args.num_images)
    if not scores_dir:
        raise SystemExit('give --scores-dir or --simulate')
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.init_cfg = None
    cfg.model.test_cfg.update(cam_dir=scores_dir, refine=None)
    model = MODELS.build(cfg.model).eval()
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    settings = [parse_setting(s) for s in args.settings]
    kinds = ['gt'] + (['net'] if args.checkpoint else [])
    acc = {'seeds': ThresholdAccumulator(args.num_classes)}
    for kind in kinds:
        for s in args.settings:
            acc[f'{kind} {s}'] = ThresholdAccumulator(args.num_classes)
    resolved = {}
    stems = [
        s for s in read_ids(args.data_root, args.split)
        if osp.isfile(osp.join(scores_dir, s + '.npz'))
    ][:args.num_images]
    for stem in stems:
        img = cv2.imread(osp.join(args.data_root, 'JPEGImages', stem + '.jpg'))
        gt = read_label_png(
            osp.join(args.data_root, 'SegmentationClass', stem + '.png'))
        with np.load(osp.join(scores_dir, stem + '.npz')) as d:
            scores = d['scores']
            labels = sorted(int(x) for x in d['img_labels'])
        acc['seeds'].update(scores, gt, labels)
        h, w = gt.shape
        meta = dict(
            img_path=stem + '.jpg',
            ori_shape=(h, w),
            img_shape=(h, w),
            img_labels=labels)
        feats = {}
        with torch.no_grad():
            if 'net' in kinds:
                data = model.data_preprocessor(
                    dict(inputs=[torch.from_numpy(img).permute(2, 0, 1)]),
                    False)
                feats['net'] = model.affinity_features(data['inputs'])[0]
            grid = (
                feats['net'].shape[-2:] if 'net' in feats else
                (-(-h // 4), -(-w // 4)))
            feats['gt'] = gt_features(gt, grid, args.num_classes)
            for kind in kinds:
                for text, (radius, steps, beta) in zip(args.settings,
                                                       settings):
                    model.test_cfg.update(
                        radius=radius,
                        n_steps=steps,
                        beta=beta,
                        bg_mode='const')
                    resolved[text] = resolve_walk(radius, steps, grid)
                    walked, _ = model.walk_scores(feats[kind], meta, (h, w))
                    acc[f'{kind} {text}'].update(walked.numpy(), gt, labels)
    out = dict(
        images=len(stems),
        resolved={
            k: dict(radius=v[0], n_steps=v[1])
            for k, v in resolved.items()
        })
    out['miou'] = {}
    for name, a in acc.items():
        thr, miou = max(a.sweep_global(), key=lambda t: t[1])
        out['miou'][name] = dict(miou=100 * miou, thr=thr)
    out['seconds'] = round(time.time() - t0, 1)
    return out


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    res = run(args)
    print(f'{res["images"]} images; settings radius:steps:beta resolved '
          f'on the grid: {res["resolved"]}')
    print('| map | mIoU (%) at best global thr | thr |')
    print('|---|---|---|')
    for name, r in res['miou'].items():
        print(f'| {name} | {r["miou"]:.1f} | {r["thr"]:.2f} |')
    print(f'{res["seconds"]} s')
    if args.out:
        atomic_write_bytes(args.out, json.dumps(res, indent=2).encode())
    return res


if __name__ == '__main__':
    main(sys.argv[1:])
