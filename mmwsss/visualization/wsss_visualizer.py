# Copyright (c) mmwsss contributors.
"""The WSSS visualizer: CAMs, seeds, refined labels and method maps."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import master_only
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from mmwsss.registry import VISUALIZERS
from .drawing import (TileSize, cam_overlay, colourise, fit_tile, make_grid,
                      save_png)

#: Panels of :meth:`WSSSVisualizer.cam_panels`, in drawing order.
PANEL_ORDER = ('image', 'cams', 'influence', 'proposals', 'coarse',
               'refined_cam', 'seed', 'refined', 'gt')


def _numpy(x) -> np.ndarray:
    """Array of a PixelData / tensor / array field."""
    if hasattr(x, 'data') and not isinstance(x, (np.ndarray, torch.Tensor)):
        x = x.data
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() \
            else x.detach().cpu().numpy()
    return np.asarray(x)


def _label_map(x) -> np.ndarray:
    arr = _numpy(x)
    return arr[0] if arr.ndim == 3 else arr


@VISUALIZERS.register_module()
class WSSSVisualizer(SegLocalVisualizer):
    """MMSeg's local visualizer plus the pictures of weak supervision.

    Everything :class:`mmseg.visualization.SegLocalVisualizer` draws
    (``add_datasample`` for ground truth and predictions, used by
    ``mmseg.SegVisualizationHook`` and ``tools/test.py --show-dir``), and:

    - :meth:`draw_cam`: a CAM (``[0, 1]``) as a JET heat map blended 50/50
      over the image;
    - :meth:`draw_label`: seeds, refined labels or ground truth in the
      dataset palette (``dataset_meta['palette']``; 255 white);
    - :meth:`draw_influence`: an IG-CAM influence map (non-negative,
      divided by its maximum) as a heat map;
    - :meth:`draw_proposals`: object proposals as boxes (MMEngine's
      ``draw_bboxes``);
    - :meth:`cam_panels` / :meth:`draw_cam_sample`: all of the above for
      one result of :func:`mmwsss.apis.inference_cam` (per-class CAMs,
      IG-CAM influence and proposals, CamGuide coarse and refined maps,
      seed, refined label, ground truth) as one titled row;
    - :meth:`add_cam_sample`: that row sent to every vis backend (local
      files, TensorBoard, ...) and/or written to a file;
    - :meth:`make_grid`: rows of images x columns of methods or steps with
      titles and a class legend (used by ``tools/run_demo.py`` and
      ``tools/analysis_tools/wsss_results.py``).

    The pixel functions live in :mod:`mmwsss.visualization.drawing`.

    Args:
        name (str): Instance name. Defaults to ``'visualizer'``.
        image (np.ndarray, optional): Image to draw on (RGB).
        vis_backends (list[dict], optional): Vis backend configs.
        save_dir (str, optional): Folder of the backends' files.
        classes (list[str], optional): Class names (background first).
        palette (list, optional): Class colours.
        dataset_name (str, optional): MMSeg dataset alias for default
            classes / palette.
        alpha (float): Label opacity of ``add_datasample`` and of
            :meth:`draw_label` over an image. Defaults to 0.8 (MMSeg's).
        cam_alpha (float): Heat-map weight of :meth:`draw_cam`. Defaults
            to 0.5.
        max_proposals (int): Boxes drawn by :meth:`draw_proposals` (the
            best ranked first). Defaults to 10.
        tile (int): Longer side of a panel in :meth:`draw_cam_sample`
            (aspect ratio kept). Defaults to 160.
        **kwargs: Passed to :class:`mmengine.visualization.Visualizer`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[Dict]] = None,
                 save_dir: Optional[str] = None,
                 classes: Optional[List[str]] = None,
                 palette: Optional[List] = None,
                 dataset_name: Optional[str] = None,
                 alpha: float = 0.8,
                 cam_alpha: float = 0.5,
                 max_proposals: int = 10,
                 tile: int = 160,
                 **kwargs) -> None:
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir,
            classes=classes,
            palette=palette,
            dataset_name=dataset_name,
            alpha=alpha,
            **kwargs)
        # SegLocalVisualizer.__init__ passes (palette, classes) to
        # set_dataset_meta(classes, palette): set them the right way round
        self.set_dataset_meta(classes, palette, dataset_name)
        if not 0 <= cam_alpha <= 1:
            raise ValueError(f'cam_alpha must be in [0, 1], got {cam_alpha}')
        self.cam_alpha = float(cam_alpha)
        self.max_proposals = int(max_proposals)
        self.tile = int(tile)

    # ------------------------------------------------------------------
    # meta information
    @property
    def class_names(self) -> List[str]:
        """Class names of ``dataset_meta`` (background first)."""
        return list(self.dataset_meta.get('classes') or [])

    @property
    def palette(self) -> List[List[int]]:
        """Palette of ``dataset_meta``."""
        return [list(c) for c in (self.dataset_meta.get('palette') or [])]

    def class_name(self, idx: int) -> str:
        """Name of class ``idx`` (``class_<idx>`` when unknown)."""
        names = self.class_names
        return names[idx] if 0 <= idx < len(names) else f'class_{idx}'

    # ------------------------------------------------------------------
    # single pictures
    def draw_cam(self, image: np.ndarray, cam: np.ndarray) -> np.ndarray:
        """A CAM in ``[0, 1]`` as a JET heat map over the image.

        Args:
            image (np.ndarray): RGB uint8 image.
            cam (np.ndarray): ``(h, w)`` map, resized to the image.

        Returns:
            np.ndarray: RGB uint8 picture, also set as the current image.
        """
        out = cam_overlay(image, _numpy(cam), self.cam_alpha)
        self.set_image(out)
        return out

    def draw_label(self,
                   label: np.ndarray,
                   image: Optional[np.ndarray] = None) -> np.ndarray:
        """A label map in the dataset palette.

        Args:
            label (np.ndarray | PixelData): ``(H, W)`` class indices (255 =
                ignore, white).
            image (np.ndarray, optional): When given, the colours are
                blended over it with opacity ``alpha``.

        Returns:
            np.ndarray: RGB uint8 picture, also set as the current image.
        """
        pal = self.palette
        if not pal:
            raise ValueError('WSSSVisualizer.dataset_meta has no palette')
        out = colourise(_label_map(label), pal)
        if image is not None:
            from .drawing import blend
            out = blend(image, out, self.alpha)
        self.set_image(out)
        return out

    def draw_influence(self, image: np.ndarray,
                       influence: np.ndarray) -> np.ndarray:
        """An influence map (``>= 0``) divided by its maximum, over the image.

        Args:
            image (np.ndarray): RGB uint8 image.
            influence (np.ndarray | PixelData): ``(H, W)`` or ``(1, H, W)``
                map; a constant map is drawn as zeros.

        Returns:
            np.ndarray: RGB uint8 picture.
        """
        inf = _label_map(influence).astype(np.float32)
        top = float(inf.max()) if inf.size else 0.0
        norm = inf / top if top > 0 else np.zeros_like(inf)
        return self.draw_cam(image, norm)

    def draw_proposals(self,
                       image: np.ndarray,
                       boxes: np.ndarray,
                       max_num: Optional[int] = None) -> np.ndarray:
        """Object proposals as green boxes over the image.

        Args:
            image (np.ndarray): RGB uint8 image.
            boxes (np.ndarray | Tensor): ``(N, 4)`` ``x1, y1, x2, y2`` in
                image pixels, best ranked first.
            max_num (int, optional): Boxes drawn; defaults to
                ``max_proposals``.

        Returns:
            np.ndarray: RGB uint8 picture.
        """
        boxes = _numpy(boxes).reshape(-1, 4).astype(np.float32)
        boxes = boxes[:self.max_proposals if max_num is None else max_num]
        self.set_image(np.ascontiguousarray(image))
        if len(boxes):
            self.draw_bboxes(boxes, edge_colors='lime', line_widths=1)
        return self.get_image()

    # ------------------------------------------------------------------
    # one inference result
    def _classes_to_draw(self, sample: SegDataSample,
                         classes: Optional[Sequence[int]]) -> List[int]:
        if classes is not None:
            return [int(c) for c in classes]
        return sorted(int(c) for c in sample.metainfo.get('img_labels', []))

    def cam_panels(
        self,
        image: np.ndarray,
        sample: SegDataSample,
        classes: Optional[Sequence[int]] = None
    ) -> List[Tuple[str, np.ndarray]]:
        """Titled pictures of one CAM result, in :data:`PANEL_ORDER`.

        Fields read from ``sample`` (each drawn when present; see
        :func:`mmwsss.apis.inference_cam`):

        - ``cams`` ``(K, H, W)``: normalised CAM of every foreground class
          (channel ``k`` is class ``k + 1``); one panel per class of
          ``classes``, titled with the class name and, when the meta info
          has ``img_scores``, its sigmoid score;
        - ``influence`` (IG-CAM, ``(1, H, W)``) and ``proposals``
          (IG-CAM, ``InstanceData`` with ``bboxes`` in image pixels);
        - ``coarse_cams`` / ``refined_cams`` (CamGuide, ``(K, H, W)``):
          the maximum over ``classes``;
        - ``seed_sem_seg``, ``refined_sem_seg``, ``gt_sem_seg``: label maps
          in the palette.

        Args:
            image (np.ndarray): RGB uint8 image at the result's size.
            sample (SegDataSample): The result.
            classes (Sequence[int], optional): Foreground class indices to
                draw; defaults to the meta info's ``img_labels``.

        Returns:
            list[tuple[str, np.ndarray]]: ``(title, picture)`` pairs.
        """
        classes = self._classes_to_draw(sample, classes)
        meta = sample.metainfo
        probs = meta.get('img_scores')
        panels = [('image', np.ascontiguousarray(image))]
        if 'cams' in sample:
            cams = _numpy(sample.cams)
            for c in classes:
                if not 1 <= c <= cams.shape[0]:
                    raise ValueError(f'class {c} has no CAM (the result has '
                                     f'{cams.shape[0]} foreground classes)')
                title = f'CAM {self.class_name(c)}'
                if probs is not None:
                    title += f' p={float(probs[c - 1]):.2f}'
                panels.append((title, self.draw_cam(image, cams[c - 1])))
        if 'influence' in sample:
            inf = _label_map(sample.influence)
            panels.append((f'influence (IG-CAM, max {inf.max():.3g})',
                           self.draw_influence(image, inf)))
        if 'proposals' in sample:
            boxes = sample.proposals.bboxes
            n = min(len(boxes), self.max_proposals)
            panels.append((f'proposals (IG-CAM, top {n} of {len(boxes)})',
                           self.draw_proposals(image, boxes)))
        for key, title in (('coarse_cams', 'coarse CAM (CamGuide)'),
                           ('refined_cams', 'refined CAM z1 (CamGuide)')):
            if key in sample:
                maps = _numpy(sample.get(key))
                sel = [c - 1 for c in classes if 1 <= c <= maps.shape[0]]
                cam = maps[sel].max(0) if sel else np.zeros(maps.shape[1:])
                panels.append((title, self.draw_cam(image, cam)))
        bg = meta.get('bg_thr')
        if meta.get('bg_mode') == 'power':
            seed_title = f'seed (bg (1-max)^{meta.get("bg_alpha", 4.0):g})'
        elif meta.get('bg_mode') == 'otsu' and bg is not None:
            seed_title = f'seed (bg Otsu {bg:.2f})'
        else:
            seed_title = 'seed' if bg is None else f'seed (bg {bg:g})'
        for key, title in (('seed_sem_seg', seed_title),
                           ('refined_sem_seg',
                            f'refined ({meta.get("refine", "refiner")})'),
                           ('gt_sem_seg', 'ground truth')):
            if key in sample:
                panels.append((title, self.draw_label(sample.get(key))))
        return panels

    def draw_cam_sample(self,
                        image: np.ndarray,
                        sample: SegDataSample,
                        classes: Optional[Sequence[int]] = None,
                        tile: Optional[TileSize] = None,
                        legend: bool = True) -> np.ndarray:
        """:meth:`cam_panels` as one titled row with a class legend.

        Args:
            image (np.ndarray): RGB uint8 image.
            sample (SegDataSample): The result.
            classes (Sequence[int], optional): Classes to draw.
            tile (int | tuple, optional): Panel size; by default the image
                scaled so that its longer side is ``self.tile``.
            legend (bool): Add the class legend. Defaults to True.

        Returns:
            np.ndarray: RGB uint8 picture, also set as the current image.
        """
        panels = self.cam_panels(image, sample, classes)
        if tile is None:
            tile = fit_tile(image, self.tile)
        out = self.make_grid([[p for _, p in panels]], [t for t, _ in panels],
                             tile, legend)
        self.set_image(out)
        return out

    @master_only
    def add_cam_sample(self,
                       name: str,
                       image: np.ndarray,
                       sample: SegDataSample,
                       step: int = 0,
                       classes: Optional[Sequence[int]] = None,
                       out_file: Optional[str] = None,
                       tile: Optional[TileSize] = None) -> np.ndarray:
        """Draw :meth:`draw_cam_sample` and store it.

        Args:
            name (str): Image name in the backends (e.g. ``cam_<stem>``).
            image (np.ndarray): RGB uint8 image.
            sample (SegDataSample): The result.
            step (int): Global step (iteration) of the backends.
            classes (Sequence[int], optional): Classes to draw.
            out_file (str, optional): Also (or, without backends, only)
                write the picture to this PNG file, atomically.
            tile (int | tuple, optional): Panel size.

        Returns:
            np.ndarray: The picture.
        """
        out = self.draw_cam_sample(image, sample, classes, tile)
        if out_file is not None:
            save_png(out_file, out)
        self.add_image(name, out, step)
        return out

    def make_grid(self,
                  rows: Sequence[Sequence[Optional[np.ndarray]]],
                  titles: Sequence[str],
                  tile: TileSize = 128,
                  legend: bool = True) -> np.ndarray:
        """Rows of pictures x titled columns, with the class legend.

        See :func:`mmwsss.visualization.drawing.make_grid`; the legend uses
        ``dataset_meta`` (left out when ``legend`` is False).
        """
        names = self.class_names if legend else None
        return make_grid(rows, titles, tile, self.palette, names)
