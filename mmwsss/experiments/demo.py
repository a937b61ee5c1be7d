# Copyright (c) mmwsss contributors.
"""The whole weakly supervised pipeline on the demo scenes (``make demo``).

Runs the commands a user runs, one after the other, and prints them
(:class:`~.runner.StageRunner`):

1. ``tools/dataset_converters/make_demo_dataset.py`` -- demo scenes;
2. ``tools/train.py`` -- CAM classifier from image-level labels;
3. ``tools/make_pseudo_labels.py --refine none --save-scores`` and
   ``tools/analysis_tools/sweep_thresholds.py`` -- seed mIoU on the train
   split at the config's background threshold (the figure ``tools/test.py``
   prints, read from the same multi-scale scores instead of a second
   inference pass over the train split), at the best global threshold and
   at class-wise thresholds;
4. ``tools/make_pseudo_labels.py --refine irn_label`` -- DenseCRF
   pseudo-labels (IRN's constants, spatial stds scaled to the image side:
   ``--crf-scale-factor`` 512 / 128 = 4, see
   :data:`~.runner.CRF_REF_SIDE`), scored with ``tools/analysis_tools/eval_label_maps.py``;
5. ``tools/train.py`` / ``tools/test.py`` -- the final segmentation model on
   the pseudo-labels, and the same model on the real masks (upper bound),
   both scored on the held-out val split.

It ends with one table and writes ``demo_results.{json,md}`` and
``demo_grid.png`` (image, CAM, seed, CRF pseudo-label, ground truth) to the
work dir. Every stage is skipped when its output exists.
"""
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import List, Optional

from .runner import (CAM_CONFIG, GT_CONFIG, SEG_CONFIG, TRAIN_SPLIT,
                     DataSpec, StageRunner, class_names, data_root_options,
                     make_data, palette, read_json, schedule_options,
                     split_names, write_json)


@dataclass
class DemoSettings:
    """Settings of ``make demo`` (see ``tools/run_demo.py``)."""
    work_dir: str = 'work_dirs/demo'
    data_root: str = 'data/demo'
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    cam_config: str = CAM_CONFIG
    seg_config: str = SEG_CONFIG
    gt_config: str = GT_CONFIG
    cam_iters: Optional[int] = None
    seg_iters: Optional[int] = None
    batch_size: Optional[int] = None
    scales: Optional[str] = None
    workers: int = 2
    seg_init: str = 'cam'
    skip_gt: bool = False
    force: bool = False
    grid_images: int = 8


class DemoPipeline:
    """One dataset seed through the whole chain (``tools/run_demo.py``).

    Args:
        settings (DemoSettings): What to run.
        runner (StageRunner, optional): Runs the commands.
    """

    def __init__(self,
                 settings: DemoSettings,
                 runner: Optional[StageRunner] = None) -> None:
        self.s = settings
        self.work = osp.abspath(settings.work_dir)
        self.data = osp.abspath(settings.data_root)
        os.makedirs(self.work, exist_ok=True)
        self.sr = runner or StageRunner(settings.force, settings.workers)

    def schedule(self, config: str, iters: Optional[int]) -> List[str]:
        opts = []
        if self.s.batch_size:
            opts.append(f'train_dataloader.batch_size={self.s.batch_size}')
        return opts + schedule_options(config, iters=iters)

    def data_opts(self, config: str) -> List[str]:
        return data_root_options(config, self.data)

    def main(self) -> dict:
        """Run every stage; return the results (also written to disk)."""
        s = self.s
        sr = self.sr
        py = sr.py
        t_start = time.time()
        make_data(sr, self.data, s.seed, s.data)
        names = split_names(self.data)
        gt_dir = osp.join(self.data, 'SegmentationClass')
        cam_work = osp.join(self.work, 'cam')
        cam_opts = self.data_opts(s.cam_config)
        if s.scales:
            cam_opts.append(f'model.test_cfg.scales=({s.scales},)')
        ckpt = sr.train(
            s.cam_config, cam_work, 'train CAM',
            self.data_opts(s.cam_config) +
            self.schedule(s.cam_config, s.cam_iters))

        seed_dir = osp.join(cam_work, 'seeds')
        sr.run([
            py, 'tools/make_pseudo_labels.py', s.cam_config, ckpt, '--out',
            seed_dir, '--refine', 'none', '--save-scores', '--workers', '1',
            '--cfg-options'
        ] + sr.loader_options(['test_dataloader']) + cam_opts, 'CAM scores')
        sweep = sr.json_step(
            lambda tmp: [
                py, 'tools/analysis_tools/sweep_thresholds.py',
                '--scores-dir',
                osp.join(seed_dir, 'scores'), '--gt-dir', gt_dir, '--out',
                tmp, '--class-names', ','.join(class_names(self.data))
            ], osp.join(cam_work, 'threshold_sweep.json'), 'threshold sweep')
        best_thr = float(sweep['best_global']['thr'])
        try:
            seed_cfg = sweep_miou_at(sweep, config_bg_thr(s.cam_config))
        except KeyError:
            # a threshold off the sweep's grid: score it with tools/test.py
            seed_cfg = sr.test(s.cam_config, ckpt, cam_work,
                               'test CAM seeds (IoUMetric)', cam_opts)

        pseudo_dir = osp.join(cam_work, 'pseudo_labels', 'crf')
        sr.run([
            py, 'tools/make_pseudo_labels.py', s.cam_config, ckpt, '--out',
            pseudo_dir, '--refine', 'irn_label', '--crf-scale-factor',
            f'{s.data.crf_scale_factor():g}', '--bg-thr',
            str(best_thr), '--from-scores',
            osp.join(seed_dir, 'scores'), '--workers',
            str(s.workers), '--cfg-options'
        ] + sr.loader_options(['test_dataloader']) + cam_opts,
               'CRF pseudo-labels')
        crf = sr.json_step(
            lambda tmp: [
                py, 'tools/analysis_tools/eval_label_maps.py', pseudo_dir,
                gt_dir, '--split',
                osp.join(self.data, TRAIN_SPLIT), '--num-classes',
                str(len(class_names(self.data))), '--out', tmp
            ], osp.join(cam_work, 'crf_eval.json'), 'score pseudo-labels')

        init = []
        if s.seg_init == 'cam':
            init = [
                f'model.backbone.init_cfg.checkpoint={ckpt}',
                'model.backbone.init_cfg.prefix=backbone.'
            ]
        loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
        seg_work = osp.join(self.work, 'seg_pseudo')
        seg_ckpt = sr.train(
            s.seg_config, seg_work, 'train final model (pseudo-labels)',
            self.data_opts(s.seg_config) +
            self.schedule(s.seg_config, s.seg_iters) + init +
            ['train_dataloader.dataset.data_prefix.seg_map_path=' +
             pseudo_dir], loaders)
        final_miou = sr.test(s.seg_config, seg_ckpt, seg_work,
                             'test final model', self.data_opts(s.seg_config))
        upper = None
        if not s.skip_gt:
            gt_work = osp.join(self.work, 'seg_gt')
            gt_ckpt = sr.train(
                s.gt_config, gt_work, 'train upper bound (real masks)',
                self.data_opts(s.gt_config) +
                self.schedule(s.gt_config, s.seg_iters) + init, loaders)
            upper = sr.test(s.gt_config, gt_ckpt, gt_work, 'test upper bound',
                            self.data_opts(s.gt_config))

        grid = osp.join(self.work, 'demo_grid.png')
        write_demo_grid(grid, self.data, names[:s.grid_images],
                        osp.join(seed_dir, 'scores'), pseudo_dir, best_thr)
        meta = read_json(osp.join(self.data, 'meta.json'))
        result = dict(
            dataset=dict(
                root=self.data,
                seed=s.seed,
                generator_version=meta.get('generator_version'),
                num_train=len(names),
                num_val=s.data.num_val,
                img_size=s.data.img_size),
            seed_miou_config_thr=seed_cfg,
            seed_miou_best_global=float(sweep['best_global']['miou']),
            best_global_thr=best_thr,
            seed_miou_classwise=float(sweep['classwise']['miou']),
            crf_miou=float(crf['miou']),
            final_miou=final_miou,
            upper_bound_miou=upper,
            stage_seconds={k: round(v, 1)
                           for k, v in sr.times.items()},
            total_seconds=round(time.time() - t_start, 1),
            grid=grid)
        self.report(result)
        return result

    def report(self, r: dict) -> str:
        """Print and write ``demo_results.{md,json}``; return the table."""
        text = demo_table(r)
        print('\n' + text, flush=True)
        from mmwsss.utils.io import atomic_write_bytes
        atomic_write_bytes(
            osp.join(self.work, 'demo_results.md'), (text + '\n').encode())
        write_json(osp.join(self.work, 'demo_results.json'), r)
        return text


def config_bg_thr(config: str) -> float:
    """The background threshold ``model.test_cfg.bg_thr`` of a config."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    thr = cfg.model.get('test_cfg', {}).get('bg_thr')
    if thr is None:
        raise KeyError(f'{config}: model.test_cfg.bg_thr is not set')
    return float(thr)


def sweep_miou_at(sweep: dict, thr: float) -> float:
    """Seed mIoU (0-1) at global threshold ``thr`` of a threshold sweep.

    This is the figure ``tools/test.py`` prints for a CAM config with
    ``bg_thr=thr`` (same labelling rule on the same scores), so the demo
    does not run a second multi-scale inference over the train split.

    Raises:
        KeyError: When the sweep has no point within 1e-6 of ``thr``.
    """
    for point in sweep['global_sweep']:
        if abs(float(point['thr']) - thr) < 1e-6:
            return float(point['miou'])
    raise KeyError(f'threshold {thr} is not a point of the sweep '
                   f'({[p["thr"] for p in sweep["global_sweep"]]})')


def demo_table(r: dict) -> str:
    """The markdown table of one demo run (see :meth:`DemoPipeline.main`).
    """

    def pct(x):
        return '-' if x is None else f'{100 * x:.1f}'

    rows = [
        ('CAM seed (train, bg thr of config)',
         r['seed_miou_config_thr']),
        (f'CAM seed (train, best global thr {r["best_global_thr"]:.2f})',
         r['seed_miou_best_global']),
        ('CAM seed (train, class-wise thresholds)', r['seed_miou_classwise']),
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
    return '\n'.join(lines)


def write_demo_grid(path: str, data_root: str, names: List[str],
                    scores_dir: str, pseudo_dir: str, thr: float) -> None:
    """Rows: image | CAM overlay | seed | CRF pseudo-label | ground truth.

    Drawn by :class:`mmwsss.visualization.WSSSVisualizer` (column titles
    above, class legend below; tiles at the image size), written
    atomically.
    """
    from mmwsss.visualization import save_png

    from .plots import (cam_tile, label_tile, read_label, read_rgb,
                        visualizer)
    from .runner import seed_labels
    vis = visualizer(palette(data_root), class_names(data_root), 'run_demo')
    rows = []
    for name in names:
        img = read_rgb(osp.join(data_root, 'JPEGImages', name + '.jpg'))
        scores = osp.join(scores_dir, name + '.npz')
        rows.append([
            img,
            cam_tile(vis, img, scores),
            label_tile(vis, seed_labels(scores, thr)),
            label_tile(vis, read_label(osp.join(pseudo_dir, name + '.png'))),
            label_tile(
                vis,
                read_label(
                    osp.join(data_root, 'SegmentationClass', name + '.png'))),
        ])
    titles = [
        'image', 'CAM (max over labels)', f'seed (bg {thr:.2f})',
        'DenseCRF pseudo-label', 'ground truth'
    ]
    save_png(path, vis.make_grid(rows, titles, rows[0][0].shape[:2]))
