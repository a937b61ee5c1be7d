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

Older torch (the supported range starts at 2.1) lacks parts of the
weights-only API; :func:`safe_torch_load` picks, per call, the strongest
mode that the installed torch offers (:func:`weights_only_mode`):

- ``'safe_globals'`` (torch >= 2.5): ``weights_only=True`` inside the
  ``torch.serialization.safe_globals`` context, so the allow-list holds for
  this call only;
- ``'add_safe_globals'`` (torch 2.4): ``weights_only=True`` after
  ``torch.serialization.add_safe_globals(SAFE_GLOBALS)``. That allow-list is
  process-wide in torch 2.4, but it only admits the data-only types above;
  the check itself stays on for every other global;
- ``'weights_only'`` (torch 1.13 - 2.3): ``weights_only=True`` with torch's
  own allow-list. A file that this refuses only because of one of the
  ``SAFE_GLOBALS`` (NumPy arrays in ``meta``, ...) is read again by
  mmwsss' restricted unpickler: ``pickle.Unpickler.find_class`` limited to
  torch's weights-only globals plus ``SAFE_GLOBALS``, the "restricting
  globals" recipe of the :mod:`pickle` documentation;
- ``'restricted'`` (torch without the ``weights_only`` argument, < 1.13):
  the restricted unpickler only.

A fallback is logged once per process (WARNING, naming the torch version
and the mode). No mode unpickles an arbitrary global, and nothing here
sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` or any other process-wide switch
that turns the check off.
"""
import inspect
import logging
import os.path as osp
import pickle
import types
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Set, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
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


def weights_only_mode() -> str:
    """How the installed torch can load with an allow-list.

    Returns:
        str: ``'safe_globals'`` (torch >= 2.5), ``'add_safe_globals'``
        (torch 2.4), ``'weights_only'`` (torch 1.13 - 2.3) or
        ``'restricted'`` (older); see the module docstring.
    """
    ser = torch.serialization
    if hasattr(ser, 'safe_globals'):
        return 'safe_globals'
    if hasattr(ser, 'add_safe_globals'):
        return 'add_safe_globals'
    try:
        params = inspect.signature(torch.load).parameters
    except (TypeError, ValueError):  # pragma: no cover - C callables
        params = {}
    if 'weights_only' in params:
        return 'weights_only'
    return 'restricted'


_LOGGED_MODES: Set[str] = set()


def _log_fallback_once(mode: str, detail: str) -> None:
    if mode in _LOGGED_MODES:
        return
    _LOGGED_MODES.add(mode)
    print_log(
        f'mmwsss checkpoint loading on torch {torch.__version__}: {detail}',
        logger='current',
        level=logging.WARNING)


def _qualname(obj: Any) -> str:
    return f'{obj.__module__}.{obj.__qualname__}'


def _restricted_globals() -> Dict[str, Any]:
    """Globals the restricted unpickler resolves: torch's + SAFE_GLOBALS."""
    allowed: Dict[str, Any] = {}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed.update(_get_allowed_globals())
    except ImportError:  # torch < 1.13: the tensor rebuild functions
        from torch import _utils
        allowed['collections.OrderedDict'] = OrderedDict
        for name in ('_rebuild_tensor', '_rebuild_tensor_v2',
                     '_rebuild_parameter', '_rebuild_parameter_with_state',
                     '_rebuild_sparse_tensor', '_rebuild_qtensor'):
            if hasattr(_utils, name):
                allowed[f'torch._utils.{name}'] = getattr(_utils, name)
    for obj in SAFE_GLOBALS:
        allowed[_qualname(obj)] = obj
    # files written under NumPy 1.x name the same function numpy.core.*
    for key in list(allowed):
        if key.startswith('numpy._core.'):
            allowed.setdefault('numpy.core.' + key[len('numpy._core.'):],
                               allowed[key])
    return allowed


class _RefusedGlobal(pickle.UnpicklingError):
    """The restricted unpickler met a global outside its allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allow-listed globals.

    Every ``GLOBAL``/``STACK_GLOBAL`` opcode goes through
    :meth:`find_class`, so no other callable can be reached by ``REDUCE``
    and no other class can be built. Storage types are resolved by torch's
    own wrapper before this method is called.
    """

    allowed: Dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = f'{module}.{name}'
        if key in self.allowed:
            return self.allowed[key]
        raise _RefusedGlobal(
            f'Unsupported global: GLOBAL {key} is not in the allow-list of '
            "mmwsss' restricted unpickler")


def _restricted_pickle_module() -> types.ModuleType:
    """A ``pickle_module`` for :func:`torch.load` with the restriction."""
    module = types.ModuleType('mmwsss_restricted_pickle')

    class Unpickler(_RestrictedUnpickler):
        allowed = _restricted_globals()

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    module.Unpickler = Unpickler
    module.load = load
    module.UnpicklingError = pickle.UnpicklingError
    return module


def _load_restricted(filename: str, map_location: Any) -> Any:
    # weights_only=False is only passed where torch knows the argument:
    # the restriction comes from pickle_module here, not from torch.
    kwargs: Dict[str, Any] = dict(
        map_location=map_location, pickle_module=_restricted_pickle_module())
    if 'weights_only' in inspect.signature(torch.load).parameters:
        kwargs['weights_only'] = False
    try:
        return torch.load(filename, **kwargs)
    except _RefusedGlobal:
        raise
    except pickle.UnpicklingError as e:
        # not a refusal: a file that is no pickle ("invalid load key")
        raise RuntimeError(str(e)) from None


def _load_with_allow_list(filename: str, map_location: Any) -> Any:
    mode = weights_only_mode()
    if mode == 'safe_globals':
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    if mode == 'add_safe_globals':
        _log_fallback_once(
            mode, 'no torch.serialization.safe_globals (torch < 2.5); '
            'loading with weights_only=True after add_safe_globals() of '
            f'{len(SAFE_GLOBALS)} data-only types (HistoryBuffer, NumPy '
            'arrays and dtypes)')
        torch.serialization.add_safe_globals(SAFE_GLOBALS)
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    if mode == 'weights_only':
        try:
            return torch.load(
                filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            if 'Unsupported operand' in str(e):
                raise
        _log_fallback_once(
            mode, 'torch.load(weights_only=True) cannot take extra '
            'globals (torch < 2.4); checkpoints that need the data-only '
            "allow-list are read by mmwsss' restricted unpickler (torch's "
            'weights-only globals plus HistoryBuffer and NumPy arrays; any '
            'other global is refused)')
        return _load_restricted(filename, map_location)
    _log_fallback_once(
        mode, 'torch.load has no weights_only argument (torch < 1.13); '
        "checkpoints are read by mmwsss' restricted unpickler (tensors, "
        'plain containers, HistoryBuffer and NumPy arrays; any other global '
        'is refused)')
    return _load_restricted(filename, map_location)


def safe_torch_load(filename: str,
                    map_location: Optional[Union[str, Callable]] = None
                    ) -> Any:
    """``torch.load(weights_only=True)`` with the data-only allow-list.

    On torch without ``torch.serialization.safe_globals`` the strongest
    mode the installed torch offers is used (see the module docstring and
    :func:`weights_only_mode`); the result and the refusals are the same.

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
        return _load_with_allow_list(filename, map_location)
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
