# Copyright (c) mmwsss contributors.
"""MS-COCO 2014 with image-level labels for WSSS.

The label space is the one of COCO-2014 WSSS works (e.g. IRN/RIB/ToCo
COCO experiments): background (0) followed by the 80 COCO object
categories in the order of their COCO category ids, so that COCO ids
``1..90`` (with gaps) map to the contiguous labels ``1..80``.

The helpers in this module (category mapping, annotation rasterisation by
pycocotools with ``COCO.annToMask`` semantics) are shared with the
converter ``tools/dataset_converters/coco_wsss.py`` that writes the index
masks and the ``cls_labels.json`` label file.
"""
import json
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine import fileio
from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from pycocotools import mask as mask_utils

from mmwsss.registry import DATASETS
from mmwsss.utils.palette import voc_color_map
from .wsss_dataset import labels_from_mask, load_label_file

COCO_CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
                'train', 'truck', 'boat', 'traffic light', 'fire hydrant',
                'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
                'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
                'giraffe', 'backpack', 'umbrella', 'handbag', 'tie',
                'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
                'kite', 'baseball bat', 'baseball glove', 'skateboard',
                'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup',
                'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
                'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza',
                'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
                'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
                'keyboard', 'cell phone', 'microwave', 'oven', 'toaster',
                'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
                'teddy bear', 'hair drier', 'toothbrush')

# COCO category ids of ``COCO_CLASSES`` (1..90, 10 ids unused).
COCO_CATEGORY_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18,
                     19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
                     36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50,
                     51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
                     65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82,
                     84, 85, 86, 87, 88, 89, 90)

# COCO category id -> contiguous segmentation label (1..80).
COCO_CAT2LABEL: Dict[int, int] = {
    cat_id: i + 1
    for i, cat_id in enumerate(COCO_CATEGORY_IDS)
}


def color_map(num: int = 256) -> List[List[int]]:
    """PASCAL-VOC style bit-interleaved colour map.

    Deterministic and distinct for ``num <= 256``; index 0 is black and the
    first 21 entries are the VOC colours (index 255 is VOC's ignore colour
    ``(224, 224, 192)``).

    Args:
        num (int): Number of colours. Defaults to 256.

    Returns:
        list[list[int]]: ``num`` RGB triplets.
    """
    return voc_color_map(num)


def check_categories(categories: Sequence[dict], source: str = '') -> None:
    """Check a COCO ``categories`` list against the standard 80 classes.

    Args:
        categories (Sequence[dict]): ``{'id': int, 'name': str}`` entries.
        source (str): Name of the JSON file, for error messages.

    Raises:
        ValueError: If a category id is not a COCO object id or its name
            differs from the standard one.
    """
    for cat in categories:
        cat_id, name = cat.get('id'), cat.get('name')
        if cat_id not in COCO_CAT2LABEL:
            raise ValueError(f'{source}: category id {cat_id!r} ({name!r}) '
                             'is not one of the 80 COCO object ids')
        expected = COCO_CLASSES[COCO_CAT2LABEL[cat_id] - 1]
        if name is not None and name != expected:
            raise ValueError(f'{source}: category id {cat_id} is named '
                             f'{name!r}, expected {expected!r}')


def _rle_of(ann: dict, height: int, width: int) -> dict:
    """Compressed RLE of one annotation, as ``COCO.annToRLE`` builds it."""
    where = f'annotation {ann.get("id")} of image {ann.get("image_id")}'
    seg = ann.get('segmentation')
    if isinstance(seg, list):
        parts = []
        for poly in seg:
            coords = np.asarray(poly, dtype=np.float64).ravel()
            if coords.size % 2:
                raise ValueError(f'{where}: polygon with an odd number of '
                                 f'coordinates ({coords.size})')
            if coords.size >= 6:
                parts.append(coords.tolist())
        if not parts:
            return mask_utils.encode(
                np.zeros((height, width), dtype=np.uint8, order='F'))
        return mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    if isinstance(seg, dict) and 'counts' in seg and 'size' in seg:
        h, w = (int(v) for v in seg['size'])
        if isinstance(seg['counts'], list):
            counts = np.asarray(seg['counts'], dtype=np.int64)
            # pycocotools does not check this and decodes garbage
            if (counts < 0).any() or counts.sum() != h * w:
                raise ValueError(f'{where}: RLE run lengths sum to '
                                 f'{int(counts.sum())}, expected {h}x{w}='
                                 f'{h * w}')
            return mask_utils.frPyObjects(seg, height, width)
        return seg
    raise ValueError(f'{where} has an unsupported segmentation '
                     f'{type(seg).__name__} (expected polygons or RLE)')


def annotation_to_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """Binary mask of one COCO annotation with ``annToMask`` semantics.

    Decoded by pycocotools exactly as ``pycocotools.coco.COCO.annToMask``:
    polygons (several parts are united), uncompressed RLE (``counts`` a
    list of run lengths) and compressed RLE (``counts`` a string). This is
    the rasterisation that COCO's own evaluation and the COCO WSSS ground
    truth masks use: ``frPyObjects`` of the polygon parts then ``merge``;
    ``frPyObjects`` of an uncompressed RLE; a compressed RLE as it is.

    Two deviations, both on malformed polygons where ``annToMask`` fails
    or silently misreads: parts with fewer than three vertices are dropped
    (``frPyObjects`` reads a first part of 4 numbers as a box and raises
    ``TypeError``; at any other position such a part adds no pixel), and a
    part with an odd number of coordinates is an error naming the
    annotation.

    Args:
        ann (dict): A COCO annotation with a ``segmentation`` field.
        height (int): Image height.
        width (int): Image width.

    Returns:
        np.ndarray: ``(height, width)`` uint8 mask with values 0/1.

    Raises:
        ValueError: The segmentation is malformed (odd polygon, RLE runs
            that do not cover the mask, a truncated compressed RLE) or its
            RLE size differs from the image size; the message names the
            annotation.
    """
    where = f'annotation {ann.get("id")} of image {ann.get("image_id")}'
    rle = _rle_of(ann, height, width)
    try:
        with warnings.catch_warnings():
            # pycocotools' decode under NumPy 2 (harmless, once per call)
            warnings.filterwarnings(
                'ignore',
                message='__array__ implementation',
                category=DeprecationWarning)
            mask = mask_utils.decode(rle)
    except Exception as e:  # pycocotools raises bare Exceptions
        raise ValueError(f'{where}: cannot decode its RLE: {e}') from None
    if rle is ann['segmentation']:
        # A compressed RLE from the file. pycocotools leaves the pixels
        # after too short a run list uninitialised, so check that the mask
        # encodes back to the same string (pycocotools writes every RLE
        # this way; a hand-made one with empty runs must be re-encoded).
        counts = rle['counts']
        if isinstance(counts, str):
            counts = counts.encode('ascii')
        back = mask_utils.encode(np.asfortranarray(mask))['counts']
        if back != counts:
            raise ValueError(
                f'{where}: compressed RLE is truncated or not in the '
                'canonical form of pycocotools.mask.encode')
    if mask.shape != (height, width):
        raise ValueError(f'{where}: RLE size {mask.shape} differs from '
                         f'the image size {(height, width)}')
    return np.ascontiguousarray(mask, dtype=np.uint8)


def category_label(cat_id: int, where: str = '') -> int:
    """Contiguous label (1..80) of a COCO category id.

    Args:
        cat_id (int): COCO category id.
        where (str): Context for the error message.

    Returns:
        int: The segmentation label.
    """
    try:
        return COCO_CAT2LABEL[int(cat_id)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f'{where}: unknown COCO category id {cat_id!r}')


def annotations_to_label_map(anns: Sequence[dict],
                             height: int,
                             width: int,
                             ignore_index: int = 255) -> np.ndarray:
    """Semantic index mask of an image from its instance annotations.

    - Crowd regions (``iscrowd=1``) are drawn first with ``ignore_index``.
    - Non-crowd instances are then drawn by decreasing area (COCO ``area``
      field, pixel count if absent; ties by annotation id) so that a
      smaller object lying on a larger one stays visible; instances
      overwrite crowd regions.
    - Everything else is background (0).

    Args:
        anns (Sequence[dict]): The image's COCO annotations.
        height (int): Image height.
        width (int): Image width.
        ignore_index (int): Value of crowd pixels. Defaults to 255.

    Returns:
        np.ndarray: ``(height, width)`` uint8 label map.
    """
    out = np.zeros((height, width), dtype=np.uint8)
    instances: List[Tuple[float, int, int, np.ndarray]] = []
    for ann in anns:
        where = f'annotation {ann.get("id")} of image {ann.get("image_id")}'
        label = category_label(ann.get('category_id'), where)
        mask = annotation_to_mask(ann, height, width).astype(bool)
        if ann.get('iscrowd', 0):
            out[mask] = ignore_index
            continue
        area = ann.get('area')
        area = float(mask.sum()) if area is None else float(area)
        instances.append((-area, int(ann.get('id', 0)), label, mask))
    instances.sort(key=lambda t: (t[0], t[1]))
    for _, _, label, mask in instances:
        out[mask] = label
    return out


def read_coco_json(path: str) -> dict:
    """Read a COCO instances JSON with clear errors.

    Args:
        path (str): Path of ``instances_<split>.json``.

    Returns:
        dict: The parsed file.
    """
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'COCO annotation file not found: {path}')
    except json.JSONDecodeError as e:
        raise ValueError(f'COCO annotation file {path} is not valid JSON: '
                         f'{e}')
    if not isinstance(coco, dict) or 'images' not in coco:
        raise ValueError(f'{path} is not a COCO instances file (no '
                         '"images" list)')
    return coco


def coco_image_labels(coco: dict,
                      source: str = '',
                      check_cats: bool = True) -> Dict[int, List[int]]:
    """Image-level labels of a parsed COCO instances file.

    The labels of an image are the categories of all its annotations,
    crowd ones included (the objects are present even if their pixels are
    ignored in the masks).

    Args:
        coco (dict): Parsed instances JSON.
        source (str): File name, for error messages.
        check_cats (bool): Check the ``categories`` list against the 80
            standard classes. Defaults to True.

    Returns:
        dict[int, list[int]]: COCO image id to sorted contiguous labels
        (images without annotations map to ``[]``).
    """
    if check_cats:
        check_categories(coco.get('categories', []), source)
    labels: Dict[int, set] = {img['id']: set() for img in coco['images']}
    for ann in coco.get('annotations', []):
        img_id = ann.get('image_id')
        if img_id not in labels:
            raise ValueError(f'{source}: annotation {ann.get("id")} refers '
                             f'to the unknown image id {img_id!r}')
        labels[img_id].add(
            category_label(
                ann.get('category_id'),
                f'{source}: annotation {ann.get("id")}'))
    return {k: sorted(v) for k, v in labels.items()}


def load_coco_image_labels(
        path: str) -> Tuple[List[dict], Dict[int, List[int]]]:
    """Read image records and image-level labels of a COCO instances JSON.

    Args:
        path (str): Path of ``instances_<split>.json``.

    Returns:
        tuple[list[dict], dict[int, list[int]]]: The ``images`` records and
        the labels of :func:`coco_image_labels`.
    """
    coco = read_coco_json(path)
    return coco['images'], coco_image_labels(coco, path)


@DATASETS.register_module()
class WSSSCOCODataset(BaseSegDataset):
    """MS-COCO 2014 with image-level labels (81 classes incl. background).

    Each data info carries ``img_labels``: the sorted foreground class
    indices (``1..80``, COCO category ids mapped to contiguous labels in
    id order; background is 0). Pixel masks are optional: set
    ``data_prefix['seg_map_path']`` to the folder of index PNGs written by
    ``tools/dataset_converters/coco_wsss.py``, named ``<file stem>.png``.

    Image labels come from (``label_source``):

    - ``'coco_json'``: the instances JSON ``ann_json``
      (``annotations/instances_{train,val}2014.json``); the labels of an
      image are the categories of all its annotations, crowd ones
      included. Parsing the train JSON takes ~20 s and a few GB of RAM
      once at start-up;
    - ``'file'``: a JSON label file ``label_file`` in the format of
      :func:`mmwsss.datasets.wsss_dataset.load_label_file` (e.g. the
      ``cls_labels.json`` written by the converter), much faster;
    - ``'mask'``: the classes present in the pixel mask (crowd-only classes
      are then missing);
    - ``'auto'``: ``'file'`` if ``label_file`` is given, else
      ``'coco_json'`` if ``ann_json`` is given, else ``'mask'``.

    Images are listed from ``ann_file`` (a text file of file stems such as
    ``COCO_train2014_000000000009``) if given, otherwise from the
    ``images`` list of ``ann_json`` (when it is given), otherwise from the
    image folder.

    Images without any annotation (about 1% of COCO 2014) are dropped and
    their number is logged, as the COCO WSSS protocols do (train2014:
    82,081 of 82,783 images kept; val2014: 40,137 of 40,504), unless
    ``allow_empty_labels=True``.

    Args:
        ann_file (str): Optional text file of image stems, relative to
            ``data_root``. Defaults to ``''``.
        img_suffix (str): Image suffix. Defaults to ``'.jpg'``.
        seg_map_suffix (str): Mask suffix. Defaults to ``'.png'``.
        label_source (str): ``'coco_json'`` (default), ``'file'``,
            ``'mask'`` or ``'auto'``.
        ann_json (str, optional): COCO instances JSON, relative to
            ``data_root``.
        label_file (str, optional): JSON label file, relative to
            ``data_root``.
        allow_empty_labels (bool): Keep images without foreground labels
            (with ``img_labels=[]``). Defaults to False.
        data_prefix (dict): ``img_path`` and optional ``seg_map_path``.
            Defaults to ``dict(img_path='')``.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(
        classes=('background', ) + COCO_CLASSES,
        palette=color_map(len(COCO_CLASSES) + 1))

    def __init__(self,
                 ann_file: str = '',
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 label_source: str = 'coco_json',
                 ann_json: Optional[str] = None,
                 label_file: Optional[str] = None,
                 allow_empty_labels: bool = False,
                 data_prefix: dict = dict(img_path=''),
                 **kwargs) -> None:
        if label_source not in ('auto', 'coco_json', 'file', 'mask'):
            raise ValueError('label_source must be auto/coco_json/file/mask,'
                             f' got {label_source!r}')
        self.label_source = label_source
        self.ann_json = ann_json
        self.label_file = label_file
        self.allow_empty_labels = allow_empty_labels
        self.num_dropped_empty = 0
        # An empty seg_map_path would be joined to data_root: only a
        # non-empty one means that masks are available.
        self._has_masks = bool(data_prefix.get('seg_map_path'))
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            **kwargs)

    def _join(self, path: Optional[str]) -> Optional[str]:
        if path is None or osp.isabs(path) or not self.data_root:
            return path
        return osp.join(self.data_root, path)

    def _resolve_source(self) -> str:
        if self.label_source != 'auto':
            return self.label_source
        if self.label_file is not None:
            return 'file'
        if self.ann_json is not None:
            return 'coco_json'
        if self._has_masks:
            return 'mask'
        raise ValueError('cannot find image labels: give ann_json, '
                         "label_file or data_prefix['seg_map_path']")

    def load_data_list(self) -> List[dict]:
        """Load image and mask paths plus image-level labels.

        Returns:
            list[dict]: Data infos with ``img_path``, ``img_labels`` and,
            when masks are available, ``seg_map_path``.
        """
        if self.ann_file and not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'split file not found: {self.ann_file}')
        source = self._resolve_source()
        img_dir = self.data_prefix.get('img_path', '')
        seg_dir = (
            self.data_prefix.get('seg_map_path') if self._has_masks else None)
        if source == 'mask' and seg_dir is None:
            raise ValueError("label_source='mask' needs "
                             "data_prefix['seg_map_path']")

        json_labels: Optional[Dict[str, List[int]]] = None
        json_names: List[str] = []
        if self.ann_json is not None and (source == 'coco_json'
                                          or not self.ann_file):
            ann_json = self._join(self.ann_json)
            images, by_id = load_coco_image_labels(ann_json)
            json_labels = {}
            for img in images:
                stem = osp.splitext(osp.basename(img['file_name']))[0]
                if stem not in json_labels:
                    json_names.append(stem)
                json_labels[stem] = by_id[img['id']]
        elif source == 'coco_json':
            raise ValueError("label_source='coco_json' needs ann_json")

        if self.ann_file:
            names = [
                line.strip() for line in fileio.list_from_file(self.ann_file)
                if line.strip()
            ]
        elif json_labels is not None:
            names = json_names
        else:
            names = sorted(
                osp.splitext(f)[0] for f in fileio.list_dir_or_file(
                    img_dir, list_dir=False, suffix=self.img_suffix))

        table = None
        if source == 'file':
            if self.label_file is None:
                raise ValueError("label_source='file' needs label_file")
            table = load_label_file(
                self._join(self.label_file), self.metainfo['classes'])
        elif source == 'coco_json':
            table = json_labels
        num_classes = len(self.metainfo['classes'])

        data_list, dropped = [], []
        for name in names:
            info = dict(img_path=osp.join(img_dir, name + self.img_suffix))
            if seg_dir is not None:
                info['seg_map_path'] = osp.join(seg_dir,
                                                name + self.seg_map_suffix)
            if table is not None:
                if name not in table:
                    src = (
                        self.label_file if source == 'file' else self.ann_json)
                    raise KeyError(f'image "{name}" has no entry in the '
                                   f'{source} labels {src}')
                labels = list(table[name])
            else:
                labels = labels_from_mask(info['seg_map_path'], num_classes,
                                          self.ignore_index)
            if not labels and not self.allow_empty_labels:
                dropped.append(name)
                continue
            info['img_labels'] = labels
            info['label_map'] = self.label_map
            info['reduce_zero_label'] = self.reduce_zero_label
            info['seg_fields'] = []
            data_list.append(info)
        self.num_dropped_empty = len(dropped)
        if dropped:
            print_log(
                f'WSSSCOCODataset: dropped {len(dropped)} of {len(names)} '
                f'images without any foreground label (first: '
                f'"{dropped[0]}"); set allow_empty_labels=True to keep '
                'them.',
                logger='current')
        return data_list
