# Copyright (c) mmwsss contributors.
"""Rewrite a legacy (full-pickle) checkpoint in the weights-only safe form.

Checkpoints written by stock MMEngine pickle ``HistoryBuffer`` objects and
NumPy scalars, which ``torch.load(weights_only=True)`` refuses (they need
``builtins.getattr``). This tool loads such a file with the full unpickler
-- which can run arbitrary code, so only when ``--trust`` is given --
converts history buffers and NumPy values with
:func:`mmwsss.utils.checkpoint.to_safe`, drops whatever cannot be stored
safely (and lists it), writes OUT atomically and checks that OUT loads
with :func:`mmwsss.utils.checkpoint.safe_torch_load`.

Example::

    python tools/misc/convert_checkpoint.py old.pth new.pth --trust
"""
import argparse
import collections
import io
import os
import os.path as osp
import sys
import tempfile
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from mmwsss.utils.checkpoint import (UnsafeCheckpointError, safe_torch_load,
                                     to_safe)

# leaf types that torch's weights-only unpickler accepts without allow-list
SAFE_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None),
               torch.dtype, torch.device, torch.Size)


class Converter:
    """Recursively turn a checkpoint into weights-only loadable data.

    Attributes:
        converted (list[str]): Paths of values rewritten by ``to_safe``.
        dropped (list[str]): ``path (type)`` of values that were removed
            (dict entries) or replaced by ``None`` (sequence items).
    """

    def __init__(self) -> None:
        self.converted: List[str] = []
        self.dropped: List[str] = []

    def __call__(self, obj: Any, path: str = '') -> Tuple[bool, Any]:
        """Return ``(ok, safe_obj)``; ``ok`` is False if ``obj`` is unsafe."""
        if isinstance(obj, torch.Tensor):
            return True, obj
        if isinstance(obj, (HistoryBuffer, np.generic, np.ndarray)):
            self.converted.append(f'{path or "<root>"} '
                                  f'({type(obj).__name__})')
            return True, to_safe(obj)
        if isinstance(obj, SAFE_LEAVES):
            if type(obj) in SAFE_LEAVES or isinstance(obj, bool):
                return True, obj
            # subclasses (IntEnum, str subclasses, ...) as plain values
            for base in SAFE_LEAVES:
                if isinstance(obj, base):
                    return True, base(obj)
        if isinstance(obj, dict):
            return True, self._dict(obj, path)
        if isinstance(obj, (list, tuple, set, frozenset)):
            items = []
            for i, v in enumerate(obj):
                ok, v = self(v, f'{path}[{i}]')
                if not ok:
                    self.dropped.append(f'{path}[{i}] ({_tname(v)}, '
                                        'replaced by None)')
                    v = None
                items.append(v)
            if isinstance(obj, list):
                return True, items
            if isinstance(obj, (set, frozenset)):
                return True, set(items)
            return True, tuple(items)  # namedtuples become plain tuples
        if isinstance(obj, torch.nn.Module):  # torch.save(model) files
            self.converted.append(f'{path or "<root>"} ({_tname(obj)} -> '
                                  'state_dict)')
            return True, self._dict(obj.state_dict(), path)
        return False, obj

    def _dict(self, obj: dict, path: str) -> dict:
        if isinstance(obj, collections.Counter):
            out = collections.Counter()
        elif isinstance(obj, collections.OrderedDict):
            out = collections.OrderedDict()
        else:  # dict, ConfigDict, defaultdict, ... -> plain dict
            out = {}
        for k, v in obj.items():
            sub = f'{path}.{k}' if path else str(k)
            key_ok, key = self(k, sub + ' (key)')
            if not key_ok or isinstance(key, (list, dict, set)):
                self.dropped.append(f'{sub} (unsafe key {_tname(k)})')
                continue
            ok, v2 = self(v, sub)
            if not ok:
                self.dropped.append(f'{sub} ({_tname(v)})')
                continue
            out[key] = v2
        meta = getattr(obj, '_metadata', None)  # state_dict version info
        if meta is not None and isinstance(out, collections.OrderedDict):
            ok, meta = self(meta, path + '._metadata')
            if ok:
                out._metadata = meta
        return out


def _tname(obj: Any) -> str:
    t = type(obj)
    return f'{t.__module__}.{t.__qualname__}'


def convert(ckpt: Any) -> Tuple[Any, List[str], List[str]]:
    """Convert a loaded checkpoint; return ``(safe, converted, dropped)``."""
    conv = Converter()
    ok, out = conv(ckpt)
    if not ok:
        raise TypeError(f'the checkpoint itself is a {_tname(ckpt)}, not a '
                        'dict or tensor; nothing can be kept')
    return out, conv.converted, conv.dropped


def write_verified(obj: Any, out_path: str) -> Any:
    """Save ``obj`` to a temp file, check it loads safely, then rename.

    ``out_path`` is only replaced once the new file is known to load with
    :func:`safe_torch_load`, so a failure never destroys an existing file
    (not even when ``out_path`` is the input).

    Returns:
        The object as loaded back by :func:`safe_torch_load`.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    folder = osp.dirname(osp.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(out_path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        loaded = safe_torch_load(tmp, map_location='cpu')
        os.replace(tmp, out_path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    return loaded


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Rewrite a trusted legacy checkpoint so that it loads '
        'with torch.load(weights_only=True)')
    parser.add_argument('src', metavar='IN', help='legacy checkpoint')
    parser.add_argument('dst', metavar='OUT', help='output checkpoint')
    parser.add_argument(
        '--trust',
        action='store_true',
        help='unpickle IN with weights_only=False. Unpickling can execute '
        'arbitrary code: only pass this for files you created yourself or '
        'got from a source you trust')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        print(f'error: {args.src} does not exist', file=sys.stderr)
        return 1
    try:
        ckpt = safe_torch_load(args.src, map_location='cpu')
        print(f'{args.src} already loads with weights_only=True; '
              'normalising it anyway')
    except UnsafeCheckpointError as e:
        if not args.trust:
            print(
                f'refusing to convert {args.src}: it needs the full '
                'unpickler, which can execute arbitrary code stored in the '
                'file. Re-run with --trust only if you trust where the '
                f'file comes from.\n  ({e})',
                file=sys.stderr)
            return 2
        ckpt = torch.load(args.src, map_location='cpu', weights_only=False)
    safe, converted, dropped = convert(ckpt)
    write_verified(safe, args.dst)
    print(f'converted {len(converted)} value(s) to plain data')
    for item in converted:
        print(f'  converted: {item}')
    if dropped:
        print(f'dropped {len(dropped)} value(s) that cannot be stored '
              'safely:')
        for item in dropped:
            print(f'  dropped: {item}')
    print(f'wrote {args.dst} (verified with safe_torch_load)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
