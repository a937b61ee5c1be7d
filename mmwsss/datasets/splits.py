# Copyright (c) mmwsss contributors.
"""Split lists (one image id per line) and held-out splits.

IG-CAM's influence images must come from a split that no reported score
uses (issue #18): :func:`hold_out_split` carves such a split out of any
dataset's split list, whatever produced it (the demo generators, VOC's
``train_aug``, a COCO list), so configs only name the resulting files.
"""
import os.path as osp
from typing import List, Sequence, Tuple

import numpy as np

from mmwsss.utils.io import atomic_write_bytes


def read_split(path: str) -> List[str]:
    """Image ids of a split file (one per line, blank lines ignored).

    Raises:
        FileNotFoundError: Naming the file.
        ValueError: Naming the file and the first repeated id.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file {path} does not exist')
    with open(path, encoding='utf-8') as f:
        ids = [line.strip() for line in f if line.strip()]
    seen = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise ValueError(f'{path}: id {x!r} is listed twice (line '
                             f'{i + 1})')
        seen.add(x)
    return ids


def write_split(path: str, ids: Sequence[str]) -> None:
    """Write ids one per line, atomically (never a partial file)."""
    atomic_write_bytes(path, ''.join(f'{x}\n' for x in ids).encode('utf-8'))


def hold_out_split(ids: Sequence[str],
                   num: int,
                   seed: int = 0) -> Tuple[List[str], List[str]]:
    """Choose ``num`` ids at random; return ``(held_out, rest)``.

    Deterministic given ``seed`` (``numpy.random.default_rng``); both lists
    keep the input order; they are disjoint and together are ``ids``.

    Args:
        ids (Sequence[str]): The split to cut.
        num (int): Ids to hold out, ``1 <= num < len(ids)``.
        seed (int): Seed of the choice. Defaults to 0.

    Returns:
        tuple[list[str], list[str]]: The held-out ids and the others.
    """
    if not 1 <= num < len(ids):
        raise ValueError(f'num must be in [1, {len(ids) - 1}] for a split of '
                         f'{len(ids)} ids, got {num}')
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(len(ids), size=num, replace=False).tolist())
    held = [x for i, x in enumerate(ids) if i in chosen]
    rest = [x for i, x in enumerate(ids) if i not in chosen]
    return held, rest
