# Copyright (c) mmwsss contributors.
"""Calibrate the demo bed: run the demo chain per knob set and seed, tabulate.

Examples::

    # one knob set on the dev seeds (resumable: finished stages are kept)
    python tools/analysis_tools/demo_calibration.py run B --seeds 0 1 2 \\
        --difficulty '{"contrast_match_prob": 0.3}' \\
        --description 'v2 sizes, contrast match 0.3'
    # the table of every setting under the root, checked against targets
    python tools/analysis_tools/demo_calibration.py table

``run`` calls ``tools/run_demo.py`` once per seed with ``--work-dir
ROOT/SETTING/s<seed>`` and ``--data-root DATA/SETTING/s<seed>``; any
option after ``--`` goes to ``run_demo.py`` unchanged (e.g. ``--seg-iters
1500``). The logic (figures, targets) lives in
:mod:`mmwsss.experiments.calibration`.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional, Sequence

from mmwsss.experiments.calibration import TARGETS, table
from mmwsss.utils.io import atomic_write_bytes

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if '--' in argv:
        i = argv.index('--')
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default='work_dirs/calib')
    p.add_argument('--data', default='data/calib')
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run', help='run the demo chain for one knob set')
    r.add_argument('setting', help='name of the knob set (a folder name)')
    r.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    r.add_argument('--difficulty', default=None,
                   help='JSON object of generator knobs')
    r.add_argument('--generator-version', default=None)
    r.add_argument('--description', default='',
                   help='what the knob set changes (for the table)')
    t = sub.add_parser('table', help='print the calibration table')
    t.add_argument('--out', default=None, help='also write it here')
    args = p.parse_args(argv)
    args.extra = extra
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    root = osp.join(ROOT, args.root)
    if args.cmd == 'table':
        text = table(root)
        print(text)
        print('targets: ' + json.dumps(TARGETS))
        if args.out:
            atomic_write_bytes(args.out, text.encode())
        return 0
    if args.difficulty:
        try:
            json.loads(args.difficulty)
        except json.JSONDecodeError as e:
            print(f'error: --difficulty is not valid JSON: {e}',
                  file=sys.stderr)
            return 2
    setting_dir = osp.join(root, args.setting)
    os.makedirs(setting_dir, exist_ok=True)
    meta = dict(
        description=args.description,
        difficulty=args.difficulty,
        generator_version=args.generator_version,
        run_demo_options=args.extra)
    meta_path = osp.join(setting_dir, 'calibration.json')
    if osp.isfile(meta_path):
        with open(meta_path, encoding='utf-8') as f:
            old = json.load(f)
        # the scenes are set by the knobs; run_demo options such as
        # --workers do not change the figures and may differ between runs
        if any(old.get(k) != meta[k]
               for k in ('difficulty', 'generator_version')):
            print(f'error: {meta_path} holds other knobs; use another '
                  'setting name', file=sys.stderr)
            return 2
    atomic_write_bytes(meta_path, json.dumps(meta, indent=2).encode())
    for seed in args.seeds:
        cmd = [
            sys.executable, 'tools/run_demo.py', '--work-dir',
            osp.join(args.root, args.setting, f's{seed}'), '--data-root',
            osp.join(args.data, args.setting, f's{seed}'), '--seed',
            str(seed)
        ]
        if args.difficulty:
            cmd += ['--difficulty', args.difficulty]
        if args.generator_version:
            cmd += ['--generator-version', args.generator_version]
        print('[calibration] ' + ' '.join(cmd + args.extra), flush=True)
        ret = subprocess.run(cmd + args.extra, cwd=ROOT)
        if ret.returncode:
            return ret.returncode
    print(table(root))
    return 0


if __name__ == '__main__':
    sys.exit(main())
