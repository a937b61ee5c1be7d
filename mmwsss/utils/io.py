# Copyright (c) mmwsss contributors.
"""Crash-safe writers for the many-file outputs of mmwsss tools."""
import io
import json
import os
import os.path as osp
import tempfile
from typing import Optional, Sequence

import numpy as np
from PIL import Image

# ``tempfile.mkstemp`` creates files with mode 0600; the renamed outputs get
# the permissions an ordinary ``open(path, 'w')`` would give them.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file.

    The bytes go to a temporary file in the same folder which is then
    renamed onto ``path`` (``os.replace`` is atomic on POSIX). A crash
    leaves at most a ``.tmp`` file that the next run overwrites or ignores.

    Args:
        path (str): Destination path.
        data (bytes): File contents.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def encode_label_png(label: np.ndarray,
                     palette: Optional[Sequence[Sequence[int]]] = None
                     ) -> bytes:
    """Encode an index mask as PNG bytes, with a palette when given.

    Args:
        label (np.ndarray): ``(H, W)`` integer class indices in [0, 255].
        palette (Sequence, optional): ``[[r, g, b], ...]`` per class; index
            255 (ignore) is painted white. Without a palette the PNG is a
            plain 8-bit grey image.

    Returns:
        bytes: PNG file contents.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f'label map must be 2-D, got shape {label.shape}')
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError('label values must lie in [0, 255], got '
                         f'[{label.min()}, {label.max()}]')
    img = Image.fromarray(label.astype(np.uint8), mode='L')
    if palette is not None:
        flat = np.zeros((256, 3), dtype=np.uint8)
        pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:255]
        flat[:len(pal)] = pal
        flat[255] = 255
        img = img.convert('P')
        img.putpalette(flat.flatten().tolist())
    buf = io.BytesIO()
    img.save(buf, format='PNG')
    return buf.getvalue()


def atomic_save_label_png(path: str,
                          label: np.ndarray,
                          palette: Optional[Sequence[Sequence[int]]] = None
                          ) -> None:
    """Save an index mask as a (palette) PNG atomically."""
    atomic_write_bytes(path, encode_label_png(label, palette))


def atomic_save_npz(path: str, **arrays) -> None:
    """Save arrays as a compressed ``.npz`` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def remove_stale_tmp(folder: str, names: set) -> int:
    """Delete temporary files of :func:`atomic_write_bytes` for ``names``.

    ``names`` are target file names in ``folder``. Only the temporaries of
    these targets are touched, so shards running at the same time into one
    folder do not disturb each other.

    Args:
        folder (str): Output folder.
        names (set): Target file names whose temporaries may be removed.

    Returns:
        int: The number of files removed.
    """
    if not osp.isdir(folder):
        return 0
    count = 0
    for fname in os.listdir(folder):
        if not (fname.startswith('.') and fname.endswith('.tmp')):
            continue
        target = fname[1:-len('.tmp')].rsplit('.', 1)[0]
        if target in names:
            try:
                os.unlink(osp.join(folder, fname))
                count += 1
            except FileNotFoundError:
                pass
    return count


def check_previous_meta(out_dir: str,
                        settings: dict,
                        compared: Sequence[str],
                        settings_key: str,
                        data_ext: str,
                        tool: str,
                        error_cls: type = ValueError) -> None:
    """Refuse to mix outputs made with other settings in one folder.

    Resumable tools write ``meta*.json`` files holding their settings under
    ``settings_key``. Writing into a folder whose meta files disagree on
    any ``compared`` key, or that holds ``data_ext`` files but no meta file
    of the tool (e.g. ground-truth masks), raises ``error_cls``.

    Args:
        out_dir (str): Output folder (may not exist yet).
        settings (dict): The settings of this run.
        compared (Sequence[str]): Keys that must agree.
        settings_key (str): Key of the settings in the meta files.
        data_ext (str): Extension of the tool's data files, e.g. ``.png``.
        tool (str): Tool name for the messages.
        error_cls (type): Exception class raised.
    """
    if not osp.isdir(out_dir):
        return
    found_meta = False
    for name in sorted(os.listdir(out_dir)):
        if not (name.startswith('meta') and name.endswith('.json')):
            continue
        path = osp.join(out_dir, name)
        try:
            with open(path, encoding='utf-8') as f:
                old = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(old, dict) or settings_key not in old:
            continue
        found_meta = True
        prev = old[settings_key]
        diff = [k for k in compared if prev.get(k) != settings.get(k)]
        if diff:
            lines = '; '.join(f'{k}: {prev.get(k)!r} there, '
                              f'{settings.get(k)!r} now' for k in diff)
            raise error_cls(
                f'{out_dir} holds outputs made with other settings '
                f'({path}: {lines}); use another --out folder or delete it')
    if not found_meta and any(
            f.endswith(data_ext) for f in os.listdir(out_dir)):
        raise error_cls(
            f'{out_dir} holds {data_ext} files but no meta*.json of {tool}; '
            'refusing to write into it, use an empty or new --out folder')
