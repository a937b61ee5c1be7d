# Copyright (c) mmwsss contributors.
"""Log the quality of the CAM and the heuristic targets against masks."""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import Dataset

from mmwsss.evaluation.target_quality import ForegroundAUC, LabelMapIoU
from mmwsss.registry import DATASETS, HOOKS
from .influence_hook import preserved_rng_state

IdSource = Union[None, str, Sequence[str]]


def _read_ids(source: IdSource) -> Optional[List[str]]:
    """Image ids from a file (one per line) or a list; None keeps all."""
    if source is None:
        return None
    if isinstance(source, str):
        if not osp.isfile(source):
            raise FileNotFoundError(f'TargetQualityHook: image id file not '
                                    f'found: {source}')
        with open(source, encoding='utf-8') as f:
            return [line.strip() for line in f if line.strip()]
    return [str(x) for x in source]


@HOOKS.register_module()
class TargetQualityHook(Hook):
    """mIoU of the current CAM and of each heuristic target vs masks.

    For the images of ``dataset`` that have masks (optionally restricted to
    ``img_ids``), every ``interval`` training iterations (and before the
    first and after the last), the hook computes with the current model, in
    eval mode and without gradients:

    - ``cam``: the CAM thresholded at a fixed background score ``tau``
      (argmax of ``[tau, CAM_1..K]`` over the image's classes), and
    - every heuristic target the model builds in training (CamGuide stage
      3: ``crf`` = DenseCRF + closing, ``rw`` = SLIC random walk), from
      the same scores,

    through ``model.heuristic_target_maps(inputs, data_samples, tau)``
    (``CamGuideSegmentor.heuristic_target_maps``); a model without that
    method is scored on the ``pred_sem_seg`` of its ``predict`` (``cam``
    only). The maps are resized to the masks with
    nearest neighbours and booked into one confusion matrix per name over
    all images (VOC protocol, :class:`~mmwsss.evaluation.target_quality.
    LabelMapIoU`).

    A model with ``quality_maps(inputs, data_samples)`` (IG-CAM: the
    influence map and the ``|CAM|`` saliency control's map,
    :meth:`~mmwsss.models.segmentors.IGCAMSegmentor.quality_maps`) also has each of
    those continuous maps scored by its foreground AUC (the map as a
    detector of the mask's objects, mean over images,
    :class:`~mmwsss.evaluation.target_quality.ForegroundAUC`), logged as
    ``{prefix}/{name}_auc``.

    The mIoUs (in %) are logged as ``{prefix}/{name}_miou``: in the message
    hub (``runner.message_hub.update_scalar``), through the visualizer
    (``add_scalars`` at step ``runner.iter``, so they land in
    ``scalars.json`` and every vis backend), and as one log line. The
    dataset is read and run through its pipeline once, in
    ``before_train``; the pipeline must be deterministic (e.g.
    ``mmseg.LoadImageFromFile``, ``mmseg.Resize`` to the training crop
    size with ``keep_ratio=False``, ``mmseg.LoadAnnotations``,
    ``PackWSSSInputs``). The training RNG streams are left untouched
    (:func:`preserved_rng_state`), and so are BN statistics and gradients
    (eval mode, ``torch.no_grad``); the model's training mode is restored.

    A user with a small labelled subset of the training images points
    ``dataset`` at the training data with ``ann_file`` (or ``img_ids``)
    listing the labelled ids.

    Args:
        dataset (dict | Dataset): Images with masks (``gt_sem_seg``) and
            ``img_labels``; a config is built with ``test_mode=True``
            unless it says otherwise.
        interval (int): Iterations between evaluations. Defaults to 50.
        img_ids (str | list[str], optional): Only these image ids (file
            stems): a list or a file with one id per line.
        max_images (int, optional): Use at most this many images (the
            first in dataset order).
        tau (float, optional): Background score; None lets the model choose
            (CamGuide: the middle of ``train_cfg.tau_range``).
        batch_size (int): Images per forward. Defaults to 8.
        num_classes (int, optional): Classes including background; None
            takes ``model.num_classes``.
        ignore_index (int): Ignored mask value. Defaults to 255.
        prefix (str): Scalar name prefix. Defaults to
            ``'target_quality'``.
        before_train (bool): Also evaluate before the first iteration.
            Defaults to True.
    """

    priority = 'LOW'

    def __init__(self,
                 dataset: Union[dict, Dataset],
                 interval: int = 50,
                 img_ids: IdSource = None,
                 max_images: Optional[int] = None,
                 tau: Optional[float] = None,
                 batch_size: int = 8,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255,
                 prefix: str = 'target_quality',
                 before_train: bool = True) -> None:
        if isinstance(interval, bool) or int(interval) != interval or \
                interval < 1:
            raise ValueError(f'interval must be an integer >= 1, got '
                             f'{interval!r}')
        if int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if max_images is not None and int(max_images) < 1:
            raise ValueError(f'max_images must be >= 1, got {max_images}')
        if tau is not None and not 0 <= tau <= 1:
            raise ValueError(f'tau must be in [0, 1], got {tau}')
        self.dataset_cfg = dataset
        self.interval = int(interval)
        self.img_ids = img_ids
        self.max_images = max_images
        self.tau = tau
        self.batch_size = int(batch_size)
        self.num_classes = num_classes
        self.ignore_index = int(ignore_index)
        self.prefix = prefix
        self.eval_before_train = bool(before_train)
        self.samples: List[dict] = []
        self.last: Dict[str, float] = {}
        self._last_step = None

    # ------------------------------------------------------------------
    def _build_samples(self) -> List[dict]:
        cfg = self.dataset_cfg
        if isinstance(cfg, dict):
            cfg = copy.deepcopy(dict(cfg))
            cfg.setdefault('test_mode', True)
            dataset = DATASETS.build(cfg)
        else:
            dataset = cfg
        wanted = _read_ids(self.img_ids)
        keep = None if wanted is None else set(wanted)
        samples = []
        found = set()
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            stem = osp.splitext(osp.basename(info['img_path']))[0]
            if keep is not None and stem not in keep:
                continue
            sample = dataset[i]
            ds = sample['data_samples']
            if 'gt_sem_seg' not in ds:
                raise KeyError(
                    f'TargetQualityHook: {info["img_path"]} has no mask '
                    '(gt_sem_seg); add mmseg.LoadAnnotations to the '
                    "hook's dataset pipeline and a seg_map_path")
            if 'img_labels' not in ds.metainfo:
                raise KeyError(f'TargetQualityHook: {info["img_path"]} has '
                               'no img_labels; pack with PackWSSSInputs')
            samples.append(sample)
            found.add(stem)
            if self.max_images and len(samples) >= self.max_images:
                break
        if keep is not None and not self.max_images:
            missing = sorted(keep - found)
            if missing:
                raise ValueError(
                    f'TargetQualityHook: {len(missing)} image id(s) not in '
                    f'the dataset, e.g. {missing[:5]}')
        if not samples:
            raise ValueError('TargetQualityHook: no images to evaluate')
        return samples

    def before_train(self, runner) -> None:
        with preserved_rng_state():
            self.samples = self._build_samples()
        runner.logger.info(f'TargetQualityHook: {len(self.samples)} images '
                           f'with masks, every {self.interval} iterations')
        if self.eval_before_train:
            self.evaluate(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self.evaluate(runner, step=runner.iter + 1)

    def after_train(self, runner) -> None:
        if self._last_step != runner.iter:
            self.evaluate(runner)

    # ------------------------------------------------------------------
    def _batches(self) -> List[List[dict]]:
        """Consecutive samples of one input size, at most batch_size."""
        out, cur = [], []
        for s in self.samples:
            if cur and (len(cur) == self.batch_size
                        or s['inputs'].shape != cur[0]['inputs'].shape):
                out.append(cur)
                cur = []
            cur.append(s)
        if cur:
            out.append(cur)
        return out

    @torch.no_grad()
    def compute(self, model) -> Dict[str, float]:
        """mIoU (in [0, 1]) of every label map name, and the foreground AUC
        (``'{name}_auc'``, in [0, 1]) of every continuous map, with
        ``model`` as it is."""
        if is_model_wrapper(model):
            model = model.module
        num_classes = self.num_classes or getattr(model, 'num_classes')
        acc = LabelMapIoU(num_classes, self.ignore_index)
        aucs = ForegroundAUC(self.ignore_index)
        for batch in self._batches():
            data = model.data_preprocessor(
                pseudo_collate(copy.deepcopy(batch)), False)
            inputs, data_samples = data['inputs'], data['data_samples']
            if hasattr(model, 'heuristic_target_maps'):
                maps = model.heuristic_target_maps(inputs, data_samples,
                                                   self.tau)
                maps = {k: v.cpu().numpy() for k, v in maps.items()}
            else:
                preds = model.predict(inputs, data_samples)
                maps = dict(
                    cam=np.stack(
                        [p.pred_sem_seg.data[0].cpu().numpy() for p in preds]))
            scores = {}
            if hasattr(model, 'quality_maps'):
                scores = {
                    k: v.cpu().numpy()
                    for k, v in model.quality_maps(inputs,
                                                   data_samples).items()
                }
            for i, ds in enumerate(data_samples):
                gt = ds.gt_sem_seg.data[0].cpu().numpy()
                for name, m in maps.items():
                    acc.add(name, m[i], gt)
                for name, m in scores.items():
                    aucs.add(name, m[i], gt)
        res = acc.results()
        res.update({f'{k}_auc': v for k, v in aucs.results().items()})
        return res

    def evaluate(self, runner, step: Optional[int] = None) -> dict:
        """Compute, log and return ``{name: mIoU %}``."""
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        was_training = model.training
        model.eval()
        try:
            with preserved_rng_state():
                res = self.compute(model)
        finally:
            model.train(was_training)
        step = runner.iter if step is None else step
        scalars = {
            f'{self.prefix}/{name}' +
            ('' if name.endswith('_auc') else '_miou'): round(100 * v, 4)
            for name, v in res.items()
        }
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(scalars, step=step)
        runner.logger.info(f'TargetQualityHook iter {step}: ' +
                           ', '.join(f'{name} {100 * v:.2f}'
                                     for name, v in res.items()) +
                           ' (mIoU / AUC % vs masks)')
        self.last = scalars
        self._last_step = step
        return scalars
