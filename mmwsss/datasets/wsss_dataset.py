# Copyright (c) mmwsss contributors.
"""Image-level-label datasets in the PASCAL VOC layout."""
import json
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine import fileio
from mmseg.datasets import BaseSegDataset
from PIL import Image

from mmwsss.registry import DATASETS


def load_label_file(path: str, classes: Sequence[str]) -> Dict[str, list]:
    """Read an image-label file.

    The file is JSON: ``{"<image stem>": [labels, ...]}`` where each label is
    either a class index in the segmentation label space (``1`` for the first
    foreground class) or a class name.

    Args:
        path (str): Path of the JSON file.
        classes (Sequence[str]): Class names, background first.

    Returns:
        dict: Image stem to a sorted list of foreground class indices.
    """
    try:
        with open(path, encoding='utf-8') as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'image-label file not found: {path}')
    except json.JSONDecodeError as e:
        raise ValueError(f'image-label file {path} is not valid JSON: {e}')
    if not isinstance(raw, dict):
        raise ValueError(f'image-label file {path} must hold a JSON object '
                         'mapping image names to label lists')
    name2idx = {name: i for i, name in enumerate(classes)}
    out = {}
    for key, labels in raw.items():
        if not isinstance(labels, list):
            raise ValueError(f'image-label file {path}: image "{key}" must map '
                             f'to a list of labels, got {labels!r}')
        idx = []
        for lab in labels:
            if isinstance(lab, str):
                if lab not in name2idx:
                    raise ValueError(
                        f'image-label file {path}: image "{key}" names the '
                        f'unknown class "{lab}"; known classes: '
                        f'{list(classes)}')
                lab = name2idx[lab]
            if (isinstance(lab, bool) or not isinstance(lab, int)
                    or not 0 < lab < len(classes)):
                raise ValueError(
                    f'image-label file {path}: image "{key}" has class index '
                    f'{lab!r} outside [1, {len(classes) - 1}]')
            idx.append(lab)
        out[str(key)] = sorted(set(idx))
    return out


def labels_from_mask(path: str, num_classes: int,
                     ignore_index: int = 255) -> List[int]:
    """Foreground classes present in a segmentation mask file.

    Args:
        path (str): Path of an index PNG.
        num_classes (int): Number of classes including background.
        ignore_index (int): Label ignored. Defaults to 255.

    Returns:
        list[int]: Sorted foreground class indices.
    """
    try:
        with Image.open(path) as im:
            mask = np.asarray(im)
    except FileNotFoundError:
        raise FileNotFoundError(f'mask file not found: {path}')
    except OSError as e:
        raise OSError(f'cannot read mask file {path}: {e}')
    values = np.unique(mask)
    values = values[(values != ignore_index) & (values != 0)]
    bad = values[values >= num_classes]
    if bad.size:
        raise ValueError(f'mask {path} contains class ids {bad.tolist()} '
                         f'outside [0, {num_classes - 1}] (and not the '
                         f'ignore index {ignore_index})')
    return [int(v) for v in values]


def labels_from_xml(path: str, classes: Sequence[str]) -> List[int]:
    """Foreground classes named by a VOC ``Annotations/*.xml`` file.

    Only ``object/name`` entries count (part names such as ``head`` or
    ``hand`` are ignored), as in IRN's ``load_image_label_from_xml``;
    ``difficult`` objects are kept.

    Args:
        path (str): Path of the XML annotation.
        classes (Sequence[str]): Class names, background first.

    Returns:
        list[int]: Sorted foreground class indices.
    """
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f'annotation file not found: {path}')
    except ET.ParseError as e:
        raise ValueError(f'cannot parse annotation file {path}: {e}')
    name2idx = {name: i for i, name in enumerate(classes)}
    labels = set()
    for obj in root.findall('object'):
        name = obj.findtext('name', default='').strip()
        if name not in name2idx:
            raise ValueError(f'annotation {path} names the unknown class '
                             f'"{name}"')
        labels.add(name2idx[name])
    labels.discard(0)
    return sorted(labels)


@DATASETS.register_module()
class WSSSVOCDataset(BaseSegDataset):
    """PASCAL VOC 2012 (+SBD ``train_aug``) with image-level labels.

    Each data info carries ``img_labels``: the sorted foreground class indices
    of the image in the segmentation label space (background is 0). Pixel
    masks are kept for evaluation when ``data_prefix['seg_map_path']`` is set
    (they are never needed for training a CAM classifier).

    Image labels come from, in the order tried by ``label_source='auto'``:

    - ``'file'``: a JSON label file ``label_file`` (see
      :func:`load_label_file`), fastest for large sets;
    - ``'xml'``: ``Annotations/<id>.xml`` (IRN's ``make_cls_labels``), the
      usual source for ``train_aug`` whose SBD masks are not in VOC;
    - ``'mask'``: the classes present in the pixel mask.

    Args:
        label_source (str): ``'auto'``, ``'file'``, ``'xml'`` or ``'mask'``.
        label_file (str, optional): JSON label file, relative to
            ``data_root``.
        xml_dir (str): Folder of VOC XML annotations, relative to
            ``data_root``. Defaults to ``'Annotations'``.
        allow_empty_labels (bool): Keep images with no foreground label.
            If False (default), such images raise an error naming the
            image, because a CAM classifier cannot learn from them and the
            VOC/COCO protocols never contain them.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(
        classes=('background', 'aeroplane', 'bicycle', 'bird', 'boat',
                 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
                 'diningtable', 'dog', 'horse', 'motorbike', 'person',
                 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'),
        palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                 [0, 0, 128], [128, 0, 128], [0, 128, 128], [128, 128, 128],
                 [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0],
                 [64, 0, 128], [192, 0, 128], [64, 128, 128],
                 [192, 128, 128], [0, 64, 0], [128, 64, 0], [0, 192, 0],
                 [128, 192, 0], [0, 64, 128]])

    def __init__(self,
                 ann_file: str = '',
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 label_source: str = 'auto',
                 label_file: Optional[str] = None,
                 xml_dir: str = 'Annotations',
                 allow_empty_labels: bool = False,
                 **kwargs) -> None:
        if label_source not in ('auto', 'file', 'xml', 'mask'):
            raise ValueError(f'label_source must be auto/file/xml/mask, got '
                             f'{label_source!r}')
        self.label_source = label_source
        self.label_file = label_file
        self.xml_dir = xml_dir
        self.allow_empty_labels = allow_empty_labels
        # BaseSegDataset fills a missing seg_map_path with '' (then joins it
        # with data_root), so remember whether masks were asked for.
        prefix = kwargs.get('data_prefix') or {}
        self.has_masks = bool(prefix.get('seg_map_path'))
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs)

    def _join(self, path: Optional[str]) -> Optional[str]:
        if path is None or osp.isabs(path) or not self.data_root:
            return path
        return osp.join(self.data_root, path)

    def _resolve_source(self, has_masks: bool) -> str:
        if self.label_source != 'auto':
            return self.label_source
        if self.label_file is not None:
            return 'file'
        if osp.isdir(self._join(self.xml_dir)):
            return 'xml'
        if has_masks:
            return 'mask'
        raise ValueError('cannot find image labels: give label_file, an '
                         f'{self.xml_dir}/ folder, or seg_map_path')

    def load_data_list(self) -> List[dict]:
        """Load image and mask paths plus image-level labels."""
        if self.ann_file and not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'split file not found: {self.ann_file}')
        img_dir = self.data_prefix.get('img_path', '')
        seg_dir = (self.data_prefix.get('seg_map_path')
                   if self.has_masks else None)
        if self.ann_file:
            names = [
                line.strip() for line in fileio.list_from_file(self.ann_file)
                if line.strip()
            ]
        else:
            names = sorted(
                osp.splitext(f)[0] for f in fileio.list_dir_or_file(
                    img_dir, list_dir=False, suffix=self.img_suffix))
        source = self._resolve_source(seg_dir is not None)
        table = None
        if source == 'file':
            if self.label_file is None:
                raise ValueError("label_source='file' needs label_file")
            table = load_label_file(
                self._join(self.label_file), self.metainfo['classes'])
        num_classes = len(self.metainfo['classes'])
        data_list, empty = [], []
        for name in names:
            info = dict(img_path=osp.join(img_dir, name + self.img_suffix))
            if seg_dir is not None:
                info['seg_map_path'] = osp.join(seg_dir,
                                                name + self.seg_map_suffix)
            if source == 'file':
                if name not in table:
                    raise KeyError(f'image "{name}" of {self.ann_file} has '
                                   f'no entry in label file {self.label_file}')
                labels = table[name]
            elif source == 'xml':
                labels = labels_from_xml(
                    osp.join(self._join(self.xml_dir), name + '.xml'),
                    self.metainfo['classes'])
            else:
                if seg_dir is None:
                    raise ValueError("label_source='mask' needs "
                                     "data_prefix['seg_map_path']")
                labels = labels_from_mask(info['seg_map_path'], num_classes,
                                          self.ignore_index)
            if not labels:
                empty.append(name)
            info['img_labels'] = labels
            info['label_map'] = self.label_map
            info['reduce_zero_label'] = self.reduce_zero_label
            info['seg_fields'] = []
            data_list.append(info)
        if empty and not self.allow_empty_labels:
            raise ValueError(
                f'{len(empty)} image(s) have no foreground label (first: '
                f'"{empty[0]}"); a CAM classifier cannot use them. Remove '
                'them from the split or set allow_empty_labels=True.')
        return data_list
