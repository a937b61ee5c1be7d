# Copyright (c) mmwsss contributors.
import os.path as osp
import re

from setuptools import find_packages, setup


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    with open(osp.join('mmwsss', 'version.py'), encoding='utf-8') as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(fname: str) -> list:
    """Read requirement lines, skipping comments and blank lines."""
    reqs = []
    with open(fname, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


if __name__ == '__main__':
    setup(
        name='mmwsss',
        version=get_version(),
        description='Weakly supervised semantic segmentation toolbox '
        'on MMSegmentation',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='weakly supervised semantic segmentation, CAM, '
        'OpenMMLab',
        packages=find_packages(exclude=('configs', 'tools', 'tests',
                                        'projects', 'benchmarks')),
        include_package_data=True,
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'mim': parse_requirements('requirements/mminstall.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
        },
        zip_safe=False)
