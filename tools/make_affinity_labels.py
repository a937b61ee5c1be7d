# Copyright (c) mmwsss contributors.
"""Write confident CAM labels for AffinityNet training (IRN style).

Example::

    python tools/make_affinity_labels.py work_dirs/camguide_demo/scores \\
        work_dirs/camguide_demo/aff_labels --img-dir data/demo/JPEGImages \\
        --fg-thr 0.30 --bg-thr 0.05 --crf irn_label --workers 2

For every ``SCORES_DIR/<stem>.npz`` written by ``tools/make_pseudo_labels.py
--save-scores`` (``scores`` (C, H, W): channel 0 a background score,
channel ``c`` the normalised CAM of class ``c``; ``img_labels``) this
writes ``OUT_DIR/<stem>.png`` following IRN ``step/cam_to_ir_label.py``:

1. ``fg``: background channel set to ``--fg-thr`` (IRN
   ``conf_fg_thres=0.30``), argmax over background + ``img_labels``, CRF
   (``--crf irn_label``: IRN's ``crf_inference_label``, label unary,
   10 iterations);
2. ``bg``: the same with ``--bg-thr`` (``conf_bg_thres=0.05``);
3. ``conf = fg; conf[fg == 0] = 255; conf[bg + fg == 0] = 0``: foreground
   where the high background threshold still finds an object, background
   where even the low threshold finds none, 255 (uncertain) in between.

The CRF sees ``--img-dir/<stem><--img-suffix>`` decoded as RGB. PNGs carry
the VOC colour map (``--no-palette`` for plain grey PNGs; 255 is white).
Files are written atomically (temporary name + rename) and images whose
PNG exists are skipped, so an interrupted run is finished by running the
same command again; ``OUT_DIR/meta.json`` records the settings and a rerun
with other settings into the same folder is refused.

``--gt-dir DIR`` (masks of some or all images, ``<stem>--gt-suffix``)
then prints the precision of the confident labels
(:mod:`mmwsss.evaluation.affinity_labels`: pixel precision of the
foreground and background labels, coverage, and the precision of the
positive / negative pairs within ``--radius`` on the stride
``--grid-stride`` affinity grid, what AffinityNet trains on) and writes
it to ``OUT_DIR/precision.json``; images without a mask are skipped.
"""
import argparse
import json
import multiprocessing
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from mmwsss.utils.io import (atomic_save_label_png, atomic_write_bytes,
                             check_previous_meta, remove_stale_tmp)
from mmwsss.utils.palette import voc_color_map
from mmwsss.utils.progress import bar_interval

CRF_CHOICES = ('irn_label', 'psa_softmax', 'none')
IGNORE_INDEX = 255
# Settings that must match between runs writing into the same folder.
_COMPARED = ('scores_dir', 'fg_thr', 'bg_thr', 'crf')


class AffinityLabelError(ValueError):
    """Bad arguments or input files (a user error)."""


def voc_palette(n: int = 256) -> List[List[int]]:
    """The PASCAL VOC colour map (``bitget`` construction) of ``n`` ids."""
    return voc_color_map(n)


def read_scores(path: str):
    """Read ``scores`` (float32 (C, H, W)) and ``img_labels`` of a file.

    Raises:
        AffinityLabelError: Unreadable file, missing keys, wrong shape,
            non-finite values or labels outside ``[1, C - 1]``.
    """
    try:
        with np.load(path) as data:
            scores = np.asarray(data['scores'], dtype=np.float32)
            labels = sorted(int(x) for x in np.ravel(data['img_labels']))
    except KeyError as e:
        raise AffinityLabelError(
            f'{path}: missing key {e} (expected "scores" and "img_labels" '
            'as written by tools/make_pseudo_labels.py --save-scores)'
        ) from None
    except Exception as e:  # zipfile / pickle / OS errors of a bad file
        raise AffinityLabelError(f'cannot read score file {path}: '
                                 f'{type(e).__name__}: {e}') from None
    if scores.ndim != 3 or scores.shape[0] < 1:
        raise AffinityLabelError(f'{path}: scores must be (C, H, W), got '
                                 f'shape {scores.shape}')
    if not np.isfinite(scores).all():
        raise AffinityLabelError(f'{path}: scores contain NaN or infinite '
                                 'values')
    bad = [x for x in labels if not 1 <= x < scores.shape[0]]
    if bad:
        raise AffinityLabelError(
            f'{path}: img_labels {labels} must lie in [1, '
            f'{scores.shape[0] - 1}] (background 0 is implicit)')
    return scores, labels


def threshold_labels(scores: np.ndarray, labels: Sequence[int], bg_thr: float,
                     img: Optional[np.ndarray], crf) -> np.ndarray:
    """Argmax (+ CRF) label map with a constant background score.

    Args:
        scores (np.ndarray): ``(C, H, W)`` scores; channel 0 is replaced.
        labels (Sequence[int]): Foreground classes of the image.
        bg_thr (float): Background score.
        img (np.ndarray, optional): uint8 RGB image for the CRF.
        crf (callable, optional): ``crf(img, scores, labels)`` or None.

    Returns:
        np.ndarray: int64 ``(H, W)`` labels among ``[0] + labels``; ties go
        to the lower class index (background first).
    """
    scores = scores.copy()
    scores[0] = bg_thr
    if crf is not None:
        return np.asarray(crf(img, scores, labels), dtype=np.int64)
    keys = np.array([0] + list(labels), dtype=np.int64)
    return keys[np.argmax(scores[keys], axis=0)]


def confident_labels(scores: np.ndarray,
                     labels: Sequence[int],
                     fg_thr: float = 0.30,
                     bg_thr: float = 0.05,
                     img: Optional[np.ndarray] = None,
                     crf=None) -> np.ndarray:
    """IRN ``cam_to_ir_label``: confident fg / bg with 255 in between.

    Args:
        scores (np.ndarray): ``(C, H, W)`` saved CAM scores.
        labels (Sequence[int]): Foreground classes of the image.
        fg_thr (float): Background score for the foreground map (IRN
            ``conf_fg_thres=0.30``).
        bg_thr (float): Background score for the background map (IRN
            ``conf_bg_thres=0.05``).
        img (np.ndarray, optional): uint8 RGB ``(H, W, 3)``, for the CRF.
        crf (callable, optional): e.g. ``DenseCRF(preset='irn_label')``.

    Returns:
        np.ndarray: uint8 ``(H, W)``: 0 background, class ids, 255
        uncertain.
    """
    fg = threshold_labels(scores, labels, fg_thr, img, crf)
    bg = threshold_labels(scores, labels, bg_thr, img, crf)
    conf = fg.copy()
    conf[fg == 0] = IGNORE_INDEX
    conf[(bg + fg) == 0] = 0
    return conf.astype(np.uint8)


def _build_crf(name: str):
    if name == 'none':
        return None
    from mmwsss.refine import DenseCRF
    return DenseCRF(preset=name)


def _read_rgb(path: str) -> np.ndarray:
    from mmwsss.apis.pseudo_labels import read_rgb
    if not osp.isfile(path):
        raise AffinityLabelError(f'image not found: {path} (check --img-dir '
                                 'and --img-suffix)')
    return read_rgb(path)


def _work(ctx: dict, stem: str) -> str:
    """Make and write the label PNG of one image (pool worker)."""
    try:
        return _work_one(ctx, stem)
    except AffinityLabelError:
        raise
    except Exception as e:
        raise AffinityLabelError(f'{stem}: {type(e).__name__}: {e}') \
            from None


def _work_one(ctx: dict, stem: str) -> str:
    npz = osp.join(ctx['scores_dir'], stem + '.npz')
    scores, labels = read_scores(npz)
    img = None
    if ctx['crf'] is not None:
        img_path = osp.join(ctx['img_dir'], stem + ctx['img_suffix'])
        img = _read_rgb(img_path)
        if img.shape[:2] != scores.shape[1:]:
            raise AffinityLabelError(
                f'{img_path} is {img.shape[1]}x{img.shape[0]} but its scores '
                f'{npz} are {scores.shape[2]}x{scores.shape[1]}; the CRF '
                'needs scores at the original image size')
    conf = confident_labels(scores, labels, ctx['fg_thr'], ctx['bg_thr'], img,
                            ctx['crf'])
    atomic_save_label_png(
        osp.join(ctx['out_dir'], stem + '.png'), conf, ctx['palette'])
    return stem


def make_affinity_labels(scores_dir: str,
                         out_dir: str,
                         img_dir: Optional[str] = None,
                         img_suffix: str = '.jpg',
                         fg_thr: float = 0.30,
                         bg_thr: float = 0.05,
                         crf: str = 'irn_label',
                         workers: int = 1,
                         palette: bool = True,
                         progress: bool = True) -> Dict[str, object]:
    """Write confident labels for every score file; see the module doc.

    Args:
        scores_dir (str): Folder of ``<stem>.npz`` score files.
        out_dir (str): Output folder of ``<stem>.png``.
        img_dir (str, optional): Folder of the images (needed by the CRF).
        img_suffix (str): Image file suffix. Defaults to ``'.jpg'``.
        fg_thr (float): Background score of the foreground map.
        bg_thr (float): Background score of the background map.
        crf (str): ``'irn_label'`` (default), ``'psa_softmax'`` or
            ``'none'`` (plain argmax).
        workers (int): Processes; 1 runs in the main process.
        palette (bool): Write palette PNGs (VOC colours).
        progress (bool): Show a progress bar and messages.

    Returns:
        dict: ``total``, ``skipped``, ``processed``, ``out_dir``, ``meta``.
    """
    if crf not in CRF_CHOICES:
        raise AffinityLabelError(f'crf must be one of {CRF_CHOICES}, got '
                                 f'{crf!r}')
    if not 0 <= bg_thr <= fg_thr:
        raise AffinityLabelError(
            f'need 0 <= bg_thr <= fg_thr, got bg_thr={bg_thr}, '
            f'fg_thr={fg_thr} (the foreground map uses the higher '
            'background score)')
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise AffinityLabelError(f'workers must be >= 1, got {workers!r}')
    scores_dir = osp.abspath(scores_dir)
    out_dir = osp.abspath(out_dir)
    if not osp.isdir(scores_dir):
        raise FileNotFoundError(f'scores folder not found: {scores_dir}')
    if crf != 'none':
        if not img_dir:
            raise AffinityLabelError(
                f'--crf {crf} needs the images: give --img-dir (or use '
                '--crf none)')
        img_dir = osp.abspath(img_dir)
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'image folder not found: {img_dir}')
    if out_dir == scores_dir:
        raise AffinityLabelError('OUT_DIR must differ from SCORES_DIR')

    def log(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    stems = sorted(f[:-len('.npz')] for f in os.listdir(scores_dir)
                   if f.endswith('.npz') and not f.startswith('.'))
    if not stems:
        raise AffinityLabelError(f'no .npz score files in {scores_dir}')
    settings = dict(
        scores_dir=scores_dir,
        fg_thr=float(fg_thr),
        bg_thr=float(bg_thr),
        crf=crf,
        img_dir=img_dir,
        img_suffix=img_suffix)
    check_previous_meta(out_dir, settings, _COMPARED, 'settings', '.png',
                        'make_affinity_labels', AffinityLabelError)
    os.makedirs(out_dir, exist_ok=True)
    removed = remove_stale_tmp(out_dir, {s + '.png' for s in stems})
    if removed:
        log(f'removed {removed} temporary file(s) of an interrupted run')
    todo = [s for s in stems if not osp.isfile(osp.join(out_dir, s + '.png'))]
    skipped = len(stems) - len(todo)
    log(f'{len(stems)} score files: skipping {skipped} already done, '
        f'{len(todo)} to do')
    meta_path = osp.join(out_dir, 'meta.json')
    meta = dict(
        tool='make_affinity_labels',
        count=len(stems),
        done=skipped,
        complete=not todo,
        settings=settings)

    def write_meta() -> None:
        atomic_write_bytes(meta_path,
                           json.dumps(meta, indent=2).encode('utf-8'))

    write_meta()
    ctx = dict(
        scores_dir=scores_dir,
        out_dir=out_dir,
        img_dir=img_dir,
        img_suffix=img_suffix,
        fg_thr=float(fg_thr),
        bg_thr=float(bg_thr),
        crf=_build_crf(crf),
        palette=voc_palette() if palette else None)
    processed = 0
    t0 = time.time()
    bar = tqdm(
        total=len(todo),
        desc='affinity labels',
        unit='img',
        disable=not progress,
        file=sys.stderr,
        mininterval=bar_interval())
    try:
        if workers == 1 or len(todo) <= 1:
            for stem in todo:
                _work(ctx, stem)
                processed += 1
                bar.update()
        else:
            methods = multiprocessing.get_all_start_methods()
            method = 'fork' if 'fork' in methods else None
            with multiprocessing.get_context(method).Pool(workers) as pool:
                results = [
                    pool.apply_async(_work, (ctx, stem)) for stem in todo
                ]
                for res in results:
                    res.get()
                    processed += 1
                    bar.update()
    finally:
        bar.close()
        meta['done'] = skipped + processed
        meta['complete'] = meta['done'] == len(stems)
        meta['seconds'] = round(time.time() - t0, 3)
        write_meta()
    log(f'wrote {processed} confident label map(s) to {out_dir}')
    return dict(
        total=len(stems),
        skipped=skipped,
        processed=processed,
        out_dir=out_dir,
        meta=meta_path)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Confident CAM labels (fg / bg / 255) for AffinityNet '
        'training, as IRN cam_to_ir_label')
    parser.add_argument('scores_dir', help='folder of <stem>.npz scores')
    parser.add_argument('out_dir', help='output folder of <stem>.png')
    parser.add_argument(
        '--img-dir', default=None, help='image folder (needed by the CRF)')
    parser.add_argument(
        '--img-suffix', default='.jpg', help='image suffix (default .jpg)')
    parser.add_argument(
        '--fg-thr',
        type=float,
        default=0.30,
        help='background score of the foreground map (IRN 0.30)')
    parser.add_argument(
        '--bg-thr',
        type=float,
        default=0.05,
        help='background score of the background map (IRN 0.05)')
    parser.add_argument(
        '--crf',
        choices=CRF_CHOICES,
        default='irn_label',
        help='DenseCRF preset applied to both maps, or none (default: '
        'irn_label)')
    parser.add_argument(
        '--workers', type=int, default=1, help='processes (default 1)')
    parser.add_argument(
        '--no-palette',
        action='store_true',
        help='write grey PNGs instead of VOC palette PNGs')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress output')
    parser.add_argument(
        '--gt-dir',
        default=None,
        help='masks: print the precision of the confident labels')
    parser.add_argument(
        '--gt-suffix', default='.png', help='mask suffix (default .png)')
    parser.add_argument(
        '--radius',
        type=int,
        default=5,
        help='pair radius of the precision, in affinity-grid nodes '
        '(default 5, PSA)')
    parser.add_argument(
        '--grid-stride',
        type=int,
        default=4,
        help='stride of the affinity grid of the pair precision (default 4)')
    return parser.parse_args(argv)


def label_precision(out_dir: str,
                    gt_dir: str,
                    gt_suffix: str = '.png',
                    radius: int = 5,
                    stride: int = 4) -> dict:
    """Precision of the written labels that have a mask; see the module
    docstring. Writes ``OUT_DIR/precision.json``."""
    from mmwsss.evaluation.affinity_labels import evaluate_affinity_label_dir
    if not osp.isdir(gt_dir):
        raise FileNotFoundError(f'mask folder not found: {gt_dir}')
    try:
        res = evaluate_affinity_label_dir(
            out_dir,
            gt_dir,
            gt_suffix,
            radius,
            stride,
            IGNORE_INDEX,
            missing='skip')
    except ValueError as e:
        raise AffinityLabelError(str(e)) from None
    res.update(radius=radius, grid_stride=stride, gt_dir=osp.abspath(gt_dir))
    atomic_write_bytes(
        osp.join(out_dir, 'precision.json'),
        json.dumps(res, indent=2).encode('utf-8'))
    return res


def format_precision(res: dict) -> str:
    """One readable block of :func:`label_precision`'s result."""

    def pct(x: float) -> str:
        return 'n/a' if x != x else f'{100 * x:.1f}%'

    return '\n'.join([
        f'confident-label precision on {res["images"]} images with masks:',
        f'  pixels: fg {pct(res["fg_precision"])} '
        f'({res["n_fg_conf"]} px), bg {pct(res["bg_precision"])} '
        f'({res["n_bg_conf"]} px), coverage {pct(res["coverage"])}',
        f'  pairs (radius {res["radius"]}, stride {res["grid_stride"]}): '
        f'bg+ {pct(res["pos_bg_precision"])} ({res["n_pos_bg"]}), '
        f'fg+ {pct(res["pos_fg_precision"])} ({res["n_pos_fg"]}), '
        f'neg {pct(res["neg_precision"])} ({res["n_neg"]})'
    ])


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the tool; return the summary of :func:`make_affinity_labels`."""
    args = parse_args(argv)
    try:
        summary = make_affinity_labels(
            args.scores_dir,
            args.out_dir,
            img_dir=args.img_dir,
            img_suffix=args.img_suffix,
            fg_thr=args.fg_thr,
            bg_thr=args.bg_thr,
            crf=args.crf,
            workers=args.workers,
            palette=not args.no_palette,
            progress=not args.no_progress)
        if args.gt_dir:
            summary['precision'] = label_precision(
                osp.abspath(args.out_dir), args.gt_dir, args.gt_suffix,
                args.radius, args.grid_stride)
            print(format_precision(summary['precision']), flush=True)
        return summary
    except (AffinityLabelError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    except KeyboardInterrupt:
        raise SystemExit('interrupted; run the same command again to '
                         'finish the remaining images')


if __name__ == '__main__':
    main(sys.argv[1:])
