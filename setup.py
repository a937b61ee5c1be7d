# Copyright (c) mmwsss contributors.
import os
import os.path as osp
import platform
import re
import shutil
import sys
import warnings

from setuptools import find_packages, setup


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    with open(osp.join('mmwsss', 'version.py'), encoding='utf-8') as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(fname: str) -> list:
    """Read requirement lines (with their version ranges).

    Comments, blank lines and pip options (``-r``, ``-f`` ...) are skipped.
    """
    reqs = []
    with open(fname, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Put tools, configs and model-index.yml into ``mmwsss/.mim``.

    What lets ``mim train/test mmwsss CONFIG`` find the scripts and configs
    of an installed mmwsss (as MMSegmentation's setup.py does): symlinks to
    the originals for an editable install (``pip install -e .``, which runs
    ``setup.py develop``, or ``editable_wheel`` under PEP 660), copies for
    a regular install or a source distribution (``bdist_wheel``,
    ``sdist``). Windows gets copies in every case.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif any(
            cmd in sys.argv
            for cmd in ('sdist', 'bdist_wheel', 'install', 'build')):
        mode = 'copy'
    else:
        return

    filenames = ['tools', 'configs', 'model-index.yml']
    repo_path = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo_path, 'mmwsss', '.mim')
    os.makedirs(mim_path, exist_ok=True)

    for filename in filenames:
        src_path = osp.join(repo_path, filename)
        if not osp.exists(src_path):
            continue
        tar_path = osp.join(mim_path, filename)
        if osp.isfile(tar_path) or osp.islink(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)

        if mode == 'symlink':
            src_relpath = osp.relpath(src_path, osp.dirname(tar_path))
            os.symlink(src_relpath, tar_path)
        elif osp.isfile(src_path):
            shutil.copyfile(src_path, tar_path)
        else:
            shutil.copytree(
                src_path,
                tar_path,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    if mode == 'copy' and not osp.isdir(osp.join(mim_path, 'configs')):
        warnings.warn('mmwsss/.mim/configs was not created: mim will not '
                      'find the configs of this install')


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmwsss',
        version=get_version(),
        description='Weakly supervised semantic segmentation toolbox '
        'on MMSegmentation',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='weakly supervised semantic segmentation, CAM, '
        'OpenMMLab',
        packages=find_packages(include=('mmwsss', 'mmwsss.*')),
        include_package_data=True,
        python_requires='>=3.8',
        license='Apache License 2.0',
        classifiers=[
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        # Version ranges; the exact versions `make` installs are in
        # requirements/lock.txt (README "Install" says what was tested).
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            # mmcv with its compiled ops: `mim install` takes a prebuilt
            # wheel from OpenMMLab's index, pip would build the sdist.
            'mim': parse_requirements('requirements/mminstall.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'docs': parse_requirements('requirements/docs.txt'),
        },
        zip_safe=False)
