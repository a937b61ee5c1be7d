# Copyright (c) mmwsss contributors.
"""IG-CAM ablation (Table 3 shape) on the demo scenes, from scratch.

Runs the user commands one after the other (each is printed), skipping every
stage whose output exists, so an interrupted run continues:

1. Selective Search proposals of the demo train and val splits
   (``tools/generate_proposals.py``; the val split feeds the influence
   pool, seeds are scored on train);
2. per seed (``randomness.seed``), every row config of
   ``configs/igcam/igcam-ablation-*`` is trained with ``tools/train.py``
   (the +CRF row shares the +Influence model);
3. each model's multi-scale seeds are saved with
   ``tools/make_pseudo_labels.py --save-scores`` (influence maps included)
   and scored at the best global and at class-wise background thresholds
   (``tools/analysis_tools/sweep_thresholds.py``); DenseCRF (IRN label
   unary) at the best global threshold gives the "+ dCRF" column, and the
   +CRF row uses the config's InfluenceCRF;
4. each model is evaluated with ``tools/test.py`` on the held-out val
   split (the config's test setting at the train-swept background
   threshold; the +CRF row with its InfluenceCRF as the test-time
   refinement).

Writes ``igcam_ablation.{json,md}`` (mean +- std over seeds, parameters
of each row's model) to the work dir. Example (30-50 minutes per seed on
2 CPU cores, depending on what else runs)::

    python tools/analysis_tools/igcam_ablation.py --seeds 0 1 2
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRE = 'configs/igcam/igcam-ablation-'
SUF = '_effl0-fpn_1xb16-300it_demo-128x128.py'
ROWS = {
    'Base': PRE + 'base' + SUF,
    '+Inst': PRE + 'inst' + SUF,
    '+MS': PRE + 'ms' + SUF,
    '+Inst +MS': PRE + 'inst-ms' + SUF,
    '+Influence': PRE + 'influence' + SUF,
}
CRF_ROW = ('+CRF (InfluenceCRF)', PRE + 'crf' + SUF)
PROPOSALS = 'data/demo/proposals/ss-fast'


def _load(name: str, rel: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/igcam_demo')
    p.add_argument('--data-root', default='data/demo')
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--data-seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--rows', nargs='+', default=None,
                   help='subset of rows (names as in the table)')
    p.add_argument('--iters-scale', type=float, default=1.0,
                   help='multiply the schedule length (smoke tests)')
    p.add_argument('--limit', type=int, default=None,
                   help='score only the first N train images (smoke)')
    p.add_argument('--force', action='store_true')
    return p.parse_args(argv)


class IGCAMAblation:
    """Rows of the IG-CAM ablation on top of the CamGuide runner."""

    def __init__(self, args: argparse.Namespace) -> None:
        cg = _load('mmwsss_camguide_ablation',
                   'tools/analysis_tools/camguide_ablation.py')
        cg_args = argparse.Namespace(
            work_dir=args.work_dir,
            data_root=args.data_root,
            seeds=args.seeds,
            data_seed=args.data_seed,
            workers=args.workers,
            skip_rw=True,
            iters_scale=args.iters_scale,
            limit=args.limit,
            force=args.force)
        self.cg = cg.Ablation(cg_args)
        self.cg_mod = cg
        self.demo = self.cg.demo
        self.args = args
        self.work = self.cg.work

    def proposals(self) -> None:
        # the whole image folder: train (training, seeds) and val (the
        # influence pool) in one resumable run
        self.demo.run([
            sys.executable, 'tools/generate_proposals.py',
            osp.join(self.demo.data, 'JPEGImages'), '--out', PROPOSALS,
            '--workers',
            str(self.args.workers)
        ], 'proposals')

    def sched(self) -> List[str]:
        n = max(3, int(round(300 * self.args.iters_scale)))
        opts = [
            f'train_cfg.max_iters={n}',
            f'default_hooks.checkpoint.interval={n}',
            f'default_hooks.logger.interval={max(1, min(25, n))}'
        ]
        return opts

    def run_seed(self, seed: int) -> Dict[str, dict]:
        work = osp.join(self.work, f'seed{seed}')
        rows = {}
        wanted = self.args.rows or list(ROWS) + [CRF_ROW[0]]
        infl_ckpt = None
        for i, (name, cfg) in enumerate(ROWS.items()):
            if name not in wanted and not (name == '+Influence'
                                           and CRF_ROW[0] in wanted):
                continue
            w = osp.join(work, f'row{i}')
            ckpt = self.demo.train(cfg, w, f'[{seed}] {name}',
                                   [f'randomness.seed={seed}'] +
                                   self.sched(),
                                   ('train_dataloader', 'test_dataloader'))
            res = self.cg.row(cfg, ckpt, w, name)
            res['crf'] = self.cg.crf(cfg, ckpt, res['scores'], res['thr'], w,
                                     name)
            if name in wanted:
                rows[name] = res
            if name == '+Influence':
                infl_ckpt = (ckpt, w, res)
        if CRF_ROW[0] in wanted and infl_ckpt is not None:
            ckpt, w, res = infl_ckpt
            rows[CRF_ROW[0]] = dict(
                thr=res['thr'],
                miou_global=res['miou_global'],
                miou_classwise=res['miou_classwise'],
                crf=self.influence_crf(ckpt, res,
                                       osp.join(w, 'influence_crf')),
                val_miou=self.cg.val_test(CRF_ROW[1], ckpt,
                                          osp.join(w, 'influence_crf'),
                                          CRF_ROW[0], res['thr']))
        return rows

    def influence_crf(self, ckpt: str, res: dict, work: str) -> float:
        out = osp.join(work, 'labels')
        cmd = [
            sys.executable, 'tools/make_pseudo_labels.py', CRF_ROW[1], ckpt,
            '--out', out, '--refine', 'config', '--bg-thr',
            str(res['thr']), '--from-scores', res['scores'], '--workers',
            str(self.args.workers)
        ]
        if self.args.limit:
            cmd += ['--limit', str(self.args.limit)]
        self.demo.run(cmd + ['--cfg-options'] +
                      self.demo.data_options(['test_dataloader']),
                      '+CRF: InfluenceCRF')
        result = osp.join(work, 'crf_eval.json')
        self.demo.run([
            sys.executable, 'tools/analysis_tools/eval_label_maps.py', out,
            osp.join(self.demo.data, 'SegmentationClass'), '--num-classes',
            str(len(self.demo.class_names())), '--out', result
        ], '+CRF: score')
        with open(result) as f:
            return float(json.load(f)['miou'])

    def main(self) -> dict:
        self.demo.make_data()
        self.proposals()
        results: Dict[str, List[dict]] = {}
        for seed in self.args.seeds:
            for name, r in self.run_seed(seed).items():
                results.setdefault(name, []).append(dict(r, seed=seed))
        return self.report(results)

    def report(self, results: Dict[str, List[dict]]) -> dict:
        ms = self.cg_mod.mean_std
        lines = [
            '| row | params (M) | seeds | seed, global thr |'
            ' seed, class-wise thr | + CRF (global thr) |'
            ' val, tools/test.py |', '|---|---|---|---|---|---|---|'
        ]
        summary = {}
        cfgs = dict(ROWS, **{CRF_ROW[0]: CRF_ROW[1]})
        for name, rs in results.items():
            params = self.cg_mod.model_params_m(cfgs[name])
            lines.append(
                f'| {name} | {params:.2f} | {len(rs)} | '
                f'{ms([r["miou_global"] for r in rs])} | '
                f'{ms([r["miou_classwise"] for r in rs])} | '
                f'{ms([r.get("crf") for r in rs])} | '
                f'{ms([r.get("val_miou") for r in rs])} |')
            summary[name] = dict(
                params_m=params,
                runs=[{k: v
                       for k, v in r.items() if k != 'scores'} for r in rs])
        self.cg_mod.write_table(self.work, 'igcam_ablation', lines, summary)
        return summary


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the ablation; return the summary."""
    os.chdir(ROOT)
    return IGCAMAblation(parse_args(argv)).main()


if __name__ == '__main__':
    main()
