# Copyright (c) mmwsss contributors.
"""Train and test in the channels-last memory format."""
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmwsss.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Convert the model's 4-D weights to ``torch.channels_last``.

    A convolution whose weight is channels-last runs in that format (oneDNN
    on CPU, cuDNN on GPU) and hands its output on in it, so the whole
    network follows without converting the inputs. On the 2-core CPU a
    training step of the demo's EfficientNet-Lite0 CAM (batch 32 at 128 px,
    one thread) took 2.2 s instead of 2.8-3.3 s; ``tools/make_pseudo_labels.py``
    already infers this way (``mmwsss.apis.pseudo_labels``). The numbers
    differ from the contiguous run by float rounding only; the
    ``benchmarks/bench_channels_last.py`` script measures the ratio.

    ``tools/train.py`` and ``tools/test.py`` add it with ``--channels-last``
    (:func:`enable_channels_last`), as they switch AMP on with ``--amp``:
    an execution option, not part of a method's config.

    The conversion runs in ``before_run``: after MMEngine has built the
    optimiser (parameters are converted in place, so it keeps them) and
    before the weights are initialised, loaded or resumed (``copy_`` keeps
    the format). MMEngine and MMSeg have no such hook (Lightning's
    ``ChannelsLast`` callback is the same idea).

    Args:
        enabled (bool): Convert (default) or leave the model as it is (to
            switch the hook off from ``--cfg-options``).
    """
    priority = 'VERY_HIGH'

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def before_run(self, runner) -> None:
        if not self.enabled:
            return
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        model.to(memory_format=torch.channels_last)


def enable_channels_last(cfg: Any) -> bool:
    """Append a :class:`ChannelsLastHook` to ``cfg.custom_hooks``.

    Args:
        cfg (Config): A runner config (changed in place).

    Returns:
        bool: False when the config already had one (left as it is).
    """
    hooks = list(cfg.get('custom_hooks') or [])
    if any(h.get('type') in ('ChannelsLastHook', 'mmwsss.ChannelsLastHook')
           for h in hooks):
        return False
    hooks.append(dict(type='ChannelsLastHook'))
    cfg.custom_hooks = hooks
    return True
