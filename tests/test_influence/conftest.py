# Copyright (c) mmwsss contributors.
"""Fixtures of the influence tests."""
import pytest
import torch
from influence_testlib import make_net


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """The tensors here are tiny: intra-op threads only add overhead (and
    stall on a loaded machine). Restored after each module."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope='module')
def tiny():
    """Tiny trained CAM net with its data (float64)."""
    return make_net()
