# Copyright (c) mmwsss contributors.
"""Command-line options shared by the results tools.

``tools/analysis_tools/wsss_results.py`` (every table, ``make results``),
``tools/analysis_tools/igcam_ablation.py`` and
``tools/analysis_tools/camguide_ablation.py`` (one table each) are thin
parsers over :func:`add_arguments` and :func:`run`: the same rows, the same
work dir layout (rows finished by one tool are skipped by the others) and
the same report.
"""
import argparse
import os.path as osp
import shlex
import sys
from typing import Optional, Sequence

from .budget import repo_root
from .rows import RANDOM_WALK, load_rows, select_rows
from .runner import (REFINEMENTS, RESULTS_GT_CONFIG, RESULTS_NUM_TRAIN,
                     RESULTS_NUM_VAL, RESULTS_SEG_CONFIG, DataSpec,
                     ExperimentRunner, Layout, RunSettings, StageFailed,
                     candidates, read_json)
from .tables import DEV_SEEDS, HELD_OUT_SEEDS

ROOT = repo_root()


def add_arguments(p: argparse.ArgumentParser,
                  out_dir: Optional[str] = None) -> None:
    """Add the shared options to a parser.

    Args:
        p (ArgumentParser): The tool's parser.
        out_dir (str, optional): Default of ``--out-dir``; ``{version}`` is
            the generator version, ``{work_dir}`` the work dir.
    """
    p.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=list(HELD_OUT_SEEDS),
        help='dataset seeds (scenes; randomness.seed equals them). Default: '
        'the held-out seeds; the dev seeds 0 1 2 are for tuning')
    p.add_argument(
        '--rows',
        '--only',
        dest='rows',
        nargs='+',
        default=None,
        help='rows to run (name, slug or config stem); the baseline and the '
        'parents of refine rows are run too. Default: every row')
    p.add_argument(
        '--search',
        action='store_true',
        help='also the dev-seed search rows (hyper-parameter variants under '
        'configs/_search_/); only with dev seeds (0 1 2)')
    p.add_argument(
        '--work-dir',
        default='work_dirs/results/v{version}',
        help='run folders (one per generator version)')
    p.add_argument(
        '--data-root',
        default='data/demo_results/v{version}',
        help='demo scenes, one folder seedS per dataset seed')
    p.add_argument(
        '--out-dir',
        default=out_dir or '{work_dir}/report',
        help='tables, results.json and PNGs')
    p.add_argument(
        '--generator-version',
        default=None,
        help='demo scene generator version (default: newest)')
    p.add_argument('--num-train', type=int, default=RESULTS_NUM_TRAIN)
    p.add_argument('--num-val', type=int, default=RESULTS_NUM_VAL)
    p.add_argument(
        '--num-aux',
        type=int,
        default=200,
        help='images of the demo aux split (the IG-CAM influence pool; '
        'disjoint from train and val)')
    p.add_argument('--img-size', type=int, default=128)
    p.add_argument(
        '--difficulty', default=None, help='JSON object of generator knobs')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument(
        '--report-only',
        action='store_true',
        help='run nothing; read the results and write the tables and PNGs')
    p.add_argument(
        '--skip-rows',
        '--skip-drivers',
        dest='skip_rows',
        action='store_true',
        help='train no row: the final models select among the rows whose '
        'folders exist')
    p.add_argument('--skip-final', action='store_true',
                   help='no final model and no upper bound')
    p.add_argument('--skip-upper-bound', action='store_true')
    p.add_argument(
        '--skip-baseline-final',
        action='store_true',
        help='no final model on the baseline + dCRF labels when they are '
        'not the best ones (the demo bed\'s "final" figure)')
    p.add_argument('--skip-rw', action='store_true',
                   help=f'leave out the {RANDOM_WALK} rows (AffinityNet)')
    p.add_argument(
        '--select-from',
        nargs='+',
        choices=REFINEMENTS,
        default=list(REFINEMENTS),
        help='refinements eligible as pseudo-labels of the final model')
    p.add_argument('--seg-config', default=RESULTS_SEG_CONFIG)
    p.add_argument('--gt-config', default=RESULTS_GT_CONFIG)
    p.add_argument(
        '--seg-init',
        choices=['cam', 'imagenet'],
        default='cam',
        help='final models\' backbone init: the seed\'s CAM baseline '
        'backbone (as tools/run_demo.py) or the config\'s ImageNet weights')
    p.add_argument('--seg-iters', type=int, default=None,
                   help='override the final models\' schedule (smoke)')
    p.add_argument('--iters-scale', type=float, default=1.0,
                   help='multiply every row schedule length (smoke)')
    p.add_argument('--limit', type=int, default=None,
                   help='score only the first N train images (smoke; no '
                   'final model)')
    p.add_argument('--force', action='store_true',
                   help='redo every stage')
    p.add_argument('--no-params', action='store_true',
                   help='do not count the rows\' model parameters')
    p.add_argument(
        '--previous',
        default=None,
        help='an earlier results.json whose numbers fill the seeds whose '
        'run folders are gone (default: OUT_DIR/results.json if present)')
    p.add_argument('--no-previous', action='store_true',
                   help='report only what the run folders hold')
    p.add_argument('--grid-images', type=int, default=6)
    p.add_argument('--grid-seed', type=int, default=None,
                   help='seed drawn in the grid (default: the first with '
                   'pictures of the most methods)')
    p.add_argument('--grid-tile', type=int, default=128)
    p.add_argument('--update-readmes', action='store_true',
                   help='paste the tables between wsss_results markers')
    p.add_argument(
        '--readmes',
        nargs='+',
        default=[
            'README.md', 'configs/igcam/README.md',
            'configs/camguide/README.md'
        ])


def check_arguments(p: argparse.ArgumentParser,
                    args: argparse.Namespace) -> argparse.Namespace:
    """Validate and resolve the shared options (paths, version)."""
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        p.error(f'--seeds must be distinct non-negative ints, got '
                f'{args.seeds}')
    if getattr(args, 'search', False) and not set(args.seeds) <= set(
            DEV_SEEDS):
        p.error(f'--search tunes hyper-parameters: dev seeds only '
                f'({" ".join(map(str, DEV_SEEDS))}), got {args.seeds}')
    if args.grid_images < 1 or args.grid_tile < 16:
        p.error('--grid-images must be >= 1 and --grid-tile >= 16')
    args.data = DataSpec(
        version=args.generator_version,
        num_train=args.num_train,
        num_val=args.num_val,
        num_aux=args.num_aux,
        img_size=args.img_size,
        difficulty=args.difficulty)
    smoke = args.limit or args.iters_scale != 1.0
    if smoke and not args.report_only and \
            args.out_dir == p.get_default('out_dir') and \
            args.out_dir.startswith('docs/'):
        p.error('--limit / --iters-scale are smoke options: pass --out-dir '
                'so that the smoke numbers do not replace the documented '
                'results')
    version = args.data.resolved_version()
    for key in ('work_dir', 'data_root', 'out_dir'):
        val = getattr(args, key).format(
            version=version, work_dir=getattr(args, 'work_dir'))
        setattr(args, key, val if osp.isabs(val) else osp.join(ROOT, val))
    return args


def run(args: argparse.Namespace,
        tables: Optional[Sequence[str]] = None,
        command: Optional[str] = None,
        root: Optional[str] = None,
        stage_runner=None) -> dict:
    """Run the missing stages (unless ``--report-only``) and report.

    Args:
        args (Namespace): From a parser with :func:`add_arguments`, checked
            by :func:`check_arguments`.
        tables (Sequence[str], optional): Tables to run and report
            (default: all).
        command (str, optional): The command shown in the report.
        root (str, optional): Repository whose ``configs`` hold the rows
            (default: this one).
        stage_runner (StageRunner, optional): Runs the commands.

    Returns:
        dict: The summary written to ``results.json``.
    """
    from .report import ReportSettings, write_report
    root = root or ROOT
    rows = load_rows(root, search=getattr(args, 'search', False))
    selected = select_rows(rows, args.rows, tables)
    if args.skip_rw:
        selected = [r for r in selected if r.refine != RANDOM_WALK]
    settings = RunSettings(
        work_dir=args.work_dir,
        data_root=args.data_root,
        data=args.data,
        workers=args.workers,
        iters_scale=args.iters_scale,
        limit=args.limit,
        force=args.force,
        select_from=args.select_from,
        seg_config=args.seg_config,
        gt_config=args.gt_config,
        seg_init=args.seg_init,
        seg_iters=args.seg_iters,
        final=not (args.skip_final or args.limit),
        upper_bound=not args.skip_upper_bound,
        baseline_final=not args.skip_baseline_final,
        params=not args.no_params)
    runner = ExperimentRunner(
        rows, selected, settings, stage_runner, root=root)
    if not args.report_only:
        try:
            if args.skip_rows:
                for seed in args.seeds:
                    runner.prepare_data(seed)
                    if settings.final:
                        runner.final_models(seed,
                                            existing_runs(runner, seed))
            else:
                runner.run(args.seeds)
        except StageFailed as e:
            raise SystemExit(f'[run] {e}') from e
    report = ReportSettings(
        out_dir=args.out_dir,
        seeds=args.seeds,
        data=args.data,
        command=command or 'python ' + ' '.join(
            shlex.quote(a) for a in [osp.relpath(sys.argv[0], ROOT)] +
            sys.argv[1:]),
        select_from=args.select_from,
        previous=args.previous,
        use_previous=not args.no_previous,
        grid_images=args.grid_images,
        grid_seed=args.grid_seed,
        grid_tile=args.grid_tile,
        readmes=[
            r if osp.isabs(r) else osp.join(ROOT, r) for r in args.readmes
        ] if args.update_readmes else (),
        tables=list(tables) if tables else ('igcam', 'camguide'))
    # every row of the tables is reported (carried numbers included), not
    # only the rows run now: a partial run never drops rows from the report
    shown = select_rows(rows, None, tables)
    return write_report(shown, report, runner.layout)


def existing_runs(runner: ExperimentRunner, seed: int) -> dict:
    """``{(table, name): run}`` of the rows whose ``run.json`` exists."""
    out = {}
    for spec in runner.selected:
        path = runner.layout.run_json(seed, spec)
        if osp.isfile(path):
            out[spec.ident] = read_json(path)
    runner.log(f'[{seed}] --skip-rows: {len(out)} finished row(s), '
               f'{len(candidates(out, runner.s.select_from))} pseudo-label '
               'candidate(s)')
    return out


__all__ = ['add_arguments', 'check_arguments', 'run', 'Layout']
