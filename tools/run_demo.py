# Copyright (c) mmwsss contributors.
"""The whole weakly supervised pipeline on the demo scenes, on a CPU.

Runs the same commands a user runs, one after the other, and prints them:

1. ``tools/dataset_converters/make_demo_dataset.py`` -- demo scenes;
2. ``tools/train.py`` -- CAM classifier from image-level labels;
3. ``tools/test.py`` -- CAM seed mIoU on the train split (``IoUMetric``);
4. ``tools/make_pseudo_labels.py --refine none --save-scores`` and
   ``tools/analysis_tools/sweep_thresholds.py`` -- seed mIoU at the best
   global and class-wise background thresholds;
5. ``tools/make_pseudo_labels.py --refine irn_label`` -- DenseCRF
   pseudo-labels, scored with ``tools/analysis_tools/eval_label_maps.py``;
6. ``tools/train.py`` / ``tools/test.py`` -- the final segmentation model on
   the pseudo-labels, and the same model on the real masks (upper bound),
   both scored on the held-out val split.

It ends with one table and writes ``demo_results.{json,md}`` and
``demo_grid.png`` (image, CAM, seed, CRF pseudo-label, ground truth) to the
work dir. Every stage is skipped when its output exists, so an interrupted
demo continues where it stopped (``--force`` redoes everything).
"""
import argparse
import glob
import json
import os
import os.path as osp
import shlex
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CAM_CONFIG = 'configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py'
SEG_CONFIG = ('configs/deeplabv3plus/'
              'deeplabv3plus_effl0-d16_1xb16-800it_demo-pseudo-128x128.py')
GT_CONFIG = ('configs/deeplabv3plus/'
             'deeplabv3plus_effl0-d16_1xb16-800it_demo-gt-128x128.py')
# outputs computed from a trained model, removed when it is retrained
DERIVED = ('test_metrics.json', 'seeds', 'threshold_sweep.json',
           'pseudo_labels', 'crf_eval.json')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/demo')
    p.add_argument('--seed', type=int, default=0, help='dataset seed')
    p.add_argument('--num-train', type=int, default=1000)
    p.add_argument('--num-val', type=int, default=200)
    p.add_argument('--img-size', type=int, default=128)
    p.add_argument('--num-aux', type=int, default=0,
                   help='images of the demo "aux" split (disjoint from '
                   'train and val)')
    p.add_argument('--generator-version', default=None,
                   help='demo scene generator version (default: newest)')
    p.add_argument('--difficulty', default=None,
                   help='JSON object of generator knobs (calibration)')
    p.add_argument('--cam-config', default=CAM_CONFIG)
    p.add_argument('--seg-config', default=SEG_CONFIG)
    p.add_argument('--gt-config', default=GT_CONFIG)
    p.add_argument('--cam-iters', type=int, default=None,
                   help='override the CAM config schedule length')
    p.add_argument('--seg-iters', type=int, default=None,
                   help='override the segmentation schedule length')
    p.add_argument('--batch-size', type=int, default=None,
                   help='override both training batch sizes')
    p.add_argument('--scales', default=None,
                   help='comma-separated CAM test scales (default: config)')
    p.add_argument('--workers', type=int, default=2,
                   help='DenseCRF worker processes and data workers')
    p.add_argument(
        '--seg-init',
        choices=['imagenet', 'cam'],
        default='cam',
        help='backbone init of the final models: the config\'s ImageNet '
        'weights, or the CAM classifier\'s backbone (trained on the same '
        'images with image-level labels only; same backbone type needed)')
    p.add_argument('--skip-gt', action='store_true',
                   help='do not train the fully supervised upper bound')
    p.add_argument('--force', action='store_true',
                   help='redo every stage even if its output exists')
    return p.parse_args(argv)


class Demo:
    """Stage runner that records timings and metrics."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = osp.abspath(args.work_dir)
        self.data = osp.abspath(args.data_root)
        os.makedirs(self.work, exist_ok=True)
        self.times: Dict[str, float] = {}
        self.py = sys.executable

    # ------------------------------------------------------------------
    def run(self, cmd: List[str], stage: str) -> None:
        """Run a command from the repo root, echoing it; fail loudly."""
        print(f'\n[demo] {stage}: ' + ' '.join(shlex.quote(c) for c in cmd),
              flush=True)
        t0 = time.time()
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        ret = subprocess.run(cmd, cwd=ROOT, env=env)
        self.times[stage] = self.times.get(stage, 0.0) + time.time() - t0
        if ret.returncode != 0:
            raise SystemExit(f'[demo] stage "{stage}" failed with exit code '
                             f'{ret.returncode}; fix the error above and '
                             're-run (finished stages are skipped)')

    def data_options(self, loaders: Sequence[str]) -> List[str]:
        opts = []
        for loader in loaders:
            opts.append(f'{loader}.dataset.data_root={self.data}')
            opts.append(f'{loader}.num_workers={self.args.workers}')
        return opts

    def done(self, path: str) -> bool:
        return osp.exists(path) and not self.args.force

    # ------------------------------------------------------------------
    def make_data(self) -> None:
        a = self.args
        meta = osp.join(self.data, 'meta.json')
        from mmwsss.datasets.demo_scenes import (GENERATOR_VERSION,
                                                 resolve_difficulty)
        version = a.generator_version or GENERATOR_VERSION
        knobs = resolve_difficulty(
            json.loads(a.difficulty) if a.difficulty else None, version)
        want = dict(
            seed=a.seed,
            num_train=a.num_train,
            num_val=a.num_val,
            num_aux=a.num_aux,
            img_size=a.img_size,
            generator_version=version,
            difficulty={
                k: list(v) if isinstance(v, tuple) else v
                for k, v in knobs.items()
            })
        if self.done(meta):
            with open(meta) as f:
                have = json.load(f)
            if all(have.get(k) == v for k, v in want.items()):
                print(f'[demo] data: {self.data} exists, kept')
                return
            print(f'[demo] data: {self.data} was made with other settings; '
                  'regenerating')
        self.run([
            self.py, 'tools/dataset_converters/make_demo_dataset.py',
            self.data, '--seed',
            str(a.seed), '--num-train',
            str(a.num_train), '--num-val',
            str(a.num_val), '--img-size',
            str(a.img_size), '--num-aux',
            str(a.num_aux), '--version', version, '--workers',
            str(a.workers), '--force'
        ] + (['--difficulty', a.difficulty] if a.difficulty else []), 'data')

    def train(self, config: str, work: str, stage: str, extra: List[str],
              loaders: Sequence[str] = ('train_dataloader', 'val_dataloader',
                                        'test_dataloader')) -> str:
        """Train (resuming an interrupted run) and return the checkpoint.

        When a model is (re)trained, everything derived from an earlier
        model in ``work`` (test metrics, seeds, pseudo-labels) is removed.
        """
        final = osp.join(work, 'final.txt')
        if self.done(final):
            with open(final) as f:
                ckpt = f.read().strip()
            if osp.isfile(ckpt):
                print(f'[demo] {stage}: {ckpt} exists, kept')
                return ckpt
        if self.args.force and osp.isdir(work):
            shutil.rmtree(work)
        for derived in DERIVED:
            path = osp.join(work, derived)
            if osp.isdir(path):
                shutil.rmtree(path)
            elif osp.exists(path):
                os.remove(path)
        resume = osp.isfile(osp.join(work, 'last_checkpoint')) and \
            not self.args.force
        opts = self.data_options(loaders)
        cmd = [self.py, 'tools/train.py', config, '--work-dir', work]
        if resume:
            cmd.append('--resume')
        self.run(cmd + ['--cfg-options'] + opts + extra, stage)
        with open(osp.join(work, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        with open(final, 'w') as f:
            f.write(ckpt)
        return ckpt

    def test(self, config: str, ckpt: str, work: str, stage: str,
             extra: List[str]) -> float:
        """Run tools/test.py and return the mIoU (fraction)."""
        result = osp.join(work, 'test_metrics.json')
        if not self.done(result):
            opts = self.data_options(['test_dataloader'])
            self.run([
                self.py, 'tools/test.py', config, ckpt, '--work-dir', work,
                '--cfg-options'
            ] + opts + extra, stage)
            logs = sorted(glob.glob(osp.join(work, '*', '*.json')),
                          key=osp.getmtime)
            if not logs:
                raise SystemExit(f'[demo] no metrics json under {work}')
            with open(logs[-1]) as f:
                metrics = json.load(f)
            with open(result, 'w') as f:
                json.dump(metrics, f)
        with open(result) as f:
            metrics = json.load(f)
        return float(metrics['mIoU']) / 100.0

    def schedule_options(self, iters: Optional[int]) -> List[str]:
        """Shorten a schedule from the command line (smoke tests)."""
        a = self.args
        opts = []
        if a.batch_size:
            opts.append(f'train_dataloader.batch_size={a.batch_size}')
        if iters:
            opts += [
                f'train_cfg.max_iters={iters}',
                f'train_cfg.val_interval={iters}',
                f'default_hooks.checkpoint.interval={iters}',
                f'default_hooks.logger.interval={max(1, min(50, iters))}',
                'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
                f'param_scheduler.1.end={iters}'
            ]
        return opts

    # ------------------------------------------------------------------
    def main(self) -> dict:
        a = self.args
        t_start = time.time()
        self.make_data()
        names = [
            ln.strip() for ln in open(
                osp.join(self.data, 'ImageSets/Segmentation/train.txt'))
            if ln.strip()
        ]
        gt_dir = osp.join(self.data, 'SegmentationClass')
        cam_work = osp.join(self.work, 'cam')
        cam_opts = []
        if a.scales:
            cam_opts.append(f'model.test_cfg.scales=({a.scales},)')
        ckpt = self.train(a.cam_config, cam_work, 'train CAM',
                          self.schedule_options(a.cam_iters),
                          ('train_dataloader', 'test_dataloader'))
        seed_cfg = self.test(a.cam_config, ckpt, cam_work,
                             'test CAM seeds (IoUMetric)', cam_opts)

        # seeds: scores + threshold sweep
        seed_dir = osp.join(cam_work, 'seeds')
        self.run([
            self.py, 'tools/make_pseudo_labels.py', a.cam_config, ckpt,
            '--out', seed_dir, '--refine', 'none', '--save-scores',
            '--workers', '1', '--cfg-options'
        ] + self.data_options(['test_dataloader']) + cam_opts,
                 'CAM scores')
        sweep_json = osp.join(cam_work, 'threshold_sweep.json')
        if not self.done(sweep_json):
            self.run([
                self.py, 'tools/analysis_tools/sweep_thresholds.py',
                '--scores-dir',
                osp.join(seed_dir, 'scores'), '--gt-dir', gt_dir, '--out',
                sweep_json, '--class-names', ','.join(self.class_names())
            ], 'threshold sweep')
        with open(sweep_json) as f:
            sweep = json.load(f)
        best_thr = float(sweep['best_global']['thr'])
        seed_best = float(sweep['best_global']['miou'])
        seed_cw = float(sweep['classwise']['miou'])

        # DenseCRF pseudo-labels at the best global threshold
        pseudo_dir = osp.join(cam_work, 'pseudo_labels', 'crf')
        self.run([
            self.py, 'tools/make_pseudo_labels.py', a.cam_config, ckpt,
            '--out', pseudo_dir, '--refine', 'irn_label', '--bg-thr',
            str(best_thr), '--from-scores',
            osp.join(seed_dir, 'scores'), '--workers',
            str(a.workers), '--cfg-options'
        ] + self.data_options(['test_dataloader']) + cam_opts,
                 'CRF pseudo-labels')
        crf_json = osp.join(cam_work, 'crf_eval.json')
        self.run([
            self.py, 'tools/analysis_tools/eval_label_maps.py', pseudo_dir,
            gt_dir, '--split',
            osp.join(self.data, 'ImageSets/Segmentation/train.txt'),
            '--num-classes',
            str(len(self.class_names())), '--out', crf_json
        ], 'score pseudo-labels')
        with open(crf_json) as f:
            crf_miou = float(json.load(f)['miou'])

        # final model on pseudo-labels and on ground truth
        seg_opts = self.schedule_options(a.seg_iters)
        if a.seg_init == 'cam':
            seg_opts += [
                f'model.backbone.init_cfg.checkpoint={ckpt}',
                'model.backbone.init_cfg.prefix=backbone.'
            ]
        pseudo_opts = seg_opts + [
            'train_dataloader.dataset.data_prefix.seg_map_path='
            f'{pseudo_dir}'
        ]
        seg_work = osp.join(self.work, 'seg_pseudo')
        seg_ckpt = self.train(a.seg_config, seg_work,
                              'train final model (pseudo-labels)',
                              pseudo_opts)
        final_miou = self.test(a.seg_config, seg_ckpt, seg_work,
                               'test final model', [])
        upper = None
        if not a.skip_gt:
            gt_work = osp.join(self.work, 'seg_gt')
            gt_ckpt = self.train(a.gt_config, gt_work,
                                 'train upper bound (real masks)', seg_opts)
            upper = self.test(a.gt_config, gt_ckpt, gt_work,
                              'test upper bound', [])

        grid = osp.join(self.work, 'demo_grid.png')
        write_grid(grid, self.data, names[:8], seed_dir, pseudo_dir,
                   self.palette(), best_thr, self.class_names())

        result = dict(
            dataset=dict(
                root=self.data,
                seed=a.seed,
                num_train=len(names),
                num_val=a.num_val),
            seed_miou_config_thr=seed_cfg,
            seed_miou_best_global=seed_best,
            best_global_thr=best_thr,
            seed_miou_classwise=seed_cw,
            crf_miou=crf_miou,
            final_miou=final_miou,
            upper_bound_miou=upper,
            stage_seconds={k: round(v, 1)
                           for k, v in self.times.items()},
            total_seconds=round(time.time() - t_start, 1),
            grid=grid)
        self.report(result)
        return result

    # ------------------------------------------------------------------
    def class_names(self) -> List[str]:
        from mmwsss.datasets.demo_scenes import DEMO_CLASSES
        return list(DEMO_CLASSES)

    def palette(self) -> List[List[int]]:
        from mmwsss.datasets.demo_scenes import DEMO_PALETTE
        return [list(c) for c in DEMO_PALETTE]

    def report(self, r: dict) -> None:

        def pct(x):
            return '-' if x is None else f'{100 * x:.1f}'

        rows = [
            ('CAM seed (train, bg thr of config, tools/test.py)',
             r['seed_miou_config_thr']),
            (f'CAM seed (train, best global thr {r["best_global_thr"]:.2f})',
             r['seed_miou_best_global']),
            ('CAM seed (train, class-wise thresholds)',
             r['seed_miou_classwise']),
            ('+ DenseCRF pseudo-labels (train)', r['crf_miou']),
            ('final DeepLabV3+ on pseudo-labels (val)', r['final_miou']),
            ('same model on real masks: upper bound (val)',
             r['upper_bound_miou']),
        ]
        lines = ['| stage | mIoU (%) |', '|---|---|']
        lines += [f'| {name} | {pct(v)} |' for name, v in rows]
        if r['upper_bound_miou'] is not None:
            gap = r['upper_bound_miou'] - r['final_miou']
            lines.append(f'| gap: upper bound - final | {100 * gap:.1f} |')
        lines.append('')
        lines.append('stage times (s): ' + ', '.join(
            f'{k} {v}' for k, v in r['stage_seconds'].items()))
        lines.append(f'total: {r["total_seconds"]:.0f} s; grid: {r["grid"]}')
        text = '\n'.join(lines)
        print('\n' + text, flush=True)
        with open(osp.join(self.work, 'demo_results.md'), 'w') as f:
            f.write(text + '\n')
        with open(osp.join(self.work, 'demo_results.json'), 'w') as f:
            json.dump(r, f, indent=2)


def write_grid(path: str,
               data_root: str,
               names: Sequence[str],
               seed_dir: str,
               pseudo_dir: str,
               palette: Sequence[Sequence[int]],
               thr: float,
               class_names: Optional[Sequence[str]] = None) -> None:
    """Rows: image | CAM overlay | seed | CRF pseudo-label | ground truth.

    Drawn by :class:`mmwsss.visualization.WSSSVisualizer` (column titles
    above, class legend below when ``class_names`` are given; tiles at the
    image size), written atomically.
    """
    from PIL import Image

    from mmwsss.cams.thresholds import apply_thresholds
    from mmwsss.visualization import WSSSVisualizer, save_png
    vis = WSSSVisualizer(
        name='run_demo',
        classes=list(class_names or [str(i) for i in range(len(palette))]),
        palette=[list(c) for c in palette])
    rows = []
    for name in names:
        img = np.asarray(
            Image.open(osp.join(data_root, 'JPEGImages',
                                name + '.jpg')).convert('RGB'))
        with np.load(osp.join(seed_dir, 'scores', name + '.npz')) as d:
            scores = d['scores'].astype(np.float32)
            labels = [int(x) for x in np.ravel(d['img_labels'])]
        seed = apply_thresholds(scores, labels, thr)
        pseudo = np.asarray(Image.open(osp.join(pseudo_dir, name + '.png')))
        gt = np.asarray(
            Image.open(osp.join(data_root, 'SegmentationClass',
                                name + '.png')))
        # the strongest foreground CAM of every pixel
        rows.append([
            img,
            vis.draw_cam(img, scores[1:].max(0)),
            vis.draw_label(seed),
            vis.draw_label(pseudo),
            vis.draw_label(gt)
        ])
    titles = [
        'image', 'CAM (max over labels)', f'seed (bg {thr:.2f})',
        'DenseCRF pseudo-label', 'ground truth'
    ]
    grid = vis.make_grid(rows, titles, rows[0][0].shape[:2],
                         class_names is not None)
    save_png(path, grid)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point."""
    return Demo(parse_args(argv)).main()


if __name__ == '__main__':
    main()
