# Copyright (c) mmwsss contributors.
"""Progressive multi-stage training of IG-CAM (issue #3 item 8).

Paper sec. 3.6 and supplementary 6.7.2: stage 1 (coarse localisation)
trains ``L_IG`` with flips and crops; stage 2 (refinement) adds the
consistency and boundary terms and MixUp / CutMix; stage 3 (boundary
optimisation) adds geometric warps and random erasing; influence maps are
recomputed at every stage change.
"""
import bisect
import collections
import copy
import itertools
import math
from typing import Any, Dict, List, Optional, Sequence, Union

from mmcv.transforms import Compose
from mmengine.dataset import InfiniteSampler
from mmengine.hooks import EarlyStoppingHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import BatchSampler

from mmwsss.registry import HOOKS, MODELS
from .influence_hook import InfluenceHook

STAGE_KEYS = ('name', 'losses', 'pipeline', 'batch_augments', 'influence')
INFLUENCE_KEYS = ('refresh', 'interval', 'grid')
_MISSING = object()


def get_path(obj: Any, path: str) -> Any:
    """``getattr`` along a dotted path (``'cam_head.loss_cls.loss_weight'``).

    Raises:
        AttributeError: Naming the first missing part of the path.
    """
    for i, part in enumerate(path.split('.')):
        if not hasattr(obj, part):
            raise AttributeError(
                f'{type(obj).__name__} has no attribute {part!r} (path '
                f'{path!r}, at {".".join(path.split(".")[:i + 1])!r})')
        obj = getattr(obj, part)
    return obj


def set_path(obj: Any, path: str, value: Any) -> None:
    """``setattr`` along a dotted path; the attribute must exist."""
    head, _, last = path.rpartition('.')
    parent = get_path(obj, head) if head else obj
    get_path(parent, last)
    setattr(parent, last, value)


def leaf_datasets(dataset) -> List[Any]:
    """Datasets holding a ``pipeline`` inside dataset wrappers."""
    if hasattr(dataset, 'pipeline'):
        return [dataset]
    if hasattr(dataset, 'datasets'):
        return [d for ds in dataset.datasets for d in leaf_datasets(ds)]
    if hasattr(dataset, 'dataset'):
        return leaf_datasets(dataset.dataset)
    raise RuntimeError(f'cannot find the pipeline of {type(dataset).__name__}')


def restart_train_dataloader(runner, position: int) -> None:
    """Restart the train dataloader iterator at batch ``position``.

    Shuts down the current workers (persistent or not; their copies of
    the dataset hold the old pipeline and they have prefetched batches made
    with it) and starts new ones, which see the current pipeline, so the
    next batch is the ``position``-th batch of the data stream made with
    the new pipeline: no batch of the old pipeline is used afterwards and
    the data order is the same as without the restart.

    - ``InfiniteSampler`` with a plain ``BatchSampler`` (MMSeg's
      iteration-based configs): the sampler's index stream is restarted
      from its seed and advanced by ``position * batch_size`` indices
      without loading anything;
    - other samplers: the epoch ``position // len(loader)`` is set and
      ``position % len(loader)`` batches are loaded and dropped;
    - epoch-based loops (no ``dataloader_iterator``): only the workers are
      dropped; the next epoch starts new ones.

    Args:
        runner (Runner): The runner.
        position (int): Index of the next batch to deliver (the number of
            training iterations done; 0 leaves skipping to MMEngine's resume
            logic, which advances ``runner.iter`` batches itself).
    """
    loop = runner.train_loop
    loader = loop.dataloader
    wrapper = getattr(loop, 'dataloader_iterator', None)
    iterators = [getattr(wrapper, '_iterator', None)]
    iterators.append(getattr(loader, '_iterator', None))
    for it in iterators:
        shutdown = getattr(it, '_shutdown_workers', None)
        if callable(shutdown):
            shutdown()
    if getattr(loader, '_iterator', None) is not None:
        loader._iterator = None  # persistent workers: force new ones
    if wrapper is None:
        return
    batch_sampler = loader.batch_sampler
    sampler = batch_sampler.sampler if batch_sampler is not None \
        else loader.sampler
    if isinstance(sampler, InfiniteSampler) and \
            type(batch_sampler) is BatchSampler:
        sampler.indices = sampler._indices_of_rank()
        skip = position * batch_sampler.batch_size
        collections.deque(itertools.islice(sampler.indices, skip), maxlen=0)
        loop.dataloader_iterator = _InfiniteDataloaderIterator(loader)
        return
    epoch, offset = divmod(position, len(loader))
    if hasattr(sampler, 'set_epoch'):
        sampler.set_epoch(epoch)
    new = _InfiniteDataloaderIterator(loader)
    new._epoch = epoch
    for _ in range(offset):
        next(new)
    loop.dataloader_iterator = new


@HOOKS.register_module()
class StageSwitchHook(Hook):
    """Switch training stages: losses, pipeline, batch augments, influence.

    Every stage is a dict with any of the keys (all absolute, not relative
    to the previous stage, so a stage can be re-applied on its own):

    - ``name`` (str): shown in the log;
    - ``losses`` (dict): values to set on the model by dotted attribute
      path, e.g. ``{'cam_head.loss_consistency.loss_weight': 0.0}``; paths
      used by any stage but not listed here get back their value from the
      model config (read in ``before_train``);
    - ``pipeline`` (list[dict]): the train dataset's pipeline (None or
      absent: the configured one);
    - ``batch_augments`` (dict | None): the data preprocessor's batch
      augment (e.g. :class:`~mmwsss.models.utils.RandomBatchAugment` of
      MixUp and CutMix); None: none; absent: the configured one;
    - ``influence`` (dict): ``refresh`` (default True: refresh every
      :class:`InfluenceHook` at the switch), ``interval`` (the hooks'
      refresh interval during the stage), ``grid`` (the model's
      ``influence_cfg['grid']``); absent keys get back the configured
      values.

    Switching rule: at fixed iterations ``switch_at`` (stage ``k`` starts at
    iteration ``switch_at[k - 1]``, 0-based), and/or on a plateau of a
    validation metric (``plateau=dict(monitor='loss', rule=None,
    patience=5, min_delta=0.)``; the metric of every validation, read from
    ``after_val_epoch`` or the message hub as ``val/<monitor>``; rule
    inferred as in :class:`~mmengine.hooks.EarlyStoppingHook`). With both,
    a stage ends at the plateau or at its fixed iteration, whichever comes
    first. A switch decided after iteration ``i`` takes effect from
    iteration ``i + 1``: the next batch is already made with the new
    pipeline (see :func:`restart_train_dataloader`; this is what makes it
    work with ``persistent_workers=True``), the losses and augments are set
    and the influence is refreshed before it.

    On a switch the wait counter of every ``EarlyStoppingHook`` is reset
    (``reset_early_stopping``), so early stopping (paper: patience 10)
    counts validations from the start of the current stage and cannot
    fire within the first ``patience`` validations of a new stage. Its best
    score is kept by default (``True`` or ``'wait'``): the plateau configs
    monitor the held-out classification loss, defined alike in every
    stage, so a stage that never beats the best of the earlier ones within
    ``patience`` validations ends the run. ``'best'`` also forgets the best
    score (each stage judged on its own; for a monitored value whose scale
    changes with the stage, e.g. a total loss gaining terms), ``False``
    leaves early stopping alone.

    Resume: the current stage and the plateau state are stored as plain
    numbers in ``checkpoint['meta']['stage_switch']``; ``before_train``
    re-applies the current stage (losses, pipeline with a fresh loader,
    augments, influence interval; the influence cache itself is restored
    by :class:`InfluenceHook`), so a run resumed in stage 2 continues
    stage 2 exactly. On a fresh start, stage 0 is applied in
    ``before_train``.

    Args:
        stages (list[dict]): The stages, in order.
        switch_at (list[int], optional): ``len(stages) - 1`` increasing
            iterations.
        plateau (dict, optional): Plateau rule, see above.
        reset_early_stopping (bool | str): ``True`` / ``'wait'``,
            ``'best'`` or ``False``, see above. Defaults to True.
    """
    priority = 'ABOVE_NORMAL'

    GREATER_KEYS = ('acc', 'top', 'AR@', 'auc', 'precision', 'mAP', 'mDice',
                    'mIoU', 'mAcc', 'aAcc')

    def __init__(self,
                 stages: Sequence[dict],
                 switch_at: Optional[Sequence[int]] = None,
                 plateau: Optional[dict] = None,
                 reset_early_stopping: Union[bool, str] = True) -> None:
        if len(stages) < 1:
            raise ValueError('stages must not be empty')
        if switch_at is None and plateau is None and len(stages) > 1:
            raise ValueError('give switch_at and/or plateau')
        if switch_at is not None:
            switch_at = [int(x) for x in switch_at]
            if len(switch_at) != len(stages) - 1 or any(
                    b <= a for a, b in zip(switch_at, switch_at[1:])) or \
                    (switch_at and switch_at[0] < 1):
                raise ValueError(
                    f'switch_at must hold {len(stages) - 1} increasing '
                    f'iterations >= 1, got {switch_at}')
        self.switch_at = switch_at
        self.plateau = None
        if plateau is not None:
            plateau = dict(plateau)
            monitor = plateau.pop('monitor', 'loss')
            rule = plateau.pop('rule', None) or self._infer_rule(monitor)
            if rule not in ('greater', 'less'):
                raise ValueError(f"rule must be 'greater' or 'less', got "
                                 f'{rule!r}')
            patience = int(plateau.pop('patience', 5))
            min_delta = float(plateau.pop('min_delta', 0.))
            if plateau:
                raise KeyError(f'unknown plateau keys {sorted(plateau)}')
            if patience < 1:
                raise ValueError(f'patience must be >= 1, got {patience}')
            self.plateau = dict(
                monitor=monitor,
                rule=rule,
                patience=patience,
                min_delta=min_delta)
        if reset_early_stopping not in (True, False, 'wait', 'best'):
            raise ValueError('reset_early_stopping must be True, False, '
                             f'"wait" or "best", got {reset_early_stopping!r}')
        self.reset_early_stopping = reset_early_stopping
        self.stages: List[Dict[str, Any]] = []
        loss_paths: List[str] = []
        for k, cfg in enumerate(stages):
            cfg = copy.deepcopy(dict(cfg))
            unknown = set(cfg) - set(STAGE_KEYS)
            if unknown:
                raise KeyError(f'stage {k}: unknown keys {sorted(unknown)}; '
                               f'known: {STAGE_KEYS}')
            influence = dict(cfg.get('influence') or {})
            if set(influence) - set(INFLUENCE_KEYS):
                raise KeyError(
                    f'stage {k}: unknown influence keys '
                    f'{sorted(set(influence) - set(INFLUENCE_KEYS))}')
            pipeline = cfg.get('pipeline', None)
            augments = cfg.get('batch_augments', _MISSING)
            if isinstance(augments, dict):
                augments = MODELS.build(augments)
            losses = dict(cfg.get('losses') or {})
            for path in losses:
                if path not in loss_paths:
                    loss_paths.append(path)
            self.stages.append(
                dict(
                    name=cfg.get('name', f'stage{k + 1}'),
                    losses=losses,
                    pipeline=None if pipeline is None else Compose(pipeline),
                    batch_augments=augments,
                    influence=influence))
        self.loss_paths = loss_paths
        self.stage = 0
        self.best: Optional[float] = None
        self.wait = 0
        self._restored: Optional[dict] = None
        self._defaults: Optional[dict] = None
        self._in_train = False

    @classmethod
    def _infer_rule(cls, monitor: str) -> str:
        low = monitor.lower()
        if any(k.lower() in low for k in cls.GREATER_KEYS):
            return 'greater'
        if 'loss' in low:
            return 'less'
        raise ValueError(f'cannot infer the rule of {monitor!r}; give '
                         "plateau rule='greater' or 'less'")

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    # --------------------------------------------------------------- stages
    def stage_at(self, it: int) -> int:
        """Stage required by ``switch_at`` for iteration ``it``."""
        if not self.switch_at:
            return 0
        return bisect.bisect_right(self.switch_at, it)

    def _capture_defaults(self, runner) -> None:
        model = self._model(runner)
        loader = runner.train_loop.dataloader
        self._defaults = dict(
            losses={p: get_path(model, p)
                    for p in self.loss_paths},
            pipelines=[ds.pipeline for ds in leaf_datasets(loader.dataset)],
            batch_augments=getattr(model.data_preprocessor, 'batch_augments',
                                   None),
            grid=None if getattr(model, 'influence_cfg', None) is None else
            model.influence_cfg['grid'],
            intervals=[h.interval for h in self._influence_hooks(runner)])

    def apply_stage(self, runner, k: int, position: int) -> None:
        """Set losses, pipeline, batch augments and influence options.

        Args:
            runner (Runner): The runner.
            k (int): Stage index.
            position (int): Index of the next training batch (see
                :func:`restart_train_dataloader`).
        """
        stage = self.stages[k]
        defaults = self._defaults
        model = self._model(runner)
        for path in self.loss_paths:
            set_path(model, path,
                     stage['losses'].get(path, defaults['losses'][path]))
        augments = stage['batch_augments']
        model.data_preprocessor.batch_augments = \
            defaults['batch_augments'] if augments is _MISSING else augments
        grid = stage['influence'].get('grid', defaults['grid'])
        if grid is not None:
            if getattr(model, 'influence_cfg', None) is None:
                raise RuntimeError(f'stage {k} sets the influence grid but '
                                   'the model has no influence_cfg')
            model.influence_cfg['grid'] = grid
        for hook, interval in zip(
                self._influence_hooks(runner), defaults['intervals']):
            hook.interval = int(stage['influence'].get('interval', interval))
        loader = runner.train_loop.dataloader
        datasets = leaf_datasets(loader.dataset)
        changed = False
        for ds, default in zip(datasets, defaults['pipelines']):
            target = default if stage['pipeline'] is None \
                else stage['pipeline']
            if ds.pipeline is not target:
                ds.pipeline = target
                changed = True
        if changed and loader.num_workers > 0:
            restart_train_dataloader(runner, position)
        runner.message_hub.update_info('train_stage', k)

    @staticmethod
    def _influence_hooks(runner) -> List[InfluenceHook]:
        return [h for h in runner.hooks if isinstance(h, InfluenceHook)]

    def switch(self, runner, k: int, position: int, reason: str) -> None:
        """Enter stage ``k`` before training iteration ``position``."""
        self.stage = k
        self.best, self.wait = None, 0
        self.apply_stage(runner, k, position)
        stage = self.stages[k]
        runner.logger.info(f'StageSwitchHook: entering stage {k} '
                           f'({stage["name"]}) at iteration {position} '
                           f'({reason})')
        if self.reset_early_stopping:
            for hook in runner.hooks:
                if isinstance(hook, EarlyStoppingHook):
                    hook.wait_count = 0
                    if self.reset_early_stopping == 'best':
                        hook.best_score = (-math.inf if hook.rule
                                           == 'greater' else math.inf)
        if stage['influence'].get('refresh', True):
            for hook in self._influence_hooks(runner):
                hook.refresh(runner, position, reason=f'stage {k}')

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        """Apply the current stage (stage 0, or the resumed one)."""
        self._in_train = True
        if self._defaults is None:
            self._capture_defaults(runner)
        stage = 0
        restored = self._restored
        if restored is not None and runner.iter > 0:
            stage = int(restored['stage'])
            best = restored.get('best', None)
            self.best = None if best is None else float(best)
            self.wait = int(restored.get('wait', 0))
        stage = min(
            max(stage, self.stage_at(runner.iter)),
            len(self.stages) - 1)
        self.stage = stage
        self.apply_stage(runner, stage, 0)
        runner.logger.info(
            f'StageSwitchHook: stage {stage} ({self.stages[stage]["name"]}) '
            f'at iteration {runner.iter}')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Log the stage index."""
        runner.message_hub.update_scalar('train/stage', self.stage)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Switch at the fixed iterations."""
        nxt = runner.iter + 1
        target = min(self.stage_at(nxt), len(self.stages) - 1)
        if target > self.stage:
            self.switch(runner, target, nxt, f'fixed switch at {nxt}')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        """Plateau rule on the validation metric."""
        if self.plateau is None or not self._in_train or \
                self.stage >= len(self.stages) - 1:
            return
        monitor = self.plateau['monitor']
        score = (metrics or {}).get(monitor, None)
        if score is None and runner.message_hub.get_scalar(
                f'val/{monitor}') is not None:
            score = runner.message_hub.get_scalar(f'val/{monitor}').current()
        if score is None:
            runner.logger.warning(f'StageSwitchHook: no validation metric '
                                  f'{monitor!r} in {sorted(metrics or {})}')
            return
        score = float(score)
        sign = 1.0 if self.plateau['rule'] == 'greater' else -1.0
        gain = sign * (score - self.best) if self.best is not None else 0.
        if self.best is None or (math.isfinite(score)
                                 and gain > self.plateau['min_delta']):
            self.best, self.wait = score, 0
        else:
            self.wait += 1
        if self.wait >= self.plateau['patience']:
            self.switch(runner, self.stage + 1, runner.iter,
                        f'{monitor} plateau for {self.wait} validations')

    def after_train(self, runner) -> None:
        """Stop reacting to validations outside training."""
        self._in_train = False

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the stage and plateau state as plain numbers."""
        checkpoint.setdefault('meta', {})['stage_switch'] = dict(
            stage=int(self.stage),
            best=None if self.best is None else float(self.best),
            wait=int(self.wait))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the stored stage; ``before_train`` re-applies it."""
        self._restored = checkpoint.get('meta', {}).get('stage_switch', None)
