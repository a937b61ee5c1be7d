# Copyright (c) mmwsss contributors.
"""A toy "own data" folder: shapes on noise, a labels CSV, a few masks.

:func:`write_shapes_folder` writes what a user brings to
:class:`~mmwsss.datasets.WSSSFolderDataset`, so that the documented
command chain (``docs/en/user_guides/own_data.md``) and its end-to-end test
run without any download::

    OUT/images/<name>.<jpg|png|JPEG|bmp|webp|tif>   mixed suffixes
    OUT/labels.csv                                  image,labels (names)
    OUT/masks/<name>.png                            first ``num_masks`` only
    OUT/new_images/new_<i>.jpg                      unlabelled, to predict

Each image holds one or two filled shapes (circle, square, triangle) of a
random colour on a smooth random background with noise. Deterministic per
``seed``; written to a temporary folder renamed onto ``OUT`` when complete.
"""
import csv
import io
import os
import os.path as osp
import shutil
from typing import Dict, List, Tuple

import cv2
import numpy as np

#: Classes of the toy folder, background first.
SHAPES_CLASSES = ('background', 'circle', 'square', 'triangle')
#: Suffixes cycled through by the image files (the dataset accepts any).
SHAPES_SUFFIXES = ('.jpg', '.png', '.JPEG', '.bmp', '.webp', '.tif')


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    low = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 12, size=img.shape).astype(np.float32)
    return img


def _draw(mask: np.ndarray, cls: int, cx: float, cy: float, r: float) -> None:
    if cls == 1:
        cv2.circle(mask, (int(cx), int(cy)), int(r), 1, -1)
    elif cls == 2:
        cv2.rectangle(mask, (int(cx - r), int(cy - r)),
                      (int(cx + r), int(cy + r)), 1, -1)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]],
                       np.int32)
        cv2.fillPoly(mask, [pts], 1)


def make_shapes_image(rng: np.random.Generator,
                      size: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """One image (RGB uint8) and its label map (0 background, 1..3).

    One or two shapes of distinct classes; a later shape covers an
    earlier one where they overlap.
    """
    img = _background(rng, size)
    label = np.zeros((size, size), np.uint8)
    n = int(rng.integers(1, 3))
    classes = rng.choice(np.arange(1, len(SHAPES_CLASSES)), n, replace=False)
    for cls in classes:
        r = rng.uniform(0.14, 0.24) * size
        cx, cy = rng.uniform(r, size - r, size=2)
        mask = np.zeros((size, size), np.uint8)
        _draw(mask, int(cls), cx, cy, r)
        colour = rng.uniform(0, 255, size=3)
        img[mask > 0] = colour + rng.normal(0, 8, size=(int(mask.sum()), 3))
        label[mask > 0] = int(cls)
    img = np.clip(img, 0, 255).astype(np.uint8)
    present = sorted(int(c) for c in np.unique(label) if c)
    if not present:  # a shape fully covered: draw it again
        return make_shapes_image(rng, size)
    return img, label


def _encode(img: np.ndarray, suffix: str) -> bytes:
    ok, buf = cv2.imencode(suffix.lower(),
                           np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise RuntimeError(f'OpenCV cannot encode {suffix}')
    return buf.tobytes()


def write_shapes_folder(out_dir: str,
                        num_images: int = 16,
                        img_size: int = 64,
                        seed: int = 0,
                        num_masks: int = 4,
                        num_new: int = 4) -> Dict[str, object]:
    """Write the toy folder (see the module docstring).

    Args:
        out_dir (str): Output folder; must not exist or be empty.
        num_images (int): Labelled images. Defaults to 16.
        img_size (int): Image side in pixels. Defaults to 64.
        seed (int): Random seed. Defaults to 0.
        num_masks (int): Images (the first ones) that get a mask.
        num_new (int): Unlabelled images in ``new_images/``.

    Returns:
        dict: ``root``, ``images`` (file names), ``labels`` (name to class
        indices) and ``classes``.
    """
    from mmwsss.utils.io import encode_label_png
    from mmwsss.visualization.drawing import voc_palette
    if num_images < 1 or img_size < 16:
        raise ValueError('num_images must be >= 1 and img_size >= 16')
    if osp.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f'{out_dir} exists and is not empty')
    rng = np.random.default_rng(seed)
    tmp = osp.abspath(out_dir).rstrip('/') + f'.tmp-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    palette = voc_palette(len(SHAPES_CLASSES))
    names: List[str] = []
    labels: Dict[str, List[int]] = {}
    try:
        for sub in ('images', 'masks', 'new_images'):
            os.makedirs(osp.join(tmp, sub))
        rows = []
        for i in range(num_images):
            img, label = make_shapes_image(rng, img_size)
            suffix = SHAPES_SUFFIXES[i % len(SHAPES_SUFFIXES)]
            name = f'shape_{i:03d}{suffix}'
            with open(osp.join(tmp, 'images', name), 'wb') as f:
                f.write(_encode(img, suffix))
            present = sorted(int(c) for c in np.unique(label) if c)
            names.append(name)
            labels[name] = present
            rows.append((name, ';'.join(SHAPES_CLASSES[c] for c in present)))
            if i < num_masks:
                with open(osp.join(tmp, 'masks', f'shape_{i:03d}.png'),
                          'wb') as f:
                    f.write(encode_label_png(label, palette))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator='\n')
        writer.writerow(('image', 'labels'))
        writer.writerows(rows)
        with open(osp.join(tmp, 'labels.csv'), 'w', encoding='utf-8') as f:
            f.write(buf.getvalue())
        for i in range(num_new):
            img, _ = make_shapes_image(rng, img_size)
            with open(osp.join(tmp, 'new_images', f'new_{i:03d}.jpg'),
                      'wb') as f:
                f.write(_encode(img, '.jpg'))
        if osp.isdir(out_dir):
            os.rmdir(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(
        root=out_dir,
        images=names,
        labels=labels,
        classes=list(SHAPES_CLASSES))
