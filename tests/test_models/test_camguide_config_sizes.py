# Copyright (c) mmwsss contributors.
"""The demo and VOC CamGuide stage-3 configs give the same relative sizes.

Both configs are loaded, their models built (no weights), and the size of
the refined CAM grid is measured by a forward at the config's crop size.
Every spatial size is then resolved by the component that uses it, at that
grid (or crop), and divided by the grid side (crop side; grid area for the
SLIC segment count): the demo and VOC fractions must agree up to the
rounding of the demo's smaller grid. At the VOC crop (512) the sizes must
be the paper's Table III pixels.
"""
from pathlib import Path

import pytest
import torch
from mmengine import Config

from mmwsss.registry import MODELS
from mmwsss.utils import register_all_modules

register_all_modules()

ROOT = Path(__file__).resolve().parents[2] / 'configs' / 'camguide'
VOC = 'camguide-stage3_r18_1xb32-3k_voc12aug-512x512.py'
DEMOS = sorted(p.name for p in ROOT.glob('camguide-stage3*_demo-*.py'))

# (component, key) -> (reference, quantum): reference 'grid' / 'crop' /
# 'area'; quantum = the resolution step of the resolved value
KEYS = {
    'gf_radius': ('grid', 1),
    'window': ('grid', 2),
    'close_kernel': ('grid', 2),
    'gauss_sxy': ('grid', 0),
    'bi_sxy': ('grid', 0),
    'n_segments': ('area', 1),
    'cam_blur_kernel': ('grid', 2),
    'cam_blur_sigma': ('grid', 0),
    'img_blur_kernel': ('crop', 2),
    'img_blur_sigma': ('crop', 0),
    'dilate_kernel': ('crop', 2),
}
# Table III / IRN / the paper's edge pipeline at 512 crops (grid 128); the
# CRF stds are the IRN preset's pixels on the stride-4 grid (3, 50)
PAPER = dict(
    gf_radius=4,
    window=7,
    close_kernel=15,
    gauss_sxy=3.0,
    bi_sxy=50.0,
    n_segments=1100,
    cam_blur_kernel=5,
    cam_blur_sigma=1.5,
    img_blur_kernel=9,
    img_blur_sigma=3.0,
    dilate_kernel=3)


def resolved(cfg_name):
    """Pixels of every size key, the grid and the crop of a config."""
    cfg = Config.fromfile(str(ROOT / cfg_name))
    m = cfg.model
    m.backbone.init_cfg = None
    crop = tuple(m.data_preprocessor['size'])
    model = MODELS.build(m).eval()
    with torch.no_grad():
        grid = tuple(model._forward(torch.zeros(1, 3, *crop)).shape[-2:])
    out = dict(grid=grid, crop=crop)
    out['gf_radius'] = model.refine_head.resolve_gf_radius(grid)
    if model.loss_loc is not None:
        out['window'] = model.loss_loc.resolve_window(grid)
    out.update(model.loss_edge.resolved_sizes(crop, grid))
    out.update(model.heuristic_targets.resolved_sizes(grid))
    return out


_CACHE = {}


def voc_for(demo_name):
    """The VOC row of the same ablation (same stem before the backbone),
    else the full VOC stage-3 config."""
    row = demo_name.split('_')[0]
    name = f'{row}_r18_1xb32-3k_voc12aug-512x512.py'
    if not (ROOT / name).is_file():
        name = VOC
    if name not in _CACHE:
        _CACHE[name] = resolved(name)
    return _CACHE[name]


@pytest.fixture(scope='module')
def voc():
    return voc_for(VOC)


def test_voc_is_the_paper_at_512(voc):
    assert voc['crop'] == (512, 512) and voc['grid'] == (128, 128)
    for key, value in PAPER.items():
        assert voc[key] == pytest.approx(value), key


def test_demo_configs_found():
    assert 'camguide-stage3_effl0_1xb32-300it_demo-128x128.py' in DEMOS


@pytest.mark.parametrize('demo_name', DEMOS)
def test_demo_and_voc_same_relative_sizes(demo_name):
    demo = resolved(demo_name)
    voc = voc_for(demo_name)
    # the demo runs on a smaller grid: otherwise the test shows nothing
    assert demo['grid'][0] < voc['grid'][0]
    checked = 0
    for key, (ref, quantum) in KEYS.items():
        if key not in demo or key not in voc:
            continue
        if ref == 'area':
            sd = demo['grid'][0] * demo['grid'][1]
            sv = voc['grid'][0] * voc['grid'][1]
        else:
            sd = demo[ref][0]
            sv = voc[ref][0]
        rel_demo, rel_voc = demo[key] / sd, voc[key] / sv
        # a minimum size (e.g. window >= 3, kernels >= 1) may hold the
        # demo above the fraction, never below it by more than rounding
        tol = max(quantum, 1e-9) / sd
        assert rel_demo >= rel_voc - tol, (key, demo[key], voc[key])
        if key != 'window':  # the only size with a floor above rounding
            assert rel_demo <= rel_voc + tol, (key, demo[key], voc[key])
        checked += 1
    assert checked >= 10
