# Copyright (c) mmwsss contributors.
"""Inference on single images, in the shape of ``mmseg.apis``.

- ``mmseg.apis.init_model`` / ``inference_model`` work on every mmwsss
  config as they are: the test pipelines load with ``_scope_='mmseg'``
  (mmseg drops ``type='LoadAnnotations'`` and retypes the first step to
  ``LoadImageFromNDArray``), and ``PackWSSSInputs(allow_missing_labels=
  True)`` lets a CAM model predict the classes of an unlabelled image.
- :func:`init_model` is mmseg's plus what CAM models need: the IG-CAM
  influence state of the checkpoint, and the dataset classes / palette
  from the config when the checkpoint has none.
- :func:`inference_cam` returns everything a CAM model knows about one
  image: per-class CAMs, the seed, the refined label map and, when the
  model has them, IG-CAM influence maps and proposals and CamGuide coarse
  and refined maps (drawn by :class:`mmwsss.visualization.WSSSVisualizer`).
- :func:`predict_images` writes the label maps of any segmentor for a
  folder of images (``tools/predict.py``).
"""
import copy
import os.path as osp
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample

from .pseudo_labels import (_build_refiner, _InfluenceProbe,
                            _load_influence_state, _model_has_influence,
                            _model_refiner, _type_name)

ImageInput = Union[str, np.ndarray]
#: ``refine`` choices of :func:`inference_cam`.
CAM_REFINE_CHOICES = ('auto', 'config', 'none', 'irn_label', 'psa_softmax')


def _scope(cfg: Optional[Config]) -> str:
    return (cfg.get('default_scope', None) if cfg is not None else None) \
        or 'mmwsss'


def _loader_dataset(cfg: Config, key: str) -> Optional[dict]:
    loader = cfg.get(key, None)
    return None if not loader else loader.get('dataset', None)


def dataset_meta_from_config(cfg: Config) -> Dict[str, list]:
    """Classes and palette of the first dataset of the config.

    The test, val, then train dataloader's dataset (the first of a dataset
    wrapper) is built lazily (no file is read) under the config's scope,
    so the meta information is exactly the dataset's: its ``METAINFO``
    updated by the config's ``metainfo`` (e.g. the classes of a
    :class:`~mmwsss.datasets.WSSSFolderDataset`).

    Args:
        cfg (Config): The config.

    Returns:
        dict: ``classes`` and ``palette``.

    Raises:
        ValueError: No dataloader has a dataset with classes.
    """
    from mmwsss.registry import DATASETS
    from mmwsss.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        ds = _loader_dataset(cfg, key)
        while ds is not None and (ds.get('dataset') is not None
                                  or ds.get('datasets') is not None):
            ds = ds.get('dataset') or ds['datasets'][0]
        if ds is None:
            continue
        ds = copy.deepcopy(dict(ds))
        ds.update(lazy_init=True, pipeline=[])
        with DefaultScope.overwrite_default_scope(_scope(cfg)):
            meta = DATASETS.build(ds).metainfo
        if meta.get('classes'):
            return dict(
                classes=list(meta['classes']),
                palette=[list(c) for c in meta['palette']])
    raise ValueError(f'config {cfg.filename}: no dataloader dataset with '
                     'classes, cannot name the classes')


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None):
    """``mmseg.apis.init_model`` for mmwsss models.

    On top of mmseg's function: the model gets the dataset classes and
    palette of the config when the checkpoint does not carry them (or
    there is none), and an IG-CAM model gets the influence state saved in
    the checkpoint by :class:`~mmwsss.engine.hooks.InfluenceHook` (without
    it, influence maps are uniform).

    Args:
        config (str | Path | Config): Config file or object.
        checkpoint (str, optional): Checkpoint file.
        device (str): Device. Defaults to ``'cpu'`` (mmseg: ``cuda:0``).
        cfg_options (dict, optional): Overrides of the config.

    Returns:
        nn.Module: The model in eval mode, with ``cfg`` and
        ``dataset_meta``.
    """
    from mmengine.runner import load_checkpoint
    from mmseg.apis import init_model as mmseg_init_model
    if isinstance(config, (str, Path)):
        config = Config.fromfile(str(config))
    else:
        config = copy.deepcopy(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    if checkpoint is not None and config.model.get('teacher_checkpoint'):
        # a CamGuide checkpoint carries the teacher's weights
        config.model.teacher_checkpoint = None
    # mmseg guesses the classes from ``decode_head`` when a checkpoint has
    # no dataset_meta, which a CAM model lacks: load the weights here.
    model = mmseg_init_model(config, None, device)
    meta = None
    if checkpoint is not None:
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
        meta = (ckpt.get('meta') or {}).get('dataset_meta')
        _load_influence_state(model, ckpt,
                              lambda msg: print(msg, file=sys.stderr))
        del ckpt
    if not meta or not meta.get('classes'):
        meta = dataset_meta_from_config(model.cfg)
    model.dataset_meta = dict(
        classes=list(meta['classes']),
        palette=[list(c) for c in meta['palette']])
    model.to(device)
    model.eval()
    return model


def _pipeline_cfg(cfg: Config, ndarray: bool) -> List[dict]:
    """The test pipeline for one image, as mmseg's ``_preprare_data``.

    ``LoadAnnotations`` (with or without an ``mmseg.`` prefix) is dropped;
    the first step becomes ``LoadImageFromNDArray`` for an array input and
    ``LoadImageFromFile`` for a file.
    """
    pipeline = cfg.get('test_pipeline', None)
    if pipeline is None:
        ds = _loader_dataset(cfg, 'test_dataloader') or {}
        pipeline = ds.get('pipeline')
    if not pipeline:
        raise ValueError(f'config {cfg.filename}: no test_pipeline')
    steps = [
        copy.deepcopy(dict(t)) for t in pipeline
        if _type_name(t) != 'LoadAnnotations'
    ]
    # mmseg's inference_model retypes step 0 of model.cfg in place for an
    # array; set it by the kind of input either way
    t = steps[0]
    name = t['type'] if isinstance(t['type'], str) else ''
    prefix = name.rsplit('.', 1)[0] + '.' if '.' in name else ''
    if _type_name(t) in ('LoadImageFromFile', 'LoadImageFromNDArray'):
        t['type'] = prefix + ('LoadImageFromNDArray'
                              if ndarray else 'LoadImageFromFile')
    elif ndarray:
        raise ValueError('an array input needs a test pipeline that '
                         f'starts with LoadImageFromFile, got {name}')
    return steps


def prepare_image(model,
                  img: ImageInput,
                  labels: Optional[Sequence[int]] = None,
                  cfg: Optional[Config] = None) -> dict:
    """One image through the config's test pipeline, collated.

    Args:
        model: The model (``model.cfg`` is used when ``cfg`` is None).
        img (str | np.ndarray): Image file, or a BGR array (as
            ``mmcv.imread`` / ``cv2.imread`` give, like mmseg's
            ``inference_model``).
        labels (Sequence[int], optional): Foreground class indices of the
            image (``img_labels``).
        cfg (Config, optional): Config of the pipeline.

    Returns:
        dict: ``inputs`` and ``data_samples`` lists of one image.
    """
    cfg = cfg if cfg is not None else getattr(model, 'cfg', None)
    if cfg is None:
        raise ValueError('the model has no cfg (build it with init_model) '
                         'and no cfg was given')
    ndarray = isinstance(img, np.ndarray)
    steps = _pipeline_cfg(cfg, ndarray)
    results = dict(img=img) if ndarray else dict(img_path=str(img))
    if labels is not None:
        results['img_labels'] = sorted(int(x) for x in labels)
    with DefaultScope.overwrite_default_scope(_scope(cfg)):
        data = Compose(steps)(results)
    if data is None:
        raise RuntimeError(f'the test pipeline dropped the image {img!r}')
    return pseudo_collate([data])


@contextmanager
def _test_cfg(model, **values) -> Iterator[None]:
    old = {k: model.test_cfg[k] for k in values}
    model.test_cfg.update(values)
    try:
        yield
    finally:
        model.test_cfg.update(old)


def _predicted_labels(logits: torch.Tensor) -> List[int]:
    """Positive logits, else the top one (``use_img_labels=False``)."""
    labels = [int(i) + 1 for i in torch.nonzero(logits > 0)[:, 0]]
    return labels or [int(logits.argmax()) + 1]


def _maps_at_original(model, maps: torch.Tensor, meta: dict,
                      size) -> np.ndarray:
    """ReLU maps ``(N=1, K, h, w)`` -> normalised ``(K, H0, W0)``."""
    from mmwsss.cams.cam_ops import normalize_cams
    x = F.interpolate(
        torch.relu(maps.float()),
        size=size,
        mode='bilinear',
        align_corners=False)[0]
    x = model._to_original(x, meta)
    x = normalize_cams(x, model.test_cfg['norm'], model.test_cfg['norm_eps'])
    return x.cpu().numpy().astype(np.float32)


def _resolve_refiner(model, refine: str):
    if refine not in CAM_REFINE_CHOICES:
        raise ValueError(f'refine must be one of {CAM_REFINE_CHOICES}, got '
                         f'{refine!r}')
    model_refine = (getattr(model, 'test_cfg', None) or {}).get('refine')
    if refine == 'auto':
        refine = 'config' if model_refine else 'irn_label'
    name = refine
    if refine == 'config':
        name = model_refine.get('type', 'config') if model_refine else 'none'
    return _build_refiner(refine, model_refine), name


@torch.no_grad()
def cam_result(model,
               data: dict,
               refine: str = 'auto',
               labels_given: bool = True) -> SegDataSample:
    """:func:`inference_cam` on data already through the pipeline.

    Args:
        model: A CAM segmentor (``multi_scale_cams`` / ``cam_scores``).
        data (dict): Collated ``inputs`` / ``data_samples`` of one image;
            ``img_labels`` in the sample's meta information are the
            image's classes, otherwise the predicted classes are used.
        refine (str): See :func:`inference_cam`.
        labels_given (bool): Recorded in the result's meta information.

    Returns:
        SegDataSample: See :func:`inference_cam`.
    """
    if not callable(getattr(model, 'multi_scale_cams', None)):
        raise TypeError(f'{type(model).__name__} is not a CAM segmentor '
                        '(no multi_scale_cams); use mmseg.apis.'
                        'inference_model for a segmentation model')
    was_training = model.training
    model.eval()
    try:
        data = model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        if inputs.shape[0] != 1:
            raise ValueError('cam_result takes one image')
        sample = samples[0]
        if 'img_labels' not in sample.metainfo:
            labels_given = False
            cams, logits = model.multi_scale_cams(inputs, samples)
            sample.set_metainfo(dict(img_labels=_predicted_labels(logits[0])))
            if _model_has_influence(model):
                # IG-CAM: the CAMs again, guided by the predicted classes
                cams, logits = model.multi_scale_cams(inputs, samples)
        else:
            cams, logits = model.multi_scale_cams(inputs, samples)
        meta = sample.metainfo
        with _test_cfg(model, use_img_labels=True):
            scores, used = model.cam_scores(cams[0], logits[0], meta)
        size = tuple(inputs.shape[-2:])
        all_cams = _maps_at_original(model, cams, meta, size)
        scores_np = scores.float().cpu().numpy()
        seed = scores_np.argmax(axis=0)
        refiner, refine_name = _resolve_refiner(model, refine)
        out = SegDataSample(metainfo=dict(meta))
        extra: dict = {}
        if _model_has_influence(model):
            probe = refiner if getattr(refiner, 'accepts_influence',
                                       False) else _InfluenceProbe()
            with _model_refiner(model, probe):
                extra = dict(model.refine_kwargs(inputs, samples)[0])
            if extra.get('influence') is not None:
                out.influence = PixelData(
                    data=torch.as_tensor(
                        np.asarray(extra['influence'], np.float32))[None])
        refined = None
        if refiner is not None:
            kwargs = extra if getattr(refiner, 'accepts_influence',
                                      False) else {}
            refined = np.asarray(
                refiner(
                    model.rgb_image(inputs[0], meta), scores_np, used,
                    **kwargs),
                dtype=np.int64)
        head = getattr(model, 'cam_head', None)
        if callable(getattr(head, 'gather_proposals', None)):
            props = head.gather_proposals(samples, inputs.device)
            if props is not None and props[0] is not None:
                boxes = props[0].float().cpu().clone()
                ih, iw = meta.get('img_shape', size)[:2]
                oh, ow = meta.get('ori_shape', (ih, iw))[:2]
                boxes[:, 0::2] *= ow / iw
                boxes[:, 1::2] *= oh / ih
                out.proposals = InstanceData(bboxes=boxes)
        if callable(getattr(model, 'student_forward', None)):
            coarse, refined_map = model.student_forward(inputs)
            out.coarse_cams = PixelData(
                data=torch.from_numpy(
                    _maps_at_original(model, coarse, meta, size)))
            if refined_map is not None:
                out.refined_cams = PixelData(
                    data=torch.from_numpy(
                        _maps_at_original(model, refined_map, meta, size)))
        out.set_data(
            dict(
                seg_logits=PixelData(data=torch.from_numpy(scores_np)),
                cams=PixelData(data=torch.from_numpy(all_cams)),
                seed_sem_seg=PixelData(
                    data=torch.from_numpy(seed.astype(np.int64))[None])))
        pred = seed
        if refined is not None:
            out.refined_sem_seg = PixelData(
                data=torch.from_numpy(refined)[None])
            pred = refined
        out.pred_sem_seg = PixelData(
            data=torch.from_numpy(np.asarray(pred, np.int64))[None])
        bg_mode = model.test_cfg.get('bg_mode', 'const')
        # const: the config's; otsu: this image's constant background score
        bg_thr = None if bg_mode == 'power' else float(scores_np[0, 0, 0])
        out.set_metainfo(
            dict(
                img_labels=list(used),
                labels_given=bool(labels_given),
                img_scores=torch.sigmoid(logits[0]).float().cpu().tolist(),
                bg_thr=bg_thr,
                bg_mode=bg_mode,
                bg_alpha=model.test_cfg.get('bg_alpha'),
                refine=refine_name))
        return out
    finally:
        model.train(was_training)


def inference_cam(model,
                  img: ImageInput,
                  labels: Optional[Sequence[int]] = None,
                  refine: str = 'auto',
                  cfg: Optional[Config] = None) -> SegDataSample:
    """Per-class CAMs, seed and refined label of one image.

    The CAMs are the model's test-time CAMs (``test_cfg``: scales, flip,
    normalisation), at the original image size. For a model built with
    ``mmseg.apis.init_model`` or :func:`init_model`.

    Args:
        model: A CAM segmentor (``CAMSegmentor``, ``IGCAMSegmentor``,
            ``CamGuideSegmentor``) with ``cfg``.
        img (str | np.ndarray): Image file, or BGR array.
        labels (Sequence[int], optional): The image's foreground class
            indices. None: the classes the model predicts (positive
            image logit, else the top one: the rule of
            ``test_cfg.use_img_labels=False``); an IG-CAM model then
            computes its CAMs again with them, for the influence maps.
        refine (str): Refined label map: ``'auto'`` (default) the
            model's ``test_cfg.refine`` when set, else DenseCRF with the
            IRN label unary (the pseudo-label step of the demo);
            ``'config'``, ``'none'``, ``'irn_label'``, ``'psa_softmax'``
            as in ``tools/make_pseudo_labels.py``.
        cfg (Config, optional): Config whose ``test_pipeline`` is used
            (default ``model.cfg``).

    Returns:
        SegDataSample: with

        - ``seg_logits`` ``(C, H, W)``: the model's scores (background
          score first, normalised CAMs of the used classes, 0 elsewhere),
          as ``predict`` gives them;
        - ``cams`` ``(C - 1, H, W)``: normalised CAM of *every* foreground
          class (channel ``k`` is class ``k + 1``);
        - ``seed_sem_seg``: argmax of ``seg_logits`` (ties to background);
          ``refined_sem_seg`` (unless ``refine='none'``);
          ``pred_sem_seg``: the refined map, else the seed;
        - IG-CAM: ``influence`` ``(1, H, W)`` (the multi-scale influence
          map of the used classes; only with a refreshed influence state)
          and ``proposals`` (``bboxes`` in original image pixels, the ones
          the head selects; only when the pipeline loads proposals);
        - CamGuide: ``coarse_cams`` and, in stage 3, ``refined_cams``
          ``(C - 1, H, W)``: single-scale normalised maps of the CAM head
          and of the refinement head;
        - meta information: ``img_labels`` (classes used),
          ``labels_given``, ``img_scores`` (sigmoid of the image logits,
          one per foreground class), ``bg_mode``, ``bg_thr`` (the
          constant background score: the config's, or the image's Otsu
          threshold; None for ``power``), ``bg_alpha``, ``refine`` (the
          refiner's name) and the pipeline's keys.
    """
    data = prepare_image(model, img, labels, cfg)
    return cam_result(model, data, refine, labels is not None)


def predict_images(model,
                   images: Sequence[str],
                   out_dir: str,
                   overlay: bool = False,
                   skip_existing: bool = True,
                   progress: bool = True) -> Dict[str, int]:
    """Label maps of a segmentor for image files (``tools/predict.py``).

    Runs ``mmseg.apis.inference_model`` on each image and writes
    ``<out_dir>/<stem>.png`` (palette PNG of ``pred_sem_seg`` with the
    model's ``dataset_meta`` palette) and, with ``overlay``,
    ``<out_dir>/overlay/<stem>.png`` (labels blended over the image).
    Files are written atomically; with ``skip_existing`` images whose
    outputs exist are skipped, so an interrupted run continues.

    Args:
        model: A model from :func:`init_model` (or mmseg's).
        images (Sequence[str]): Image files (unique stems).
        out_dir (str): Output folder.
        overlay (bool): Also write overlays. Defaults to False.
        skip_existing (bool): Skip finished images. Defaults to True.
        progress (bool): Show a progress bar.

    Returns:
        dict: ``total``, ``skipped`` and ``written`` image counts.
    """
    from mmseg.apis import inference_model
    from tqdm import tqdm

    from mmwsss.utils.io import atomic_save_label_png
    from mmwsss.visualization import WSSSVisualizer, save_png
    stems = [osp.splitext(osp.basename(p))[0] for p in images]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        raise ValueError(f'several images share the stem(s) {sorted(dup)}; '
                         'their outputs would overwrite each other')
    meta = getattr(model, 'dataset_meta', None) or {}
    palette = meta.get('palette')
    vis = WSSSVisualizer(
        name='predict_images',
        classes=meta.get('classes'),
        palette=palette,
        alpha=0.5) if overlay else None
    skipped = written = 0
    for path, stem in tqdm(
            list(zip(images, stems)),
            desc='predict',
            unit='img',
            disable=not progress,
            file=sys.stderr):
        png = osp.join(out_dir, stem + '.png')
        ovl = osp.join(out_dir, 'overlay', stem + '.png')
        if skip_existing and osp.isfile(png) and (not overlay
                                                  or osp.isfile(ovl)):
            skipped += 1
            continue
        result = inference_model(model, path)
        label = result.pred_sem_seg.data[0].cpu().numpy()
        atomic_save_label_png(png, label, palette)
        if overlay:
            from mmwsss.apis.pseudo_labels import read_rgb
            save_png(ovl, vis.draw_label(label, read_rgb(path)))
        written += 1
    return dict(total=len(images), skipped=skipped, written=written)
