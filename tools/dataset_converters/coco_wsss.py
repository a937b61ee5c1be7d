# Copyright (c) mmwsss contributors.
"""Convert COCO 2014 instance annotations for WSSS.

Writes, for one split (``train2014`` or ``val2014``):

- ``<coco-root>/SegmentationClass/<split>/<file stem>.png``: palette index
  masks in the 81-class label space of
  :class:`mmwsss.datasets.WSSSCOCODataset` (0 background, 1..80 the COCO
  categories in id order, 255 ignore). Every instance mask comes from
  pycocotools with ``COCO.annToMask`` semantics (polygons, compressed and
  uncompressed RLE; :func:`mmwsss.datasets.coco.annotation_to_mask`), the
  rasterisation the COCO WSSS ground truth is scored with.
  Overlaps: instances are drawn by decreasing area, so smaller objects are
  drawn last and stay visible; crowd regions (``iscrowd=1``) are drawn
  first as 255 (ignored by evaluation) and instances overwrite them.
  Images without annotations get an all-background mask.
- ``<coco-root>/cls_labels.json`` (or ``--label-file``): the image-level
  labels ``{"<file stem>": [labels]}`` in the format read by
  ``load_label_file`` / ``WSSSCOCODataset(label_source='file')``; entries
  of an existing file (e.g. the other split) are kept. Crowd categories
  count as present; images without annotations map to ``[]``.

Existing masks are skipped on re-run (``--overwrite`` to redo them) and
every file is written to ``<name>.tmp`` then moved with ``os.replace``, so
an interrupted run never leaves a truncated mask.

Example::

    python tools/dataset_converters/coco_wsss.py --coco-root data/coco \\
        --split train2014 --workers 16
"""
import argparse
import json
import os
import os.path as osp
from collections import defaultdict
from multiprocessing import Pool
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from mmwsss.datasets.coco import (annotations_to_label_map, coco_image_labels,
                                  color_map, read_coco_json)

PALETTE = [v for rgb in color_map(256) for v in rgb]

# (file stem, height, width, annotations, output path)
Task = Tuple[str, int, int, List[dict], str]


def write_mask(mask: np.ndarray, path: str) -> None:
    """Atomically write an index mask as a palette PNG.

    Args:
        mask (np.ndarray): ``(h, w)`` uint8 label map.
        path (str): Output path.
    """
    im = Image.fromarray(mask.astype(np.uint8))
    im.putpalette(PALETTE)
    tmp = path + '.tmp'
    im.save(tmp, format='PNG')
    os.replace(tmp, path)


def write_json(obj: dict, path: str) -> None:
    """Atomically write a JSON file.

    Args:
        obj (dict): The object to dump.
        path (str): Output path.
    """
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, sort_keys=True)
    os.replace(tmp, path)


def convert_one(task: Task) -> str:
    """Rasterise and write the mask of one image.

    Args:
        task (tuple): ``(stem, height, width, annotations, out_path)``.

    Returns:
        str: The file stem.
    """
    stem, height, width, anns, out_path = task
    write_mask(annotations_to_label_map(anns, height, width), out_path)
    return stem


def convert(coco_root: str,
            split: str,
            workers: int = 8,
            overwrite: bool = False,
            out_dir: Optional[str] = None,
            label_file: Optional[str] = None,
            ann_json: Optional[str] = None) -> Dict[str, int]:
    """Write the masks and image labels of one COCO split.

    Args:
        coco_root (str): COCO root holding ``annotations/``.
        split (str): Split name, e.g. ``'train2014'``.
        workers (int): Worker processes; ``<= 1`` runs in-process.
            Defaults to 8.
        overwrite (bool): Rewrite existing masks. Defaults to False.
        out_dir (str, optional): Mask folder. Defaults to
            ``<coco_root>/SegmentationClass/<split>``.
        label_file (str, optional): Label JSON. Defaults to
            ``<coco_root>/cls_labels.json``.
        ann_json (str, optional): Instances JSON. Defaults to
            ``<coco_root>/annotations/instances_<split>.json``.

    Returns:
        dict: Counts ``images``, ``written``, ``skipped`` and ``empty``
        (images without annotations).
    """
    ann_json = ann_json or osp.join(coco_root, 'annotations',
                                    f'instances_{split}.json')
    out_dir = out_dir or osp.join(coco_root, 'SegmentationClass', split)
    label_file = label_file or osp.join(coco_root, 'cls_labels.json')
    os.makedirs(out_dir, exist_ok=True)

    coco = read_coco_json(ann_json)
    images = coco['images']
    labels_by_id = coco_image_labels(coco, ann_json)
    anns_by_img: Dict[int, List[dict]] = defaultdict(list)
    for ann in coco.get('annotations', []):
        anns_by_img[ann['image_id']].append(ann)
    del coco

    labels: Dict[str, List[int]] = {}
    tasks: List[Task] = []
    skipped = 0
    for img in images:
        stem = osp.splitext(osp.basename(img['file_name']))[0]
        labels[stem] = labels_by_id[img['id']]
        out_path = osp.join(out_dir, stem + '.png')
        if not overwrite and osp.isfile(out_path):
            skipped += 1
            continue
        tasks.append((stem, int(img['height']), int(img['width']),
                      anns_by_img.get(img['id'], []), out_path))
    del anns_by_img

    bar = tqdm(total=len(tasks), desc=f'{split} masks', unit='img')
    if workers > 1 and len(tasks) > 1:
        with Pool(workers) as pool:
            for _ in pool.imap_unordered(convert_one, tasks, chunksize=16):
                bar.update()
    else:
        for task in tasks:
            convert_one(task)
            bar.update()
    bar.close()

    merged: Dict[str, list] = {}
    if osp.isfile(label_file):
        with open(label_file, encoding='utf-8') as f:
            merged = json.load(f)
    merged.update(labels)
    write_json(merged, label_file)
    return dict(
        images=len(images),
        written=len(tasks),
        skipped=skipped,
        empty=sum(1 for v in labels.values() if not v))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='COCO 2014 instances -> WSSS index masks and image '
        'labels')
    parser.add_argument(
        '--coco-root', required=True, help='COCO root with annotations/')
    parser.add_argument(
        '--split', default='train2014', help='e.g. train2014 or val2014')
    parser.add_argument(
        '--workers', type=int, default=8, help='worker processes')
    parser.add_argument(
        '--out-dir',
        help='mask folder (default <coco-root>/SegmentationClass/<split>)')
    parser.add_argument(
        '--label-file',
        help='label JSON (default <coco-root>/cls_labels.json)')
    parser.add_argument(
        '--overwrite', action='store_true', help='rewrite existing masks')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv`` if None.
    """
    args = parse_args(argv)
    stats = convert(
        args.coco_root,
        args.split,
        workers=args.workers,
        overwrite=args.overwrite,
        out_dir=args.out_dir,
        label_file=args.label_file)
    print(f'{args.split}: {stats["images"]} images, {stats["written"]} '
          f'masks written, {stats["skipped"]} existing skipped, '
          f'{stats["empty"]} without annotations')


if __name__ == '__main__':
    main()
