# Copyright (c) mmwsss contributors.
"""Your own images: a folder of images plus a CSV or JSON of class names.

:class:`WSSSFolderDataset` needs no Python: the classes are declared in the
config (``metainfo=dict(classes=(...))``) and the image-level labels are
read by class name from a table. Every problem of that table is found
when the dataset is built, before any training step or output file, and
reported with the file and the row (:class:`LabelFileError`).

Label table formats (``label_file``):

- **CSV, list form** -- header ``image,labels``; ``labels`` holds the
  class names of the image separated by ``;`` (``label_sep``)::

      image,labels
      beach_01.jpg,dog;person
      beach_02,dog

- **CSV, one-hot form** -- header ``image,<class>,<class>,...``; a cell is
  ``1`` (present) or ``0`` / empty (absent); ``true``/``false`` and
  ``yes``/``no`` are accepted too::

      image,dog,person
      beach_01.jpg,1,1

- **JSON** -- ``{"<image>": ["<class>", ...], ...}`` or
  ``[{"image": "<image>", "labels": ["<class>", ...]}, ...]``; a label may
  also be a class index (``1`` for the first object class, as in the
  ``image_labels.json`` of the VOC and demo converters).

``<image>`` is a path relative to the image folder (subfolders allowed),
with a suffix (``.jpg .jpeg .png .bmp .tif .tiff .webp``, any case) or
without (then the one file with that stem and a known suffix). Masks and
pseudo-labels are looked up by stem (``<seg_map_path>/<stem>.png``, the
names ``tools/make_pseudo_labels.py`` writes), so stems must be unique.
"""
import csv
import difflib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset

from mmwsss.registry import DATASETS

#: Image suffixes found by the folder dataset and the tools (any case).
IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Header names accepted for the image column and the label column.
IMAGE_COLUMNS = ('image', 'img', 'file', 'filename', 'path', 'name')
LABEL_COLUMNS = ('labels', 'label', 'classes', 'class')
_TRUE = ('1', 'true', 'yes', 'y')
_FALSE = ('0', 'false', 'no', 'n', '')
CHECKS = ('decode', 'exists')


class LabelFileError(ValueError):
    """A bad label table, image or class declaration (names file and row)."""


def is_image_file(name: str) -> bool:
    """Whether ``name`` ends with one of :data:`IMG_SUFFIXES` (any case)."""
    return osp.splitext(name)[1].lower() in IMG_SUFFIXES


def list_images(path: str, recursive: bool = False) -> List[str]:
    """Image files of a folder (sorted), or ``[path]`` for one image file.

    Args:
        path (str): A folder or an image file.
        recursive (bool): Also look into subfolders. Defaults to False.

    Returns:
        list[str]: Paths of the images.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no image.
    """
    if osp.isfile(path):
        if not is_image_file(path):
            raise FileNotFoundError(
                f'{path} is not an image ({" ".join(IMG_SUFFIXES)})')
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no such image or folder: {path}')
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        out += [osp.join(root, f) for f in sorted(files) if is_image_file(f)]
        if not recursive:
            break
    if not out:
        raise FileNotFoundError(f'no image ({" ".join(IMG_SUFFIXES)}) in '
                                f'{path}')
    return out


def check_classes(classes,
                  background: str = 'background',
                  where: str = 'metainfo') -> Tuple[str, ...]:
    """Validate a declared class list (background first, unique names).

    Args:
        classes: The ``classes`` entry of the config's ``metainfo``.
        background (str): Expected name of class 0.
        where (str): Named in the errors.

    Returns:
        tuple[str, ...]: The classes.

    Raises:
        LabelFileError: No classes, not strings, duplicates, fewer than
            two, or class 0 is not ``background``.
    """
    if classes is None:
        raise LabelFileError(
            f'{where} has no classes: declare them in the config, e.g. '
            f"metainfo=dict(classes=('{background}', 'cat', 'dog'))")
    if isinstance(
            classes,
            str) or not all(isinstance(c, str) and c.strip() for c in classes):
        raise LabelFileError(f'{where}.classes must be a list of non-empty '
                             f'class names, got {classes!r}')
    classes = tuple(c.strip() for c in classes)
    dup = sorted({c for c in classes if classes.count(c) > 1})
    if dup:
        raise LabelFileError(f'{where}.classes names {dup} more than once')
    if len(classes) < 2 or classes[0] != background:
        raise LabelFileError(
            f'{where}.classes must start with the background class '
            f'"{background}" followed by at least one object class, got '
            f'{list(classes)}')
    return classes


def _class_index(name: str, name2idx: Dict[str, int], background: str,
                 where: str) -> int:
    name = name.strip()
    if name == background:
        raise LabelFileError(f'{where} names the background class '
                             f'"{background}"; list only the object classes '
                             'of the image (background is implied)')
    if name not in name2idx:
        near = difflib.get_close_matches(name, list(name2idx), n=1)
        hint = f' (did you mean "{near[0]}"?)' if near else ''
        known = [c for c in name2idx if c != background]
        raise LabelFileError(f'{where} names the unknown class "{name}"'
                             f'{hint}; the config declares {known} (fix the '
                             'name or add the class to metainfo.classes)')
    return name2idx[name]


def read_label_table(path: str,
                     classes: Sequence[str],
                     background: str = 'background',
                     label_sep: str = ';') -> List[Tuple[str, str, List[int]]]:
    """Read a label table (CSV or JSON, see the module docstring).

    Args:
        path (str): The ``.csv`` or ``.json`` file.
        classes (Sequence[str]): Declared classes, background first.
        background (str): Name of class 0 (never named in the table).
        label_sep (str): Separator of the class names in a list-form CSV.

    Returns:
        list[tuple[str, str, list[int]]]: ``(where, image, labels)`` per
        row in file order: ``where`` names the file and row for messages
        (``labels.csv line 4``), ``image`` is the table's image entry and
        ``labels`` the sorted class indices (possibly empty).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        LabelFileError: Unknown format, bad header, unknown or background
            class names, bad cells; the message names the file and row.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'label file not found: {path}')
    name2idx = {c: i for i, c in enumerate(classes)}
    ext = osp.splitext(path)[1].lower()
    if ext == '.json':
        return _read_json(path, name2idx, background)
    if ext not in ('.csv', '.txt', '.tsv'):
        raise LabelFileError(f'label file {path}: unknown format "{ext}"; '
                             'use .csv or .json')
    rows = []
    with open(path, encoding='utf-8-sig', newline='') as f:
        delim = '\t' if ext == '.tsv' else ','
        reader = csv.reader(f, delimiter=delim)
        try:
            header = next(reader)
        except StopIteration:
            raise LabelFileError(f'label file {path} is empty') from None
        except csv.Error as e:
            raise LabelFileError(f'{path} line 1: {e}') from None
        header = [h.strip() for h in header]
        if len(header) < 2 or header[0].lower() not in IMAGE_COLUMNS:
            raise LabelFileError(
                f'{path} line 1: the header must be "image,labels" (class '
                'names separated by "' + label_sep + '") or "image,<class>,'
                f'<class>,..." (one-hot); got {header}')
        listed = len(header) == 2 and header[1].lower() in LABEL_COLUMNS
        cols: List[int] = []
        if not listed:
            for name in header[1:]:
                if name == background:
                    raise LabelFileError(
                        f'{path} line 1: column "{name}" is the background '
                        'class; list only object classes')
                if name not in name2idx:
                    near = difflib.get_close_matches(name, list(name2idx), 1)
                    hint = f' (did you mean "{near[0]}"?)' if near else ''
                    raise LabelFileError(
                        f'{path} line 1: column "{name}" is a class missing '
                        f'from the config{hint}; the config declares '
                        f'{[c for c in classes if c != background]}')
                cols.append(name2idx[name])
            dup = sorted({c for c in header[1:] if header.count(c) > 1})
            if dup:
                raise LabelFileError(f'{path} line 1: columns {dup} appear '
                                     'more than once')
        try:
            for rec in reader:
                where = f'{path} line {reader.line_num}'
                if not rec or all(not c.strip() for c in rec):
                    continue  # blank line
                if len(rec) != len(header):
                    raise LabelFileError(
                        f'{where}: {len(rec)} cells for the {len(header)} '
                        f'columns of the header {header} (a class name with '
                        'a comma needs quotes)')
                image = rec[0].strip()
                if not image:
                    raise LabelFileError(f'{where}: empty image name')
                labels = set()
                if listed:
                    for name in rec[1].split(label_sep):
                        if name.strip():
                            labels.add(
                                _class_index(name, name2idx, background,
                                             where))
                else:
                    for idx, cell in zip(cols, rec[1:]):
                        v = cell.strip().lower()
                        if v in _TRUE:
                            labels.add(idx)
                        elif v not in _FALSE:
                            raise LabelFileError(
                                f'{where}: cell "{cell}" of class '
                                f'"{classes[idx]}" must be 1 or 0')
                rows.append((where, image, sorted(labels)))
        except csv.Error as e:
            raise LabelFileError(f'{path} line {reader.line_num}: {e}') \
                from None
    return rows


def _read_json(path: str, name2idx: Dict[str, int],
               background: str) -> List[Tuple[str, str, List[int]]]:
    try:
        with open(path, encoding='utf-8') as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise LabelFileError(f'label file {path} is not valid JSON: {e}') \
            from None
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = []
        for i, rec in enumerate(raw):
            if not isinstance(rec, dict) or 'image' not in rec:
                raise LabelFileError(
                    f'{path} entry {i + 1}: expected {{"image": ..., '
                    f'"labels": [...]}}, got {rec!r}')
            items.append((rec['image'], rec.get('labels', [])))
    else:
        raise LabelFileError(f'label file {path} must hold an object '
                             '{"<image>": [<class>, ...]} or a list of '
                             '{"image": ..., "labels": [...]}')
    rows = []
    num = len(name2idx)
    for i, (image, labels) in enumerate(items):
        where = f'{path} entry {i + 1} ("{image}")'
        ok = isinstance(labels, list) and all(
            isinstance(x, str) or type(x) is int for x in labels)
        if not ok:
            raise LabelFileError(f'{where}: labels must be a list of class '
                                 f'names, got {labels!r}')
        idx = set()
        for x in labels:
            if isinstance(x, int):  # an index, as in image_labels.json
                if not 0 < x < num:
                    raise LabelFileError(f'{where}: class index {x} outside '
                                         f'[1, {num - 1}]')
                idx.add(x)
            else:
                idx.add(_class_index(x, name2idx, background, where))
        rows.append((where, str(image).strip(), sorted(idx)))
    return rows


def check_image(path: str, mode: str = 'decode') -> Optional[str]:
    """Why an image cannot be used (None when it can).

    Args:
        path (str): The image file.
        mode (str): ``'decode'`` decodes it with OpenCV, as
            ``mmseg.LoadImageFromFile`` does; ``'exists'`` only checks
            that the file exists and is not empty.

    Returns:
        str | None: A reason, or None.
    """
    if not osp.isfile(path):
        return 'not found'
    if osp.getsize(path) == 0:
        return 'empty file'
    if mode == 'decode':
        buf = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            return 'cannot be decoded (corrupt or not an image)'
    return None


@DATASETS.register_module()
class WSSSFolderDataset(BaseSegDataset):
    """A folder of images with image-level labels by class name.

    Each data info has ``img_path``, ``img_labels`` (sorted class indices,
    background 0 excluded) and, with ``data_prefix['seg_map_path']``,
    ``seg_map_path`` (``<seg_map_path>/<stem><seg_map_suffix>``: real masks
    for evaluation, or pseudo-labels for the final model).

    The classes are declared in the config only, background first::

        dataset = dict(
            type='WSSSFolderDataset',
            data_root='data/my_images',
            data_prefix=dict(img_path='images'),
            label_file='labels.csv',
            metainfo=dict(classes=('background', 'cat', 'dog')))

    ``METAINFO`` is empty, so mmseg builds no label map and never compares
    the classes with a fixed list (the "not a subset of classes in
    METAINFO" error of a VOC subclass given new classes); the palette
    defaults to the PASCAL VOC colour map of that many classes
    (:func:`mmwsss.visualization.voc_palette`, background black).

    Every row of the table is checked when the dataset is built, before
    anything is trained or written; errors name the file and the row (see
    :class:`LabelFileError` and ``docs/en/user_guides/own_data.md``):
    unknown class names (with the closest declared name), a class column
    the config lacks, the background class named as a label, a missing,
    empty or undecodable image, the same image in two rows, two images with
    one stem, an empty label set (unless ``allow_empty_labels``), a missing
    mask.

    Args:
        label_file (str): CSV or JSON label table, relative to
            ``data_root``.
        data_prefix (dict): ``img_path`` (the image folder, relative to
            ``data_root``; default the root itself) and optionally
            ``seg_map_path`` (masks or pseudo-labels).
        seg_map_suffix (str): Mask suffix. Defaults to ``'.png'``.
        only_with_masks (bool): Keep only the images that have a mask
            (a few hand-labelled images to score seeds and sweep the
            background threshold). If False (default) and
            ``seg_map_path`` is set, every image must have a mask.
        allow_empty_labels (bool): Keep rows without a class (a CAM
            classifier cannot learn from them). Defaults to False.
        check_images (str): ``'decode'`` (default) decodes every image
            once with OpenCV; ``'exists'`` only checks the files (faster
            for large folders; a corrupt image then fails when it is
            loaded).
        background (str): Name of class 0. Defaults to ``'background'``.
        label_sep (str): Class separator of a list-form CSV. Defaults to
            ``';'``.
        metainfo (dict): ``classes`` (required) and optionally
            ``palette``.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO: dict = dict()

    def __init__(self,
                 label_file: str,
                 data_prefix: Optional[dict] = None,
                 seg_map_suffix: str = '.png',
                 only_with_masks: bool = False,
                 allow_empty_labels: bool = False,
                 check_images: str = 'decode',
                 background: str = 'background',
                 label_sep: str = ';',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if check_images not in CHECKS:
            raise ValueError(f'check_images must be one of {CHECKS}, got '
                             f'{check_images!r}')
        metainfo = self.complete_metainfo(metainfo, background)
        data_prefix = dict(data_prefix or {})
        self.has_masks = bool(data_prefix.get('seg_map_path'))
        data_prefix.setdefault('img_path', '')
        self.label_file = label_file
        self.only_with_masks = bool(only_with_masks)
        self.allow_empty_labels = bool(allow_empty_labels)
        self.check_images = check_images
        self.background = background
        self.label_sep = label_sep
        if self.only_with_masks and not self.has_masks:
            raise ValueError('only_with_masks needs '
                             "data_prefix['seg_map_path']")
        kwargs.pop('img_suffix', None)  # every suffix of IMG_SUFFIXES
        super().__init__(
            data_prefix=data_prefix,
            seg_map_suffix=seg_map_suffix,
            metainfo=metainfo,
            **kwargs)

    @staticmethod
    def complete_metainfo(metainfo: Optional[dict],
                          background: str = 'background') -> dict:
        """Checked classes plus a palette (VOC colours when not given).

        Args:
            metainfo (dict, optional): The config's ``metainfo``.
            background (str): Name of class 0.

        Returns:
            dict: ``metainfo`` with ``classes`` (tuple) and ``palette``.
        """
        from mmwsss.visualization.drawing import voc_palette
        meta = dict(metainfo or {})
        classes = check_classes(
            meta.get('classes'), background,
            'WSSSFolderDataset metainfo (config)')
        meta['classes'] = classes
        palette = meta.get('palette')
        if palette is None:
            meta['palette'] = voc_palette(len(classes))
        elif len(palette) != len(classes):
            raise LabelFileError(
                f'WSSSFolderDataset metainfo has {len(palette)} palette '
                f'colours for {len(classes)} classes')
        return meta

    def _join(self, path: str) -> str:
        if osp.isabs(path) or not self.data_root:
            return path
        return osp.join(self.data_root, path)

    def _index_folder(self, img_dir: str) -> Dict[str, List[str]]:
        """Relative stem (``sub/name``) to the image files that have it."""
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'image folder not found: {img_dir}')
        by_stem: Dict[str, List[str]] = {}
        for rel in sorted(
                osp.relpath(p, img_dir)
                for p in list_images(img_dir, recursive=True)):
            by_stem.setdefault(osp.splitext(rel)[0], []).append(rel)
        return by_stem

    def _resolve(self, image: str, img_dir: str, by_stem: Dict[str, List[str]],
                 where: str) -> str:
        rel = osp.normpath(image.replace('\\', '/'))
        if rel.startswith('..') or osp.isabs(rel):
            raise LabelFileError(f'{where}: image "{image}" must be a path '
                                 f'inside the image folder {img_dir}')
        if osp.splitext(rel)[1]:
            if not is_image_file(rel):
                raise LabelFileError(
                    f'{where}: "{image}" has an unknown image suffix; use '
                    f'{" ".join(IMG_SUFFIXES)} (any case)')
            if not osp.isfile(osp.join(img_dir, rel)):
                raise LabelFileError(f'{where}: image "{image}" not found: '
                                     f'{osp.join(img_dir, rel)}')
            return rel
        found = by_stem.get(rel, [])
        if not found:
            raise LabelFileError(
                f'{where}: image "{image}" not found in {img_dir} (tried the '
                f'suffixes {" ".join(IMG_SUFFIXES)}, any case)')
        if len(found) > 1:
            raise LabelFileError(f'{where}: "{image}" matches several files '
                                 f'{found}; write the suffix')
        return found[0]

    def load_data_list(self) -> List[dict]:
        """Read and check the label table; see the class docstring."""
        img_dir = self.data_prefix.get('img_path', '') or (self.data_root
                                                           or '.')
        seg_dir = self.data_prefix.get('seg_map_path') \
            if self.has_masks else None
        label_path = self._join(self.label_file)
        rows = read_label_table(label_path, self.metainfo['classes'],
                                self.background, self.label_sep)
        if not rows:
            raise LabelFileError(f'label file {label_path} has no rows')
        by_stem = self._index_folder(img_dir)
        seen: Dict[str, str] = {}
        stems: Dict[str, Tuple[str, str]] = {}
        data_list, empty, unmasked = [], [], 0
        for where, image, labels in rows:
            rel = self._resolve(image, img_dir, by_stem, where)
            key = osp.normcase(rel)
            if key in seen:
                raise LabelFileError(f'{where}: image "{rel}" is listed '
                                     f'again (first at {seen[key]})')
            seen[key] = where
            stem = osp.splitext(osp.basename(rel))[0]
            if stem in stems:
                raise LabelFileError(
                    f'{where}: "{rel}" has the same file stem "{stem}" as '
                    f'"{stems[stem][1]}" ({stems[stem][0]}); masks and '
                    'pseudo-labels are named by stem, rename one image')
            stems[stem] = (where, rel)
            path = osp.join(img_dir, rel)
            why = check_image(path, self.check_images)
            if why is not None:
                raise LabelFileError(f'{where}: image {path} {why}')
            if not labels:
                empty.append(where)
            info = dict(
                img_path=path,
                img_labels=labels,
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[])
            if seg_dir is not None:
                mask = osp.join(seg_dir, stem + self.seg_map_suffix)
                if not osp.isfile(mask):
                    if self.only_with_masks:
                        unmasked += 1
                        continue
                    raise LabelFileError(
                        f'{where}: mask {mask} of image "{rel}" not found '
                        '(set only_with_masks=True to use only the images '
                        'that have one)')
                info['seg_map_path'] = mask
            data_list.append(info)
        if empty and not self.allow_empty_labels:
            raise LabelFileError(
                f'{empty[0]}: empty label set ({len(empty)} row(s) without '
                'a class); a CAM classifier cannot learn from them. Add '
                'their classes, remove the rows, or set '
                'allow_empty_labels=True')
        if self.only_with_masks and not data_list:
            raise LabelFileError(f'no image of {label_path} has a mask in '
                                 f'{seg_dir}')
        unused = sum(len(v) for v in by_stem.values()) - len(seen)
        if unused > 0:
            print_log(
                f'WSSSFolderDataset: {unused} image(s) in {img_dir} have no '
                f'row in {label_path} and are not used', 'current')
        if unmasked:
            print_log(
                f'WSSSFolderDataset: {len(data_list)} of '
                f'{len(data_list) + unmasked} images have a mask in '
                f'{seg_dir} (only_with_masks)', 'current')
        return data_list
