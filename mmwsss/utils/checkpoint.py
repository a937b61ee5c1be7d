# Copyright (c) mmwsss contributors.
"""Checkpoint loading under ``torch.load(weights_only=True)``.

Torch >= 2.6 loads with ``weights_only=True`` by default, and MMEngine 0.10.7
calls ``torch.load`` without the argument, so MMEngine checkpoints that
pickle ``HistoryBuffer`` objects and NumPy values fail to load. We keep the
protection on and fix both sides:

- writing: :class:`mmwsss.engine.hooks.SafeCheckpointHook` stores the
  message hub as plain numbers and lists (:func:`to_safe`), so our
  checkpoints need no extra globals at all;
- reading: :func:`safe_load_from_local` replaces MMEngine's local-file
  loader. It loads with ``weights_only=True`` and a short allow-list of
  data-only types (``SAFE_GLOBALS``: MMEngine's ``HistoryBuffer`` and the
  NumPy array/dtype reconstructors) so that weight files from elsewhere
  (state dicts, NumPy arrays in ``meta``) load. ``builtins.getattr`` is
  never allowed (it re-opens arbitrary code execution). NumPy scalars need
  it, and so does every ``HistoryBuffer`` as pickled by MMEngine 0.10.7
  (its statistics methods are stored as ``getattr(HistoryBuffer, 'min')``
  ...), so full training checkpoints written by stock MMSeg/MMEngine are
  refused with a message pointing at ``tools/misc/convert_checkpoint.py``,
  which rewrites a checkpoint the user trusts in the safe form.
"""
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

SAFE_MARK = 'mmwsss_safe_message_hub'


def _numpy_globals() -> List[Any]:
    out: List[Any] = [np.ndarray, np.dtype]
    core = getattr(np, '_core', None) or np.core
    out.append(core.multiarray._reconstruct)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in ('Float64DType', 'Float32DType', 'Float16DType',
                     'Int64DType', 'Int32DType', 'Int16DType', 'Int8DType',
                     'UInt8DType', 'BoolDType'):
            if hasattr(dtypes, name):
                out.append(getattr(dtypes, name))
    return out


SAFE_GLOBALS = [HistoryBuffer] + _numpy_globals()


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


def safe_torch_load(filename: str,
                    map_location: Optional[Union[str, Callable]] = None
                    ) -> Any:
    """``torch.load(weights_only=True)`` with the data-only allow-list.

    Args:
        filename (str): Local checkpoint path.
        map_location (str | callable, optional): As in :func:`torch.load`.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file pickles objects that are not
            allowed; the message names the file and the offending global.
        RuntimeError: The file is truncated, empty or not a torch
            checkpoint; the message names the file.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'Unsupported operand' in str(e):
            # Not a pickle stream at all (text, image, random bytes ...).
            raise RuntimeError(
                f'cannot read checkpoint {filename}: not a torch checkpoint '
                '(no pickle data at its start)') from None
        first = str(e).strip().splitlines()
        detail = next((ln for ln in first if 'GLOBAL' in ln or
                       'global' in ln), first[0] if first else '')
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename}: it contains pickled '
            f'objects that weights-only loading does not allow ({detail}). '
            'mmwsss never disables this check. If you trust the file, '
            'rewrite it once in the safe form with: python '
            f'tools/misc/convert_checkpoint.py {filename} OUT.pth '
            '--trust') from None
    except (RuntimeError, EOFError, KeyError, IndexError, ValueError) as e:
        # RuntimeError: broken zip; EOFError: empty/cut legacy pickle;
        # KeyError/IndexError/ValueError: bytes that happen to parse as
        # pickle opcodes (e.g. a text file).
        raise RuntimeError(
            f'cannot read checkpoint {filename} (truncated or not a torch '
            f'checkpoint?): {type(e).__name__}: {e}') from None


def safe_load_from_local(filename: str,
                         map_location: Optional[Union[str,
                                                      Callable]] = None):
    """Loader registered for local paths in MMEngine's CheckpointLoader."""
    return from_safe(safe_torch_load(filename, map_location))


def register_safe_loader() -> None:
    """Make MMEngine load local checkpoints through ``safe_load_from_local``.

    Registered for the empty prefix (local paths), replacing MMEngine's
    ``load_from_local``; used by ``load_from``, ``resume``,
    ``init_cfg=dict(type='Pretrained')`` and ``load_checkpoint``.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=safe_load_from_local, force=True)


def to_safe(obj: Any) -> Any:
    """Convert NumPy values and ``HistoryBuffer`` objects to plain data.

    Args:
        obj: Any nested structure of dicts, lists, tuples, tensors, NumPy
            values and ``HistoryBuffer`` objects.

    Returns:
        The same structure with NumPy scalars as Python numbers, arrays as
        lists and history buffers as marked dicts.
    """
    if isinstance(obj, HistoryBuffer):
        logs, counts = obj.data
        return {
            SAFE_MARK: 'HistoryBuffer',
            'log_history': [float(x) for x in logs],
            'count_history': [int(x) for x in counts],
            'max_length': int(obj.max_length),
        }
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, to_safe(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_safe(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_safe(v) for v in obj)
    return obj


def from_safe(obj: Any) -> Any:
    """Inverse of :func:`to_safe` for history buffers (in place for dicts).

    Args:
        obj: A loaded checkpoint.

    Returns:
        The checkpoint with marked dicts turned back into ``HistoryBuffer``.
    """
    if isinstance(obj, dict):
        if obj.get(SAFE_MARK) == 'HistoryBuffer':
            return HistoryBuffer(obj['log_history'], obj['count_history'],
                                 obj['max_length'])
        for k in list(obj.keys()):
            v = obj[k]
            if isinstance(v, (dict, list, tuple)):
                obj[k] = from_safe(v)
        return obj
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    if type(obj) is tuple:  # to_safe keeps tuples
        return tuple(from_safe(v) for v in obj)
    return obj
