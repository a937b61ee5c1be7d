# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.utils.relative_size` (closed-form cases)."""
import math

import pytest

from mmwsss.utils.relative_size import (check_size, grid_side, is_relative,
                                        resolve_size)


def test_grid_side():
    assert grid_side((32, 32)) == 32
    assert grid_side((2, 1, 4, 9)) == 6
    assert math.isclose(grid_side((94, 125)), math.sqrt(94 * 125))


@pytest.mark.parametrize('x,odd', [(0.2, 1), (1.0, 1), (1.99, 1), (2.0, 3),
                                   (3.75, 3), (4.0, 5), (14.9, 15), (15.0, 15),
                                   (16.0, 17)])
def test_odd_is_nearest_odd(x, odd):
    assert resolve_size(dict(rel=x / 100), 100, 'odd') == odd
    # nearest: no odd integer is closer
    assert all(abs(x - odd) <= abs(x - c) for c in range(1, 40, 2))


def test_kinds_and_bounds():
    assert resolve_size(dict(rel=4 / 128), 32, 'int') == 1
    assert resolve_size(dict(rel=4 / 128), 128, 'int') == 4
    assert resolve_size(dict(rel=1 / 128), 32, 'int', minimum=1) == 1
    assert resolve_size(dict(rel=1 / 128), 32, 'int') == 0
    assert resolve_size(dict(rel=0.5), 3, 'float') == 1.5
    assert resolve_size(dict(rel=1100 / 128**2), 32 * 32, 'count') == 69
    assert resolve_size(dict(rel=0.1, min=3), 10, 'odd') == 3
    assert resolve_size(dict(rel=0.9, max=5), 10, 'int') == 5
    assert resolve_size(dict(rel=0.1, min=2), 10, 'odd') == 3  # odd >= 2
    # absolute values pass through
    assert resolve_size(7, 1000, 'odd') == 7
    assert resolve_size(2.5, 1000, 'float') == 2.5
    assert is_relative(dict(rel=1)) and not is_relative(3)


def test_errors_name_the_key():
    with pytest.raises(ValueError, match='my_key'):
        check_size(dict(rel=0), 'my_key')
    with pytest.raises(ValueError, match='my_key'):
        check_size(dict(fraction=0.1), 'my_key')
    with pytest.raises(ValueError, match='my_key'):
        check_size(dict(rel=0.1, min=5, max=3), 'my_key')
    with pytest.raises(ValueError, match='my_key must be odd'):
        check_size(4, 'my_key', 'odd')
    with pytest.raises(ValueError, match='my_key must be an integer'):
        check_size(2.5, 'my_key', 'int')
    with pytest.raises(ValueError, match='my_key must be >= 1'):
        check_size(0, 'my_key', 'int', minimum=1)
    with pytest.raises(ValueError, match='my_key'):
        check_size('4', 'my_key')
    with pytest.raises(ValueError, match='kind'):
        check_size(3, 'k', 'area')
