# Copyright (c) mmwsss contributors.
"""Load precomputed object proposals and keep them on the image.

IG-CAM (sec. 3.3) pools features inside object proposals, so the boxes
must follow the image through the training augmentation. mmseg's
``RandomCrop`` neither moves ``gt_bboxes`` nor records its offset, so the
boxes cannot be recomputed from the meta keys; wrapping every geometric
transform would tie the configs to mmwsss copies of mmseg classes.
Instead, :class:`LoadProposals` adds a *coordinate map* to ``seg_fields``:
an ``int32`` map, the size of the image, whose pixel ``(y, x)`` holds
``-(y * W + x) - 1`` (negative, so that padding with any value ``>= 0``
is recognised as "no source pixel"). Every transform that treats
segmentation maps the way it treats the image (mmseg ``Resize``,
``RandomResize``, ``RandomChoiceResize``, ``ResizeShortestEdge``,
``RandomCrop`` with or without ``cat_max_ratio``, ``RandomFlip`` in all
directions, mmseg's ``Pad``-like ops) then moves the map along with it,
nearest-neighbour like the label masks. :func:`align_proposals` (run by
:class:`AlignProposals` or, when no one did, by
:class:`~mmwsss.datasets.transforms.PackWSSSInputs`) reads, for every
output column and row, the source column and row it came from and maps
each box to the bounding box of the output pixels whose source lies in the
box: exactly the bounding box of the box's mask transformed like a label
map. Boxes are clipped to the image by construction and boxes narrower or
lower than ``min_size`` pixels are dropped.

Limits: the transforms between :class:`LoadProposals` and packing must be
axis-aligned (resize, crop, flip, pad) and must resize every seg field.
mmcv's own ``Resize`` resizes only ``gt_seg_map``, and
``mmseg.RandomResize`` builds that one under the ``mmwsss`` scope: give it
``resize_type='mmseg.Resize'`` (see the example of
:class:`LoadProposals`). Both mistakes, and rotations or mosaics, are
detected when the boxes are aligned and refused with an error naming the
image (a resize by less than about ``2 / size`` of the crop may go
unnoticed; it moves the boxes by at most about 2 pixels). The map is
``int32``, which mmcv's ``backend='pillow'`` resize refuses: keep the
default ``cv2`` backend.
"""
import os.path as osp
from io import BytesIO
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmwsss.registry import TRANSFORMS

COORD_KEY = 'proposal_coord_map'
SRC_SHAPE_KEY = 'proposal_src_shape'
MIN_SIZE_KEY = 'proposal_min_size'


def proposal_path(proposal_dir: str, img_path: str) -> str:
    """The proposal file of an image: ``<proposal_dir>/<stem>.npz``."""
    stem = osp.splitext(osp.basename(img_path))[0]
    return osp.join(proposal_dir, stem + '.npz')


def load_proposal_file(path: str,
                       img_shape: Optional[tuple] = None,
                       backend_args: Optional[dict] = None) -> np.ndarray:
    """Read and check the ``boxes`` of a proposal ``.npz`` file.

    Args:
        path (str): File written by ``tools/generate_proposals.py``.
        img_shape (tuple, optional): ``(H, W)`` of the image the boxes
            belong to; checked against the file's ``img_shape`` and the box
            coordinates.
        backend_args (dict, optional): MMEngine file backend arguments.

    Returns:
        np.ndarray: ``(N, 4)`` float32 boxes ``x1, y1, x2, y2``.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is unreadable or its boxes are invalid.
    """
    try:
        data = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(
            f'proposal file not found: {path} (write the proposals with '
            'tools/generate_proposals.py)') from None
    try:
        with np.load(BytesIO(data), allow_pickle=False) as npz:
            if 'boxes' not in npz.files:
                raise ValueError(f'no "boxes" array (has {npz.files})')
            boxes = npz['boxes']
            shape = npz['img_shape'] if 'img_shape' in npz.files else None
    except ValueError as e:
        raise ValueError(f'cannot read proposal file {path}: {e}') from None
    except OSError as e:
        raise ValueError(f'cannot read proposal file {path}: {e}') from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'proposal file {path}: boxes must have shape '
                         f'(N, 4), got {boxes.shape}')
    if not np.issubdtype(boxes.dtype, np.number) \
            or not np.isfinite(boxes).all():
        raise ValueError(f'proposal file {path}: boxes must be finite '
                         'numbers')
    boxes = boxes.astype(np.float32)
    if img_shape is not None:
        h, w = int(img_shape[0]), int(img_shape[1])
        if shape is not None and tuple(int(v)
                                       for v in np.ravel(shape)) != (h, w):
            raise ValueError(
                f'proposal file {path} was made for a '
                f'{int(shape[1])}x{int(shape[0])} image but the image is '
                f'{w}x{h}')
        bad = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | \
            (boxes[:, 2] > w) | (boxes[:, 3] > h) | \
            (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f'proposal file {path}: box {i} {boxes[i].tolist()} is '
                f'empty or outside the {w}x{h} image')
    return boxes


def make_coord_map(h: int, w: int) -> np.ndarray:
    """``(h, w)`` int32 map with ``-(y * w + x) - 1`` at pixel ``(y, x)``."""
    if h * w >= 2**31 - 1:
        raise ValueError(f'image of {w}x{h} pixels is too large for an '
                         'int32 coordinate map')
    return -np.arange(1, h * w + 1, dtype=np.int32).reshape(h, w)


def _check_resized(results: dict, xs: np.ndarray, ys: np.ndarray,
                   where: str) -> None:
    """Refuse a map left at its size while the image was resized.

    mmcv's ``Resize`` resizes ``gt_seg_map`` only; a crop after it gives
    image and map the same shape, so the shape test cannot see it. A map
    that was not resampled has unit steps between neighbouring columns
    and rows; after a resize by ``s`` there is a repeated or skipped
    source line about every ``1 / |1 - 1/s|`` lines, so unit steps over
    ``n`` lines with ``n * |1 - 1/s| > 2`` mean the map missed the resize
    (``scale_factor`` is that of the last resize).
    """
    factor = results.get('scale_factor', None)
    if factor is None:
        return
    factor = np.broadcast_to(np.asarray(factor, dtype=np.float64), (2, ))
    for coords, s in ((xs, factor[0]), (ys, factor[1])):
        if s <= 0 or len(coords) < 2:
            continue
        unit = np.abs(np.diff(coords)).max() == 1 and \
            np.abs(np.diff(coords)).min() == 1
        if unit and len(coords) * abs(1. - 1. / s) > 2:
            raise ValueError(
                f'{where}: the image was resized (scale_factor '
                f'{tuple(factor.tolist())}) but not the proposal '
                'coordinate map: a resize that ignores seg_fields ran '
                '(mmcv\'s Resize; mmseg.RandomResize builds it under the '
                'mmwsss scope unless given resize_type=\'mmseg.Resize\')')


def align_proposals(results: dict) -> dict:
    """Move ``results['proposals']`` to the current image geometry.

    Reads the coordinate map added by :class:`LoadProposals`, replaces
    ``proposals`` by the boxes of the transformed image (clipped, boxes
    narrower or lower than ``results['proposal_min_size']`` dropped) and
    ``proposal_ranks`` accordingly, and removes the map. Does nothing
    when there is no map (already aligned).

    Args:
        results (dict): Pipeline results.

    Returns:
        dict: ``results``, updated in place.
    """
    cmap = results.pop(COORD_KEY, None)
    if cmap is None:
        return results
    seg_fields = results.get('seg_fields', [])
    if COORD_KEY in seg_fields:
        seg_fields.remove(COORD_KEY)
    where = results.get('img_path', '<unknown image>')
    cmap = np.asarray(cmap)
    img_hw = tuple(results['img'].shape[:2]) if 'img' in results \
        else tuple(results['img_shape'][:2])
    if cmap.ndim != 2 or cmap.shape != img_hw:
        raise ValueError(
            f'{where}: the proposal coordinate map is {cmap.shape} but the '
            f'image is {img_hw}: a transform after LoadProposals changed the '
            'image but not its seg_fields (mmcv\'s Resize: use mmseg.Resize, '
            'and give mmseg.RandomResize resize_type=\'mmseg.Resize\')')
    src_h, src_w = results[SRC_SHAPE_KEY]
    valid = cmap < 0
    idx = -cmap.astype(np.int64) - 1
    col_ok, row_ok = valid.any(axis=0), valid.any(axis=1)
    if not valid.any():
        col_x = np.full(img_hw[1], -1, dtype=np.int64)
        row_y = np.full(img_hw[0], -1, dtype=np.int64)
    else:
        r0, c0 = int(np.argmax(row_ok)), int(np.argmax(col_ok))
        col_x = np.where(col_ok, idx[r0] % src_w, -1)
        row_y = np.where(row_ok, idx[:, c0] // src_w, -1)
        expect = row_y[:, None] * src_w + col_x[None, :]
        separable = np.array_equal(valid, row_ok[:, None] & col_ok[None, :]) \
            and np.array_equal(idx[valid], expect[valid]) \
            and (idx[valid] < src_h * src_w).all()
        if not separable:
            raise ValueError(
                f'{where}: the transforms after LoadProposals are not '
                'axis-aligned resizes, crops, flips or pads (rotation, '
                'mosaic?); proposals cannot follow them')
        _check_resized(results, col_x[col_ok], row_y[row_ok], where)
    boxes = np.asarray(results['proposals'], dtype=np.float32)
    ranks = np.asarray(
        results.get('proposal_ranks', np.arange(len(boxes))), dtype=np.int64)
    # a source pixel belongs to a box when its centre lies inside
    cx = col_x.astype(np.float32) + 0.5
    cy = row_y.astype(np.float32) + 0.5
    in_x = (cx[None, :] >= boxes[:, :1]) & (cx[None, :] < boxes[:, 2:3]) \
        & col_ok[None, :]
    in_y = (cy[None, :] >= boxes[:, 1:2]) & (cy[None, :] < boxes[:, 3:4]) \
        & row_ok[None, :]
    keep = in_x.any(axis=1) & in_y.any(axis=1)
    out = np.zeros((len(boxes), 4), dtype=np.float32)
    out[:, 0] = np.argmax(in_x, axis=1)
    out[:, 2] = in_x.shape[1] - np.argmax(in_x[:, ::-1], axis=1)
    out[:, 1] = np.argmax(in_y, axis=1)
    out[:, 3] = in_y.shape[1] - np.argmax(in_y[:, ::-1], axis=1)
    min_size = float(results.get(MIN_SIZE_KEY, 1.))
    keep &= (out[:, 2] - out[:, 0] >= min_size) & \
        (out[:, 3] - out[:, 1] >= min_size)
    results['proposals'] = out[keep]
    results['proposal_ranks'] = ranks[keep]
    return results


@TRANSFORMS.register_module()
class LoadProposals(BaseTransform):
    """Load the object proposals of an image (IG-CAM sec. 3.3).

    Reads ``<proposal_dir>/<stem>.npz`` (written by
    ``tools/generate_proposals.py``; ``stem`` is the image file name
    without extension) and starts tracking the boxes through the following
    geometric transforms (see the module docstring). Place it right after
    ``LoadImageFromFile``; the boxes are final after :class:`AlignProposals`
    or in :class:`~mmwsss.datasets.transforms.PackWSSSInputs`, which packs
    them as ``data_sample.proposals`` (``InstanceData`` with ``bboxes``
    and ``ranks``).

    Required Keys:

    - img
    - img_path

    Added Keys:

    - proposals (np.float32, (N, 4), ``x1, y1, x2, y2`` pixel edges)
    - proposal_ranks (np.int64, (N, ): row in the file, 0 = best ranked)
    - proposal_coord_map, proposal_src_shape, proposal_min_size (private)

    Modified Keys:

    - seg_fields

    Example::

        train_pipeline = [
            dict(type='mmseg.LoadImageFromFile'),
            dict(type='LoadProposals',
                 proposal_dir='data/VOCdevkit/VOC2012/proposals/ss-fast'),
            dict(type='mmseg.RandomResize', scale=(512, 512),
                 ratio_range=(0.5, 1.5), keep_ratio=True,
                 resize_type='mmseg.Resize'),  # resizes seg_fields
            dict(type='mmseg.RandomCrop', crop_size=(512, 512)),
            dict(type='mmseg.RandomFlip', prob=0.5),
            dict(type='PackWSSSInputs'),
        ]

    Args:
        proposal_dir (str): Folder of the ``<stem>.npz`` files.
        max_num (int, optional): Keep the ``max_num`` best ranked boxes of
            the file. Defaults to None (all).
        min_size (float): After the transforms, drop boxes narrower or
            lower than this many pixels. Defaults to 1.
        backend_args (dict, optional): MMEngine file backend arguments.
    """

    def __init__(self,
                 proposal_dir: str,
                 max_num: Optional[int] = None,
                 min_size: float = 1.,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__()
        if not isinstance(proposal_dir, str) or not proposal_dir:
            raise TypeError(f'proposal_dir must be a folder path, got '
                            f'{proposal_dir!r}')
        if max_num is not None and (int(max_num) != max_num or max_num < 0):
            raise ValueError(f'max_num must be a count >= 0, got {max_num}')
        if not min_size >= 0:
            raise ValueError(f'min_size must be >= 0, got {min_size}')
        self.proposal_dir = proposal_dir
        self.max_num = max_num
        self.min_size = float(min_size)
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Load the boxes and add the coordinate map.

        Args:
            results (dict): Pipeline results with a loaded image.

        Returns:
            dict: ``results`` with ``proposals`` and the tracking keys.
        """
        if 'img' not in results or not results.get('img_path'):
            # an array input (LoadImageFromNDArray) has img_path None
            raise KeyError('LoadProposals needs "img" and "img_path" (the '
                           'proposals are found by the image file name): '
                           'put it after LoadImageFromFile')
        h, w = results['img'].shape[:2]
        ori = tuple(results.get('ori_shape', (h, w))[:2])
        if (h, w) != ori or COORD_KEY in results:
            raise ValueError(
                f'{results["img_path"]}: LoadProposals must come right after '
                'LoadImageFromFile, before any geometric transform (the '
                f'image is {w}x{h}, originally {ori[1]}x{ori[0]})')
        path = proposal_path(self.proposal_dir, results['img_path'])
        boxes = load_proposal_file(path, (h, w), self.backend_args)
        if self.max_num is not None:
            boxes = boxes[:self.max_num]
        results['proposals'] = boxes
        results['proposal_ranks'] = np.arange(len(boxes), dtype=np.int64)
        results[COORD_KEY] = make_coord_map(h, w)
        results[SRC_SHAPE_KEY] = (h, w)
        results[MIN_SIZE_KEY] = self.min_size
        seg_fields = results.setdefault('seg_fields', [])
        if COORD_KEY not in seg_fields:
            seg_fields.append(COORD_KEY)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(proposal_dir='
                f'{self.proposal_dir!r}, max_num={self.max_num}, '
                f'min_size={self.min_size})')


@TRANSFORMS.register_module()
class AlignProposals(BaseTransform):
    """Finish moving the proposals to the transformed image.

    Optional: :class:`~mmwsss.datasets.transforms.PackWSSSInputs` does the
    same when the proposals are still pending. Use it when a later
    transform needs final boxes in ``results['proposals']``; no geometric
    transform may follow it.

    Required Keys:

    - img, proposals, proposal_coord_map, proposal_src_shape

    Modified Keys:

    - proposals, proposal_ranks, seg_fields
    """

    def transform(self, results: dict) -> dict:
        """Align ``results['proposals']``; see :func:`align_proposals`."""
        if 'proposals' not in results:
            raise KeyError(f'{results.get("img_path", "<unknown image>")}: '
                           'no proposals: put LoadProposals before '
                           'AlignProposals')
        return align_proposals(results)
