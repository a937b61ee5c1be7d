# Copyright (c) mmwsss contributors.
"""Deterministic synthetic scenes for weakly supervised segmentation demos.

Every image shows 1-3 objects from :data:`DEMO_CLASSES` over a crop of a real
photograph. The scenes are built so that image-level supervision is *not*
trivial to turn into masks:

- backgrounds and object textures are crops of the same photographs shipped
  with scikit-image (read from disk, never downloaded), with the same colour
  jitter, so colour statistics of objects and background overlap and no
  class owns a colour;
- the class is told mainly by *shape* (star, ring, cross, crescent, bolt,
  key, leaf) under random scale, rotation, aspect and shape parameters;
  three classes (bolt, key, leaf) have thin parts;
- objects are alpha-blended with a blurred alpha, partly transparent, and
  some have their mean brightness matched to the surrounding background,
  so many edges are soft and of low contrast (a floor on the local edge
  contrast, ``min_object_contrast``, keeps every shape visible);
- objects occlude each other and non-class clutter (blobs, ellipses,
  rectangles, triangles, thin strokes cut from the same photographs) sits
  under and over them, so a textured blob is not an object.

Masks follow the visible part of each object (its hard, anti-aliased shape
thresholded at 0.5, minus what later layers cover). An object is kept only
when enough of it stays visible (``min_visible_frac`` of its own area and
``min_visible_px`` pixels), so image labels always equal the classes present
in the mask.

Scene ``i`` of a split is drawn from ``numpy.random.default_rng`` seeded with
``(seed, split, i)``: results do not depend on the number of worker
processes, train and val come from disjoint streams, and the same seed gives
byte-identical files.
"""
import functools
import json
import math
import multiprocessing
import os
import os.path as osp
import time
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

#: Version written by default. Every version stays reproducible: pass
#: ``version='1.0'`` to get the scenes of the first demo bed byte for byte.
GENERATOR_VERSION = '2.0'

DEMO_CLASSES = ('background', 'star', 'ring', 'cross', 'crescent', 'bolt',
                'key', 'leaf')

DEMO_PALETTE = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                [0, 0, 128], [128, 0, 128], [0, 128, 128], [128, 128, 128]]

NUM_FG = len(DEMO_CLASSES) - 1

# Photographs bundled in the scikit-image wheel (synthetic charts, binary
# silhouettes and near-duplicates are left out).
PHOTO_FILES = ('astronaut.png', 'brick.png', 'camera.png', 'cell.png',
               'chelsea.png', 'clock_motion.png', 'coffee.png', 'coins.png',
               'grass.png', 'gravel.png', 'hubble_deep_field.jpg', 'ihc.png',
               'moon.png', 'motorcycle_left.png', 'page.png', 'retina.jpg',
               'rocket.jpg', 'text.png')

DIFFICULTY_V1 = dict(
    # Object extent (diameter before aspect change) / image side. With
    # ``secondary_object_scale`` set, this is the range of the first
    # (guaranteed) object only.
    object_scale=(0.25, 0.55),
    # Extent range of the other objects of a scene; None draws them from
    # ``object_scale`` too (version 1.0).
    secondary_object_scale=None,
    # Probabilities of 1, 2 and 3 objects (distinct classes) per image.
    num_objects_probs=(0.45, 0.35, 0.20),
    # Inclusive range of non-class clutter shapes per image.
    clutter=(0, 3),
    # Clutter extent / image side.
    clutter_scale=(0.12, 0.40),
    # Probability that a clutter shape may be drawn over objects.
    clutter_on_top_prob=0.35,
    # Gaussian sigma of the object alpha, in pixels at a 128-px image
    # (scaled with ``img_size``).
    blur_sigma=(0.4, 1.8),
    # Object opacity range.
    opacity=(0.8, 1.0),
    # Probability of matching an object's mean brightness to the background
    # around it (low-contrast edges), and the strength range of that
    # matching (1 = equal mean brightness).
    contrast_match_prob=0.5,
    contrast_match_strength=(0.6, 1.0),
    # Least edge contrast (0-1 scale, see ``_edge_contrast``: mean and
    # standard deviation differences in small windows) between a shape's
    # texture and what it covers; textures are redrawn (at last without
    # brightness matching) below it so that every shape stays visible.
    min_object_contrast=0.1,
    # Probability that an object's texture comes from its class's preferred
    # photographs (a weak texture cue) rather than any photograph.
    texture_bias=0.3,
    # Range of the x/y aspect ratio applied before rotation.
    aspect=(0.75, 1.33),
    # Crop side / photo short side, for backgrounds and textures.
    background_crop=(0.25, 0.9),
    texture_crop=(0.12, 0.6),
    # Colour jitter amplitude (brightness, contrast, saturation, tint).
    colour_jitter=0.2,
    # Additive Gaussian noise sigma range, in 0-255 grey levels.
    noise_sigma=(0.0, 4.0),
    # Amplitude of a global linear illumination gradient.
    illumination=0.15,
    # Visibility needed to keep an object: fraction of its own area (parts
    # past the image border count as hidden) and pixel count at a 128-px
    # image (scaled with the image area).
    min_visible_frac=0.4,
    min_visible_px=50,
    # Placement attempts per shape before it is dropped.
    max_tries=20,
)

#: Version 2.0: VOC-like object sizes and counts (issue #17). One large
#: object (0.8-1.25 of the image side before clipping) and smaller
#: companions, mostly one or two classes, less clutter. The appearance knobs
#: that make WSSS hard (shared textures, brightness matching, soft edges,
#: clutter over objects, thin parts) are kept, milder than in 1.0: with
#: version 1.0's values many objects were nearly invisible and the fully
#: supervised upper bound stayed near 60 mIoU. The values are setting D of
#: the calibration in ``docs/en/notes/demo_calibration.md``.
DIFFICULTY_V2 = dict(
    DIFFICULTY_V1,
    object_scale=(0.8, 1.25),
    secondary_object_scale=(0.45, 0.85),
    num_objects_probs=(0.6, 0.3, 0.1),
    clutter=(0, 2),
    contrast_match_prob=0.3,
    blur_sigma=(0.3, 1.2),
    clutter_on_top_prob=0.2,
    texture_bias=0.5,
    min_object_contrast=0.15,
)

DIFFICULTY_PRESETS = {'1.0': DIFFICULTY_V1, '2.0': DIFFICULTY_V2}

#: Knobs of the default version.
DEFAULT_DIFFICULTY = DIFFICULTY_PRESETS[GENERATOR_VERSION]

_SS = 4  # supersampling factor of the shape rasteriser


def resolve_difficulty(difficulty: Optional[dict] = None,
                       version: str = GENERATOR_VERSION) -> dict:
    """Merge user knobs into the preset of a generator version.

    Args:
        difficulty (dict, optional): Knobs overriding the preset; see
            :data:`DIFFICULTY_V1` for names and meanings.
        version (str): Generator version whose preset is the starting
            point (a key of :data:`DIFFICULTY_PRESETS`). Defaults to
            :data:`GENERATOR_VERSION`.

    Returns:
        dict: The full set of knobs.

    Raises:
        ValueError: On an unknown version, an unknown knob or an invalid
            range.
    """
    if version not in DIFFICULTY_PRESETS:
        raise ValueError(f'unknown demo generator version {version!r}; '
                         f'known: {sorted(DIFFICULTY_PRESETS)}')
    cfg = dict(DIFFICULTY_PRESETS[version])
    for key, value in (difficulty or {}).items():
        if key not in cfg:
            raise ValueError(f'unknown difficulty knob {key!r}; known: '
                             f'{sorted(cfg)}')
        cfg[key] = value
    for key, value in cfg.items():
        if value is None:
            continue
        if isinstance(DIFFICULTY_V2[key], tuple):
            value = tuple(value)
            cfg[key] = value
            if key != 'num_objects_probs' and value[0] > value[1]:
                raise ValueError(f'difficulty knob {key!r} must be a '
                                 f'(low, high) range, got {value}')
    probs = np.asarray(cfg['num_objects_probs'], dtype=np.float64)
    if probs.size < 1 or probs.size > 3 or probs.min() < 0 \
            or probs.sum() <= 0:
        raise ValueError('num_objects_probs must hold 1-3 non-negative '
                         'probabilities (for 1, 2, 3 objects)')
    if cfg['clutter'][0] < 0:
        raise ValueError('clutter must be a non-negative range')
    return cfg


# --------------------------------------------------------------- photographs
@functools.lru_cache(maxsize=1)
def load_photos() -> Tuple[np.ndarray, ...]:
    """Load the bundled scikit-image photographs as RGB uint8 arrays.

    Files are read from the ``skimage/data`` folder directly (no download).
    Large photos are shrunk to a short side of at most 384 pixels and the
    black rim of ``retina.jpg`` is cropped away.

    Returns:
        tuple[np.ndarray]: ``H x W x 3`` uint8 RGB photographs, in the order
        of :data:`PHOTO_FILES`.

    Raises:
        FileNotFoundError: When a photograph is missing from the wheel.
    """
    import skimage
    root = osp.join(osp.dirname(skimage.__file__), 'data')
    photos = []
    for name in PHOTO_FILES:
        path = osp.join(root, name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'scikit-image photograph {path} is missing; the demo '
                'generator needs the files bundled with scikit-image')
        with Image.open(path) as im:
            arr = np.asarray(im.convert('RGB'))
        if name == 'retina.jpg':
            h, w = arr.shape[:2]
            arr = arr[int(0.22 * h):int(0.78 * h), int(0.22 * w):int(0.78 * w)]
        short = min(arr.shape[:2])
        if short > 384:
            f = 384 / short
            arr = cv2.resize(
                arr, (round(arr.shape[1] * f), round(arr.shape[0] * f)),
                interpolation=cv2.INTER_AREA)
        photos.append(np.ascontiguousarray(arr))
    return tuple(photos)


def _class_photo_groups(num_photos: int) -> List[List[int]]:
    """Preferred photographs of each foreground class (round robin)."""
    return [[p for p in range(num_photos) if p % NUM_FG == k]
            for k in range(NUM_FG)]


def _photo_crop(rng: np.random.Generator,
                photos: Sequence[np.ndarray],
                size: int,
                crop_range: Sequence[float],
                jitter: float,
                photo: Optional[int] = None) -> np.ndarray:
    """Random jittered square crop of a photograph, float32 RGB in [0, 1]."""
    if photo is None:
        photo = int(rng.integers(len(photos)))
    src = photos[photo]
    h, w = src.shape[:2]
    side = max(8, int(round(rng.uniform(*crop_range) * min(h, w))))
    side = min(side, h, w)
    y = int(rng.integers(h - side + 1))
    x = int(rng.integers(w - side + 1))
    crop = src[y:y + side, x:x + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (size, size), interpolation=interp)
    crop = np.rot90(crop, int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.ascontiguousarray(crop)
    # Colour jitter (saturation, contrast, brightness, per-channel tint) as
    # one affine colour transform; saturation keeps the global mean.
    sat, con, bri = 1.0 + rng.uniform(-jitter, jitter, size=3)
    gains = 1.0 + rng.uniform(-jitter / 2, jitter / 2, size=3)
    mean = float(np.mean(cv2.mean(crop)[:3])) / 255.0
    m_sat = sat * np.eye(3) + (1.0 - sat) / 3.0
    mat = gains[:, None] * (con * m_sat) / 255.0
    off = gains * mean * (bri - con)
    out = cv2.transform(
        crop.astype(np.float32), np.concatenate([mat, off[:, None]], 1))
    return out


# -------------------------------------------------------------------- shapes
# A shape is a list of drawing operations in normalised coordinates (the
# shape fits roughly in the unit disc): ('poly', points, value) fills a
# polygon, ('line', points, thickness, value) draws a thick polyline;
# value 1 paints, 0 erases.
Op = tuple


def _ellipse(rx: float,
             ry: float,
             cx: float = 0.0,
             cy: float = 0.0,
             n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _shape_star(rng: np.random.Generator) -> List[Op]:
    k = int(rng.integers(5, 9))
    inner = rng.uniform(0.35, 0.55)
    t = np.arange(2 * k) * np.pi / k
    r = np.where(np.arange(2 * k) % 2 == 0, 1.0, inner)
    r = r * (1 + rng.uniform(-0.08, 0.08, size=2 * k))
    return [('poly', np.stack([r * np.cos(t), r * np.sin(t)], 1), 1)]


def _shape_ring(rng: np.random.Generator) -> List[Op]:
    thick = rng.uniform(0.2, 0.5)
    inner = 1.0 - thick
    off = rng.uniform(-0.25, 0.25, size=2) * thick
    return [('poly', _ellipse(1.0, 1.0, n=64), 1),
            ('poly', _ellipse(inner, inner, off[0], off[1], n=64), 0)]


def _shape_cross(rng: np.random.Generator) -> List[Op]:
    w = rng.uniform(0.16, 0.32)
    left, right, up = rng.uniform(0.65, 1.0, size=3)
    down = rng.uniform(0.65, 1.0) if rng.random() < 0.6 else 1.0
    horiz = np.array([[-left, -w], [right, -w], [right, w], [-left, w]])
    vert = np.array([[-w, -up], [w, -up], [w, down], [-w, down]])
    return [('poly', horiz, 1), ('poly', vert, 1)]


def _shape_crescent(rng: np.random.Generator) -> List[Op]:
    r2 = rng.uniform(0.75, 1.0)
    d = rng.uniform(0.35, 0.7)
    return [('poly', _ellipse(1.0, 1.0, n=64), 1),
            ('poly', _ellipse(r2, r2, d, rng.uniform(-0.1, 0.1), n=64), 0)]


def _shape_bolt(rng: np.random.Generator) -> List[Op]:
    nseg = int(rng.integers(3, 6))
    amp = rng.uniform(0.25, 0.5)
    ys = np.linspace(-1.0, 0.75, nseg + 1)
    ys[1:-1] += rng.uniform(-0.08, 0.08, size=nseg - 1)
    xs = amp * np.where(np.arange(nseg + 1) % 2 == 0, -1.0, 1.0)
    xs = xs * rng.uniform(0.7, 1.0, size=nseg + 1)
    pts = np.stack([xs, ys], 1)
    thick = rng.uniform(0.1, 0.2)
    # Arrow-like tip continuing the last segment.
    d = pts[-1] - pts[-2]
    d /= np.linalg.norm(d)
    n = np.array([-d[1], d[0]])
    tip = np.array([
        pts[-1] + 0.25 * d, pts[-1] + 1.6 * thick * n,
        pts[-1] - 1.6 * thick * n
    ])
    return [('line', pts, thick, 1), ('poly', tip, 1)]


def _shape_key(rng: np.random.Generator) -> List[Op]:
    rh = rng.uniform(0.28, 0.42)
    hy = -1.0 + rh
    hole = rh * rng.uniform(0.35, 0.6)
    ws = rng.uniform(0.09, 0.15)
    ops = [('poly', _ellipse(rh, rh * rng.uniform(0.8, 1.0), 0, hy), 1),
           ('line', np.array([[0.0, hy + rh * 0.8], [0.0, 1.0]]), ws, 1)]
    nteeth = int(rng.integers(1, 4))
    side = 1.0 if rng.random() < 0.5 else -1.0
    for i in range(nteeth):
        y = 0.95 - i * rng.uniform(0.18, 0.25)
        length = rng.uniform(0.18, 0.35)
        ops.append(('line', np.array([[0.0, y], [side * length, y]]), ws, 1))
    ops.append(('poly', _ellipse(hole, hole, 0, hy, n=32), 0))
    return ops


def _shape_leaf(rng: np.random.Generator) -> List[Op]:
    length = 0.78
    h = rng.uniform(0.25, 0.45)
    p = rng.uniform(0.8, 1.3)
    skew = rng.uniform(-0.3, 0.3)
    u = np.linspace(-1, 1, 33)
    half = h * (1 - u * u)**p * (1 - skew * u)
    x = np.concatenate([u, u[::-1]]) * length + 0.2
    y = np.concatenate([half, -half[::-1]])
    ops = [('poly', np.stack([x, y], 1), 1)]
    base = np.array([-length + 0.2, 0.0])
    bend = rng.uniform(-0.15, 0.15)
    stem = np.array(
        [base + [0.05, 0], base + [-0.2, bend * 0.5], base + [-0.4, bend]])
    ops.append(('line', stem, rng.uniform(0.06, 0.11), 1))
    if rng.random() < 0.5:  # a notch bitten out of one side
        ux = rng.uniform(-0.3, 0.5)
        sgn = 1.0 if rng.random() < 0.5 else -1.0
        hw = h * (1 - ux * ux)**p * (1 - skew * ux)
        cx = ux * length + 0.2
        depth = hw * rng.uniform(0.35, 0.6)
        wid = rng.uniform(0.08, 0.15)
        notch = np.array([[cx - wid, sgn * (hw + 0.1)],
                          [cx + wid, sgn * (hw + 0.1)],
                          [cx, sgn * (hw - depth)]])
        ops.append(('poly', notch, 0))
    return ops


SHAPE_FNS = (_shape_star, _shape_ring, _shape_cross, _shape_crescent,
             _shape_bolt, _shape_key, _shape_leaf)


def _clutter_shape(rng: np.random.Generator) -> List[Op]:
    """A non-class shape: blob, ellipse, rectangle, triangle or stroke."""
    kind = int(rng.integers(5))
    if kind == 0:  # smooth blob (low-order radial harmonics only)
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        r = np.ones_like(t)
        for k in (2, 3):
            r += rng.uniform(0.0, 0.18) * np.cos(k * t + rng.uniform(0, 6.3))
        return [('poly', np.stack([r * np.cos(t), r * np.sin(t)], 1), 1)]
    if kind == 1:
        return [('poly', _ellipse(1.0, rng.uniform(0.4, 1.0)), 1)]
    if kind == 2:
        a = rng.uniform(0.4, 0.9)
        return [('poly', np.array([[-1, -a], [1, -a], [1, a], [-1, a]]), 1)]
    if kind == 3:
        t = np.pi / 2 + np.array([0, 2, 4]) * np.pi / 3
        t = t + rng.uniform(-0.3, 0.3, size=3)
        return [('poly', np.stack([np.cos(t), np.sin(t)], 1), 1)]
    # Thin smooth stroke (a quadratic Bezier curve).
    p0, p1, p2 = rng.uniform(-1, 1, size=(3, 2))
    s = np.linspace(0, 1, 16)[:, None]
    pts = (1 - s)**2 * p0 + 2 * s * (1 - s) * p1 + s**2 * p2
    return [('line', pts, rng.uniform(0.05, 0.12), 1)]


def _rasterise(ops: List[Op], center: Sequence[float], radius: float,
               aspect: float, angle: float) -> Tuple[np.ndarray, int, int]:
    """Rasterise a shape into an anti-aliased local alpha patch.

    Returns:
        tuple: ``(alpha, x0, y0)``: float32 alpha patch in [0, 1] and the
        image coordinates of its top-left pixel.
    """
    sx, sy = math.sqrt(aspect), 1.0 / math.sqrt(aspect)
    c, s = math.cos(angle), math.sin(angle)
    mat = radius * np.array([[c * sx, -s * sy], [s * sx, c * sy]])
    tops = []
    for op in ops:
        pts = op[1] @ mat.T + np.asarray(center)
        tops.append(pts)
    allp = np.concatenate(tops, 0)
    margin = 2 + max([op[2] * radius for op in ops if op[0] == 'line'] + [0])
    x0 = int(math.floor(allp[:, 0].min() - margin))
    y0 = int(math.floor(allp[:, 1].min() - margin))
    x1 = int(math.ceil(allp[:, 0].max() + margin))
    y1 = int(math.ceil(allp[:, 1].max() + margin))
    w, h = x1 - x0, y1 - y0
    canvas = np.zeros((h * _SS, w * _SS), np.uint8)
    for op, pts in zip(ops, tops):
        p = np.round((pts - [x0, y0]) * _SS - 0.5).astype(np.int32)
        if op[0] == 'poly':
            cv2.fillPoly(canvas, [p], 255 * op[2])
        else:
            th = max(1, int(round(op[2] * radius * _SS)))
            cv2.polylines(canvas, [p], False, 255 * op[3], thickness=th)
    alpha = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return alpha.astype(np.float32) * (1.0 / 255.0), x0, y0


def _paste(patch: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """Paste a local patch into a zero ``size x size`` map, clipping."""
    out = np.zeros((size, size), np.float32)
    h, w = patch.shape
    ax, ay = max(x0, 0), max(y0, 0)
    bx, by = min(x0 + w, size), min(y0 + h, size)
    if bx > ax and by > ay:
        out[ay:by, ax:bx] = patch[ay - y0:by - y0, ax - x0:bx - x0]
    return out


def _sample_geometry(rng: np.random.Generator, ops: List[Op], img_size: int,
                     scale_range: Sequence[float], cfg: dict,
                     central: bool) -> dict:
    radius = 0.5 * rng.uniform(*scale_range) * img_size
    lo, hi = (0.3, 0.7) if central else (0.1, 0.9)
    center = rng.uniform(lo, hi, size=2) * img_size
    aspect = math.exp(rng.uniform(*np.log(cfg['aspect'])))
    angle = rng.uniform(0, 2 * np.pi)
    alpha, x0, y0 = _rasterise(ops, center, radius, aspect, angle)
    full = _paste(alpha, x0, y0, img_size)
    return dict(
        alpha=alpha,
        x0=x0,
        y0=y0,
        full=full,
        binary=full >= 0.5,
        area=int((alpha >= 0.5).sum()),
        radius=radius)


def _plan_layers(rng: np.random.Generator, img_size: int, cfg: dict,
                 primary: Optional[int]) -> Tuple[List[dict], np.ndarray]:
    """Choose classes and place shapes with occlusion and visibility checks.

    Args:
        rng (np.random.Generator): Random generator.
        img_size (int): Image side.
        cfg (dict): Difficulty knobs.
        primary (int, optional): Foreground class that must be present.

    Returns:
        tuple: ``(layers, owner)``; ``layers`` in drawing order, each a dict
        with ``cls`` (0 for clutter) and geometry; ``owner`` the index of the
        top layer at each pixel (-1 for bare background).
    """
    probs = np.asarray(cfg['num_objects_probs'], dtype=np.float64)
    min_px = max(1, round(cfg['min_visible_px'] * (img_size / 128.0)**2))
    min_frac = float(cfg['min_visible_frac'])
    for _ in range(100):
        n_obj = int(rng.choice(len(probs), p=probs / probs.sum())) + 1
        if primary is None:
            classes = rng.choice(NUM_FG, size=n_obj, replace=False) + 1
        else:
            others = [c for c in range(1, NUM_FG + 1) if c != primary]
            classes = [primary] + list(
                rng.choice(others, size=n_obj - 1, replace=False))
        lo, hi = cfg['clutter']
        n_clut = int(rng.integers(int(lo), int(hi) + 1))
        on_top = rng.random(n_clut) < cfg['clutter_on_top_prob']
        under = [0] * int((~on_top).sum())
        rest = [int(c) for c in classes] + [0] * int(on_top.sum())
        rest = [rest[i] for i in rng.permutation(len(rest))]
        order = under + rest

        layers: List[dict] = []
        owner = np.full((img_size, img_size), -1, np.int16)
        big = int(classes[0])
        sec_scale = cfg['secondary_object_scale'] or cfg['object_scale']
        for cls in order:
            max_tries = int(cfg['max_tries'])
            for attempt in range(max_tries):
                if cls:
                    # Later attempts place the object near the centre.
                    central = attempt >= max_tries // 2
                    ops = SHAPE_FNS[cls - 1](rng)
                    scale = (cfg['object_scale']
                             if cls == big else sec_scale)
                    geo = _sample_geometry(rng, ops, img_size, scale, cfg,
                                           central)
                    if geo['area'] == 0:
                        continue
                    vis = int(geo['binary'].sum())
                    if vis < min_px or vis < min_frac * geo['area']:
                        continue
                else:
                    ops = _clutter_shape(rng)
                    geo = _sample_geometry(rng, ops, img_size,
                                           cfg['clutter_scale'], cfg, False)
                new_owner = owner.copy()
                new_owner[geo['binary']] = len(layers)
                ok = True
                for j, lay in enumerate(layers):
                    if lay['cls']:
                        vis = int((new_owner == j).sum())
                        if vis < min_px or vis < min_frac * lay['area']:
                            ok = False
                            break
                if ok:
                    geo['cls'] = cls
                    layers.append(geo)
                    owner = new_owner
                    break
        placed = [lay['cls'] for lay in layers if lay['cls']]
        if placed and (primary is None or primary in placed):
            return layers, owner
    raise RuntimeError('could not place a visible object in 100 scene '
                       'drafts; the difficulty knobs (object_scale, '
                       'min_visible_frac, min_visible_px, max_tries) are '
                       'too strict')


def _masked_stats(x: np.ndarray, weight: np.ndarray, norm: np.ndarray,
                  k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Local mean and standard deviation of ``x`` over ``weight`` pixels.

    Args:
        x (np.ndarray): ``H x W x 3`` float32 image.
        weight (np.ndarray): ``H x W`` float32 weights (0/1).
        norm (np.ndarray): ``k x k`` box mean of ``weight``.
        k (int): Window side.

    Returns:
        tuple: Local mean and standard deviation maps, ``H x W x 3``.
    """
    w3 = weight[..., None]
    n3 = np.maximum(norm, 1e-3)[..., None]
    m = cv2.blur(x * w3, (k, k)) / n3
    v = cv2.blur(x * x * w3, (k, k)) / n3 - m * m
    return m, np.sqrt(np.maximum(v, 0))


def _edge_contrast(in_stats: tuple, img_stats: tuple,
                   band: np.ndarray) -> float:
    """Visibility of a shape's edge.

    Mean over the boundary band of the absolute differences between the
    local mean and standard deviation of the composited image just inside
    the shape and of the image just outside it, averaged over channels. Two
    crops of one texture score low even though they differ pixel by pixel,
    and thin, blurred or translucent parts are judged on what they really
    show.

    Args:
        in_stats (tuple): :func:`_masked_stats` of the composite inside.
        img_stats (tuple): :func:`_masked_stats` of the image outside.
        band (np.ndarray): Boolean boundary band.

    Returns:
        float: The contrast score (``inf`` for an empty band).
    """
    if not band.any():
        return float('inf')
    d = (
        np.abs(in_stats[0] - img_stats[0]) +
        np.abs(in_stats[1] - img_stats[1]))
    return float(d[band].mean())


def _match_brightness(tex: np.ndarray, img: np.ndarray, wide: np.ndarray,
                      alpha: np.ndarray, lam: float) -> np.ndarray:
    """Move a texture's mean brightness toward the background's.

    Args:
        tex (np.ndarray): Texture, ``H x W x 3`` float32.
        img (np.ndarray): Current image, ``H x W x 3`` float32.
        wide (np.ndarray): Weights of the background around the object.
        alpha (np.ndarray): Object alpha (weights of the texture).
        lam (float): Fraction of the brightness gap removed (1 = all).

    Returns:
        np.ndarray: The shifted texture.
    """
    m_bg = float((img.mean(2) * wide).sum()) / (float(wide.sum()) + 1e-6)
    m_tx = float((tex.mean(2) * alpha).sum()) / (float(alpha.sum()) + 1e-6)
    return tex + np.float32(lam * (m_bg - m_tx))


def make_scene(
    rng: np.random.Generator,
    img_size: int = 128,
    difficulty: Optional[dict] = None,
    photos: Optional[Sequence[np.ndarray]] = None,
    primary_class: Optional[int] = None,
    version: str = GENERATOR_VERSION
) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Draw one synthetic scene.

    Args:
        rng (np.random.Generator): Random generator; the scene is a pure
            function of its state.
        img_size (int): Side of the square image. Defaults to 128.
        difficulty (dict, optional): Knobs overriding
            :data:`DEFAULT_DIFFICULTY`.
        photos (Sequence[np.ndarray], optional): RGB uint8 source
            photographs. Defaults to :func:`load_photos`.
        primary_class (int, optional): A foreground class that the scene
            must contain (used by :func:`generate_demo_dataset` to balance
            classes); the other classes are drawn at random.
        version (str): Generator version whose knobs ``difficulty``
            overrides. Defaults to :data:`GENERATOR_VERSION`.

    Returns:
        tuple: ``(img, mask, labels)``: ``H x W x 3`` uint8 RGB image,
        ``H x W`` uint8 mask of class indices (0 background) and the sorted
        list of foreground class indices present in the mask.
    """
    cfg = resolve_difficulty(difficulty, version)
    if photos is None:
        photos = load_photos()
    if img_size < 16:
        raise ValueError(f'img_size must be >= 16, got {img_size}')
    groups = _class_photo_groups(len(photos))
    jitter = float(cfg['colour_jitter'])
    if primary_class is not None and not 0 < primary_class <= NUM_FG:
        raise ValueError(f'primary_class must be in [1, {NUM_FG}], got '
                         f'{primary_class}')
    layers, owner = _plan_layers(rng, img_size, cfg, primary_class)

    img = _photo_crop(rng, photos, img_size, cfg['background_crop'], jitter)
    blur_scale = img_size / 128.0
    min_diff = float(cfg['min_object_contrast'])
    stat_k = 2 * int(round(2.5 * blur_scale)) + 1
    for lay in layers:
        photo = None
        if lay['cls'] and rng.random() < cfg['texture_bias']:
            group = groups[lay['cls'] - 1]
            photo = group[int(rng.integers(len(group)))]
        sigma = rng.uniform(*cfg['blur_sigma']) * blur_scale
        pad = int(math.ceil(3 * sigma)) + 1
        patch = cv2.copyMakeBorder(
            lay['alpha'], pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        if sigma > 0:
            patch = cv2.GaussianBlur(patch, (0, 0), sigma)
        alpha = _paste(patch, lay['x0'] - pad, lay['y0'] - pad, img_size)
        alpha *= rng.uniform(*cfg['opacity'])
        match = rng.random() < cfg['contrast_match_prob']
        lam = rng.uniform(*cfg['contrast_match_strength'])
        kw = 2 * int(lay['radius']) + 1
        wide = cv2.blur(lay['full'], (kw, kw))
        inside = (lay['full'] >= 0.5).astype(np.float32)
        frac_in = cv2.blur(inside, (stat_k, stat_k))
        band = (frac_in > 0.15) & (frac_in < 0.85)
        img_stats = _masked_stats(img, 1 - inside, 1 - frac_in, stat_k)
        for attempt in range(4):
            tex = _photo_crop(rng, photos, img_size, cfg['texture_crop'],
                              jitter, photo if attempt < 2 else None)
            if match and attempt < 2:
                tex = _match_brightness(tex, img, wide, alpha, lam)
            comp = img + (tex - img) * alpha[..., None]
            comp_stats = _masked_stats(comp, inside, frac_in, stat_k)
            if _edge_contrast(comp_stats, img_stats, band) >= min_diff:
                break
        img = comp

    # Global illumination gradient and sensor noise.
    amp = rng.uniform(0, cfg['illumination'])
    theta = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-1, 1, img_size, dtype=np.float32)
    grad = (math.cos(theta) * ramp[None, :] + math.sin(theta) * ramp[:, None])
    img = img * (1 + amp * grad)[..., None]
    img = img * 255.0
    noise = rng.uniform(*cfg['noise_sigma'])
    if noise > 0:
        img = img + rng.standard_normal(img.shape, np.float32) * noise
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    lut = np.array([0] + [lay['cls'] for lay in layers], np.uint8)
    mask = lut[owner.astype(np.int32) + 1]
    labels = sorted(int(v) for v in np.unique(mask) if v != 0)
    return img, mask, labels


# ------------------------------------------------------------------ datasets
def _image_rng(seed: int, split: int, index: int) -> np.random.Generator:
    """Generator of one scene: a pure function of (seed, split, index)."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), int(split),
                                int(index)]))


def _primary_class(seed: int, split: int, index: int) -> int:
    """Guaranteed class of a scene, for class balance.

    Each block of ``NUM_FG`` consecutive scenes has every foreground class
    once as its guaranteed class, in a random order that depends only on
    ``(seed, split, block)``.

    Args:
        seed (int): Dataset seed.
        split (int): 0 for train, 1 for val.
        index (int): Scene index within the split.

    Returns:
        int: A foreground class index in ``[1, NUM_FG]``.
    """
    block, pos = divmod(int(index), NUM_FG)
    perm = np.random.default_rng(
        np.random.SeedSequence([int(seed),
                                int(split), block, 1 << 20]))
    return int(perm.permutation(NUM_FG)[pos]) + 1


def _palette_bytes() -> List[int]:
    flat = [v for rgb in DEMO_PALETTE for v in rgb]
    return flat + [0] * (768 - len(flat))


def _write_one(task: tuple) -> Tuple[str, List[int], int]:
    out_dir, seed, split, index, name, img_size, cfg = task
    img, mask, labels = make_scene(
        _image_rng(seed, split, index),
        img_size,
        cfg,
        primary_class=_primary_class(seed, split, index))
    Image.fromarray(img).save(
        osp.join(out_dir, 'JPEGImages', name + '.jpg'), quality=95)
    png = Image.fromarray(mask)
    png.putpalette(_palette_bytes())
    png.save(osp.join(out_dir, 'SegmentationClass', name + '.png'))
    return name, labels, int((mask > 0).sum())


def generate_demo_dataset(out_dir: str,
                          seed: int = 0,
                          num_train: int = 400,
                          num_val: int = 100,
                          img_size: int = 128,
                          difficulty: Optional[dict] = None,
                          workers: int = 1,
                          version: str = GENERATOR_VERSION,
                          num_aux: int = 0) -> dict:
    """Write a synthetic WSSS dataset in the PASCAL VOC layout.

    Layout under ``out_dir``: ``JPEGImages/<id>.jpg`` (RGB, quality 95),
    ``SegmentationClass/<id>.png`` (palette PNG of class indices),
    ``ImageSets/Segmentation/{train,val}.txt``, ``image_labels.json``
    (``{"<id>": [sorted foreground class indices]}``) and ``meta.json``.
    Train images are ``demo_000000`` ... and val images follow them. With
    ``num_aux > 0`` a third split, ``aux``, follows: scenes from their own
    random stream, disjoint from train and val, for whatever must not touch
    a reported split (IG-CAM's influence batch, threshold tuning). Files
    already in ``out_dir`` with the same names are overwritten.

    Args:
        out_dir (str): Output folder (created if missing).
        seed (int): Dataset seed. Defaults to 0.
        num_train (int): Number of training images. Defaults to 400.
        num_val (int): Number of validation images. Defaults to 100.
        img_size (int): Image side in pixels. Defaults to 128.
        difficulty (dict, optional): Knobs overriding
            :data:`DEFAULT_DIFFICULTY`.
        workers (int): Worker processes; the output does not depend on it.
            Defaults to 1.
        version (str): Generator version (a key of
            :data:`DIFFICULTY_PRESETS`); ``difficulty`` overrides its knobs.
            Defaults to :data:`GENERATOR_VERSION`.
        num_aux (int): Number of ``aux`` images. Defaults to 0.

    Returns:
        dict: Summary with ``num_train``, ``num_val``, ``class_freq``
        (per split, images containing each foreground class name),
        ``mean_labels`` (per split), ``fg_fraction`` (mean foreground pixel
        fraction) and ``seconds``.
    """
    if num_train < 0 or num_val < 0 or num_aux < 0 \
            or num_train + num_val == 0:
        raise ValueError('need num_train, num_val, num_aux >= 0 and at '
                         'least one train or val image')
    cfg = resolve_difficulty(difficulty, version)
    t0 = time.time()
    for sub in ('JPEGImages', 'SegmentationClass',
                osp.join('ImageSets', 'Segmentation')):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    load_photos()  # load once before forking workers
    tasks, splits = [], {'train': [], 'val': []}
    if num_aux:
        splits['aux'] = []
    for key, code, count, start in (('train', 0, num_train, 0),
                                    ('val', 1, num_val, num_train),
                                    ('aux', 2, num_aux,
                                     num_train + num_val)):
        if not count:
            continue
        for i in range(count):
            name = f'demo_{start + i:06d}'
            splits[key].append(name)
            tasks.append((out_dir, seed, code, i, name, img_size, cfg))
    if workers > 1:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context('fork' if 'fork' in
                                          methods else None)
        # No cv2.setNumThreads in forked workers: it deadlocks when the
        # parent has already started OpenCV's thread pool.
        with ctx.Pool(workers) as pool:
            results = pool.map(_write_one, tasks, chunksize=8)
    else:
        results = [_write_one(t) for t in tasks]
    labels = {name: lab for name, lab, _ in results}
    fg_px = sum(r[2] for r in results)

    for key, names in splits.items():
        with open(
                osp.join(out_dir, 'ImageSets', 'Segmentation', key + '.txt'),
                'w',
                encoding='utf-8') as f:
            f.write(''.join(n + '\n' for n in names))
    with open(
            osp.join(out_dir, 'image_labels.json'), 'w',
            encoding='utf-8') as f:
        # One image per line: easy to diff and to grep.
        f.write('{\n' + ',\n'.join(f'{json.dumps(k)}: {json.dumps(v)}'
                                   for k, v in sorted(labels.items())) +
                '\n}\n')

    class_freq, mean_labels = {}, {}
    for key, names in splits.items():
        counts = np.zeros(NUM_FG, np.int64)
        for n in names:
            for c in labels[n]:
                counts[c - 1] += 1
        class_freq[key] = {
            DEMO_CLASSES[c + 1]: int(counts[c])
            for c in range(NUM_FG)
        }
        mean_labels[key] = (
            float(np.mean([len(labels[n]) for n in names])) if names else 0.0)
    meta = dict(
        generator='mmwsss.datasets.demo_scenes',
        generator_version=version,
        seed=int(seed),
        num_train=int(num_train),
        num_val=int(num_val),
        num_aux=int(num_aux),
        img_size=int(img_size),
        classes=list(DEMO_CLASSES),
        palette=DEMO_PALETTE,
        difficulty={
            k: list(v) if isinstance(v, tuple) else v
            for k, v in cfg.items()
        },
        class_freq=class_freq,
        fg_fraction=fg_px / float(len(results) * img_size * img_size))
    with open(osp.join(out_dir, 'meta.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write('\n')
    return dict(
        num_train=int(num_train),
        num_val=int(num_val),
        img_size=int(img_size),
        class_freq=class_freq,
        mean_labels=mean_labels,
        fg_fraction=fg_px / float(len(results) * img_size * img_size),
        seconds=time.time() - t0)


# ------------------------------------------------------- difficulty proxies
def colour_only_miou(out_dir: str, bins: int = 16) -> dict:
    """Per-pixel colour classifier baseline (a difficulty proxy).

    Fits a naive-Bayes classifier on a joint RGB histogram (``bins`` per
    channel) of the train split and segments the val split with it. Two
    decision rules are scored: ``'map'`` uses the class priors (dominated by
    the background) and ``'balanced'`` uses equal priors (maximum
    likelihood), which favours foreground recall. Low values for both mean
    colour alone does not segment the scenes.

    Args:
        out_dir (str): Dataset folder written by
            :func:`generate_demo_dataset`.
        bins (int): Histogram bins per channel. Defaults to 16.

    Returns:
        dict: ``miou`` (MAP rule), ``miou_balanced`` and the per-class IoU
        lists ``iou`` and ``iou_balanced`` (background first).
    """
    ncls = len(DEMO_CLASSES)
    nb = bins**3
    shift = 256 // bins

    def read(split: str):
        path = osp.join(out_dir, 'ImageSets', 'Segmentation', split + '.txt')
        with open(path, encoding='utf-8') as f:
            names = [ln.strip() for ln in f if ln.strip()]
        for n in names:
            with Image.open(osp.join(out_dir, 'JPEGImages', n + '.jpg')) as im:
                img = np.asarray(im.convert('RGB')).astype(np.int64)
            with Image.open(
                    osp.join(out_dir, 'SegmentationClass', n + '.png')) as im:
                mask = np.asarray(im).astype(np.int64)
            q = img // shift
            idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
            yield idx.ravel(), mask.ravel()

    counts = np.zeros(ncls * nb, np.float64)
    for idx, mask in read('train'):
        counts += np.bincount(mask * nb + idx, minlength=ncls * nb)
    counts = counts.reshape(ncls, nb)
    prior = counts.sum(1)
    lik = (counts + 1.0) / (prior[:, None] + nb)
    logp = np.log(lik)
    rules = {
        'map': np.argmax(logp + np.log(prior[:, None] + 1.0), 0),
        'balanced': np.argmax(logp, 0)
    }
    conf = {k: np.zeros((ncls, ncls), np.int64) for k in rules}
    for idx, mask in read('val'):
        for k, table in rules.items():
            pred = table[idx]
            conf[k] += np.bincount(
                mask * ncls + pred, minlength=ncls * ncls).reshape(ncls, ncls)
    out = {}
    for k, cm in conf.items():
        inter = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - inter
        valid = cm.sum(1) > 0
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        suffix = '' if k == 'map' else '_balanced'
        out['miou' + suffix] = float(iou[valid].mean())
        out['iou' + suffix] = [float(v) for v in iou]
    return out
