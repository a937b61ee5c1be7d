# Copyright (c) mmwsss contributors.
"""Pixel functions of mmwsss.visualization.drawing against references."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from mmwsss.visualization.drawing import (HEADER_H, LEGEND_H, blend,
                                          cam_heatmap, cam_overlay, colourise,
                                          encode_png, fit_tile, make_grid,
                                          save_png, voc_palette)

PALETTE = [[0, 0, 0], [200, 10, 10], [10, 200, 10], [10, 10, 200]]


def test_heatmap_is_opencv_jet_in_rgb():
    cam = np.linspace(-0.5, 1.5, 64, dtype=np.float32).reshape(8, 8)
    heat = cam_heatmap(cam)
    u8 = (255 * np.clip(cam, 0, 1)).astype(np.uint8)
    ref = cv2.applyColorMap(u8, cv2.COLORMAP_JET)[..., ::-1]
    np.testing.assert_array_equal(heat, ref)
    # JET: 0 is dark blue, 1 dark red (RGB order); out of range clipped
    np.testing.assert_array_equal(heat[0, 0], [0, 0, 128])
    np.testing.assert_array_equal(heat[-1, -1], [128, 0, 0])
    nan = cam_heatmap(np.full((2, 2), np.nan))
    np.testing.assert_array_equal(nan, cam_heatmap(np.zeros((2, 2))))
    with pytest.raises(ValueError, match='2-D'):
        cam_heatmap(np.zeros((1, 2, 2)))


def test_overlay_closed_form():
    img = np.full((2, 3, 3), 100, np.uint8)
    out = cam_overlay(img, np.zeros((2, 3)))
    # (100 + (0, 0, 128)) / 2, truncated
    np.testing.assert_array_equal(out[0, 0], [50, 50, 114])
    out = cam_overlay(img, np.ones((2, 3)), alpha=0.25)
    np.testing.assert_array_equal(out[1, 2], [107, 75, 75])
    # a smaller map is resized to the image
    assert cam_overlay(np.zeros((8, 6, 3), np.uint8), np.ones(
        (2, 3))).shape == (8, 6, 3)
    with pytest.raises(ValueError, match='alpha'):
        blend(img, img, 1.5)


def test_colourise_brute_force():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 6, size=(7, 5))
    label[0, 0] = 255
    out = colourise(label, PALETTE)
    for y in range(7):
        for x in range(5):
            v = int(label[y, x])
            want = [255] * 3 if v == 255 else (
                PALETTE[v] if v < len(PALETTE) else [0, 0, 0])
            assert out[y, x].tolist() == want
    assert colourise(label[None], PALETTE).shape == (7, 5, 3)
    with pytest.raises(ValueError, match=r'\[0, 255\]'):
        colourise(np.array([[256]]), PALETTE)


def test_voc_palette_matches_pascal_voc():
    from mmwsss.datasets import WSSSVOCDataset
    voc = [list(c) for c in WSSSVOCDataset.METAINFO['palette']]
    assert voc_palette(21) == voc
    assert voc_palette(3) == voc[:3]


def test_make_grid_layout_and_tiles():
    rng = np.random.default_rng(1)
    tiles = [[
        rng.integers(0, 255, (16, 20, 3), dtype=np.uint8) for _ in range(3)
    ] for _ in range(2)]
    tiles[1][2] = None
    grid = make_grid(tiles, ['a', 'b long title that wraps', 'c'], (16, 20),
                     PALETTE, ['bg', 'x', 'y', 'z'])
    assert grid.shape == (HEADER_H + 2 * 16 + LEGEND_H, 60, 3)
    for r in range(2):
        for c in range(3):
            got = grid[HEADER_H + 16 * r:HEADER_H + 16 * (r + 1),
                       20 * c:20 * (c + 1)]
            if tiles[r][c] is None:
                assert (got[:, :2] == 128).all()  # grey n/a tile
            else:
                np.testing.assert_array_equal(got, tiles[r][c])
    # legend swatch of class 1 at x = 1 * (60 // 4) + 2
    y = HEADER_H + 32 + 6
    np.testing.assert_array_equal(grid[y, 15 + 4], PALETTE[1])
    # no legend without class names; other tile sizes are resized
    small = make_grid([[np.zeros((4, 4, 3), np.uint8)]], ['t'], 8)
    assert small.shape == (HEADER_H + 8, 8, 3)
    with pytest.raises(ValueError, match='row 0 has 1 tiles for 2'):
        make_grid([[None]], ['a', 'b'])


def test_fit_tile_keeps_aspect():
    assert fit_tile(np.zeros((50, 100, 3)), 160) == (80, 160)
    assert fit_tile(np.zeros((300, 100, 3)), 150) == (150, 50)


def test_png_round_trip_and_palette_fallback(tmp_path):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    data = encode_png(img)
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(data))), img)
    small = encode_png(img, max_bytes=100)
    with Image.open(io.BytesIO(small)) as im:
        assert im.mode == 'P'
    save_png(str(tmp_path / 'a.png'), img)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / 'a.png')), img)
    assert [p.name for p in tmp_path.iterdir()] == ['a.png']
