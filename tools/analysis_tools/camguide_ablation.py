# Copyright (c) mmwsss contributors.
"""CamGuide ablation (Tables V/VI shape) on the demo scenes, from scratch.

Runs the user commands one after the other (each is printed) and skips
every stage whose output exists, so an interrupted run continues:

1. teacher: ``tools/train.py`` the EfficientNet-Lite2 CAM classifier
   (once; the teacher is shared by every student seed);
2. per student seed: the Lite0 CAM baseline (classification only), CamGuide
   stages 1 and 2 (``Our*``), and the three stage-3 variants (``Our**``
   without morphology or local consistency, ``Our-dagger`` with morphology,
   ``Our`` with morphology and local consistency);
3. every row is scored on the train split from saved multi-scale + flip
   scores with ``tools/analysis_tools/sweep_thresholds.py`` at the best
   global and at class-wise background thresholds, and evaluated with
   ``tools/test.py`` on the held-out val split (config's test setting at
   the train-swept background threshold);
4. on the full model: confident labels (``tools/make_affinity_labels.py``),
   AffinityNet training, random-walk scores (``+RW``) and DenseCRF on them
   (``+RW+dCRF``, best global threshold).

``--only`` restricts the run to some rows (``baseline``, ``our-star``,
``our-dagger``, ...); their prerequisites (teacher, stages 1 and 2) are
trained but not scored, e.g. to finish one seed's missing rows on a fresh
machine. Writes ``camguide_ablation.{json,md}`` to the work dir with
mean +- std over the seeds. Example (about an hour per seed on 2 CPU cores)::

    python tools/analysis_tools/camguide_ablation.py --seeds 0 1 2
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = 'configs/camguide/'
TEACHER_CFG = 'configs/cam/cam_effl2-d16_1xb32-500it_demo-128x128.py'
BASELINE_CFG = 'configs/cam/cam_effl0-d16_1xb32-500it_demo-128x128.py'
STAGE1_CFG = CFG + 'camguide-stage1_effl0_teacher-effl2_1xb32-300it_demo-128x128.py'
STAGE2_CFG = CFG + 'camguide-stage2_effl0_teacher-effl2_1xb32-200it_demo-128x128.py'
STAGE3_CFGS = {
    'Our** (no morphology)':
    CFG + 'camguide-stage3-nomorph-noloc_effl0_1xb32-300it_demo-128x128.py',
    'Our+ (morphology)':
    CFG + 'camguide-stage3-noloc_effl0_1xb32-300it_demo-128x128.py',
    'Our (morphology + local consistency)':
    CFG + 'camguide-stage3_effl0_1xb32-300it_demo-128x128.py',
}
#: ``--only`` keys, in table order, and the rows they stand for
ROW_KEYS = ('teacher', 'baseline', 'our-star', 'our-2star', 'our-dagger',
            'our', 'rw')
STAGE3_KEYS = ('our-2star', 'our-dagger', 'our')
#: rows that need stages 1 and 2 (and so the teacher)
STUDENT_KEYS = ('our-star', *STAGE3_KEYS)
AFF_CFG = CFG + 'affinitynet_effl0_1xb16-300it_demo-128x128.py'
VAL_SPLIT = 'ImageSets/Segmentation/val.txt'


def mean_std(vals: Sequence[Optional[float]]) -> str:
    """``'m ± s'`` in percent over the runs (sample std), ``'-'`` if none."""
    vals = [100 * v for v in vals if v is not None]
    if not vals:
        return '-'
    if len(vals) == 1:
        return f'{vals[0]:.1f}'
    return f'{np.mean(vals):.1f} ± {np.std(vals, ddof=1):.1f}'


def model_params_m(cfg_path: str, student_only: bool = True) -> float:
    """Parameters (M) of a config's model, built without any weights.

    Args:
        cfg_path (str): Config path relative to the repository root.
        student_only (bool): For CamGuide, count the student only (the
            teacher is not part of the trained model).
    """
    from mmengine.config import Config

    from mmwsss.registry import MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(ROOT, cfg_path))
    cfg.model.pop('teacher_checkpoint', None)
    cfg.model.backbone['init_cfg'] = None
    model = MODELS.build(cfg.model)
    if student_only and hasattr(model, 'num_student_params'):
        return model.num_student_params() / 1e6
    return sum(p.numel() for p in model.parameters()) / 1e6


def write_table(work: str, stem: str, lines: List[str],
                summary: dict) -> None:
    """Print the table and write ``<stem>.md`` and ``<stem>.json``."""
    text = '\n'.join(lines)
    print('\n' + text, flush=True)
    with open(osp.join(work, stem + '.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(work, stem + '.json'), 'w') as f:
        json.dump(summary, f, indent=2)


def _load_demo_module():
    spec = importlib.util.spec_from_file_location(
        'mmwsss_run_demo', osp.join(ROOT, 'tools', 'run_demo.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/camguide_demo')
    p.add_argument('--data-root', default='data/demo')
    p.add_argument('--seeds', type=int, nargs='+', default=[0],
                   help='student training seeds (randomness.seed)')
    p.add_argument('--data-seed', type=int, default=0,
                   help='demo dataset generator seed')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--skip-rw', action='store_true',
                   help='do not train AffinityNet / random walk')
    p.add_argument('--iters-scale', type=float, default=1.0,
                   help='multiply every schedule length (smoke tests)')
    p.add_argument('--limit', type=int, default=None,
                   help='score only the first N train images (smoke)')
    p.add_argument('--force', action='store_true')
    p.add_argument(
        '--only',
        nargs='+',
        choices=ROW_KEYS,
        default=None,
        help='run and score only these rows (their prerequisites are '
        'trained, not scored); default: every row')
    args = p.parse_args(argv)
    only = set(args.only or ROW_KEYS)
    if 'rw' in only:
        only.add('our')  # the walk starts from the full model's scores
    if args.skip_rw:
        only.discard('rw')
    args.only = only
    return args


class Ablation:
    """Runs the rows; thin layer over ``tools/run_demo.py``'s runner."""

    def __init__(self, args: argparse.Namespace) -> None:
        demo_mod = _load_demo_module()
        demo_args = argparse.Namespace(
            work_dir=args.work_dir,
            data_root=args.data_root,
            seed=args.data_seed,
            num_train=1000,
            num_val=200,
            img_size=128,
            workers=args.workers,
            force=args.force,
            batch_size=None)
        self.demo = demo_mod.Demo(demo_args)
        self.args = args
        self.work = self.demo.work
        self.data = self.demo.data
        self.py = sys.executable

    # ------------------------------------------------------------------
    def iters(self, n: int) -> int:
        return max(2, int(round(n * self.args.iters_scale)))

    def sched(self, n: int, warmup: bool) -> List[str]:
        n = self.iters(n)
        opts = [
            f'train_cfg.max_iters={n}',
            f'default_hooks.checkpoint.interval={n}',
            f'default_hooks.logger.interval={max(1, min(25, n))}'
        ]
        if warmup:
            opts += [
                f'param_scheduler.0.end={min(20, n - 1)}',
                f'param_scheduler.1.begin={min(20, n - 1)}',
                f'param_scheduler.1.end={n}'
            ]
        else:
            opts.append(f'param_scheduler.0.end={n}')
        return opts

    def train(self, cfg: str, work: str, name: str,
              extra: List[str]) -> str:
        return self.demo.train(cfg, work, name, extra,
                               ('train_dataloader', 'test_dataloader'))

    def scores(self, cfg: str, ckpt: str, work: str, name: str,
               extra: Sequence[str] = ()) -> str:
        """Saved multi-scale scores of the train split."""
        out = osp.join(work, 'seeds')
        cmd = [
            self.py, 'tools/make_pseudo_labels.py', cfg, ckpt, '--out', out,
            '--refine', 'none', '--save-scores', '--workers', '1'
        ]
        if self.args.limit:
            cmd += ['--limit', str(self.args.limit)]
        cmd += ['--cfg-options'] + self.demo.data_options(
            ['test_dataloader']) + list(extra)
        self.demo.run(cmd, name + ': scores')
        return osp.join(out, 'scores')

    def sweep(self, scores: str, work: str, name: str) -> dict:
        out = osp.join(work, 'threshold_sweep.json')
        if not self.demo.done(out):
            self.demo.run([
                self.py, 'tools/analysis_tools/sweep_thresholds.py',
                '--scores-dir', scores, '--gt-dir',
                osp.join(self.data, 'SegmentationClass'), '--out', out,
                '--class-names', ','.join(self.demo.class_names())
            ], name + ': threshold sweep')
        with open(out) as f:
            sw = json.load(f)
        return dict(
            thr=float(sw['best_global']['thr']),
            miou_global=float(sw['best_global']['miou']),
            miou_classwise=float(sw['classwise']['miou']))

    def crf(self, cfg: str, ckpt: str, scores: str, thr: float, work: str,
            name: str) -> float:
        out = osp.join(work, 'pseudo_labels_crf')
        cmd = [
            self.py, 'tools/make_pseudo_labels.py', cfg, ckpt, '--out', out,
            '--refine', 'irn_label', '--bg-thr',
            str(thr), '--from-scores', scores, '--workers',
            str(self.args.workers)
        ]
        if self.args.limit:
            cmd += ['--limit', str(self.args.limit)]
        self.demo.run(cmd + ['--cfg-options'] +
                      self.demo.data_options(['test_dataloader']),
                      name + ': DenseCRF')
        res = osp.join(work, 'crf_eval.json')
        self.demo.run([
            self.py, 'tools/analysis_tools/eval_label_maps.py', out,
            osp.join(self.data, 'SegmentationClass'), '--num-classes',
            str(len(self.demo.class_names())), '--out', res
        ], name + ': score DenseCRF labels')
        with open(res) as f:
            return float(json.load(f)['miou'])

    def val_test(self, cfg: str, ckpt: str, work: str, name: str,
                 thr: float) -> float:
        """``tools/test.py`` of the model on the held-out val split.

        The seed columns score saved multi-scale + flip scores of the train
        split (the WSSS protocol); this is the user command on images no
        row was trained or thresholded on: the config's test-time setting
        (``model.test_cfg``: scales, flip, refinement) with the background
        threshold ``thr`` picked by the train-split sweep (the demo configs'
        own ``bg_thr`` is a fixed guess). Writes ``test_metrics.json`` to
        ``work``.
        """
        opts = [
            f'test_dataloader.dataset.ann_file={VAL_SPLIT}',
            f'model.test_cfg.bg_thr={thr}'
        ]
        if self.args.limit:
            opts.append('test_dataloader.dataset.indices='
                        f'{self.args.limit}')
        return self.demo.test(cfg, ckpt, work,
                              name + ': tools/test.py (val split)', opts)

    def row(self, cfg: str, ckpt: str, work: str, name: str,
            extra: Sequence[str] = (), val: bool = True) -> dict:
        scores = self.scores(cfg, ckpt, work, name, extra)
        res = self.sweep(scores, work, name)
        res['scores'] = scores
        if val:
            res['val_miou'] = self.val_test(cfg, ckpt, work, name,
                                            res['thr'])
        return res

    # ------------------------------------------------------------------
    def run_seed(self, teacher_ckpt: Optional[str],
                 seed: int) -> Dict[str, dict]:
        only = self.args.only
        work = osp.join(self.work, f'seed{seed}')
        seed_opt = [f'randomness.seed={seed}']
        rows: Dict[str, dict] = {}
        if 'baseline' in only:
            base_w = osp.join(work, 'baseline')
            ckpt = self.train(BASELINE_CFG, base_w,
                              f'[{seed}] student baseline',
                              seed_opt + self.sched(500, True))
            rows['Lite0 classification only'] = self.row(
                BASELINE_CFG, ckpt, base_w, 'baseline')
        if not only.intersection(STUDENT_KEYS):
            return rows
        s1_w = osp.join(work, 'stage1')
        s1 = self.train(
            STAGE1_CFG, s1_w, f'[{seed}] stage 1',
            seed_opt + self.sched(300, True) +
            [f'model.teacher_checkpoint={teacher_ckpt}'])
        s2_w = osp.join(work, 'stage2')
        s2 = self.train(STAGE2_CFG, s2_w, f'[{seed}] stage 2',
                        seed_opt + self.sched(200, False) +
                        [f'load_from={s1}'])
        if 'our-star' in only:
            rows['Our* (stages 1+2)'] = self.row(STAGE2_CFG, s2, s2_w,
                                                 'stage 2')
        full = None
        for i, (key, (name, cfg)) in enumerate(
                zip(STAGE3_KEYS, STAGE3_CFGS.items())):
            if key not in only:
                continue
            w = osp.join(work, f'stage3_{i}')
            ck = self.train(cfg, w, f'[{seed}] stage 3 {name}',
                            seed_opt + self.sched(300, False) +
                            [f'load_from={s2}'])
            rows[name] = self.row(cfg, ck, w, name)
            rows[name]['crf'] = self.crf(cfg, ck, rows[name]['scores'],
                                         rows[name]['thr'], w, name)
            full = (cfg, ck, w, rows[name])
        if 'rw' in only:
            rows.update(self.random_walk(full, work, seed_opt))
        return rows

    def random_walk(self, full, work: str,
                    seed_opt: List[str]) -> Dict[str, dict]:
        cfg, ck, w, res = full
        thr = res['thr']
        # ReCAM author's rule: seed threshold +- 0.1 (IRN's 0.30 / 0.05 are
        # for VOC CAMs with a seed threshold of 0.15)
        fg_thr, bg_thr = min(0.95, thr + 0.1), max(0.0, thr - 0.1)
        labels = osp.join(work, 'aff_labels')
        cmd = [
            self.py, 'tools/make_affinity_labels.py', res['scores'], labels,
            '--img-dir',
            osp.join(self.data, 'JPEGImages'), '--fg-thr',
            str(fg_thr), '--bg-thr',
            str(bg_thr), '--workers',
            str(self.args.workers)
        ]
        self.demo.run(cmd, 'confident labels')
        aff_w = osp.join(work, 'affinity')
        opts = seed_opt + [
            'train_dataloader.dataset.data_prefix.seg_map_path=' + labels,
            'model.test_cfg.cam_dir=' + res['scores']
        ]
        # the AffinityNet train set spells its paths out (no data_root)
        aff = self.demo.train(AFF_CFG, aff_w, 'AffinityNet',
                              opts + self.sched(300, True),
                              ('test_dataloader', ))
        # no val row: the walk needs saved CAM scores, kept for train only
        rw = self.row(AFF_CFG, aff, aff_w, '+RW',
                      ['model.test_cfg.cam_dir=' + res['scores']], val=False)
        rw['crf'] = self.crf(AFF_CFG, aff, rw['scores'], rw['thr'], aff_w,
                             '+RW')
        return {'Our + RW (AffinityNet)': rw}

    def main(self) -> dict:
        self.demo.make_data()
        only = self.args.only
        results: Dict[str, List[dict]] = {}
        teacher = None
        if 'teacher' in only or only.intersection(STUDENT_KEYS):
            t_work = osp.join(self.work, 'teacher')
            teacher = self.train(TEACHER_CFG, t_work, 'teacher',
                                 self.sched(500, True))
        if 'teacher' in only:
            results['Lite2 teacher, classification only'] = [
                self.row(TEACHER_CFG, teacher, t_work, 'teacher')
            ]
        for seed in self.args.seeds:
            for name, r in self.run_seed(teacher, seed).items():
                results.setdefault(name, []).append(dict(r, seed=seed))
        out = self.report(results)
        return out

    def report(self, results: Dict[str, List[dict]]) -> dict:
        n_params = {
            'Lite2 teacher, classification only': model_params_m(TEACHER_CFG),
            'Lite0 classification only': model_params_m(BASELINE_CFG),
            'Our* (stages 1+2)': model_params_m(STAGE2_CFG),
        }
        for name, cfg in STAGE3_CFGS.items():
            n_params[name] = model_params_m(cfg)
        n_params['Our + RW (AffinityNet)'] = n_params[list(STAGE3_CFGS)[-1]]

        ms = mean_std
        lines = [
            '| method | params (M) | seeds | global thr | class-wise thr |'
            ' + dCRF (global thr) | val, tools/test.py |',
            '|---|---|---|---|---|---|---|'
        ]
        summary = {}
        for name, rs in results.items():
            g = [r['miou_global'] for r in rs]
            c = [r['miou_classwise'] for r in rs]
            crf = [r.get('crf') for r in rs]
            val = [r.get('val_miou') for r in rs]
            lines.append(f'| {name} | {n_params.get(name, 0):.2f} | '
                         f'{len(rs)} | {ms(g)} | {ms(c)} | {ms(crf)} | '
                         f'{ms(val)} |')
            summary[name] = dict(
                params_m=n_params.get(name),
                runs=[{k: v
                       for k, v in r.items() if k != 'scores'} for r in rs])
        write_table(self.work, 'camguide_ablation', lines, summary)
        return summary


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the ablation; return the summary."""
    os.chdir(ROOT)
    return Ablation(parse_args(argv)).main()


if __name__ == '__main__':
    main()
