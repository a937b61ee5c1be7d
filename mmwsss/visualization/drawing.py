# Copyright (c) mmwsss contributors.
"""Pixel-level drawing of CAMs, label maps and picture grids.

Plain NumPy/OpenCV functions shared by :class:`WSSSVisualizer`, the
training hook and the report tools, so that every picture of the project
uses the same colours:

- a CAM (values in ``[0, 1]``, clipped) is painted with OpenCV's JET colour
  map and blended 50/50 with the image (:func:`cam_overlay`);
- a label map is painted with the dataset palette, index 255 (ignore)
  white (:func:`colourise`);
- :func:`make_grid` lays tiles out in rows under a header of column titles
  and above a class legend.

Images are RGB ``uint8`` ``(H, W, 3)`` arrays throughout.
"""
import io
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from mmwsss.utils.palette import voc_color_map

#: Header of :func:`make_grid`: up to this many wrapped title lines.
HEADER_LINES = 3
#: Height of one title line in pixels.
LINE_H = 12
#: Height of the title header of :func:`make_grid`.
HEADER_H = HEADER_LINES * LINE_H + 6
#: Height of the class legend of :func:`make_grid`.
LEGEND_H = 18
#: Grey value of the header and legend bands.
BAND_GREY = 40
#: Text scale of the titles (OpenCV's Hershey simplex font).
TITLE_SCALE = 0.33

TileSize = Union[int, Tuple[int, int]]


def _rgb_uint8(img: np.ndarray, what: str = 'image') -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'{what} must be an (H, W, 3) RGB array, got shape '
                         f'{img.shape}')
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def cam_heatmap(cam: np.ndarray,
                colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Paint a CAM with a colour map.

    Args:
        cam (np.ndarray): ``(H, W)`` map; values are clipped to ``[0, 1]``
            (normalised CAMs are; NaN is painted as 0).
        colormap (int): OpenCV colour map. Defaults to JET (blue = 0,
            dark red = 1).

    Returns:
        np.ndarray: RGB uint8 ``(H, W, 3)``.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f'a CAM must be 2-D, got shape {cam.shape}')
    cam = np.nan_to_num(np.clip(cam, 0, 1), nan=0.0)
    heat = cv2.applyColorMap((255 * cam).astype(np.uint8), colormap)
    return np.ascontiguousarray(heat[..., ::-1])


def blend(img: np.ndarray, top: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) * img + alpha * top``, truncated to uint8.

    ``top`` is resized (bilinear) to the image size when it differs.
    """
    img = _rgb_uint8(img)
    top = _rgb_uint8(top, 'overlay')
    if top.shape[:2] != img.shape[:2]:
        top = cv2.resize(top, img.shape[1::-1])
    if not 0 <= alpha <= 1:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    return ((1 - alpha) * img + alpha * top).astype(np.uint8)


def cam_overlay(img: np.ndarray,
                cam: np.ndarray,
                alpha: float = 0.5,
                colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A CAM heat map blended over the image (50/50 by default).

    Args:
        img (np.ndarray): RGB uint8 image.
        cam (np.ndarray): ``(h, w)`` map in ``[0, 1]``; resized to the
            image when its size differs.
        alpha (float): Weight of the heat map. Defaults to 0.5.
        colormap (int): OpenCV colour map. Defaults to JET.

    Returns:
        np.ndarray: RGB uint8, the size of ``img``.
    """
    return blend(img, cam_heatmap(cam, colormap), alpha)


def palette_lut(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A 256-entry colour table: the palette, black after it, 255 white."""
    pal = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    if len(pal) > 255:
        raise ValueError(f'a palette has at most 255 colours (255 is the '
                         f'ignore index), got {len(pal)}')
    if pal.size and (pal.min() < 0 or pal.max() > 255):
        raise ValueError('palette colours must lie in [0, 255]')
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(pal)] = pal
    lut[255] = 255
    return lut


def colourise(label: np.ndarray,
              palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Paint a label map with the palette (255 white, unknown ids black).

    Args:
        label (np.ndarray): ``(H, W)`` integer class indices in
            ``[0, 255]``.
        palette (Sequence): ``[[r, g, b], ...]`` per class.

    Returns:
        np.ndarray: RGB uint8 ``(H, W, 3)``.
    """
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    if label.ndim != 2:
        raise ValueError(f'a label map must be 2-D, got shape {label.shape}')
    label = label.astype(np.int64)
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError('label values must lie in [0, 255], got '
                         f'[{label.min()}, {label.max()}]')
    return palette_lut(palette)[label]


def voc_palette(num_classes: int) -> List[List[int]]:
    """The PASCAL VOC colour map (bit-interleaved), for any class count.

    Colour ``i`` spreads the bits of ``i`` over the high bits of R, G and
    B (VOC's ``labelcolormap``): background black, then ``[128, 0, 0]``,
    ``[0, 128, 0]``, ... Deterministic, so a dataset declared only by its
    class names gets the same colours in every run.
    """
    return voc_color_map(num_classes)


# ----------------------------------------------------------------------
# text and grids
def wrap_text(text: str, width: int, scale: float = TITLE_SCALE) -> List[str]:
    """Greedy word wrap to ``width`` pixels with OpenCV's simplex font."""
    lines: List[str] = []
    for word in str(text).split():
        cand = (lines[-1] + ' ' + word) if lines else word
        w = cv2.getTextSize(cand, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
        if lines and w <= width:
            lines[-1] = cand
        else:
            lines.append(word)
    return lines


def put_text(
    canvas: np.ndarray,
    text: str,
    x: int,
    y: int,
    scale: float = TITLE_SCALE,
    colour: Tuple[int, int, int] = (255, 255, 255)
) -> None:
    """Write ``text`` (baseline at ``y``) onto an RGB canvas in place."""
    cv2.putText(canvas, str(text), (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, colour, 1, cv2.LINE_AA)


def _tile_hw(tile: TileSize) -> Tuple[int, int]:
    if isinstance(tile, (int, np.integer)):
        h = w = int(tile)
    else:
        h, w = (int(v) for v in tile)
    if h < 8 or w < 8:
        raise ValueError(f'tiles must be at least 8 x 8 pixels, got {tile}')
    return h, w


def fit_tile(img: np.ndarray, side: int) -> Tuple[int, int]:
    """``(h, w)`` of a tile whose longer side is ``side`` (aspect kept)."""
    h, w = np.asarray(img).shape[:2]
    s = side / max(h, w)
    return max(8, round(h * s)), max(8, round(w * s))


def na_tile(tile: TileSize, text: str = 'n/a') -> np.ndarray:
    """A grey placeholder tile with a short note."""
    h, w = _tile_hw(tile)
    t = np.full((h, w, 3), 128, np.uint8)
    put_text(t, text, 4, h // 2)
    return t


def make_grid(rows: Sequence[Sequence[Optional[np.ndarray]]],
              titles: Sequence[str],
              tile: TileSize = 128,
              palette: Optional[Sequence[Sequence[int]]] = None,
              class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Picture grid: rows of tiles under column titles, over a legend.

    Every tile is resized to ``tile`` with nearest-neighbour interpolation
    (label maps keep their exact colours; a tile of that size is copied
    unchanged). Layout, top to bottom: a header band of ``HEADER_H``
    pixels with each column's title wrapped to its width (at most
    ``HEADER_LINES`` lines), the rows, and, when ``class_names`` are given,
    a legend band of ``LEGEND_H`` pixels with a colour swatch per class.

    Args:
        rows (Sequence[Sequence[np.ndarray | None]]): One list of RGB uint8
            tiles per row, as many as ``titles``; None draws a grey "n/a"
            tile.
        titles (Sequence[str]): Column titles.
        tile (int | tuple[int, int]): Tile side, or ``(height, width)``.
            Defaults to 128.
        palette (Sequence, optional): Class colours of the legend.
        class_names (Sequence[str], optional): Class names of the legend;
            no legend when None.

    Returns:
        np.ndarray: RGB uint8 ``(HEADER_H + rows * h [+ LEGEND_H],
        columns * w, 3)``.
    """
    th, tw = _tile_hw(tile)
    if not rows or not titles:
        raise ValueError('a grid needs at least one row and one column')
    width = tw * len(titles)
    header = np.full((HEADER_H, width, 3), BAND_GREY, np.uint8)
    for j, title in enumerate(titles):
        for k, line in enumerate(
                wrap_text(title, tw - 4, TITLE_SCALE)[:HEADER_LINES]):
            put_text(header, line, j * tw + 2, (k + 1) * LINE_H)
    bands = [header]
    for r, row in enumerate(rows):
        if len(row) != len(titles):
            raise ValueError(f'row {r} has {len(row)} tiles for '
                             f'{len(titles)} titles')
        tiles = []
        for t in row:
            if t is None:
                t = na_tile((th, tw))
            t = _rgb_uint8(t, 'a tile')
            if t.shape[:2] != (th, tw):
                t = cv2.resize(t, (tw, th), interpolation=cv2.INTER_NEAREST)
            tiles.append(t)
        bands.append(np.concatenate(tiles, axis=1))
    if class_names:
        if palette is None or len(palette) < len(class_names):
            raise ValueError('the legend needs a colour per class name')
        legend = np.full((LEGEND_H, width, 3), BAND_GREY, np.uint8)
        step = max(1, width // len(class_names))
        for c, name in enumerate(class_names):
            x = c * step
            legend[4:LEGEND_H - 4, x + 2:x + 12] = palette[c]
            put_text(legend, name, x + 14, LEGEND_H - 5, 0.3)
        bands.append(legend)
    return np.concatenate(bands, axis=0)


def encode_png(rgb: np.ndarray, max_bytes: Optional[int] = None) -> bytes:
    """PNG bytes of an RGB image (compression 9).

    Above ``max_bytes`` the image is stored as a 256-colour palette PNG
    instead (median cut, no dithering), which keeps report pictures small.
    """
    rgb = _rgb_uint8(rgb)
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]),
                           [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError('cannot encode a PNG')
    data = buf.tobytes()
    if max_bytes is not None and len(data) > max_bytes:
        from PIL import Image
        img = Image.fromarray(rgb).quantize(
            colors=256,
            method=Image.Quantize.MEDIANCUT,
            dither=Image.Dither.NONE)
        out = io.BytesIO()
        img.save(out, format='PNG', optimize=True)
        data = out.getvalue()
    return data


def save_png(path: str,
             rgb: np.ndarray,
             max_bytes: Optional[int] = None) -> None:
    """Write an RGB image as PNG atomically (see :func:`encode_png`)."""
    from mmwsss.utils.io import atomic_write_bytes
    atomic_write_bytes(path, encode_png(rgb, max_bytes))
