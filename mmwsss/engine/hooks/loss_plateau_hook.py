# Copyright (c) mmwsss contributors.
"""Reduce the learning rate when the training loss stops improving."""
from typing import Optional

from mmengine.hooks import Hook
from torch.optim.lr_scheduler import ReduceLROnPlateau

from mmwsss.registry import HOOKS


@HOOKS.register_module()
class ReduceLROnLossPlateauHook(Hook):
    """PyTorch's ``ReduceLROnPlateau`` stepped with the training loss.

    CamGuide stages 1-2 (Table I) use "Reduce On Plateau, patience 500,
    factor 0.5" without a validation metric: the scheduler is stepped with
    the training loss every iteration, so ``patience`` counts iterations.
    MMEngine's ``ReduceOnPlateauLR`` only steps on validation metrics,
    hence this hook. It wraps :class:`torch.optim.lr_scheduler.
    ReduceLROnPlateau` (``mode='min'``, relative threshold) on the runner's
    optimizer and keeps its state in the checkpoint, so a resumed run
    continues with the same best loss, patience counter and learning rates.

    Do not combine it with another learning-rate scheduler.

    Args:
        patience (int): Iterations without improvement before the rate is
            multiplied by ``factor``. Defaults to 500.
        factor (float): Multiplier. Defaults to 0.5.
        threshold (float): Relative improvement that counts. Defaults to
            1e-4 (PyTorch's default).
        cooldown (int): Iterations to wait after a reduction. Defaults to 0.
        min_lr (float): Lower bound of the rate. Defaults to 0.
        loss_key (str): Key of the log variable to monitor. Defaults to
            ``'loss'`` (the total loss).
    """
    priority = 'LOW'

    def __init__(self,
                 patience: int = 500,
                 factor: float = 0.5,
                 threshold: float = 1e-4,
                 cooldown: int = 0,
                 min_lr: float = 0.0,
                 loss_key: str = 'loss') -> None:
        if not 0 < factor < 1:
            raise ValueError(f'factor must be in (0, 1), got {factor}')
        self.kwargs = dict(
            mode='min',
            factor=factor,
            patience=patience,
            threshold=threshold,
            cooldown=cooldown,
            min_lr=min_lr)
        self.loss_key = loss_key
        self.scheduler: Optional[ReduceLROnPlateau] = None
        self._pending_state: Optional[dict] = None

    def _build(self, runner) -> ReduceLROnPlateau:
        if self.scheduler is None:
            optim = runner.optim_wrapper.optimizer
            self.scheduler = ReduceLROnPlateau(optim, **self.kwargs)
            if self._pending_state is not None:
                self.scheduler.load_state_dict(self._pending_state)
                self._pending_state = None
        return self.scheduler

    def before_train(self, runner) -> None:
        """Create the scheduler on the runner's optimizer."""
        self._build(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Step with this iteration's loss."""
        if not outputs or self.loss_key not in outputs:
            raise KeyError(f'ReduceLROnLossPlateauHook: the train step gave '
                           f'no "{self.loss_key}"; set loss_key to one of '
                           f'{sorted(outputs or {})}')
        value = float(outputs[self.loss_key])
        self._build(runner).step(value)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the scheduler state (plain numbers only)."""
        state = self._build(runner).state_dict()
        checkpoint['loss_plateau'] = {
            k: (float(v) if isinstance(v, float) else v)
            for k, v in state.items()
        }

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the scheduler state on resume."""
        state = checkpoint.get('loss_plateau')
        if state is None:
            return
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)
        else:
            self._pending_state = state
