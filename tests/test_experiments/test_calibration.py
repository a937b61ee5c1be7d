# Copyright (c) mmwsss contributors.
"""Calibration table of the demo bed: figures and target checks."""
import json
import os

from mmwsss.experiments.calibration import read_runs, summarise, table


def _run(root, setting, seed, seeds, crf, final, upper, minutes=20.0):
    d = os.path.join(root, setting, f's{seed}')
    os.makedirs(d)
    with open(os.path.join(d, 'demo_results.json'), 'w') as f:
        json.dump(
            dict(
                seed_miou_best_global=seeds,
                crf_miou=crf,
                final_miou=final,
                upper_bound_miou=upper,
                best_global_thr=0.5,
                total_seconds=60 * minutes), f)


def test_targets(tmp_path):
    root = str(tmp_path)
    # good: seeds 45, CRF +5, final = CRF - 1, upper 75 (60%), 20 min
    for s, d in zip((0, 1, 2), (0.0, 0.005, -0.005)):
        _run(root, 'good', s, 0.45 + d, 0.50 + d, 0.49 + d, 0.75 + d)
    # bad: the CRF solves the demo (+15), upper bound too low
    for s in (0, 1):
        _run(root, 'bad', s, 0.40, 0.55, 0.50, 0.60, minutes=40)
    runs = read_runs(root)
    assert sorted(runs['good']) == [0, 1, 2]
    assert abs(runs['good'][1]['seeds'] - 45.5) < 1e-9
    good = summarise(runs['good'])
    assert all(good['checks'].values()), good['checks']
    assert abs(good['crf_gain'] - 5.0) < 1e-9
    bad = summarise(runs['bad'])['checks']
    assert bad['upper'] is False and bad['crf gain'] is False
    assert bad['final - crf'] is False and bad['minutes'] is False
    # seeds 40 of an upper bound of 60 is 67% (<= 75%): met
    assert bad['seeds/upper'] is True and bad['seeds'] is True
    text = table(root, order=['good'])
    lines = text.splitlines()
    assert lines[2].startswith('| good |') and 'failed' not in lines[2]
    assert lines[3].startswith('| bad |') and 'failed: upper' in lines[3]


def test_std_check(tmp_path):
    root = str(tmp_path)
    for s, d in zip((0, 1, 2), (0.0, 0.03, -0.03)):
        _run(root, 'noisy', s, 0.45 + d, 0.50 + d, 0.49 + d, 0.75)
    checks = summarise(read_runs(root)['noisy'])['checks']
    assert checks['std'] is False
