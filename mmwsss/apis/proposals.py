# Copyright (c) mmwsss contributors.
"""Precompute Selective Search proposals for a dataset or image folder.

:func:`generate_proposals` is the engine of ``tools/generate_proposals.py``.
The images are either those of a config's ``<split>_dataloader`` dataset
(its ``img_path`` list; no pipeline runs, no masks are needed) or every
image file of a folder. For each image it runs
:func:`mmwsss.proposals.selective_search` (all boxes, ranked), drops
degenerate boxes with :func:`mmwsss.proposals.filter_proposals` and keeps
the ``max_proposals`` best ranked ones (IG-CAM sec. 4.1.1: at most 2000,
area >= 100 px, aspect ratio bound).

Outputs in ``out_dir``: ``<stem>.npz`` with ``boxes`` (float32 ``(N, 4)``,
``x1, y1, x2, y2`` pixel edges in original image coordinates, best first)
and ``img_shape`` (int64 ``(H, W)``), read by
:class:`mmwsss.datasets.transforms.LoadProposals`, and ``meta.json``
(``meta_shard<I>of<K>.json`` per shard) with the settings and counts.
Files are written atomically and images whose ``.npz`` exists are skipped,
so an interrupted run is completed by running the same command again;
temporary files of an interrupted run are removed. A folder made with
other proposal settings is refused. Several splits (``train_aug`` and
``train`` of VOC) may share one folder.
"""
import copy
import json
import multiprocessing
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope
from tqdm import tqdm

from mmwsss.proposals import MODES, filter_proposals, selective_search
from mmwsss.utils.io import (atomic_save_npz, atomic_write_bytes,
                             check_previous_meta, remove_stale_tmp)
from mmwsss.utils.progress import bar_interval
from .pseudo_labels import read_rgb, shard_meta_name

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
SPLITS = ('train', 'val', 'test')
# Settings that must match between runs writing into the same folder.
_COMPARED = ('mode', 'scale', 'sigma', 'min_size', 'similarities',
             'max_proposals', 'min_area', 'max_aspect', 'seed')


class ProposalError(ValueError):
    """Bad arguments, config, image folder or output folder."""


# ----------------------------------------------------------------------
# image lists
def _strip_pipeline(ds_cfg: dict) -> dict:
    """A dataset config with empty pipelines and no mask folder."""
    ds_cfg = copy.deepcopy(ds_cfg)
    if ds_cfg.get('dataset') is not None:
        ds_cfg['dataset'] = _strip_pipeline(ds_cfg['dataset'])
    if ds_cfg.get('datasets') is not None:
        ds_cfg['datasets'] = [_strip_pipeline(d) for d in ds_cfg['datasets']]
    if 'pipeline' in ds_cfg or (ds_cfg.get('dataset') is None
                                and ds_cfg.get('datasets') is None):
        ds_cfg['pipeline'] = []
    prefix = ds_cfg.get('data_prefix')
    if prefix and ds_cfg.get('label_source') != 'mask':
        prefix.pop('seg_map_path', None)
    return ds_cfg


def images_from_config(cfg: Union[str, Config], split: str) -> List[str]:
    """``img_path`` of every image of a config's ``<split>_dataloader``.

    Args:
        cfg (str | Config): Config (path or object; not modified).
        split (str): ``'train'``, ``'val'`` or ``'test'``.

    Returns:
        list[str]: Image paths in dataset order.
    """
    if split not in SPLITS:
        raise ProposalError(f'unknown split {split!r}; choose from '
                            f'{", ".join(SPLITS)}')
    if isinstance(cfg, str):
        if not osp.isfile(cfg):
            raise FileNotFoundError(f'config not found: {cfg}')
        cfg = Config.fromfile(cfg)
    key = f'{split}_dataloader'
    loader = cfg.get(key, None)
    if not loader or loader.get('dataset', None) is None:
        raise ProposalError(f'config {cfg.filename or "<dict>"} has no {key} '
                            'with a dataset; pick another --split')
    from mmwsss.registry import DATASETS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmwsss')):
        dataset = DATASETS.build(_strip_pipeline(loader['dataset']))
        return [
            dataset.get_data_info(i)['img_path'] for i in range(len(dataset))
        ]


def images_from_folder(folder: str) -> List[str]:
    """Image files (by extension) directly inside ``folder``, sorted."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder not found: {folder}')
    paths = [
        osp.join(folder, f) for f in sorted(os.listdir(folder)) if
        f.lower().endswith(IMG_EXTENSIONS) and osp.isfile(osp.join(folder, f))
    ]
    if not paths:
        raise ProposalError(f'no image files ({", ".join(IMG_EXTENSIONS)}) '
                            f'in {folder}')
    return paths


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


# ----------------------------------------------------------------------
# worker side
def propose_image(img: np.ndarray, params: dict) -> np.ndarray:
    """Ranked, filtered and truncated proposals of one RGB image.

    Args:
        img (np.ndarray): ``(H, W, 3)`` RGB uint8 image.
        params (dict): The settings (keys of ``_COMPARED``).

    Returns:
        np.ndarray: ``(N, 4)`` float32 boxes, ``N <= max_proposals``.
    """
    boxes = selective_search(
        img,
        mode=params['mode'],
        scale=params['scale'],
        sigma=params['sigma'],
        min_size=params['min_size'],
        similarities=params['similarities'],
        max_proposals=None,
        seed=params['seed'])
    return filter_proposals(
        boxes,
        min_area=params['min_area'],
        max_aspect=params['max_aspect'],
        max_num=params['max_proposals'])


def _propose_one(job: Tuple[str, str, dict]) -> Tuple[str, int]:
    """Propose boxes for one image file and write its ``.npz`` (worker)."""
    img_path, out_path, params = job
    try:
        img = read_rgb(img_path)
        boxes = propose_image(img, params)
        atomic_save_npz(
            out_path,
            boxes=boxes,
            img_shape=np.asarray(img.shape[:2], dtype=np.int64))
    except Exception as e:
        raise RuntimeError(f'{img_path}: {type(e).__name__}: {e}') from None
    return img_path, len(boxes)


# ----------------------------------------------------------------------
# main side
def _settings(mode: str, scale, sigma: float, min_size: Optional[int],
              similarities, max_proposals: Optional[int], min_area: float,
              max_aspect: Optional[float], seed: int) -> dict:
    """Checked settings as plain JSON values."""
    if mode not in MODES:
        raise ProposalError(f'unknown mode {mode!r}; choose from '
                            f'{", ".join(MODES)}')
    if scale is not None:
        scale = [float(k) for k in np.atleast_1d(scale)]
        if not scale or any(not k > 0 for k in scale):
            raise ProposalError(f'scale must be positive, got {scale}')
    if isinstance(similarities, str):
        similarities = [similarities]
    if similarities is not None:
        similarities = list(similarities)
        for s in similarities:
            if not s or set(s) - set('CTSF'):
                raise ProposalError('similarities must combine C, T, S, F; '
                                    f'got {s!r}')
    if not sigma >= 0:
        raise ProposalError(f'sigma must be >= 0, got {sigma}')
    if min_size is not None and (int(min_size) != min_size or min_size < 0):
        raise ProposalError(f'min_size must be an integer >= 0, got '
                            f'{min_size}')
    if max_proposals is not None and (int(max_proposals) != max_proposals
                                      or max_proposals < 1):
        raise ProposalError(f'max_proposals must be >= 1, got {max_proposals}')
    if not min_area >= 0:
        raise ProposalError(f'min_area must be >= 0, got {min_area}')
    if max_aspect is not None and not max_aspect >= 1:
        raise ProposalError(f'max_aspect must be >= 1, got {max_aspect}')
    return dict(
        mode=mode,
        scale=scale,
        sigma=float(sigma),
        min_size=None if min_size is None else int(min_size),
        similarities=similarities,
        max_proposals=None if max_proposals is None else int(max_proposals),
        min_area=float(min_area),
        max_aspect=None if max_aspect is None else float(max_aspect),
        seed=int(seed))


def generate_proposals(source: Union[str, Config],
                       out_dir: str,
                       split: str = 'train',
                       mode: str = 'fast',
                       scale: Union[None, float, Sequence[float]] = None,
                       sigma: float = 0.8,
                       min_size: Optional[int] = None,
                       similarities: Union[None, str, Sequence[str]] = None,
                       max_proposals: Optional[int] = 2000,
                       min_area: float = 100.,
                       max_aspect: Optional[float] = 4.,
                       seed: int = 0,
                       workers: int = 1,
                       num_shards: int = 1,
                       shard_id: int = 0,
                       limit: Optional[int] = None,
                       progress: bool = True) -> Dict[str, object]:
    """Write Selective Search proposals; see the module docstring.

    Args:
        source (str | Config): A config (``.py`` path or object) whose
            ``<split>_dataloader`` dataset lists the images, or a folder of
            image files.
        out_dir (str): Output folder.
        split (str): Dataloader of a config source. Defaults to ``'train'``.
        mode (str): Selective Search mode (``'single'``, ``'fast'``,
            ``'quality'``). Defaults to ``'fast'``.
        scale (float | Sequence[float], optional): Overrides the mode's k.
        sigma (float): Over-segmentation smoothing. Defaults to 0.8.
        min_size (int, optional): Over-segmentation minimum component size
            (default: k).
        similarities (str | Sequence[str], optional): Overrides the mode's
            similarity combinations.
        max_proposals (int, optional): Boxes kept per image after
            filtering. Defaults to 2000.
        min_area (float): Minimum box area in pixels. Defaults to 100.
        max_aspect (float, optional): Maximum ``max(w / h, h / w)``.
            Defaults to 4.
        seed (int): Ranking seed. Defaults to 0.
        workers (int): Processes; 1 runs in the main process.
        num_shards (int): Split the images into this many shards; image
            ``i`` belongs to shard ``i % num_shards``.
        shard_id (int): The shard of this call.
        limit (int, optional): Only the first ``limit`` images of the
            shard.
        progress (bool): Show a progress bar and messages.

    Returns:
        dict: ``total`` (images of this shard, after ``limit``),
        ``skipped`` (already done), ``processed`` (written now),
        ``boxes`` (boxes written now), ``out_dir`` and ``meta`` (the meta
        file path).
    """
    if int(workers) != workers or workers < 1:
        raise ProposalError(f'workers must be >= 1, got {workers}')
    if int(num_shards) != num_shards or num_shards < 1:
        raise ProposalError(f'num_shards must be >= 1, got {num_shards}')
    if int(shard_id) != shard_id or not 0 <= shard_id < num_shards:
        raise ProposalError(f'shard_id must be in [0, {num_shards - 1}], '
                            f'got {shard_id}')
    if limit is not None and limit < 0:
        raise ProposalError(f'limit must be >= 0, got {limit}')
    settings = _settings(mode, scale, sigma, min_size, similarities,
                         max_proposals, min_area, max_aspect, seed)

    def log(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    if isinstance(source, Config) or (isinstance(source, str)
                                      and osp.isfile(source)):
        paths = images_from_config(source, split)
        src_desc = dict(
            config=osp.abspath(source)
            if isinstance(source, str) else source.filename,
            split=split)
    elif isinstance(source, str) and osp.isdir(source):
        paths = images_from_folder(source)
        src_desc = dict(image_dir=osp.abspath(source))
    else:
        raise FileNotFoundError(
            f'not a config file or an image folder: {source}')
    stems = [_stem(p) for p in paths]
    if len(set(stems)) != len(stems):
        seen = set()
        dup = next(s for s in stems if s in seen or seen.add(s))
        raise ProposalError(f'several images share the file name "{dup}"; '
                            'their proposal files would overwrite each '
                            'other')
    indices = [i for i in range(len(paths)) if i % num_shards == shard_id]
    if limit is not None:
        indices = indices[:limit]
    out_dir = osp.abspath(out_dir)
    check_previous_meta(out_dir, settings, _COMPARED, 'proposal_settings',
                        '.npz', 'generate_proposals', ProposalError)

    def out_path(i: int) -> str:
        return osp.join(out_dir, stems[i] + '.npz')

    todo = [i for i in indices if not osp.isfile(out_path(i))]
    skipped = len(indices) - len(todo)
    os.makedirs(out_dir, exist_ok=True)
    removed = remove_stale_tmp(out_dir, {stems[i] + '.npz' for i in indices})
    if removed:
        log(f'removed {removed} temporary file(s) of an interrupted run')
    log(f'{len(indices)} images in shard {shard_id}/{num_shards}: skipping '
        f'{skipped} already done, {len(todo)} to do')

    meta_path = osp.join(out_dir, shard_meta_name(num_shards, shard_id))
    meta = dict(
        **src_desc,
        num_shards=num_shards,
        shard_id=shard_id,
        limit=limit,
        count=len(indices),
        done=skipped,
        complete=not todo,
        proposal_settings=settings)

    def write_meta() -> None:
        atomic_write_bytes(meta_path,
                           json.dumps(meta, indent=2).encode('utf-8'))

    write_meta()
    processed = num_boxes = 0
    jobs = [(paths[i], out_path(i), settings) for i in todo]
    if jobs:
        t0 = time.time()
        bar = tqdm(
            total=len(jobs),
            desc='proposals',
            unit='img',
            disable=not progress,
            file=sys.stderr,
            mininterval=bar_interval())
        pool = None
        try:
            if workers > 1:
                methods = multiprocessing.get_all_start_methods()
                ctx = multiprocessing.get_context('fork' if 'fork' in
                                                  methods else None)
                pool = ctx.Pool(min(workers, len(jobs)))
                results = pool.imap_unordered(_propose_one, jobs)
            else:
                results = map(_propose_one, jobs)
            for _, n in results:
                processed += 1
                num_boxes += n
                bar.update()
            if pool is not None:
                pool.close()
                pool.join()
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
            meta['done'] = skipped + processed
            write_meta()  # progress of an interrupted run
        meta['complete'] = True
        meta['seconds'] = round(time.time() - t0, 3)
        meta['boxes_written'] = num_boxes
        write_meta()
        log(f'wrote proposals of {processed} image(s) to {out_dir} '
            f'({num_boxes / max(processed, 1):.0f} boxes per image)')
    return dict(
        total=len(indices),
        skipped=skipped,
        processed=processed,
        boxes=num_boxes,
        out_dir=out_dir,
        meta=meta_path)
