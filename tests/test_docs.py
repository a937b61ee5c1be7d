# Copyright (c) mmwsss contributors.
"""The documentation builds offline with warnings as errors (``make docs``).

The API reference is generated from the docstrings by autodoc (the real
package is imported, nothing mocked); every subpackage of ``mmwsss`` must
have a section in ``docs/en/api.rst``.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs' / 'en'


def subpackages() -> set:
    return {
        '.'.join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / 'mmwsss').rglob('__init__.py')
        if '.mim' not in p.parts and p.parent != ROOT / 'mmwsss'
    }


def test_api_reference_covers_every_subpackage():
    text = (DOCS / 'api.rst').read_text()
    documented = set(re.findall(r'^\.\. automodule:: (\S+)', text, re.M))
    # a parent package whose children are documented is covered by them
    missing = {
        p
        for p in subpackages() - documented
        if not any(d.startswith(p + '.') for d in documented)
    }
    assert not missing, f'subpackages missing from docs/en/api.rst: {missing}'


def test_docs_build_with_warnings_as_errors(tmp_path):
    out = tmp_path / 'html'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html',
        '-d',
        str(tmp_path / 'doctrees'),
        str(DOCS),
        str(out)
    ],
                          cwd=str(ROOT),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert 'build succeeded' in log
    # every page of the toctree was written
    for page in ('index', 'get_started', 'user_guides/data_prepare',
                 'user_guides/own_data', 'user_guides/train_test',
                 'user_guides/visualization', 'methods/igcam',
                 'methods/camguide', 'methods/final_models',
                 'advanced_guides/add_components', 'notes/faq', 'api'):
        assert (out / f'{page}.html').is_file(), page
    # the API reference comes from the docstrings
    api = re.sub(r'<[^>]+>', '', (out / 'api.html').read_text())
    assert 'class mmwsss.models.heads.ASPPSumHead' in api
    assert 'ASPP-L head of DeepLab v2' in api
    assert 'mmwsss.utils.checkpoint.safe_torch_load' in api
    # the support table of the README is included in get started
    started = (out / 'get_started.html').read_text()
    assert 'mmsegmentation' in started and 'not tested' in started
