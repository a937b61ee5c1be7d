# Copyright (c) mmwsss contributors.
"""Save the random number generator states with checkpoints."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook

from mmwsss.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Resume with the random state the interrupted run had.

    MMEngine's resume restores the model, optimiser, schedulers, message hub
    and the sampler position, and seeds the generators again, but the
    Python, NumPy and torch generators then differ from the uninterrupted
    run: randomness drawn in the model (CamGuide's stochastic thresholds,
    dropout, MixUp / CutMix in the data preprocessor) diverges. This hook
    writes the three states (and CUDA's, when present) into every
    checkpoint in a ``weights_only``-loadable form and restores them at the
    first training iteration after a resume, after the data loader has been
    advanced to the resume point.

    Scope: data augmentation that runs in data-loader worker processes is
    not covered (MMEngine re-seeds the workers), nor is augmentation in the
    main process with ``num_workers=0`` for the first resumed batch (it is
    drawn before any hook runs). With a deterministic pipeline, resuming
    reproduces the uninterrupted run exactly (tested on CamGuide).
    """
    # restore before the other hooks' before_train_iter draw numbers
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    @staticmethod
    def capture() -> dict:
        """The current generator states as plain Python / tensor data."""
        np_state = np.random.get_state()
        state = dict(
            python=[random.getstate()[0],
                    list(random.getstate()[1]),
                    random.getstate()[2]],
            numpy=[
                np_state[0], np_state[1].tolist(),
                int(np_state[2]),
                int(np_state[3]),
                float(np_state[4])
            ],
            torch=torch.random.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def restore(state: dict) -> None:
        """Set the generators to ``state`` (from :meth:`capture`)."""
        py = state['python']
        random.setstate((py[0], tuple(py[1]), py[2]))
        npst = state['numpy']
        np.random.set_state((npst[0], np.asarray(npst[1], dtype=np.uint32),
                             npst[2], npst[3], npst[4]))
        torch.random.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the generator states."""
        checkpoint['rng_state'] = self.capture()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the stored states for the first resumed iteration."""
        self._pending = checkpoint.get('rng_state')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Restore the stored states once, before the first step."""
        # only a resumed run (load_from also calls after_load_checkpoint,
        # but starts at iteration 0 with fresh randomness)
        if self._pending is not None and runner.iter > 0:
            self.restore(self._pending)
            self._pending = None
