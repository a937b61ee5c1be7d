# Copyright (c) mmwsss contributors.
"""Paste generated fragments into READMEs between markers.

A README holds ``<!-- wsss_results:NAME -->`` ... ``<!-- /wsss_results:NAME
-->``; everything between the two markers is replaced by the fragment
``NAME``, the rest of the file is left byte for byte.
"""
import os.path as osp
import re
from typing import Callable, Dict, List, Sequence, Tuple

MARKER = 'wsss_results'


def replace_markers(text: str, fragments: Dict[str,
                                               str]) -> Tuple[str, List[str]]:
    """Paste fragments between ``<!-- wsss_results:NAME -->`` markers.

    Args:
        text (str): A README.
        fragments (dict): ``{NAME: markdown}``.

    Returns:
        tuple: The new text and the names replaced.
    """
    done = []
    for name, frag in fragments.items():
        pat = re.compile(
            rf'(<!-- {MARKER}:{re.escape(name)} -->\n).*?'
            rf'(<!-- /{MARKER}:{re.escape(name)} -->)', re.S)
        text, n = pat.subn(
            lambda m, f=frag: m.group(1) + f.rstrip('\n') + '\n' + m.group(2),
            text)
        if n:
            done.append(name)
    return text, done


def update_readmes(readmes: Sequence[str],
                   fragments: Callable[[str], Dict[str, str]],
                   log: Callable[[str], None] = print) -> Dict[str, List[str]]:
    """Replace the markers of several READMEs (atomically, if changed).

    Args:
        readmes (Sequence[str]): README paths.
        fragments (callable): ``fragments(readme_path)`` gives the
            fragments for that README (image links are relative to it).
        log (callable): Printer.

    Returns:
        dict: ``{readme: names replaced}``; a missing README is skipped.
    """
    from mmwsss.utils.io import atomic_write_bytes
    out = {}
    for path in readmes:
        if not osp.isfile(path):
            log(f'README {path} not found, skipped')
            continue
        with open(path, encoding='utf-8') as f:
            old = f.read()
        new, done = replace_markers(old, fragments(path))
        if new != old:
            atomic_write_bytes(path, new.encode())
        out[path] = done
        log(f'{path}: ' + ('updated ' + ', '.join(done) if done else
                           f'no <!-- {MARKER}:NAME --> markers, left '
                           'unchanged'))
    return out
