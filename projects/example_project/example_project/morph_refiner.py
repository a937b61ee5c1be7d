# Copyright (c) mmwsss contributors.
from typing import Optional, Sequence

import cv2
import numpy as np

from mmwsss.refine import morph_close
from mmwsss.registry import TASK_UTILS


@TASK_UTILS.register_module()
class ExampleMorphRefiner:
    """Arg-max of CAM scores cleaned by per-class closing and opening.

    A refinement step has the call signature of
    :class:`mmwsss.refine.DenseCRF` and is built by ``CAMSegmentor`` from
    ``test_cfg.refine`` (or by ``tools/make_pseudo_labels.py``):

    1. label map: arg-max over the background channel and the image's
       classes (ties go to the lower class index, hence to background);
    2. closing: :func:`mmwsss.refine.morph_close` with ``close_size``
       fills background holes and gaps inside each class (smaller classes
       first; foreground is never overwritten);
    3. opening: each foreground class is opened with an ``open_size``
       structuring element and the pixels it removes (specks and spurs
       thinner than the element) become background. Outside the image
       counts as background, so specks touching the border are removed
       too (OpenCV's default border would keep them).

    Args:
        close_size (int): Side of the closing element; <= 1 skips the
            closing. Defaults to 5.
        open_size (int): Side of the opening element; <= 1 skips the
            opening. Defaults to 3.
        kernel_shape (str): ``'rect'`` or ``'ellipse'``. Defaults to
            ``'rect'``.
    """

    SHAPES = {'rect': cv2.MORPH_RECT, 'ellipse': cv2.MORPH_ELLIPSE}

    def __init__(self,
                 close_size: int = 5,
                 open_size: int = 3,
                 kernel_shape: str = 'rect') -> None:
        if kernel_shape not in self.SHAPES:
            raise ValueError(f"kernel_shape must be 'rect' or 'ellipse', "
                             f'got {kernel_shape!r}')
        self.close_size = int(close_size)
        self.open_size = int(open_size)
        self.kernel_shape = kernel_shape

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(close_size={self.close_size}, '
                f'open_size={self.open_size}, '
                f'kernel_shape={self.kernel_shape!r})')

    @staticmethod
    def _keys(scores: np.ndarray,
              img_labels: Optional[Sequence[int]]) -> np.ndarray:
        """Background then the image's classes (or nonzero channels)."""
        if img_labels is None:
            flat = scores[1:].reshape(scores.shape[0] - 1, -1)
            fg = np.flatnonzero(np.any(flat != 0, axis=1)) + 1
        else:
            fg = np.array(sorted({int(c) for c in img_labels}), dtype=int)
            if fg.size and (fg[0] < 1 or fg[-1] >= scores.shape[0]):
                raise ValueError(
                    f'img_labels {fg.tolist()} must be foreground classes '
                    f'in [1, {scores.shape[0] - 1}]')
        return np.concatenate([[0], fg]).astype(np.int64)

    def _open(self, label_map: np.ndarray) -> np.ndarray:
        """Per-class opening; removed pixels become background."""
        out = label_map.copy()
        if self.open_size <= 1:
            return out
        kernel = cv2.getStructuringElement(self.SHAPES[self.kernel_shape],
                                           (self.open_size, self.open_size))
        for cls in np.unique(label_map):
            if cls == 0:
                continue
            mask = (label_map == cls).astype(np.uint8)
            kept = cv2.morphologyEx(
                mask,
                cv2.MORPH_OPEN,
                kernel,
                borderType=cv2.BORDER_CONSTANT,
                borderValue=0) > 0
            out[(mask > 0) & ~kept] = 0
        return out

    def __call__(self,
                 img: np.ndarray,
                 scores: np.ndarray,
                 img_labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """Refine scores into a label map.

        Args:
            img (np.ndarray): uint8 RGB image, (H, W, 3). Unused (the
                morphology looks at the labels only), kept for the
                refiner interface.
            scores (np.ndarray): Class scores (C, H, W), channel 0 is the
                background.
            img_labels (Sequence[int], optional): Foreground class indices
                of the image. If None, every foreground channel with a
                nonzero score is used.

        Returns:
            np.ndarray: int64 label map (H, W) with values among
            ``[0] + img_labels``.
        """
        scores = np.asarray(scores)
        if scores.ndim != 3 or scores.shape[0] < 1:
            raise ValueError('scores must have shape (C, H, W) with C >= 1, '
                             f'got shape {scores.shape}')
        keys = self._keys(scores, img_labels)
        label_map = keys[np.argmax(scores[keys], axis=0)]
        label_map = morph_close(
            label_map,
            kernel_size=self.close_size,
            kernel_shape=self.kernel_shape)
        return self._open(label_map).astype(np.int64)
