# Copyright (c) mmwsss contributors.
"""Fixtures of the experiments tests (fakes in ``wsss_fakes.py``)."""
import pytest
from wsss_fakes import write_configs


@pytest.fixture
def fake_repo(tmp_path):
    """A folder with the fake row configs (``wsss_fakes.CONFIGS``)."""
    return write_configs(tmp_path / 'repo')
