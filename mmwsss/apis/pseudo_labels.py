# Copyright (c) mmwsss contributors.
"""Write CAM pseudo labels (and optionally their scores) for a dataset.

:func:`make_pseudo_labels` is the engine of ``tools/make_pseudo_labels.py``:

1. the dataset is built from a dataloader of the config (``--split``) with
   ``mmseg.LoadAnnotations`` removed from its pipeline and
   ``data_prefix.seg_map_path`` dropped (unless the image labels are read
   from the masks, ``label_source='mask'``), so no ground truth is needed;
   the ``train`` split uses the test (or val) pipeline, never the random
   training augmentations;
2. the model is built, the checkpoint loaded with MMEngine's
   ``load_checkpoint`` (through mmwsss' weights-only loader) and, in the
   main process, ``model.test_step`` gives the ``(C, H, W)`` scores at the
   original image size (``seg_logits``; the model's own refiner is turned
   off);
3. the label assignment runs in a pool of ``workers`` processes (1: in
   the main process) while the model works on the next images: ``'none'``
   is the argmax of the scores (ties go to the lower index, hence to
   background, like ``pred_sem_seg`` without a refiner), ``'irn_label'`` /
   ``'psa_softmax'`` a :class:`~mmwsss.refine.DenseCRF` preset and
   ``'config'`` whatever ``model.test_cfg.refine`` says. A CRF sees the
   original image file decoded as RGB uint8;
   on a CPU, ``procs`` forked processes of one intra-op thread each do all
   of that for interleaved images instead (``tools/make_pseudo_labels.py
   --procs auto``, the default there): processes of one thread each give
   the same files as a one-thread run, bit for bit (a thread team changes
   the float summation order of the convolutions: scores within ~2e-6,
   labels equal on the demo), and keep every core busy through the serial
   sections (resizes, the CRF, PNG encoding). On 2 cores, with the heap
   reuse below, they run as fast as one process with two threads
   (0.96-1.05x in ``benchmarks/bench_pseudo_labels.py``). While the images
   are labelled, freed memory stays in the heap (``reuse_heap``,
   :mod:`mmwsss.utils.heap`: 1.6x faster on the demo, more memory);
4. influence-aware refiners (``accepts_influence``, e.g.
   :class:`~mmwsss.refine.InfluenceCRF`) get the keyword arguments of
   ``model.refine_kwargs`` (for :class:`~mmwsss.models.IGCAMSegmentor`
   ``influence``, the multi-scale influence map at the original image
   size), exactly as the model's own ``predict`` passes them, so the labels
   equal those of ``tools/test.py`` with the same refiner. The influence
   state of an IG-CAM checkpoint (``checkpoint['influence']``, written by
   :class:`~mmwsss.engine.hooks.InfluenceHook`) is restored as the hook
   does in ``tools/test.py``; it also shapes the scores (the influence
   maps drive the attention and the head). A checkpoint without it gives
   uniform influence (a warning is printed).

Outputs in ``out_dir``: ``<stem>.png`` (palette PNG with the dataset
palette), with ``save_scores`` ``scores/<stem>.npz`` (``scores`` (C, H, W)
and ``img_labels``, as ``tools/analysis_tools/sweep_thresholds.py`` reads
them; for a model with a refreshed influence state also ``influence``,
float32 (H, W), whatever the refiner, so that ``from_scores`` can run an
influence-aware refiner later; without that key ``from_scores`` gives it
uniform influence), and ``meta.json`` (``meta_shard<I>of<K>.json`` per
shard). Every file is written atomically, images whose outputs all exist
are skipped, so an interrupted run is completed by running the same
command again. Re-running with different settings (checkpoint content,
split, refinement, model ``test_cfg``) into the same folder is refused,
and so is a folder holding PNGs without a meta file (e.g. the
ground-truth masks).
"""
import copy
import json
import multiprocessing
import os
import os.path as osp
import sys
import time
from collections import deque
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine import fileio
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from tqdm import tqdm

from mmwsss.utils.heap import reuse_heap as heap_reuse
from mmwsss.utils.io import (atomic_save_label_png, atomic_save_npz,
                             atomic_write_bytes, check_previous_meta,
                             remove_stale_tmp)
from mmwsss.utils.progress import bar_interval

REFINE_CHOICES = ('config', 'none', 'irn_label', 'psa_softmax')
SPLITS = ('train', 'val', 'test')
SCORE_DTYPES = ('float32', 'float16')
# Settings that must match between runs writing into the same folder.
_COMPARED = ('checkpoint', 'split', 'refine_cfg', 'test_cfg')


class PseudoLabelError(ValueError):
    """Bad arguments, config or output folder (a user error)."""


# ----------------------------------------------------------------------
# config helpers
def _type_name(transform: dict) -> str:
    t = transform.get('type', '') if isinstance(transform, dict) else ''
    name = t if isinstance(t, str) else getattr(t, '__name__', '')
    return name.split('.')[-1]


def _strip_dataset_cfg(ds_cfg: dict, pipeline: Optional[list]) -> dict:
    """Drop mask loading from a dataset config (recursing into wrappers)."""
    ds_cfg = copy.deepcopy(ds_cfg)
    if ds_cfg.get('dataset') is not None:
        ds_cfg['dataset'] = _strip_dataset_cfg(ds_cfg['dataset'], pipeline)
    if ds_cfg.get('datasets') is not None:
        ds_cfg['datasets'] = [
            _strip_dataset_cfg(d, pipeline) for d in ds_cfg['datasets']
        ]
    if ds_cfg.get('dataset') is None and ds_cfg.get('datasets') is None:
        if pipeline is not None:
            ds_cfg['pipeline'] = copy.deepcopy(pipeline)
        prefix = ds_cfg.get('data_prefix')
        # kept where the masks give the labels or choose the images
        # (WSSSFolderDataset only_with_masks); never loaded, see below
        if prefix and ds_cfg.get('label_source') != 'mask' and \
                not ds_cfg.get('only_with_masks', False):
            prefix.pop('seg_map_path', None)
    if ds_cfg.get('pipeline') is not None:
        ds_cfg['pipeline'] = [
            t for t in ds_cfg['pipeline'] if _type_name(t) != 'LoadAnnotations'
        ]
    return ds_cfg


def _loader_dataset(cfg: Config, key: str) -> Optional[dict]:
    loader = cfg.get(key, None)
    if not loader or loader.get('dataset', None) is None:
        return None
    return loader['dataset']


def dataset_cfg_for_split(cfg: Config, split: str) -> dict:
    """The dataset config of ``<split>_dataloader`` prepared for labelling.

    Args:
        cfg (Config): The full config.
        split (str): ``'train'``, ``'val'`` or ``'test'``.

    Returns:
        dict: A dataset config that needs no ground-truth masks. For
        ``'train'`` the pipeline is replaced by the test (else val)
        dataloader's pipeline, else ``cfg.test_pipeline``.
    """
    key = f'{split}_dataloader'
    ds_cfg = _loader_dataset(cfg, key)
    if ds_cfg is None:
        raise PseudoLabelError(
            f'config {cfg.filename or "<dict>"} has no {key} with a '
            f'dataset; pick another --split ({"/".join(SPLITS)})')
    pipeline = None
    if split == 'train':
        for other in ('test_dataloader', 'val_dataloader'):
            other_ds = _loader_dataset(cfg, other)
            if other_ds is not None and other_ds.get('pipeline'):
                pipeline = other_ds['pipeline']
                break
        else:
            pipeline = cfg.get('test_pipeline', None)
        if pipeline is None:
            raise PseudoLabelError(
                'cannot find an inference pipeline for the train images '
                '(looked at test_dataloader, val_dataloader and '
                'test_pipeline); the training pipeline crops and flips')
    return _strip_dataset_cfg(ds_cfg, pipeline)


def _jsonable(obj):
    """Plain JSON data (dicts, lists, numbers, strings) from a config."""
    return json.loads(json.dumps(obj, default=repr))


def _file_sha256(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def shard_meta_name(num_shards: int, shard_id: int) -> str:
    """Name of the meta file of one shard (``meta.json`` when unsharded)."""
    if num_shards == 1:
        return 'meta.json'
    return f'meta_shard{shard_id}of{num_shards}.json'


# ----------------------------------------------------------------------
# worker side
def read_rgb(path: str) -> np.ndarray:
    """Decode an image file as a uint8 RGB array, as the pipeline does.

    Uses ``cv2.IMREAD_COLOR`` (like ``mmseg.LoadImageFromFile``, so EXIF
    orientation is applied identically) through MMEngine's file backends.
    """
    buf = np.frombuffer(fileio.get(path), dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'cannot decode image {path}')
    return np.ascontiguousarray(img[..., ::-1])


def _finish_one(ctx: dict, job: dict) -> str:
    """Assign labels to one image and write its files (pool worker)."""
    try:
        c, h, w = job['shape']
        scores = np.zeros((c, h, w), dtype=np.float32)
        scores[job['keys']] = job['sel']
        refiner = ctx['refiner']
        extra = job.get('extra') or {}
        if refiner is None:
            label = scores.argmax(axis=0)
        else:
            img = read_rgb(job['img_path'])
            if img.shape[:2] != (h, w):
                raise ValueError(
                    f'the image file is {img.shape[1]}x{img.shape[0]} but '
                    f'the scores are {w}x{h} (ori_shape); the CRF needs '
                    'scores at the original image size')
            kwargs = extra if ctx['pass_extra'] else {}
            label = refiner(img, scores, job['crf_labels'], **kwargs)
        if ctx['save_scores']:
            arrays = dict(
                scores=scores.astype(ctx['scores_dtype']),
                img_labels=np.asarray(job['img_labels'], dtype=np.int64))
            if extra.get('influence') is not None:
                # float32 whatever scores_dtype: from_scores then gives an
                # influence-aware refiner exactly the map of a direct run
                arrays['influence'] = np.asarray(
                    extra['influence'], dtype=np.float32)
            atomic_save_npz(job['npz_path'], **arrays)
        atomic_save_label_png(job['png_path'], label, ctx['palette'])
    except Exception as e:
        raise RuntimeError(f'{job["img_path"]}: {type(e).__name__}: {e}') \
            from None
    return job['stem']


# ----------------------------------------------------------------------
# main side
def _num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _build_refiner(refine: str,
                   model_refine,
                   crf_scale_factor: float = 1.0) -> object:
    from mmwsss.refine import DenseCRF
    from mmwsss.registry import TASK_UTILS
    if refine == 'none':
        return None
    if refine in ('irn_label', 'psa_softmax'):
        return DenseCRF(preset=refine, scale_factor=crf_scale_factor)
    return TASK_UTILS.build(model_refine) if model_refine else None


def _accepts_influence(refiner) -> bool:
    """Whether a refiner takes ``model.refine_kwargs`` (``influence``)."""
    return bool(getattr(refiner, 'accepts_influence', False))


class _InfluenceProbe:
    """Stands in for an influence-aware refiner in ``refine_kwargs``."""
    accepts_influence = True


@contextmanager
def _model_refiner(model, refiner) -> Iterator[None]:
    """Set ``model.refiner`` for the duration of a ``refine_kwargs`` call.

    The model's own refiner is off (the workers refine), but
    ``refine_kwargs`` decides from ``model.refiner`` whether to compute the
    influence maps.
    """
    old = getattr(model, 'refiner', None)
    model.refiner = refiner
    try:
        yield
    finally:
        model.refiner = old


def _model_has_influence(model) -> bool:
    """An IG-CAM-like model: influence state and ``refine_kwargs``."""
    return bool(getattr(model, 'influence', None)) and callable(
        getattr(model, 'refine_kwargs', None))


def _load_influence_state(model, ckpt: dict, log) -> bool:
    """Restore ``checkpoint['influence']`` as ``InfluenceHook`` does.

    Returns:
        bool: Whether a state was restored.
    """
    if not _model_has_influence(model) or not callable(
            getattr(model, 'load_influence_state_dict', None)):
        return False
    saved = ckpt.get('influence', None) if isinstance(ckpt, dict) else None
    if not isinstance(saved, dict) or saved.get('model') is None:
        log('warning: the checkpoint has no influence state (saved by '
            'InfluenceHook); influence maps are uniform')
        return False
    model.load_influence_state_dict(saved['model'])
    return True


def _check_influence(influence, shape: Tuple[int, int],
                     where: str) -> np.ndarray:
    """A finite ``(H, W)`` float32 influence map or a clear error."""
    inf = np.asarray(influence)
    if inf.shape != tuple(shape) or not np.issubdtype(inf.dtype, np.floating):
        raise RuntimeError(f'{where}: influence must be a float (H, W) = '
                           f'{tuple(shape)} map, got {inf.dtype} '
                           f'{inf.shape}')
    if not np.isfinite(inf).all():
        raise RuntimeError(f'{where}: influence contains NaN or Inf')
    return np.ascontiguousarray(inf, dtype=np.float32)


def _refine_cfg(refine: str,
                model_refine,
                crf_scale_factor: float = 1.0) -> Union[str, dict]:
    if refine == 'none' or (refine == 'config' and not model_refine):
        return 'none'
    if refine in ('irn_label', 'psa_softmax'):
        cfg = dict(type='DenseCRF', preset=refine)
        if crf_scale_factor != 1.0:
            cfg['scale_factor'] = float(crf_scale_factor)
        return cfg
    return _jsonable(dict(model_refine))


def _infer(model,
           dataset,
           idx: int,
           use_img_labels: bool,
           influence_from=None) -> dict:
    """Model scores of one dataset item as a (compact) job.

    Args:
        model: The segmentor (eval mode, refiner off).
        dataset: The dataset.
        idx (int): Item index.
        use_img_labels (bool): Give the refiner the image labels.
        influence_from (object, optional): When given, a refiner declaring
            ``accepts_influence``: ``model.refine_kwargs`` is called with it
            as ``model.refiner`` on the same preprocessed batch as
            ``predict`` (as ``CAMSegmentor.predict`` does) and its dict
            becomes ``job['extra']``.

    Returns:
        dict: The job (``extra`` holds the refiner's keyword arguments).
    """
    # prepare_data, not dataset[idx]: outside test_mode, __getitem__ would
    # silently substitute a random other image when the pipeline fails.
    prepare = getattr(dataset, 'prepare_data', None)
    try:
        item = prepare(idx) if prepare is not None else dataset[idx]
    except Exception as e:
        # e.g. mmcv's bare "AssertionError: failed to load image" for a
        # corrupt file; say which image stopped the run and how to go on.
        path = dataset.get_data_info(idx).get('img_path')
        raise PseudoLabelError(
            f'cannot load image {idx} ({path}): {type(e).__name__}: {e}. '
            'The outputs finished so far are kept; fix or remove the image '
            'and run the same command again to continue.') from e
    if item is None:
        raise RuntimeError(f'the pipeline returned None for image {idx} '
                           f'({dataset.get_data_info(idx).get("img_path")})')
    data = pseudo_collate([item])
    extra: dict = {}
    with torch.inference_mode():
        if influence_from is None:
            out = model.test_step(data)[0]
        else:
            # test_step, unrolled to reuse the preprocessed batch
            data = model.data_preprocessor(data, False)
            out = model(**data, mode='predict')[0]
            with _model_refiner(model, influence_from):
                extra = dict(
                    model.refine_kwargs(data['inputs'],
                                        data['data_samples'])[0])
    if 'seg_logits' not in out:
        raise RuntimeError(
            f'{type(model).__name__}.predict gave no seg_logits; pseudo '
            'labels need a segmentor that returns class scores')
    scores = out.seg_logits.data.float().cpu().numpy()
    meta = out.metainfo
    ori = tuple(meta.get('ori_shape', scores.shape[1:])[:2])
    if scores.ndim != 3 or tuple(scores.shape[1:]) != ori:
        raise RuntimeError(f'{meta.get("img_path")}: seg_logits of shape '
                           f'{scores.shape} do not match the original image '
                           f'size {ori}')
    keys = np.flatnonzero(
        np.any(scores.reshape(scores.shape[0], -1) != 0, axis=1))
    if 'img_labels' in meta:
        img_labels = sorted(int(x) for x in meta['img_labels'])
    else:
        img_labels = [int(k) for k in keys if k > 0]
    if extra.get('influence') is not None:
        extra['influence'] = _check_influence(extra['influence'], ori,
                                              str(meta.get('img_path')))
    return dict(
        img_path=meta.get('img_path'),
        shape=scores.shape,
        keys=keys,
        sel=np.ascontiguousarray(scores[keys]),
        img_labels=img_labels,
        # The classes the model kept (as CAMSegmentor's own refiner gets).
        crf_labels=img_labels
        if use_img_labels and 'img_labels' in meta else None,
        extra=extra)


def _from_scores(score_src: str, dataset, idx: int, stem: str,
                 bg_thr: Optional[float], use_img_labels: bool) -> dict:
    """A job from saved ``scores/<stem>.npz`` (no model inference).

    The saved ``influence`` map, when present, becomes ``job['extra']``.
    """
    path = osp.join(score_src, stem + '.npz')
    if not osp.isfile(path):
        raise FileNotFoundError(f'saved scores not found: {path}')
    try:
        with np.load(path) as data:
            scores = data['scores'].astype(np.float32)
            img_labels = sorted(int(x) for x in np.ravel(data['img_labels']))
            influence = data['influence'] if 'influence' in data.files \
                else None
    except (OSError, ValueError, KeyError) as e:
        raise PseudoLabelError(f'cannot read saved scores {path}: {e}')
    if scores.ndim != 3 or not np.isfinite(scores).all():
        raise PseudoLabelError(f'{path}: scores must be a finite (C, H, W) '
                               f'array, got shape {scores.shape}')
    extra = {}
    if influence is not None:
        try:
            extra['influence'] = _check_influence(influence, scores.shape[1:],
                                                  path)
        except RuntimeError as e:
            raise PseudoLabelError(str(e)) from None
    if bg_thr is not None:
        # channel 0 of the saved scores is the constant background score
        scores[0] = bg_thr
    keys = np.flatnonzero(
        np.any(scores.reshape(scores.shape[0], -1) != 0, axis=1))
    return dict(
        img_path=dataset.get_data_info(idx)['img_path'],
        shape=scores.shape,
        keys=keys,
        sel=np.ascontiguousarray(scores[keys]),
        img_labels=img_labels,
        crf_labels=img_labels if use_img_labels else None,
        extra=extra)


def _fast_model(model, fuse: bool, channels_last: bool, dataset, idx: int,
                use_img_labels: bool, influence_from, log) -> object:
    """The model with BN folded / channels-last, checked on one image.

    The scores of image ``idx`` from the converted model must match the
    original model's within ``1e-4`` of their largest magnitude (float
    rounding of the folded weights is ~1e-6); a model whose modules are
    registered in another order than they run (a BatchNorm applied before
    the convolution registered ahead of it) or whose code needs
    contiguous NCHW features fails here with a clear message instead of
    writing wrong labels.

    Raises:
        PseudoLabelError: The converted model does not match.
    """
    from mmcv.cnn import fuse_conv_bn as fuse_fn
    fast = copy.deepcopy(model)
    flags = []
    if fuse:
        fast = fuse_fn(fast)
        flags.append('fuse_conv_bn')
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
        flags.append('channels_last')
    fast.eval()
    what = ' + '.join(flags)
    try:
        got = _infer(fast, dataset, idx, use_img_labels, influence_from)
    except PseudoLabelError:
        raise
    except Exception as e:
        raise PseudoLabelError(
            f'{what} breaks {type(model).__name__} ({type(e).__name__}: '
            f'{e}); run without it') from e
    ref = _infer(model, dataset, idx, use_img_labels, influence_from)
    same = np.array_equal(got['keys'], ref['keys']) and \
        got['sel'].shape == ref['sel'].shape
    err = float(np.abs(got['sel'] - ref['sel']).max()) if same else np.inf
    scale = max(float(np.abs(ref['sel']).max()) if ref['sel'].size else 0.,
                1e-12)
    if not err <= 1e-4 * scale:
        raise PseudoLabelError(
            f'{what} changes the scores of {ref["img_path"]} by {err:.3g} '
            f'(largest score {scale:.3g}): this model does not survive the '
            'conversion (e.g. a BatchNorm registered after a convolution it '
            'does not follow); run without it')
    log(f'{what}: scores of the first image within {err:.2g} of the '
        'unconverted model')
    return fast


def _run_single(job_of, todo: List[int], ctx: dict, workers: int,
                method: Optional[str], dev: str, scope: str,
                pass_extra: bool, bar) -> Tuple[int, int]:
    """Label ``todo`` in this process; a pool of ``workers`` refines.

    Returns:
        tuple[int, int]: Images written, and how many of them had an
        influence map for the refiner.
    """
    processed = with_influence = 0
    threads = torch.get_num_threads()
    pool = None
    if workers > 1:
        # Fork before the model goes to the GPU; the workers never use
        # torch. The config's start method is honoured when given.
        if method not in multiprocessing.get_all_start_methods():
            method = 'fork' if 'fork' in \
                multiprocessing.get_all_start_methods() else None
        pool = multiprocessing.get_context(method).Pool(workers)
    pending: deque = deque()
    try:
        if pool is not None and torch.device(dev).type == 'cpu':
            # Leave the workers their cores: an OpenMP team competing
            # with them for CPUs slows small convolutions down 100x.
            torch.set_num_threads(max(1, min(threads,
                                             _num_cpus() - workers)))
        with DefaultScope.overwrite_default_scope(scope):
            for i in todo:
                job = job_of(i)
                if pass_extra and job['extra'].get('influence') is not None:
                    with_influence += 1
                if pool is None:
                    _finish_one(ctx, job)
                    processed += 1
                    bar.update()
                    continue
                while len(pending) >= 2 * workers:
                    pending.popleft().get()
                    processed += 1
                    bar.update()
                pending.append(pool.apply_async(_finish_one, (ctx, job)))
        while pending:
            pending.popleft().get()
            processed += 1
            bar.update()
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.terminate()
            pool.join()
    return processed, with_influence


def _die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux).

    A ``procs`` process orphaned by a ``kill -9`` of the tool would go on
    labelling its share next to the user's re-run.
    """
    parent = os.getppid()
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux / no prctl
        return
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


def _proc_main(job_of, todo: List[int], ctx: dict, threads: int,
               scope: str, pass_extra: bool, queue) -> None:
    """Body of one ``procs`` process: infer, refine and write ``todo``."""
    try:
        _die_with_parent()
        torch.set_num_threads(threads)
        with DefaultScope.overwrite_default_scope(scope):
            for i in todo:
                job = job_of(i)
                _finish_one(ctx, job)
                queue.put(('done', int(pass_extra and job['extra'].get(
                    'influence') is not None)))
    except BaseException as e:  # noqa: B036 - reported to the parent
        queue.put(('error', e if isinstance(e, Exception) else
                   RuntimeError(f'{type(e).__name__}: {e}')))
    else:
        queue.put(('end', 0))


def _run_procs(job_of, todo: List[int], ctx: dict, procs: int, scope: str,
               pass_extra: bool, bar) -> Tuple[int, int]:
    """Label ``todo`` in ``procs`` forked processes of one thread each.

    On a CPU, ``procs`` processes with one intra-op thread each keep every
    core busy with the model *and* the CRF, where one process with
    ``procs`` threads leaves cores idle in every serial section (small
    convolutions, resizing, the CRF, PNG encoding); on 2 cores, with the
    heap reuse, both run at the same speed (see the module docstring),
    and this path is kept for its bit-exact outputs. The model, dataset and
    refiner are built once, before ``fork``, and shared copy-on-write;
    process ``k`` labels ``todo[k::procs]`` and refines its own images.
    Outputs are bit-identical to one process running with one thread:
    every image goes through the same code (a run with a thread team sums
    the convolutions in another order: scores within ~2e-6).

    Returns:
        tuple[int, int]: As :func:`_run_single`.

    Raises:
        PseudoLabelError: Where ``fork`` is not available.
        Exception: The first error of a process (the others are stopped;
            finished outputs are kept, so re-running continues).
    """
    if 'fork' not in multiprocessing.get_all_start_methods():
        raise PseudoLabelError('procs > 1 needs the fork start method '
                               '(Linux / macOS); use procs=1')
    mp = multiprocessing.get_context('fork')
    queue = mp.SimpleQueue()
    threads = max(1, torch.get_num_threads() // procs)
    children = [
        mp.Process(
            target=_proc_main,
            args=(job_of, todo[k::procs], ctx, threads, scope, pass_extra,
                  queue),
            daemon=True) for k in range(procs)
    ]
    processed = with_influence = ended = 0
    try:
        for c in children:
            c.start()
        while ended < procs:
            if queue.empty():
                dead = [c for c in children if c.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f'a pseudo-label process died with exit code '
                        f'{dead[0].exitcode} (killed, out of memory?); the '
                        'outputs finished so far are kept, run the same '
                        'command again to continue')
                time.sleep(0.05)
                continue
            kind, value = queue.get()
            if kind == 'done':
                processed += 1
                with_influence += value
                bar.update()
            elif kind == 'end':
                ended += 1
            else:
                raise value
        for c in children:
            c.join()
    finally:
        for c in children:
            if c.is_alive():
                c.terminate()
        for c in children:
            if c.pid is not None:
                c.join()
    return processed, with_influence


def make_pseudo_labels(cfg: Union[str, Config],
                       checkpoint: str,
                       out_dir: str,
                       split: str = 'test',
                       refine: str = 'config',
                       bg_thr: Optional[float] = None,
                       save_scores: bool = False,
                       scores_dtype: str = 'float32',
                       workers: int = 1,
                       procs: int = 1,
                       fuse_conv_bn: bool = False,
                       channels_last: bool = False,
                       reuse_heap: bool = True,
                       num_shards: int = 1,
                       shard_id: int = 0,
                       limit: Optional[int] = None,
                       device: Optional[str] = None,
                       progress: bool = True,
                       from_scores: Optional[str] = None,
                       crf_scale_factor: float = 1.0) -> Dict[str, object]:
    """Write pseudo labels of a dataset split; see the module docstring.

    Args:
        cfg (str | Config): Config (path or object; not modified).
        checkpoint (str): Model checkpoint (local path or URL).
        out_dir (str): Output folder.
        split (str): Dataloader whose dataset is labelled: ``'train'``,
            ``'val'`` or ``'test'``. Defaults to ``'test'``.
        refine (str): ``'config'`` (``model.test_cfg.refine``), ``'none'``
            (argmax), ``'irn_label'`` or ``'psa_softmax'`` (DenseCRF).
        bg_thr (float, optional): Overrides ``model.test_cfg.bg_thr``.
        save_scores (bool): Also write ``scores/<stem>.npz``.
        scores_dtype (str): ``'float32'`` (default; the argmax of the saved
            scores is then exactly the ``'none'`` label map) or
            ``'float16'`` (half the disk space).
        workers (int): Processes for label assignment and writing; 1 runs
            them in the main process. Defaults to 1.
        procs (int): CPU inference only: label the images in this many
            forked processes of ``threads // procs`` intra-op threads
            each, every process refining and writing its own images (the
            fast path on a CPU, see :func:`_run_procs`; ``workers`` is then
            unused). Same outputs as one process. Defaults to 1.
        fuse_conv_bn (bool): Fold every eval-mode BatchNorm into the
            convolution before it (``mmcv.cnn.fuse_conv_bn``, as
            ``--fuse-conv-bn`` of OpenMMLab's test tools). Checked on the
            first image against the unfused model (see
            :func:`_check_fast_model`). Defaults to False.
        channels_last (bool): Convert the model to the channels-last
            memory format (faster CPU convolutions; checked the same way).
            ``fuse_conv_bn`` + ``channels_last`` made the demo
            EfficientNet-Lite0 CAM forward ~1.6x faster on one CPU thread.
            Defaults to False.
        reuse_heap (bool): On glibc, serve every allocation from the
            heap and keep freed memory there while the images are
            labelled (:func:`mmwsss.utils.heap.reuse_heap`): the large
            activations of the next image reuse the pages of the last one
            instead of page-faulting fresh ones (1.5-2.3x faster CPU
            forwards on the demo at 512 x 384). Outputs do not change.
            Defaults to True.
        num_shards (int): Split the images into this many shards; image
            ``i`` belongs to shard ``i % num_shards``.
        shard_id (int): The shard this call labels.
        limit (int, optional): Only the first ``limit`` images of the
            shard (handy for a quick look).
        device (str, optional): Inference device; default ``cuda`` when
            available, else ``cpu``.
        progress (bool): Show a progress bar and messages.
        from_scores (str, optional): Folder of ``<stem>.npz`` scores saved
            by an earlier ``save_scores`` run of the same checkpoint: label
            assignment (e.g. DenseCRF at a tuned ``bg_thr``) without running
            the model again. With ``bg_mode='const'`` and ``bg_thr`` given,
            the background channel is replaced by ``bg_thr``. An
            influence-aware refiner gets the saved ``influence`` maps
            (uniform influence for files saved without them).
        crf_scale_factor (float): Divisor of the spatial standard
            deviations of the ``'irn_label'`` / ``'psa_softmax'`` DenseCRF
            (:class:`~mmwsss.refine.DenseCRF` ``scale_factor``, as PSA's
            ``crf_inference``): their constants are pixels of ~500-pixel
            PASCAL VOC photographs, so images shrunk by a factor ``f`` get
            the same CRF relative to the image with ``f`` (the demo's
            128-pixel scenes: 512 / 128 = 4). Defaults to 1 (the constants
            as published). Only for those two ``refine`` values.

    Returns:
        dict: ``total`` (images of this shard, after ``limit``),
        ``skipped`` (already done), ``processed`` (written now),
        ``influence`` (images of ``processed`` whose refiner got an
        influence map), ``out_dir`` and ``meta`` (the meta file path).
    """
    if refine not in REFINE_CHOICES:
        raise PseudoLabelError(f'unknown refine {refine!r}; choose from '
                               f'{", ".join(REFINE_CHOICES)}')
    if crf_scale_factor != 1.0 and refine not in ('irn_label',
                                                  'psa_softmax'):
        raise PseudoLabelError(
            f'crf_scale_factor={crf_scale_factor} applies to refine '
            f"'irn_label' / 'psa_softmax', not {refine!r} (set the "
            "refiner's scale_factor in model.test_cfg.refine instead)")
    if not crf_scale_factor > 0:
        raise PseudoLabelError(
            f'crf_scale_factor must be > 0, got {crf_scale_factor}')
    if split not in SPLITS:
        raise PseudoLabelError(f'unknown split {split!r}; choose from '
                               f'{", ".join(SPLITS)}')
    if scores_dtype not in SCORE_DTYPES:
        raise PseudoLabelError(f'scores_dtype must be one of {SCORE_DTYPES}, '
                               f'got {scores_dtype!r}')
    if int(workers) != workers or workers < 1:
        raise PseudoLabelError(f'workers must be >= 1, got {workers}')
    if int(procs) != procs or procs < 1:
        raise PseudoLabelError(f'procs must be >= 1, got {procs}')
    if int(num_shards) != num_shards or num_shards < 1:
        raise PseudoLabelError(f'num_shards must be >= 1, got {num_shards}')
    if int(shard_id) != shard_id or not 0 <= shard_id < num_shards:
        raise PseudoLabelError(f'shard_id must be in [0, {num_shards - 1}], '
                               f'got {shard_id}')
    if limit is not None and limit < 0:
        raise PseudoLabelError(f'limit must be >= 0, got {limit}')
    if isinstance(cfg, str):
        if not osp.isfile(cfg):
            raise FileNotFoundError(f'config not found: {cfg}')
        cfg = Config.fromfile(cfg)
    else:
        cfg = copy.deepcopy(cfg)
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    checkpoint = checkpoint if '://' in checkpoint else osp.abspath(checkpoint)
    if cfg.get('model', None) is None:
        raise PseudoLabelError(f'config {cfg.filename} has no model')
    if bg_thr is not None:
        if cfg.model.get('test_cfg', None) is None:
            cfg.model['test_cfg'] = dict()
        cfg.model.test_cfg['bg_thr'] = float(bg_thr)
    ds_cfg = dataset_cfg_for_split(cfg, split)
    out_dir = osp.abspath(out_dir)
    score_dir = osp.join(out_dir, 'scores')

    def log(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    from mmwsss.registry import DATASETS, MODELS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmwsss')):
        dataset = DATASETS.build(ds_cfg)
        transforms = getattr(
            getattr(dataset, 'pipeline', None), 'transforms', [])
        randoms = [
            type(t).__name__ for t in transforms
            if 'Random' in type(t).__name__
        ]
        if randoms:
            log(f'warning: the {split} pipeline has random transforms '
                f'{randoms}; pseudo labels will not be reproducible')
        palette = dataset.metainfo.get('palette', None)
        stems: List[str] = []
        for i in range(len(dataset)):
            path = dataset.get_data_info(i)['img_path']
            stems.append(osp.splitext(osp.basename(path))[0])
        if len(set(stems)) != len(stems):
            seen, dup = set(), None
            for s in stems:
                if s in seen:
                    dup = s
                    break
                seen.add(s)
            raise PseudoLabelError(
                f'several images of the {split} split share the file name '
                f'"{dup}"; their pseudo labels would overwrite each other')
        indices = [
            i for i in range(len(dataset)) if i % num_shards == shard_id
        ]
        if limit is not None:
            indices = indices[:limit]

        model = MODELS.build(cfg.model)
        test_cfg = dict(getattr(model, 'test_cfg', None) or {})
        model_refine = test_cfg.pop('refine', None)
        if hasattr(model, 'set_refiner'):
            model.set_refiner(None)
        refiner = _build_refiner(refine, model_refine, crf_scale_factor)
        use_img_labels = bool(test_cfg.get('use_img_labels', True))
        pass_extra = _accepts_influence(refiner)
        # Which refiner refine_kwargs sees: the real one when it takes the
        # maps; a probe when they are only saved with the scores.
        influence_from = None
        if pass_extra and callable(getattr(model, 'refine_kwargs', None)):
            influence_from = refiner
        elif save_scores and _model_has_influence(model):
            influence_from = _InfluenceProbe()

    # The checkpoint by content: a retrained model saved under the same
    # path must not silently reuse the old labels.
    settings = dict(
        checkpoint=checkpoint if '://' in checkpoint else 'sha256:' +
        _file_sha256(checkpoint),
        split=split,
        refine=refine,
        refine_cfg=_refine_cfg(refine, model_refine, crf_scale_factor),
        test_cfg=_jsonable(test_cfg))
    if from_scores is not None:
        from_scores = osp.abspath(from_scores)
        if not osp.isdir(from_scores):
            raise FileNotFoundError(
                f'--from-scores folder not found: {from_scores}')
        if bg_thr is not None and test_cfg.get('bg_mode', 'const') != \
                'const':
            raise PseudoLabelError(
                'bg_thr with from_scores needs bg_mode="const"; saved '
                f'scores of bg_mode={test_cfg.get("bg_mode")!r} cannot be '
                're-thresholded')
        settings['from_scores'] = from_scores
    check_previous_meta(out_dir, settings, _COMPARED, 'settings', '.png',
                        'make_pseudo_labels', PseudoLabelError)

    def outputs(stem: str) -> Tuple[str, Optional[str]]:
        npz = osp.join(score_dir, stem + '.npz') if save_scores else None
        return osp.join(out_dir, stem + '.png'), npz

    def done(stem: str) -> bool:
        png, npz = outputs(stem)
        return osp.isfile(png) and (npz is None or osp.isfile(npz))

    todo = [i for i in indices if not done(stems[i])]
    skipped = len(indices) - len(todo)
    os.makedirs(out_dir, exist_ok=True)
    mine = {stems[i] + '.png' for i in indices}
    removed = remove_stale_tmp(out_dir, mine)
    if save_scores:
        removed += remove_stale_tmp(score_dir,
                                    {stems[i] + '.npz'
                                     for i in indices})
    if removed:
        log(f'removed {removed} temporary file(s) of an interrupted run')
    log(f'{len(indices)} images in shard {shard_id}/{num_shards} of the '
        f'{split} split: skipping {skipped} already done, {len(todo)} to do')

    meta_path = osp.join(out_dir, shard_meta_name(num_shards, shard_id))
    meta = dict(
        config=cfg.filename,
        checkpoint=checkpoint,
        split=split,
        refine=refine,
        refine_cfg=settings['refine_cfg'],
        bg_thr=test_cfg.get('bg_thr'),
        save_scores=bool(save_scores),
        scores_dtype=scores_dtype if save_scores else None,
        num_shards=num_shards,
        shard_id=shard_id,
        limit=limit,
        count=len(indices),
        done=skipped,
        complete=not todo,
        settings=settings)

    def write_meta() -> None:
        atomic_write_bytes(meta_path,
                           json.dumps(meta, indent=2).encode('utf-8'))

    write_meta()
    processed = 0
    with_influence = 0
    if todo:
        if from_scores is None:
            ckpt = load_checkpoint(
                model, checkpoint, map_location='cpu', strict=True)
            _load_influence_state(model, ckpt, log)
            del ckpt
        model.eval()
        ctx = dict(
            refiner=refiner,
            pass_extra=pass_extra,
            palette=palette,
            save_scores=bool(save_scores),
            scores_dtype=scores_dtype)
        dev = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        if (fuse_conv_bn or channels_last) and from_scores is None:
            model.to(dev)
            with DefaultScope.overwrite_default_scope(
                    cfg.get('default_scope', 'mmwsss')):
                model = _fast_model(model, fuse_conv_bn, channels_last,
                                    dataset, todo[0], use_img_labels,
                                    influence_from, log)
        procs = min(int(procs), len(todo))
        if procs > 1 and torch.device(dev).type != 'cpu':
            raise PseudoLabelError(
                f'procs={procs} is for CPU inference; on {dev} use one '
                'process (and workers for the label assignment)')
        if procs > 1 and workers > 1:
            log(f'note: with procs={procs} every process assigns the labels '
                f'of its own images; workers={workers} is not used')

        def job_of(i: int) -> dict:
            if from_scores is None:
                job = _infer(model, dataset, i, use_img_labels,
                             influence_from)
            else:
                job = _from_scores(from_scores, dataset, i, stems[i],
                                   bg_thr, use_img_labels)
            got = osp.splitext(osp.basename(job['img_path'] or ''))[0]
            if got != stems[i]:
                raise RuntimeError(
                    f'image {i} should be "{stems[i]}" but the '
                    f'pipeline gave "{job["img_path"]}"')
            job['stem'] = stems[i]
            job['png_path'], job['npz_path'] = outputs(stems[i])
            return job

        bar = tqdm(
            total=len(todo),
            desc='pseudo labels',
            unit='img',
            disable=not progress,
            file=sys.stderr,
            mininterval=bar_interval())
        t0 = time.time()
        scope = cfg.get('default_scope', 'mmwsss')
        try:
            model.to(dev)
            with heap_reuse(reuse_heap):
                if procs > 1:
                    processed, with_influence = _run_procs(
                        job_of, todo, ctx, procs, scope, pass_extra, bar)
                else:
                    method = cfg.get('env_cfg', {}).get('mp_cfg', {}).get(
                        'mp_start_method', None)
                    processed, with_influence = _run_single(
                        job_of, todo, ctx, workers, method, dev, scope,
                        pass_extra, bar)
        finally:
            bar.close()
        meta['done'] = skipped + processed
        meta['complete'] = True
        meta['seconds'] = round(time.time() - t0, 3)
        write_meta()
        if pass_extra and with_influence < processed:
            log(f'warning: {processed - with_influence} of {processed} '
                'image(s) refined with uniform influence (no refreshed '
                'influence state in the checkpoint, no img_labels, or '
                'scores saved without influence maps)')
        log(f'wrote {processed} pseudo label(s) to {out_dir}')
    return dict(
        total=len(indices),
        skipped=skipped,
        processed=processed,
        influence=with_influence,
        out_dir=out_dir,
        meta=meta_path)
