# Copyright (c) mmwsss contributors.
"""Fixtures of the engine tests."""
import pytest
import torch

from mmwsss.datasets.demo_scenes import generate_demo_dataset


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """Tiny models: intra-op threads only add overhead (restored after)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """8 training and 8 validation demo scenes of 64 px."""
    root = str(tmp_path_factory.mktemp('demo'))
    generate_demo_dataset(root, num_train=8, num_val=8, img_size=64)
    return root
