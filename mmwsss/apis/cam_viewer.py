# Copyright (c) mmwsss contributors.
"""CAM pictures of images or folders (``tools/visualization/vis_cam.py``).

:func:`visualize_cams` writes one picture per image: the image, the CAM of
each class of the image, the IG-CAM influence map and proposals or the
CamGuide coarse and refined maps when the model has them, the seed, the
refined label map and, when a mask exists, the ground truth (drawn by
:class:`mmwsss.visualization.WSSSVisualizer`). The CAMs come either from
the model (:func:`mmwsss.apis.inference_cam`) or, with ``scores_dir``,
from the scores saved by ``tools/make_pseudo_labels.py --save-scores``
(no model is built or run).
"""
import difflib
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from .inference import (CAM_REFINE_CHOICES, dataset_meta_from_config,
                        inference_cam, init_model)
from .pseudo_labels import _build_refiner, read_rgb


class CamViewerError(ValueError):
    """Bad arguments or inputs of the CAM viewer (names the file)."""


def class_indices(names: Union[str, Sequence[str]],
                  classes: Sequence[str]) -> List[int]:
    """Foreground class indices of class names (comma-separated or list).

    Raises:
        CamViewerError: An unknown or background name (the message gives
            the closest declared name).
    """
    if isinstance(names, str):
        names = [n for n in names.split(',')]
    out = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name not in classes[1:]:
            near = difflib.get_close_matches(name, list(classes[1:]), n=1)
            hint = f' (did you mean "{near[0]}"?)' if near else ''
            raise CamViewerError(f'unknown class "{name}"{hint}; the config '
                                 f'declares {list(classes[1:])}')
        out.append(list(classes).index(name))
    return sorted(set(out))


def _labels_by_stem(path: str, classes: Sequence[str]) -> Dict[str, List[int]]:
    from mmwsss.datasets.folder import read_label_table
    table = {}
    for _, image, labels in read_label_table(path, classes, classes[0]):
        table[osp.splitext(osp.basename(image))[0]] = labels
        table[osp.basename(image)] = labels
    return table


def _result_from_scores(path: str, img_path: str, refiner, refine_name: str,
                        bg_thr: Optional[float]) -> SegDataSample:
    """A result like :func:`inference_cam`'s from a saved ``.npz``."""
    if not osp.isfile(path):
        raise CamViewerError(f'saved scores not found: {path} (written by '
                             'tools/make_pseudo_labels.py --save-scores)')
    try:
        with np.load(path) as data:
            scores = data['scores'].astype(np.float32)
            labels = sorted(int(x) for x in np.ravel(data['img_labels']))
            influence = data['influence'] if 'influence' in data.files \
                else None
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise CamViewerError(f'cannot read saved scores {path}: {e}') \
            from None
    if scores.ndim != 3 or not np.isfinite(scores).all():
        raise CamViewerError(f'{path}: scores must be a finite (C, H, W) '
                             f'array, got shape {scores.shape}')
    if bg_thr is not None:
        scores[0] = bg_thr
    img = read_rgb(img_path)
    if img.shape[:2] != scores.shape[1:]:
        raise CamViewerError(
            f'{path}: scores of {scores.shape[2]}x{scores.shape[1]} for the '
            f'{img.shape[1]}x{img.shape[0]} image {img_path}')
    bg = scores[0]
    out = SegDataSample(
        metainfo=dict(
            img_path=img_path,
            ori_shape=img.shape[:2],
            img_labels=labels,
            labels_given=True,
            bg_thr=float(bg.flat[0]) if np.ptp(bg) == 0 else None,
            refine=refine_name))
    seed = scores.argmax(axis=0)
    out.set_data(
        dict(
            seg_logits=PixelData(data=torch.from_numpy(scores)),
            cams=PixelData(data=torch.from_numpy(scores[1:].copy())),
            seed_sem_seg=PixelData(data=torch.from_numpy(seed)[None])))
    kwargs = {}
    if influence is not None:
        inf = np.asarray(influence, np.float32)
        out.influence = PixelData(data=torch.from_numpy(inf)[None])
        kwargs['influence'] = inf
    if refiner is not None:
        if not getattr(refiner, 'accepts_influence', False):
            kwargs = {}
        refined = np.asarray(refiner(img, scores, labels, **kwargs), np.int64)
        out.refined_sem_seg = PixelData(data=torch.from_numpy(refined)[None])
    return out


def visualize_cams(config: Union[str, Config],
                   checkpoint: Optional[str],
                   inputs: str,
                   out_dir: str,
                   classes: Optional[Union[str, Sequence[str]]] = None,
                   labels_file: Optional[str] = None,
                   scores_dir: Optional[str] = None,
                   gt_dir: Optional[str] = None,
                   refine: str = 'auto',
                   bg_thr: Optional[float] = None,
                   device: str = 'cpu',
                   cfg_options: Optional[dict] = None,
                   tile: int = 160,
                   recursive: bool = False,
                   max_bytes: Optional[int] = None,
                   progress: bool = True) -> List[str]:
    """Write a CAM picture per image; see the module docstring.

    Args:
        config (str | Config): Model config (CAM, IG-CAM or CamGuide).
        checkpoint (str, optional): Checkpoint; unused with
            ``scores_dir``.
        inputs (str): An image or a folder of images.
        out_dir (str): Output folder: ``<out_dir>/<stem>.png``.
        classes (str | Sequence[str], optional): Class names of every
            image (comma-separated). With a model they are the image's
            labels (the seed keeps only them); with ``scores_dir`` the
            classes whose CAM is drawn.
        labels_file (str, optional): CSV/JSON label table (as read by
            :class:`~mmwsss.datasets.WSSSFolderDataset`) giving each
            image's classes; ``classes`` wins. Without both, the model's
            predicted classes (or the saved ``img_labels``).
        scores_dir (str, optional): Folder of ``<stem>.npz`` scores; no
            model is built.
        gt_dir (str, optional): Folder of ``<stem>.png`` masks, drawn when
            present.
        refine (str): Refined label map, see
            :func:`mmwsss.apis.inference_cam` (``'auto'``: the config's
            refiner, else DenseCRF with the IRN label unary).
        bg_thr (float, optional): With ``scores_dir``: replace the saved
            background score by this constant (``bg_mode='const'``).
            With a model use ``cfg_options``
            ``{'model.test_cfg.bg_thr': T}``.
        device (str): Inference device. Defaults to ``'cpu'``.
        cfg_options (dict, optional): Config overrides.
        tile (int): Longer side of each panel. Defaults to 160.
        recursive (bool): Also images in subfolders.
        max_bytes (int, optional): Pictures larger than this are saved as
            256-colour palette PNGs (for docs).
        progress (bool): Print one line per image.

    Returns:
        list[str]: The pictures written.
    """
    from mmwsss.datasets.folder import list_images
    from mmwsss.visualization import WSSSVisualizer, save_png
    if refine not in CAM_REFINE_CHOICES:
        raise CamViewerError(f'refine must be one of {CAM_REFINE_CHOICES}')
    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
        cfg = Config.fromfile(config)
    else:
        cfg = config.copy()
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    try:
        images = list_images(inputs, recursive)
    except FileNotFoundError as e:
        raise CamViewerError(str(e)) from None
    stems = [osp.splitext(osp.basename(p))[0] for p in images]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise CamViewerError(f'several images share the stem(s) {dup}; '
                             'their pictures would overwrite each other')
    model = None
    if scores_dir is None:
        if not checkpoint or not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        model = init_model(cfg, checkpoint, device)
        meta = model.dataset_meta
    else:
        if not osp.isdir(scores_dir):
            raise FileNotFoundError(f'--scores-dir not found: {scores_dir}')
        meta = dataset_meta_from_config(cfg)
    names = list(meta['classes'])
    fixed = class_indices(classes, names) if classes else None
    table = _labels_by_stem(labels_file, names) if labels_file else {}
    vis = WSSSVisualizer(
        name='vis_cam', classes=names, palette=meta['palette'], tile=tile)
    refiner, refine_name = None, 'none'
    if model is None and refine != 'none':
        model_refine = (cfg.model.get('test_cfg') or {}).get('refine')
        mode = refine
        if mode == 'auto':
            mode = 'config' if model_refine else 'irn_label'
        with DefaultScope.overwrite_default_scope(
                cfg.get('default_scope', 'mmwsss')):
            refiner = _build_refiner(mode, model_refine)
        refine_name = (model_refine or {}).get('type', 'config') \
            if mode == 'config' else mode
    written = []
    for path in images:
        base = osp.basename(path)
        stem = osp.splitext(base)[0]
        labels = fixed if fixed is not None else table.get(
            base, table.get(stem))
        if model is not None:
            sample = inference_cam(model, path, labels, refine)
        else:
            sample = _result_from_scores(
                osp.join(scores_dir, stem + '.npz'), path, refiner,
                refine_name, bg_thr)
        if gt_dir is not None:
            gt_path = osp.join(gt_dir, stem + '.png')
            if osp.isfile(gt_path):
                with Image.open(gt_path) as im:
                    gt = np.asarray(im).astype(np.int64)
                sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        draw = labels if labels is not None else None
        picture = vis.draw_cam_sample(read_rgb(path), sample, draw)
        out = osp.join(out_dir, stem + '.png')
        save_png(out, picture, max_bytes)
        written.append(out)
        if progress:
            used = [names[c] for c in sample.metainfo['img_labels']]
            print(f'{out}: classes {used}', file=sys.stderr, flush=True)
    return written
