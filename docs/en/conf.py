# Copyright (c) mmwsss contributors.
"""Sphinx configuration of the mmwsss documentation (``make docs``).

Offline by design: no intersphinx inventories, the built-in theme, no
downloads. The API reference imports mmwsss and reads its docstrings
(Google style, through napoleon).
"""
import os
import os.path as osp
import re
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

project = 'mmwsss'
copyright = '2026, mmwsss contributors'
author = 'mmwsss contributors'


def _version() -> str:
    scope: dict = {}
    with open(osp.join(ROOT, 'mmwsss', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


release = version = _version()

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
# _static/results holds the tables `make results` writes; pages include
# them, they are not pages of their own.
exclude_patterns = ['_build', '_static/**', 'Thumbs.db', '.DS_Store']

myst_heading_anchors = 3
myst_enable_extensions = ['colon_fence']

# Pages include the configs' README files, whose links to sibling READMEs,
# to projects/ and to the result folders under _static point at files of
# the repository that are not pages here; they render as plain text. Every
# other unresolved link stays an error under -W.
nitpick_ignore_regex = [
    ('myst', re.escape(ROOT) + r'/(configs|projects)/.*README'),
    ('myst', r'_static/.*'),
]

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {
    'members': True,
    'show-inheritance': True,
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = 'alabaster'
html_title = f'mmwsss {release}'
html_static_path = ['_static']
html_theme_options = {
    'description': 'Weakly supervised semantic segmentation on MMSeg',
    'fixed_sidebar': True,
}

# Keep torch and the OpenMMLab stack quiet and single-threaded while
# autodoc imports them.
os.environ.setdefault('OMP_NUM_THREADS', '1')
