# Copyright (c) mmwsss contributors.
"""``--only`` of the CamGuide ablation driver: which stages run."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    'camguide_ablation',
    REPO / 'tools' / 'analysis_tools' / 'camguide_ablation.py')
drv = importlib.util.module_from_spec(_spec)
sys.modules['camguide_ablation'] = drv
_spec.loader.exec_module(drv)


class _Recorder(drv.Ablation):
    """The driver's own ``run_seed``/``main`` with training stubbed."""

    def __init__(self, args):
        self.args = args
        self.work = '/w'
        self.trained = []
        self.scored = []

    def train(self, cfg, work, name, extra):
        self.trained.append(Path(work).name)
        return work + '/ckpt.pth'

    def row(self, cfg, ckpt, work, name, extra=(), val=True):
        self.scored.append(Path(work).name)
        return dict(thr=0.5, miou_global=0.1, miou_classwise=0.1,
                    scores=work + '/scores')

    def crf(self, cfg, ckpt, scores, thr, work, name):
        return 0.2

    def random_walk(self, full, work, seed_opt):
        self.scored.append('affinity:' + Path(full[2]).name)
        return {'Our + RW (AffinityNet)': {}}

    def report(self, results):
        return results


def _run(*argv):
    rec = _Recorder(drv.parse_args(['--seeds', '2', *argv]))
    rec.demo = type('D', (), {'make_data': lambda self: None})()
    return rec, rec.main()


def test_default_runs_every_row():
    rec, res = _run()
    assert rec.trained == [
        'teacher', 'baseline', 'stage1', 'stage2', 'stage3_0', 'stage3_1',
        'stage3_2'
    ]
    assert rec.scored == [
        'teacher', 'baseline', 'stage2', 'stage3_0', 'stage3_1', 'stage3_2',
        'affinity:stage3_2'
    ]
    assert list(res) == [
        'Lite2 teacher, classification only', 'Lite0 classification only',
        'Our* (stages 1+2)', *drv.STAGE3_CFGS, 'Our + RW (AffinityNet)'
    ]


@pytest.mark.parametrize('only, trained, scored', [
    (['baseline'], ['baseline'], ['baseline']),
    (['our-dagger'], ['teacher', 'stage1', 'stage2', 'stage3_1'],
     ['stage3_1']),
    # the walk needs the full model's scores: stage3_2 is scored too
    (['baseline', 'rw'],
     ['teacher', 'baseline', 'stage1', 'stage2', 'stage3_2'],
     ['baseline', 'stage3_2', 'affinity:stage3_2']),
])
def test_only_trains_prerequisites_and_scores_the_rows(only, trained, scored):
    rec, res = _run('--only', *only)
    assert rec.trained == trained
    assert rec.scored == scored


def test_skip_rw_wins_over_only():
    rec, _ = _run('--only', 'rw', '--skip-rw')
    assert 'affinity:stage3_2' not in rec.scored
    assert rec.scored == ['stage3_2']
