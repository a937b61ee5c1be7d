# Copyright (c) mmwsss contributors.
"""Tests of :mod:`mmwsss.utils.io`."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from mmwsss.utils import io as mio

PALETTE = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [10, 20, 30]]


def test_atomic_write_bytes(tmp_path):
    target = tmp_path / 'sub' / 'dir' / 'a.bin'  # folders are created
    mio.atomic_write_bytes(str(target), b'first')
    assert target.read_bytes() == b'first'
    mio.atomic_write_bytes(str(target), b'second, longer')
    assert target.read_bytes() == b'second, longer'
    assert os.listdir(target.parent) == ['a.bin']  # no temp file left


@pytest.mark.parametrize('where', ['fsync', 'replace'])
@pytest.mark.parametrize('exc', [OSError, KeyboardInterrupt])
def test_atomic_write_failure_keeps_target(tmp_path, monkeypatch, where, exc):
    target = tmp_path / 'a.bin'
    target.write_bytes(b'old')
    seen = []

    def boom(*args):
        # the temp file exists (fsync: partially written) when it fails
        seen.append(sorted(os.listdir(tmp_path)))
        raise exc('disk gone')

    monkeypatch.setattr(mio.os, where, boom)
    with pytest.raises(exc):
        mio.atomic_write_bytes(str(target), b'new contents')
    monkeypatch.undo()
    assert len(seen[0]) == 2  # the target and the temp file
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['a.bin']


def decode(data):
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_encode_label_png_palette():
    label = np.array([[0, 1, 2], [3, 255, 1]], dtype=np.int64)
    img = decode(mio.encode_label_png(label, PALETTE))
    assert img.mode == 'P'
    np.testing.assert_array_equal(np.array(img), label)
    pal = np.array(img.getpalette()).reshape(-1, 3)
    np.testing.assert_array_equal(pal[:4], PALETTE)
    np.testing.assert_array_equal(pal[255], [255, 255, 255])
    # the RGB rendering uses the palette
    rgb = np.array(img.convert('RGB'))
    np.testing.assert_array_equal(rgb[0, 1], [128, 0, 0])
    np.testing.assert_array_equal(rgb[1, 0], [10, 20, 30])
    np.testing.assert_array_equal(rgb[1, 1], [255, 255, 255])


def test_encode_label_png_all_values_and_long_palette():
    # every value 0..255 survives; a 256-entry palette keeps 255 white
    label = np.arange(256, dtype=np.uint8).reshape(16, 16)
    palette = [[i, 255 - i, 7] for i in range(256)]
    img = decode(mio.encode_label_png(label, palette))
    assert img.mode == 'P'
    np.testing.assert_array_equal(np.array(img), label)
    pal = np.array(img.getpalette()).reshape(-1, 3)
    np.testing.assert_array_equal(pal[:255], palette[:255])
    np.testing.assert_array_equal(pal[255], [255, 255, 255])


def test_encode_label_png_grey():
    label = np.array([[0, 7], [255, 20]], dtype=np.int32)
    img = decode(mio.encode_label_png(label))
    assert img.mode == 'L'
    np.testing.assert_array_equal(np.array(img), label)


@pytest.mark.parametrize('bad,match', [
    (np.zeros((2, 2, 1)), '2-D'),
    (np.array([[0, 256]]), r'\[0, 255\]'),
    (np.array([[-1, 3]]), r'\[0, 255\]'),
])
def test_encode_label_png_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        mio.encode_label_png(bad)


def test_atomic_save_label_png_and_npz(tmp_path):
    label = np.array([[1, 0], [255, 2]], dtype=np.uint8)
    path = tmp_path / 'x.png'
    mio.atomic_save_label_png(str(path), label, PALETTE)
    with Image.open(path) as img:
        assert img.mode == 'P'
        np.testing.assert_array_equal(np.array(img), label)
    npz = tmp_path / 'x.npz'
    cam = np.array([[0.25, 1.0]], dtype=np.float32)
    mio.atomic_save_npz(str(npz), cam=cam, keys=np.array([3, 17]))
    with np.load(npz) as f:
        np.testing.assert_array_equal(f['cam'], cam)
        np.testing.assert_array_equal(f['keys'], [3, 17])
    assert sorted(os.listdir(tmp_path)) == ['x.npz', 'x.png']
