# Copyright (c) mmwsss contributors.
from mmengine.hooks import Hook

from mmwsss.registry import HOOKS
from mmwsss.utils.checkpoint import to_safe


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Write checkpoints that load with ``torch.load(weights_only=True)``.

    Before a checkpoint is saved, the message hub state (``HistoryBuffer``
    objects, NumPy scalars) and the meta information are converted to plain
    numbers and lists. mmwsss's local checkpoint loader
    (:func:`mmwsss.utils.checkpoint.safe_load_from_local`) turns the history
    buffers back into ``HistoryBuffer`` objects on load, so ``resume`` keeps
    the logged statistics.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Convert unsafe values of ``checkpoint`` in place."""
        for key in ('message_hub', 'meta'):
            if key in checkpoint:
                checkpoint[key] = to_safe(checkpoint[key])
