# Copyright (c) mmwsss contributors.
"""The demo pipeline reads the config-threshold seed figure from the sweep."""
import os.path as osp

import pytest

from mmwsss.experiments.demo import config_bg_thr, sweep_miou_at
from mmwsss.experiments.runner import CAM_CONFIG

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_sweep_miou_at_picks_the_threshold():
    sweep = dict(global_sweep=[
        dict(thr=0.05 * k, miou=0.01 * k) for k in range(1, 20)
    ])
    # 0.05 * 15 is 0.7500000000000001 in floating point: still found
    assert sweep_miou_at(sweep, 0.75) == pytest.approx(0.15)
    assert sweep_miou_at(sweep, 0.05) == pytest.approx(0.01)
    assert sweep_miou_at(sweep, 0.55) == pytest.approx(0.11)
    with pytest.raises(KeyError, match='0.72'):
        sweep_miou_at(sweep, 0.72)


def test_config_bg_thr_reads_the_demo_config(tmp_path):
    assert config_bg_thr(osp.join(REPO, CAM_CONFIG)) == 0.55
    cfg = tmp_path / 'no_thr.py'
    cfg.write_text('model = dict(type="X", test_cfg=dict())\n')
    with pytest.raises(KeyError, match='bg_thr'):
        config_bg_thr(str(cfg))
