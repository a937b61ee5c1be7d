# Copyright (c) mmwsss contributors.
"""Package metadata, the lock file and the mim integration.

- the version ranges of ``requirements/*.txt`` (setup.py) contain the exact
  versions of ``requirements/lock.txt`` (what ``make`` installs), and the
  import-time guards of ``mmwsss/__init__.py`` say the same as the ranges;
- ``setup.py``'s ``add_mim_extension`` links (editable) or copies (wheel,
  sdist) tools, configs and model-index.yml into ``mmwsss/.mim``;
- ``mim train mmwsss CONFIG`` finds the config by name and the train
  script through ``mmwsss/.mim``, runs 2 iterations of a toy CAM run, and
  ``mim test mmwsss CONFIG --checkpoint CKPT`` scores the checkpoint.
"""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
REQ = ROOT / 'requirements'
RANGE_FILES = ('runtime.txt', 'mminstall.txt', 'tests.txt', 'docs.txt')


def read_requirements(path: Path) -> list:
    """Requirement lines of a file (comments and pip options skipped)."""
    reqs = []
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-'):
            reqs.append(Requirement(line))
    return reqs


def locked() -> dict:
    """``{canonical name: Version}`` of the lock file."""
    pins = {}
    for req in read_requirements(REQ / 'lock.txt'):
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == '==', (
            f'lock.txt: {req} is not an exact pin')
        pins[canonicalize_name(req.name)] = Version(spec[0].version)
    return pins


def load_setup_module():
    """Import setup.py without running setup()."""
    spec = importlib.util.spec_from_file_location('mmwsss_setup',
                                                  ROOT / 'setup.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_lock_satisfies_the_ranges():
    pins = locked()
    for fname in RANGE_FILES:
        for req in read_requirements(REQ / fname):
            name = canonicalize_name(req.name)
            assert name in pins, f'{fname}: {req.name} is not in lock.txt'
            assert req.specifier.contains(
                pins[name], prereleases=True), (
                    f'{fname}: {req} excludes the locked {name}=={pins[name]}')


def test_openmmlab_stack_has_ranges_not_pins():
    reqs = {
        canonicalize_name(r.name): r
        for f in ('runtime.txt', 'mminstall.txt')
        for r in read_requirements(REQ / f)
    }
    for name in ('mmcv', 'mmengine', 'mmsegmentation', 'mmpretrain'):
        ops = {s.operator for s in reqs[name].specifier}
        assert ops == {'>=', '<'}, f'{name}: {reqs[name]}'
    assert {s.operator for s in reqs['torch'].specifier} == {'>='}
    for req in reqs.values():
        assert '==' not in {s.operator for s in req.specifier}, str(req)


def test_import_guards_match_the_ranges():
    import mmwsss
    reqs = {
        canonicalize_name(r.name): r
        for f in ('runtime.txt', 'mminstall.txt')
        for r in read_requirements(REQ / f)
    }
    for name, low, high in (('mmcv', mmwsss.MMCV_MIN, mmwsss.MMCV_MAX),
                            ('mmengine', mmwsss.MMENGINE_MIN,
                             mmwsss.MMENGINE_MAX), ('mmsegmentation',
                                                    mmwsss.MMSEG_MIN,
                                                    mmwsss.MMSEG_MAX)):
        bounds = {s.operator: s.version for s in reqs[name].specifier}
        assert bounds == {'>=': low, '<': high}, name


def test_setup_py_metadata():
    setup = load_setup_module()
    assert [
        Requirement(r)
        for r in setup.parse_requirements(str(REQ / 'runtime.txt'))
    ] == read_requirements(REQ / 'runtime.txt')
    from setuptools import find_packages
    pkgs = find_packages(str(ROOT), include=('mmwsss', 'mmwsss.*'))
    assert 'mmwsss.models.heads' in pkgs
    assert not [p for p in pkgs if not p.startswith('mmwsss')]
    # the installed distribution carries the ranges (reinstall with
    # `pip install --no-use-pep517 -e .` after editing requirements/)
    from importlib.metadata import requires
    installed = {
        canonicalize_name(Requirement(r).name): Requirement(r).specifier
        for r in requires('mmwsss') if 'extra ==' not in r
    }
    for req in read_requirements(REQ / 'runtime.txt'):
        assert installed[canonicalize_name(req.name)] == req.specifier, (
            f'installed metadata of mmwsss is stale for {req.name}')


@pytest.mark.parametrize('command,mode', [('develop', 'symlink'),
                                          ('editable_wheel', 'symlink'),
                                          ('bdist_wheel', 'copy'),
                                          ('sdist', 'copy'),
                                          ('egg_info', None)])
def test_add_mim_extension(tmp_path, monkeypatch, command, mode):
    """Run setup.py's add_mim_extension on a fake repository."""
    repo = tmp_path / 'repo'
    (repo / 'mmwsss').mkdir(parents=True)
    (repo / 'tools').mkdir()
    (repo / 'tools' / 'train.py').write_text('print(1)\n')
    (repo / 'configs' / 'cam').mkdir(parents=True)
    (repo / 'configs' / 'cam' / 'a.py').write_text('x = 1\n')
    (repo / 'model-index.yml').write_text('Import: []\n')
    (repo / 'setup.py').write_text((ROOT / 'setup.py').read_text())
    spec = importlib.util.spec_from_file_location('fake_setup',
                                                  repo / 'setup.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, 'argv', ['setup.py', command])
    mod.add_mim_extension()
    mim = repo / 'mmwsss' / '.mim'
    if mode is None:
        assert not mim.exists()
        return
    for name in ('tools', 'configs', 'model-index.yml'):
        assert (mim / name).is_symlink() == (mode == 'symlink'), name
    assert (mim / 'configs' / 'cam' / 'a.py').read_text() == 'x = 1\n'
    assert (mim / 'tools' / 'train.py').is_file()
    if mode == 'symlink':
        # relative links: the checkout can move
        assert os.readlink(mim / 'tools') == osp.join('..', '..', 'tools')
    # a second run replaces what the first one wrote
    mod.add_mim_extension()
    assert (mim / 'model-index.yml').read_text() == 'Import: []\n'


def write_toy_demo_data(root: Path, n: int = 4, size: int = 64) -> None:
    """A few demo-layout images: a bright square of class 1 or 2."""
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = {}
    for i in range(n):
        name = f'toy_{i:03d}'
        img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        cls = 1 + i % 2
        mask[16:48, 8 + 8 * i % 24:40 + 8 * i % 24] = cls
        img[mask > 0] = (200, 50 * cls, 30)
        Image.fromarray(img).save(root / 'JPEGImages' / f'{name}.jpg')
        Image.fromarray(mask).save(root / 'SegmentationClass' / f'{name}.png')
        labels[name] = [cls]
    (root / 'ImageSets/Segmentation/train.txt').write_text('\n'.join(labels) +
                                                           '\n')
    (root / 'image_labels.json').write_text(json.dumps(labels))


def run_mim(args: list, cwd: Path) -> str:
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(
        [mim] + args,
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_mim_train_and_test(tmp_path):
    """``mim train`` / ``mim test`` on a 2-iteration toy CAM run."""
    from mim.utils import get_installed_path
    pkg_root = get_installed_path('mmwsss')
    assert osp.realpath(pkg_root) == str(ROOT / 'mmwsss'), (
        f'mim finds mmwsss at {pkg_root}, not in this checkout: install it '
        'with `pip install --no-use-pep517 -e .` (an egg-link; a PEP 660 '
        'editable install hides the source folder from mim), as '
        'tools/misc/setup_venv.sh does')
    for name in ('tools', 'configs', 'model-index.yml'):
        assert (ROOT / 'mmwsss' / '.mim' / name).exists(), (
            f'mmwsss/.mim/{name} is missing: reinstall with `pip install '
            '--no-use-pep517 -e .`')

    data, work = tmp_path / 'data', tmp_path / 'work'
    write_toy_demo_data(data)
    config = 'cam_r18-w32_1xb32-600it_demo-128x128.py'  # found by name
    data_opts = [
        'dataset.data_root=' + str(data), 'num_workers=0',
        'persistent_workers=False'
    ]
    out = run_mim([
        'train', 'mmwsss', config, '--work-dir',
        str(work), '--cfg-options', 'train_cfg.max_iters=2',
        'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1'
    ] + ['train_dataloader.' + o for o in data_opts], tmp_path)
    real = str(ROOT / 'configs' / 'cam' / config)
    assert f'will use {real} instead' in out
    assert str(ROOT / 'mmwsss' / '.mim' / 'tools' / 'train.py') in out
    assert 'Iter(train) [2/2]' in out
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file()

    out = run_mim([
        'test', 'mmwsss', config, '--checkpoint',
        str(ckpt), '--work-dir',
        str(work), '--cfg-options', 'model.test_cfg.scales=(1.0,)'
    ] + ['test_dataloader.' + o for o in data_opts], tmp_path)
    assert 'Testing finished successfully' in out
    assert 'mIoU:' in out and 'Iter(test) [4/4]' in out
