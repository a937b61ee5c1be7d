# Copyright (c) mmwsss contributors.
"""Quality of CamGuide's stage-3 heuristic targets, before / after #19.

Measures, on demo scenes (any VOC-layout folder with masks) and CAMs
simulated from the masks (:func:`mmwsss.cams.simulate.simulate_cams`, a
stride-16 classifier's coarse map; the refinement head at the start of
stage 3 is the identity, so the refined map is its bilinear upsampling to
the stride-4 grid), the mIoU against the masks of:

- ``cam``: the stochastic-threshold mask itself (argmax of ``[tau,
  CAM_1..K]``);
- ``crf``: DenseCRF + closing (eq. (28));
- ``rw``: the SLIC random walk (eq. (29));

for the training-time target path of each configuration (cumulative):

- ``before``: the v1 demo stage-3 config: dropout 0.5 element-wise on the
  classifier output in the forward that builds the targets (D1), SLIC walk
  compared with an un-renormalised background (D2), sizes in pixels of the
  demo grid (closing 5, SLIC 70 segments, CRF stds / 4, D4);
- ``+D1``: targets from the no-dropout forward;
- ``+D2``: SLIC walk renormalised per class;
- ``+D4``: every size relative to the grid (closing 15/128, SLIC
  1100/128^2, CRF stds 3/512 and 50/512 of the side: the IRN preset's
  share of a ~512-pixel image);
- ``after`` (the stage-3 configs): two readings the paper leaves open,
  chosen on the demo's dev seeds with this tool: the CRF stds as the
  preset's pixels of the 128 grid (3/128 and 50/128 of the side) and the
  SLIC walk's colour scale ``sigma_color`` 1.0 instead of 2.5 (CIELab).

D3 (the normaliser in the gradient) does not change the targets; the tool
reports the step of the max pixel against the mean pixel of ``L_crf`` and
``L_rw`` with and without ``detach_norm``. Also a tau sweep of the
``after`` targets and of the SLIC walk with each renormalisation (with the
foreground area of the walk target relative to the plain threshold's).

With ``--scores-dir`` the CAMs are a trained model's instead: the saved
``scores/<id>.npz`` of a results row (``tools/test.py`` /
``tools/make_pseudo_labels.py --save-scores``; channel 0 the background
constant, channels 1..K the max-normalised class maps at image size),
area-averaged to the stride-4 grid. Stage 3 starts from the stage-2 model,
so the scores of the "Our*" row give the targets that stage 3 first sees;
this is how the demo's tau range and ``sigma_color`` are checked on the
dev seeds.

Example (about a minute on one core for 100 images)::

    python tools/analysis_tools/camguide_target_quality.py \\
        --data-root work_dirs/h19/demo_v1 --num-images 100 \\
        --out work_dirs/h19/target_quality.json
"""
import argparse
import json
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mmwsss.cams.simulate import simulate_cams
from mmwsss.evaluation.label_maps import read_label_png
from mmwsss.evaluation.target_quality import LabelMapIoU
from mmwsss.models.losses.camguide_loss import HeuristicTargetLoss
from mmwsss.models.segmentors.camguide_segmentor import make_cam
from mmwsss.refine.heuristic_targets import HeuristicTargets

#: Target generators of the configurations (cumulative fixes).
OLD_SIZES = dict(
    crf=dict(preset='irn_label', n_iters=5, scale_factor=4.0),
    close_kernel=5,
    rw=dict(n_segments=70, n_iters=12))
REL_SIZES_D4 = dict(
    crf=dict(
        preset='irn_label',
        n_iters=5,
        gauss_sxy=dict(rel=3 / 512),
        bi_sxy=dict(rel=50 / 512)),
    close_kernel=dict(rel=15 / 128),
    rw=dict(n_segments=dict(rel=1100 / 128**2), n_iters=12))
#: The stage-3 configs' targets (configs/_base_/models/camguide_stage3_sizes
#: .py and the configs' ``heuristic_targets.rw``).
REL_SIZES = dict(
    crf=dict(
        preset='irn_label',
        n_iters=5,
        gauss_sxy=dict(rel=3 / 128),
        bi_sxy=dict(rel=50 / 128)),
    close_kernel=dict(rel=15 / 128),
    rw=dict(n_segments=dict(rel=1100 / 128**2), n_iters=12, sigma_color=1.0))
AFTER = 'after (CRF stds of the grid, SLIC sigma_color 1.0)'


def configurations() -> Dict[str, dict]:
    """``{name: dict(dropout, targets)}`` of the rows, cumulative."""

    def gen(sizes: dict, renorm) -> dict:
        cfg = json.loads(json.dumps(sizes))
        cfg['rw']['renorm'] = renorm
        return cfg

    return {
        'before':
        dict(dropout=0.5, targets=gen(OLD_SIZES, None)),
        '+D1 (no-dropout forward)':
        dict(dropout=0.0, targets=gen(OLD_SIZES, None)),
        '+D2 (RW renormalised)':
        dict(dropout=0.0, targets=gen(OLD_SIZES, 'class')),
        '+D4 (relative sizes)':
        dict(dropout=0.0, targets=gen(REL_SIZES_D4, 'class')),
        # not defect fixes: two readings chosen on the dev seeds
        AFTER:
        dict(dropout=0.0, targets=gen(REL_SIZES, 'class')),
    }


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--data-root',
        required=True,
        help='VOC-layout folder (JPEGImages, SegmentationClass, '
        'ImageSets/Segmentation/<split>.txt)')
    p.add_argument('--split', default='train')
    p.add_argument('--num-images', type=int, default=100)
    p.add_argument('--num-classes', type=int, default=8)
    p.add_argument('--taus', type=float, nargs='+', default=[0.65, 0.75, 0.85])
    p.add_argument(
        '--sweep',
        type=float,
        nargs='+',
        default=[round(0.05 + 0.1 * i, 2) for i in range(10)])
    p.add_argument('--cam-stride', type=int, default=16)
    p.add_argument('--grid-stride', type=int, default=4)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--scores-dir',
        default=None,
        help='saved scores/<id>.npz of a trained model; replaces the '
        'CAMs simulated from the masks')
    p.add_argument(
        '--sigmas',
        type=float,
        nargs='+',
        default=[],
        help='extra SLIC-walk sigma_color values (CIELab) for the tau sweep')
    p.add_argument(
        '--variants',
        type=json.loads,
        default={},
        help='JSON object {name: overrides} of target settings swept over '
        'tau beside "after"; each overrides is merged into the after '
        'settings, e.g. \'{"bi 0.2": {"crf": {"bi_sxy": {"rel": 0.2}}}}\'')
    p.add_argument('--out', default=None, help='JSON file of the results')
    return p.parse_args(argv)


def load_images(root: str, split: str, n: int) -> List[dict]:
    """Images (RGB uint8), masks and labels of the first ``n`` ids."""
    ids_file = osp.join(root, 'ImageSets', 'Segmentation', split + '.txt')
    if not osp.isfile(ids_file):
        raise FileNotFoundError(f'split file not found: {ids_file}')
    with open(ids_file, encoding='utf-8') as f:
        ids = [line.strip() for line in f if line.strip()][:n]
    out = []
    for i in ids:
        img = cv2.imread(osp.join(root, 'JPEGImages', i + '.jpg'))
        if img is None:
            raise FileNotFoundError(f'cannot read image {i}.jpg in {root}')
        gt = read_label_png(osp.join(root, 'SegmentationClass', i + '.png'))
        labels = sorted(int(c) for c in np.unique(gt) if 0 < c < 255)
        if labels:
            out.append(
                dict(id=i, img=img[..., ::-1].copy(), gt=gt, labels=labels))
    return out


def merged(base: dict, over: dict) -> dict:
    """``base`` with ``over`` merged in, key by key (dicts recursively)."""
    out = json.loads(json.dumps(base))
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and \
                not set(v) & {'rel', 'reach'}:
            out[k] = merged(out[k], v)
        else:
            out[k] = v
    return out


def load_scores(scores_dir: str, d: dict, grid) -> np.ndarray:
    """Class maps (K, h, w) of image ``d`` from saved scores, area-averaged
    to ``grid``; the classes must match the image's mask labels."""
    path = osp.join(scores_dir, d['id'] + '.npz')
    if not osp.isfile(path):
        raise FileNotFoundError(f'saved scores not found: {path}')
    with np.load(path) as z:
        if 'scores' not in z.files:
            raise KeyError(f'{path}: no "scores" array')
        scores = z['scores'].astype(np.float32)
    if scores.ndim != 3 or scores.shape[1:] != d['gt'].shape:
        raise ValueError(f'{path}: scores of shape {scores.shape} do not '
                         f'match the mask {d["gt"].shape}')
    fg = scores[1:].transpose(1, 2, 0)
    small = cv2.resize(fg, grid[::-1], interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.reshape(grid + (-1, )).transpose(
        2, 0, 1))


def refined_maps(coarse: np.ndarray, size, dropout: float,
                 gen: torch.Generator) -> torch.Tensor:
    """Stride-4 maps of the identity refinement head (with dropout)."""
    x = torch.from_numpy(coarse)[None]
    if dropout > 0:
        keep = torch.rand(x.shape, generator=gen) >= dropout
        x = x * keep / (1 - dropout)
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


def grad_ratio(refined: torch.Tensor, labels: List[int], tau: float,
               target: np.ndarray, detach: bool) -> float:
    """Step on each class map's max pixel / its mean step, of ``L = CE(
    scores, target)``; median over the image's classes."""
    x = refined.clone().requires_grad_(True)
    k = x.shape[1]
    lab = torch.zeros(1, k, 1, 1)
    lab[0, [c - 1 for c in labels]] = 1
    cams = make_cam(x, detach_max=detach) * lab
    bg = torch.full_like(cams[:, :1], tau)
    loss = HeuristicTargetLoss()(torch.cat([bg, cams], 1),
                                 torch.from_numpy(target)[None])
    loss.backward()
    g = x.grad[0].abs()
    ratios = []
    for c in labels:
        gc = g[c - 1].flatten()
        top = int(refined[0, c - 1].flatten().argmax())
        if gc.mean() > 0:
            ratios.append(float(gc[top] / gc.mean()))
    return float(np.median(ratios)) if ratios else float('nan')


def run(args: argparse.Namespace) -> dict:
    t0 = time.time()
    data = load_images(args.data_root, args.split, args.num_images)
    if not data:
        raise SystemExit(f'no labelled images in {args.data_root}')
    rng = np.random.default_rng(args.seed)
    for d in data:
        h, w = d['gt'].shape
        d['grid'] = (h // args.grid_stride, w // args.grid_stride)
        if args.scores_dir:
            # already on the grid: the bilinear resize below is the identity
            d['coarse'] = load_scores(args.scores_dir, d, d['grid'])
        else:
            d['coarse'] = simulate_cams(
                d['gt'], args.num_classes, stride=args.cam_stride, rng=rng)
        d['small'] = cv2.resize(
            d['img'], d['grid'][::-1], interpolation=cv2.INTER_AREA)
    confs = configurations()
    gens = {
        name: HeuristicTargets(**c['targets'])
        for name, c in confs.items()
    }
    results = dict(
        rows={},
        grad_ratio={},
        sweep={},
        rw_renorm={},
        settings=dict(vars(args), num_used=len(data)))

    def targets_of(gen, d, tau, refined, which=('crf', 'rw')):
        k = refined.shape[1]
        lab = torch.zeros(1, k, 1, 1)
        lab[0, [c - 1 for c in d['labels']]] = 1
        cams = (make_cam(refined) * lab)[0]
        scores = torch.cat([torch.full_like(cams[:1], tau), cams]).numpy()
        keys = np.array([0] + d['labels'])
        cam = keys[np.argmax(scores[keys], axis=0)]
        out = gen(d['small'][None], scores[None], [d['labels']], which=which)
        return cam, {k: v[0] for k, v in out.items()}

    # cumulative rows at the demo taus
    for name, cfg in confs.items():
        gtorch = torch.Generator().manual_seed(args.seed)
        row = {}
        for tau in args.taus:
            acc = LabelMapIoU(args.num_classes)
            for d in data:
                refined = refined_maps(d['coarse'], d['grid'], cfg['dropout'],
                                       gtorch)
                cam, tg = targets_of(gens[name], d, tau, refined)
                acc.add('cam', cam, d['gt'])
                for key, v in tg.items():
                    acc.add(key, v, d['gt'])
            row[str(tau)] = acc.results()
        results['rows'][name] = row
    # D3: gradient step of the max pixel against the mean pixel
    after = gens[AFTER]
    tau = float(np.median(args.taus))
    for detach in (False, True):
        ratios = {'crf': [], 'rw': []}
        for d in data:
            refined = refined_maps(d['coarse'], d['grid'], 0.0, None)
            _, tg = targets_of(after, d, tau, refined)
            for key in ratios:
                ratios[key].append(
                    grad_ratio(refined, d['labels'], tau, tg[key], detach))
        results['grad_ratio'][f'detach_norm={detach}'] = {
            k: float(np.nanmedian(v))
            for k, v in ratios.items()
        }
    # tau sweep of the final configuration, and of the walk's renorms
    renorm_gens = {
        str(r): HeuristicTargets(crf=None, rw=dict(REL_SIZES['rw'], renorm=r))
        for r in (None, 'class', 'global')
    }
    for sig in sorted({2.5, *args.sigmas}):
        renorm_gens[f'class, sigma_color {sig:g}'] = HeuristicTargets(
            crf=None,
            rw=dict(REL_SIZES['rw'], renorm='class', sigma_color=sig))
    after_cfg = confs[AFTER]['targets']
    variant_gens = {
        name: HeuristicTargets(**merged(after_cfg, over))
        for name, over in args.variants.items()
    }
    results['variants'] = {
        name: merged(after_cfg, over)
        for name, over in args.variants.items()
    }
    for tau in args.sweep:
        acc = LabelMapIoU(args.num_classes)
        area = {r: [0, 0] for r in renorm_gens}
        for d in data:
            refined = refined_maps(d['coarse'], d['grid'], 0.0, None)
            cam, tg = targets_of(after, d, tau, refined)
            acc.add('cam', cam, d['gt'])
            for key, v in tg.items():
                acc.add(key, v, d['gt'])
            for r, gen in renorm_gens.items():
                _, t = targets_of(gen, d, tau, refined, which=('rw', ))
                acc.add(f'rw_renorm={r}', t['rw'], d['gt'])
                area[r][0] += int((t['rw'] > 0).sum())
                area[r][1] += int((cam > 0).sum())
            for name, gen in variant_gens.items():
                _, t = targets_of(gen, d, tau, refined)
                for key, v in t.items():
                    acc.add(f'{key}[{name}]', v, d['gt'])
        results['sweep'][str(tau)] = acc.results()
        results['rw_renorm'][str(tau)] = {
            r: a / max(b, 1)
            for r, (a, b) in area.items()
        }
    results['seconds'] = round(time.time() - t0, 1)
    return results


def report(results: dict) -> str:
    lines = []
    taus = list(next(iter(results['rows'].values())))
    lines.append('Target mIoU (%) vs masks, train-mode target path, '
                 f'{results["settings"]["num_used"]} images')
    head = '| configuration | ' + ' | '.join(
        f'{k} tau={t}' for t in taus for k in ('cam', 'crf', 'rw')) + ' |'
    lines += [head, '|' + '---|' * (1 + 3 * len(taus))]
    for name, row in results['rows'].items():
        cells = [
            f'{100 * row[t].get(k, float("nan")):.1f}' for t in taus
            for k in ('cam', 'crf', 'rw')
        ]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append('Step on the CAM max pixel / mean step (median over images '
                 'and classes):')
    for key, v in results['grad_ratio'].items():
        lines.append(f'- {key}: L_crf {v["crf"]:.1f}x, L_rw {v["rw"]:.1f}x')
    lines.append('')
    lines.append('Tau sweep (after): mIoU (%) of cam / crf / rw, and rw per '
                 'renorm (fg area of the walk target / plain threshold)')
    names = list(next(iter(results['rw_renorm'].values())))
    lines.append('| tau | cam | crf | ' + ' | '.join(f'rw renorm={n}'
                                                     for n in names) + ' |')
    lines.append('|---|---|---|' + '---|' * len(names))
    for t, r in results['sweep'].items():
        a = results['rw_renorm'][t]
        cells = [
            f'{100 * r["rw_renorm=" + n]:.1f} (x{a[n]:.2f})' for n in names
        ]
        lines.append(f'| {t} | {100 * r["cam"]:.1f} | {100 * r["crf"]:.1f}'
                     ' | ' + ' | '.join(cells) + ' |')
    if results.get('variants'):
        names = list(results['variants'])
        lines.append('')
        lines.append('Tau sweep of the variants (after + overrides): mIoU (%) '
                     'of crf / rw')
        lines.append('| tau | ' + ' | '.join(f'crf [{n}] | rw [{n}]'
                                             for n in names) + ' |')
        lines.append('|---|' + '---|---|' * len(names))
        for t, r in results['sweep'].items():
            cells = [
                f'{100 * r.get(f"{k}[{n}]", float("nan")):.1f}'
                for n in names for k in ('crf', 'rw')
            ]
            lines.append(f'| {t} | ' + ' | '.join(cells) + ' |')
    lines.append(f'\n{results["seconds"]} s')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    results = run(args)
    print(report(results))
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
