# Copyright (c) mmwsss contributors.
"""Influence refreshes of IG-CAM (issue #3 item 6, paper sec. 3.6-3.8)."""
import copy
import os.path as osp
import random
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine import dist
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import Dataset

from mmwsss.influence import SolveInfo, assert_disjoint, select_val_subset
from mmwsss.registry import DATASETS, HOOKS

IdSource = Union[None, str, dict, Sequence[str]]


@contextmanager
def preserved_rng_state(seed: Optional[int] = None) -> Iterator[None]:
    """Restore Python, NumPy and torch (CPU and CUDA) RNG states on exit.

    Args:
        seed (int, optional): Seed the Python, NumPy and torch CPU RNGs
            with it inside the block (CUDA generators are not seeded, so no
            lazy CUDA seeding leaks out).
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    cpu_state = torch.random.get_rng_state()
    cuda_states = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_states = torch.cuda.get_rng_state_all()
    try:
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed)
            torch.random.default_generator.manual_seed(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def image_ids(dataset: Dataset) -> List[str]:
    """Image identifiers (file stems of ``img_path``) of a dataset."""
    return [
        osp.splitext(osp.basename(dataset.get_data_info(i)['img_path']))[0]
        for i in range(len(dataset))
    ]


def _build_dataset(cfg: Union[dict, Dataset],
                   pipeline: Optional[list] = None) -> Dataset:
    if not isinstance(cfg, dict):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    if pipeline is not None:
        cfg['pipeline'] = pipeline
    cfg.setdefault('test_mode', True)
    return DATASETS.build(cfg)


def _split_path(path: str, data_root: Optional[str] = None) -> str:
    """A split file as given, else relative to ``data_root``.

    Raises:
        FileNotFoundError: Naming every path tried.
    """
    if osp.isfile(path):
        return path
    tried = [path]
    if data_root and not osp.isabs(path):
        joined = osp.join(data_root, path)
        if osp.isfile(joined):
            return joined
        tried.append(joined)
    raise FileNotFoundError(
        f'InfluenceHook: split file not found (tried {", ".join(tried)})')


def _ids_from(source: IdSource,
              data_root: Optional[str] = None) -> Optional[List[str]]:
    """Image ids from a split file, a dataset config or a list of ids.

    A split file path that does not exist as given is looked up under
    ``data_root`` (the influence dataset's).
    """
    if source is None:
        return None
    if isinstance(source, str):
        with open(_split_path(source, data_root), encoding='utf-8') as f:
            return [line.strip() for line in f if line.strip()]
    if isinstance(source, (dict, Dataset)):
        return image_ids(_build_dataset(source, pipeline=[]))
    return [str(x) for x in source]


def _describe(source: IdSource) -> str:
    """A short name of an id source for error messages."""
    if isinstance(source, str):
        return source
    if isinstance(source, dict):
        root = source.get('data_root', '')
        ann = source.get('ann_file', '')
        name = osp.join(root, ann) if root and ann else (ann or root)
        return f'{source.get("type", "dataset")} {name}'.strip()
    if isinstance(source, Dataset):
        return type(source).__name__
    return 'the listed ids'


@HOOKS.register_module()
class InfluenceHook(Hook):
    """Refresh the influence solve of an :class:`IGCAMSegmentor`.

    The segmentor keeps the curvature EMA of every scale classifier itself
    (updated in ``loss``, i.e. every iteration); this hook:

    - builds a fixed **influence validation batch** once, in
      ``before_train``: ``num_samples`` images of ``val_dataset`` chosen by
      :func:`~mmwsss.influence.select_val_subset` (class-balanced, its own
      generator seeded with ``seed``), minus ``exclude``, run through the
      dataset's pipeline (which must be deterministic and give one image
      size, e.g. ``mmseg.Resize`` with ``keep_ratio=False``) and collated
      as from a dataloader. The chosen images must be disjoint from every
      split whose score is reported (``report_split`` and
      ``reported_splits``: e.g. the seeds' train split *and* the final
      model's val split), otherwise a ``ValueError`` naming the split and
      the shared images is raised. Using reported images to reweight
      training would leak them into the result: give the influence images
      their own split (``val_dataset.ann_file``, e.g. a held-out
      ``influence.txt`` made by ``tools/dataset_converters/
      hold_out_split.py`` from any dataset's split lists);
    - calls ``model.refresh_influence(batch, sync=sync)`` (eval mode: BN
      running statistics, parameters and gradients untouched; see the
      model) after ``begin`` training iterations and then whenever
      ``interval`` iterations have passed since the last refresh, and when
      :class:`StageSwitchHook` switches stages (it calls :meth:`refresh`).
      A refresh after iteration ``i`` (0-based) is counted "at ``i + 1``"
      and its maps are used from iteration ``i + 1`` on;
    - never touches the training RNGs: building the batch and every refresh
      run inside :func:`preserved_rng_state` (Python, NumPy, torch CPU and
      CUDA states saved and restored), so the data order, the augmentation
      and the random proposal choice are the same with and without it;
    - logs the solve residual and condition number of every scale as
      ``train/influence_residual_s{s}`` and ``train/influence_cond_s{s}``
      in the message hub (and one line in the log per refresh);
    - optionally ramps ``model.influence_cfg['mix']`` from 0 to its
      configured value over ``mix_warmup`` iterations after the first
      refresh (``rho = mix * min(1, (it - first + 1) / mix_warmup)`` at
      iteration ``it``), so that the pooled features do not jump when the
      maps switch from uniform to influence-guided;
    - stores ``model.influence_state_dict()`` and its own counters (all
      tensors) in ``checkpoint['influence']`` and restores them on resume.

    Distributed training: every rank builds the same batch (same seed, the
    dataset is indexed directly, no sampler sharding) and refreshes at the
    same iterations. ``refresh_influence(sync=True)`` averages the curvature
    EMA over ranks first; because MMEngine's DDP wrapper does not broadcast
    buffers (``broadcast_buffers=False``), BN running statistics, hence the
    eval-mode validation features, differ between ranks, so with ``sync``
    the hook then broadcasts rank 0's complete influence state: all ranks
    use identical maps and sample weights.

    Args:
        val_dataset (dict | Dataset): Pool of influence validation images
            (config built with ``test_mode=True`` unless given).
        num_samples (int): Validation images ``K``. Defaults to 32.
        seed (int): Seed of the choice (and of the pipeline, if random).
            Defaults to 0.
        interval (int): Iterations between refreshes. Defaults to 100.
        begin (int, optional): Iterations before the first refresh (at least
            1: the curvature needs an update). Defaults to ``interval``.
        exclude (str | list[str] | dict, optional): Images never chosen: a
            split file (one id per line), a list of ids (file stems) or a
            dataset config.
        report_split (str | list[str] | dict, optional): Images results are
            reported on, which must not be chosen: ``'auto'`` (default) reads
            the runner config's ``test_dataloader.dataset`` (else
            ``val_dataloader.dataset``), or a split file, a list of ids, a
            dataset config; None disables this check.
        reported_splits (list[str | dict]): More reported splits, each a
            split file (one id per line) or a dataset config, e.g. the val
            split the final segmentation model trained on the pseudo-labels
            is scored on (another config, so ``'auto'`` cannot see it).
            Defaults to none. Split files (here and in ``exclude`` /
            ``report_split``) that do not exist as given are looked up
            under ``val_dataset``'s ``data_root``.
        mix_warmup (int): Iterations of the ``mix`` ramp; 0 disables it.
            Defaults to 0.
        sync (bool): Synchronise the state over ranks. Defaults to True.
    """
    priority = 'NORMAL'

    def __init__(self,
                 val_dataset: Union[dict, Dataset],
                 num_samples: int = 32,
                 seed: int = 0,
                 interval: int = 100,
                 begin: Optional[int] = None,
                 exclude: IdSource = None,
                 report_split: IdSource = 'auto',
                 reported_splits: Sequence[Union[str, dict]] = (),
                 mix_warmup: int = 0,
                 sync: bool = True) -> None:
        if num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        begin = interval if begin is None else begin
        if begin < 1:
            raise ValueError(f'begin must be >= 1 (the curvature needs a '
                             f'training iteration), got {begin}')
        if mix_warmup < 0:
            raise ValueError(f'mix_warmup must be >= 0, got {mix_warmup}')
        self.val_dataset = val_dataset
        self.num_samples = num_samples
        self.seed = seed
        self.interval = interval
        self.begin = begin
        self.exclude = exclude
        self.report_split = report_split
        if isinstance(reported_splits, (str, dict)):
            reported_splits = [reported_splits]
        for split in reported_splits:
            if not isinstance(split, (str, dict)):
                raise TypeError('reported_splits must hold split files or '
                                f'dataset configs, got {split!r}')
        self.reported_splits = list(reported_splits)
        self.mix_warmup = mix_warmup
        self.sync = sync
        self.batch: Optional[dict] = None
        self.val_ids: List[str] = []
        self.first_refresh_iter: Optional[int] = None
        self.last_refresh_iter: Optional[int] = None
        self.num_refreshes = 0
        self.last_infos: List[SolveInfo] = []
        self._mix_target: Optional[float] = None

    # ---------------------------------------------------------------- utils
    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _report_sources(self, runner) -> List[tuple]:
        """``(name, source)`` of every reported split."""
        source = self.report_split
        if isinstance(source, str) and source == 'auto':
            cfg = getattr(runner, 'cfg', None) or {}
            source = None
            for key in ('test_dataloader', 'val_dataloader'):
                loader = cfg.get(key, None)
                if loader and loader.get('dataset', None):
                    source = loader['dataset']
                    break
        out = []
        if source is not None:
            out.append((_describe(source), source))
        out += [(_describe(s), s) for s in self.reported_splits]
        return out

    def _data_root(self) -> Optional[str]:
        ds = self.val_dataset
        if isinstance(ds, dict):
            return ds.get('data_root', None)
        return getattr(ds, 'data_root', None)

    def check_disjoint(self, runner, ids: Sequence[str]) -> None:
        """Raise if ``ids`` meet a reported split.

        Raises:
            ValueError: Naming the split and up to 10 shared images.
        """
        for name, source in self._report_sources(runner):
            try:
                assert_disjoint(ids, _ids_from(source, self._data_root()))
            except ValueError as e:
                raise ValueError(
                    f'InfluenceHook: {e} ({name}). Give val_dataset a split '
                    'disjoint from every reported one (e.g. its own '
                    'ann_file), or list the reported images in exclude.'
                ) from None

    def build_batch(self, runner) -> dict:
        """Choose the influence validation images and collate them.

        Deterministic given ``seed``; identical on every rank.

        Returns:
            dict: ``dict(inputs=[...], data_samples=[...])``.
        """
        with preserved_rng_state(self.seed):
            dataset = _build_dataset(self.val_dataset)
            ids = image_ids(dataset)
            banned_ids = set(
                _ids_from(self.exclude, self._data_root()) or ())
            banned = [i for i, x in enumerate(ids) if x in banned_ids]
            num_classes = len(dataset.metainfo['classes'])
            labels = torch.zeros(len(ids), num_classes)
            for i in range(len(ids)):
                for lab in dataset.get_data_info(i)['img_labels']:
                    labels[i, int(lab)] = 1
            chosen = select_val_subset(
                labels[:, 1:],
                self.num_samples,
                exclude=banned,
                seed=self.seed).tolist()
            if not chosen:
                raise ValueError('InfluenceHook: no influence validation '
                                 'image left after exclude')
            self.val_ids = [ids[i] for i in chosen]
            self.check_disjoint(runner, self.val_ids)
            batch = pseudo_collate([dataset[i] for i in chosen])
        shapes = {tuple(x.shape[-2:]) for x in batch['inputs']}
        if len(shapes) != 1:
            raise ValueError(
                'InfluenceHook: the influence validation images have '
                f'different sizes {sorted(shapes)}; give val_dataset a '
                'pipeline with a fixed-size resize (e.g. mmseg.Resize with '
                'keep_ratio=False)')
        if len(chosen) < self.num_samples:
            runner.logger.warning(
                f'InfluenceHook: only {len(chosen)} influence validation '
                f'images available (num_samples={self.num_samples})')
        return batch

    # --------------------------------------------------------------- refresh
    def due(self, at: int) -> bool:
        """Whether a refresh is due after ``at`` training iterations."""
        if at < self.begin:
            return False
        return self.last_refresh_iter is None or \
            at - self.last_refresh_iter >= self.interval

    def refresh(self,
                runner,
                at: Optional[int] = None,
                reason: str = 'interval') -> Optional[List[SolveInfo]]:
        """Refresh the influence solve now.

        Args:
            runner (Runner): The runner.
            at (int, optional): Number of training iterations done (the
                index of the next one); defaults to ``runner.iter``.
            reason (str): Shown in the log.

        Returns:
            list[SolveInfo] | None: Per-scale diagnostics; None when skipped
            (no curvature update yet).
        """
        at = runner.iter if at is None else at
        model = self._model(runner)
        if not getattr(model, 'influence', None):
            raise RuntimeError('InfluenceHook needs a model with influence '
                               '(IGCAMSegmentor with influence_cfg)')
        if self.batch is None:
            self.batch = self.build_batch(runner)
        if any(inf.curvature.num_updates == 0 for inf in model.influence):
            runner.logger.warning(
                f'InfluenceHook: skipped the {reason} refresh at iteration '
                f'{at}: no curvature update yet')
            return None
        with preserved_rng_state():
            infos = model.refresh_influence(self.batch, sync=self.sync)
            if self.sync and dist.is_distributed():
                state = model.influence_state_dict()
                for value in state.values():
                    dist.broadcast(value, src=0)
                model.load_influence_state_dict(state)
        self.last_infos = list(infos)
        self.num_refreshes += 1
        self.last_refresh_iter = at
        if self.first_refresh_iter is None:
            self.first_refresh_iter = at
        for s, info in enumerate(infos):
            runner.message_hub.update_scalar(f'train/influence_residual_s{s}',
                                             float(info.residual))
            runner.message_hub.update_scalar(f'train/influence_cond_s{s}',
                                             float(info.cond))
        runner.logger.info(
            f'Influence refresh ({reason}) at iteration {at}: residual '
            f'{max(i.residual for i in infos):.2e}, condition number '
            f'{max(i.cond for i in infos):.3g} (max over scales)')
        return infos

    def current_mix(self, it: int) -> Optional[float]:
        """``influence_cfg['mix']`` for iteration ``it`` (None: no ramp)."""
        if self.mix_warmup <= 0 or self._mix_target is None:
            return None
        if self.first_refresh_iter is None:
            return 0.0
        done = it - self.first_refresh_iter + 1
        return self._mix_target * min(1.0, max(0, done) / self.mix_warmup)

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        """Build the validation batch; reset counters after ``load_from``."""
        model = self._model(runner)
        if not getattr(model, 'influence', None):
            raise RuntimeError('InfluenceHook needs a model with influence '
                               '(IGCAMSegmentor with influence_cfg)')
        if self._mix_target is None and model.influence_cfg is not None:
            self._mix_target = float(model.influence_cfg['mix'])
        if self.last_refresh_iter is not None and \
                self.last_refresh_iter > runner.iter:
            # loaded from a checkpoint of another run (load_from)
            self.first_refresh_iter = self.last_refresh_iter = None
        if self.batch is None:
            self.batch = self.build_batch(runner)
        runner.logger.info(
            f'InfluenceHook: {len(self.val_ids)} influence validation images '
            f'(seed {self.seed}), refresh every {self.interval} iterations '
            f'from iteration {self.begin}')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Apply the ``mix`` ramp."""
        rho = self.current_mix(runner.iter)
        if rho is not None:
            self._model(runner).influence_cfg['mix'] = rho

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Refresh when due."""
        at = runner.iter + 1
        if self.due(at):
            self.refresh(runner, at)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the influence state and the counters (tensors only)."""

        def count(x: Optional[int]) -> torch.Tensor:
            return torch.tensor(-1 if x is None else int(x))

        checkpoint['influence'] = dict(
            model=self._model(runner).influence_state_dict(),
            hook=dict(
                first_refresh_iter=count(self.first_refresh_iter),
                last_refresh_iter=count(self.last_refresh_iter),
                num_refreshes=count(self.num_refreshes)))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the influence state and the counters."""
        saved = checkpoint.get('influence', None)
        if saved is None:
            runner.logger.warning('InfluenceHook: the checkpoint has no '
                                  'influence state; starting from scratch')
            return
        self._model(runner).load_influence_state_dict(saved['model'])
        hook: Dict[str, torch.Tensor] = saved.get('hook', {})

        def count(key: str) -> Optional[int]:
            value = int(hook.get(key, torch.tensor(-1)))
            return None if value < 0 else value

        self.first_refresh_iter = count('first_refresh_iter')
        self.last_refresh_iter = count('last_refresh_iter')
        self.num_refreshes = count('num_refreshes') or 0
