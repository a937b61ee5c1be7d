# Copyright (c) mmwsss contributors.
"""Random affine warps that keep object proposals on the image."""
import math
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmwsss.registry import TRANSFORMS
from .proposals import COORD_KEY, MIN_SIZE_KEY, align_proposals

Pair = Tuple[float, float]


def affine_matrix(width: int,
                  height: int,
                  angle: float = 0.,
                  scale: float = 1.,
                  shear: Pair = (0., 0.),
                  translate: Pair = (0., 0.)) -> np.ndarray:
    """``3 x 3`` affine map about the image centre, in pixel-edge coordinates.

    ``x' = T(c + t) Sh R S T(-c) x`` with ``c = (w / 2, h / 2)`` (so a
    point ``(x, y)`` of the continuous image plane, pixel ``(i, j)``
    covering ``[j, j + 1) x [i, i + 1)``, goes to ``M [x, y, 1]``).

    Args:
        width (int): Image width.
        height (int): Image height.
        angle (float): Counter-clockwise rotation in degrees (as seen with
            the y axis pointing down, like ``cv2.getRotationMatrix2D``).
        scale (float): Isotropic scale.
        shear (tuple[float, float]): Shear angles in degrees along x and y.
        translate (tuple[float, float]): Translation in pixels.

    Returns:
        np.ndarray: float64 ``(3, 3)`` matrix.
    """
    cx, cy = width / 2., height / 2.
    a = math.radians(angle)
    rot = np.array([[math.cos(a), math.sin(a), 0.],
                    [-math.sin(a), math.cos(a), 0.], [0., 0., 1.]])
    sx, sy = (math.tan(math.radians(s)) for s in shear)
    shr = np.array([[1., sx, 0.], [sy, 1., 0.], [0., 0., 1.]])
    scl = np.diag([scale, scale, 1.])
    to_c = np.array([[1., 0., -cx], [0., 1., -cy], [0., 0., 1.]])
    back = np.array([[1., 0., cx + translate[0]], [0., 1., cy + translate[1]],
                     [0., 0., 1.]])
    return back @ shr @ rot @ scl @ to_c


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray, width: int,
               height: int) -> np.ndarray:
    """Axis-aligned bounds of the warped boxes, clipped to the image.

    Args:
        boxes (np.ndarray): ``(N, 4)`` ``x1, y1, x2, y2`` pixel edges.
        matrix (np.ndarray): ``(3, 3)`` affine map.
        width (int): Output width.
        height (int): Output height.

    Returns:
        np.ndarray: ``(N, 4)`` float32 boxes.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = boxes.T
    xs = np.stack([x1, x2, x2, x1], 1)
    ys = np.stack([y1, y1, y2, y2], 1)
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ matrix[:2].T  # (N,4,2)
    out = np.concatenate([pts.min(1), pts.max(1)], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out.astype(np.float32)


@TRANSFORMS.register_module()
class RandomGeometricWarp(BaseTransform):
    """Random affine warp of the image, its seg maps and its proposals.

    The "geometric warps" of IG-CAM's third training stage (sec. 3.6):
    rotation, isotropic scale, shear and translation about the image
    centre, output of the same size. The image is resampled bilinearly
    (border ``img_border_value``), every map in ``seg_fields`` by nearest
    neighbour (border ``seg_border_value``, 255 = ignore).

    Proposals: axis-aligned transforms are tracked by
    :class:`~mmwsss.datasets.transforms.LoadProposals`' coordinate map,
    which cannot follow a rotation. The pending boxes are therefore first
    aligned to the current image (:func:`align_proposals`), then their
    four corners are warped and replaced by their axis-aligned bounds
    (clipped; boxes narrower or lower than the ``LoadProposals``
    ``min_size`` are dropped with their ranks). Put this transform after
    the resize / crop / flip transforms: no geometric transform may follow
    it when proposals are used.

    Randomness: NumPy's global RNG (seeded per dataloader worker by
    MMEngine).

    Required Keys:

    - img

    Modified Keys:

    - img, img_shape, seg_fields maps, proposals, proposal_ranks

    Added Keys:

    - warp_matrix (np.float64 ``(3, 3)``; identity when not applied)

    Args:
        prob (float): Probability to warp. Defaults to 0.5.
        max_rotate_degree (float): Rotation in ``[-r, r]`` degrees.
            Defaults to 15.
        scale_range (tuple[float, float]): Isotropic scale range. Defaults
            to ``(0.9, 1.1)``.
        max_shear_degree (float): Shear in ``[-s, s]`` degrees along each
            axis. Defaults to 5.
        max_translate_ratio (float): Translation in ``[-t, t]`` times the
            width / height. Defaults to 0.05.
        img_border_value (float | tuple): Fill of the image border.
            Defaults to 0.
        seg_border_value (int): Fill of the seg maps. Defaults to 255.
    """

    def __init__(self,
                 prob: float = 0.5,
                 max_rotate_degree: float = 15.,
                 scale_range: Sequence[float] = (0.9, 1.1),
                 max_shear_degree: float = 5.,
                 max_translate_ratio: float = 0.05,
                 img_border_value: Union[float, Sequence[float]] = 0,
                 seg_border_value: int = 255) -> None:
        super().__init__()
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'bad scale_range {scale_range}')
        if max_rotate_degree < 0 or max_shear_degree < 0 or \
                max_translate_ratio < 0:
            raise ValueError('rotation, shear and translation ranges must '
                             'be >= 0')
        self.prob = prob
        self.max_rotate_degree = max_rotate_degree
        self.scale_range = tuple(scale_range)
        self.max_shear_degree = max_shear_degree
        self.max_translate_ratio = max_translate_ratio
        self.img_border_value = img_border_value
        self.seg_border_value = seg_border_value

    def random_matrix(self, width: int, height: int) -> np.ndarray:
        """Draw a warp for a ``width x height`` image."""
        r = self.max_rotate_degree
        s = self.max_shear_degree
        t = self.max_translate_ratio
        return affine_matrix(
            width,
            height,
            angle=np.random.uniform(-r, r),
            scale=np.random.uniform(*self.scale_range),
            shear=(np.random.uniform(-s, s), np.random.uniform(-s, s)),
            translate=(np.random.uniform(-t, t) * width,
                       np.random.uniform(-t, t) * height))

    def warp(self, results: dict, matrix: np.ndarray) -> dict:
        """Apply a given ``(3, 3)`` warp to ``results``."""
        img = results['img']
        h, w = img.shape[:2]
        if 'proposals' in results and COORD_KEY in results:
            align_proposals(results)
        # OpenCV indexes pixel centres: conjugate by the half-pixel shift
        half = np.array([[1., 0., .5], [0., 1., .5], [0., 0., 1.]])
        m = (np.linalg.inv(half) @ matrix @ half)[:2]
        border = self.img_border_value
        if isinstance(border, (int, float)):
            border = (border, ) * (img.shape[2] if img.ndim == 3 else 1)
        results['img'] = cv2.warpAffine(
            img,
            m, (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=tuple(float(b) for b in border))
        for key in results.get('seg_fields', []):
            results[key] = cv2.warpAffine(
                results[key],
                m, (w, h),
                flags=cv2.INTER_NEAREST,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=self.seg_border_value)
        if 'proposals' in results:
            boxes = warp_boxes(results['proposals'], matrix, w, h)
            ranks = np.asarray(
                results.get('proposal_ranks', np.arange(len(boxes))),
                dtype=np.int64)
            min_size = float(results.get(MIN_SIZE_KEY, 1.))
            keep = (boxes[:, 2] - boxes[:, 0] >= min_size) & \
                (boxes[:, 3] - boxes[:, 1] >= min_size)
            results['proposals'] = boxes[keep]
            results['proposal_ranks'] = ranks[keep]
        results['img_shape'] = results['img'].shape[:2]
        results['warp_matrix'] = matrix
        return results

    def transform(self, results: dict) -> Optional[dict]:
        """Warp with probability ``prob``."""
        if np.random.rand() >= self.prob:
            results['warp_matrix'] = np.eye(3)
            return results
        h, w = results['img'].shape[:2]
        return self.warp(results, self.random_matrix(w, h))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'max_rotate_degree={self.max_rotate_degree}, '
                f'scale_range={self.scale_range}, '
                f'max_shear_degree={self.max_shear_degree}, '
                f'max_translate_ratio={self.max_translate_ratio})')
