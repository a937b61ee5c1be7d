# Copyright (c) mmwsss contributors.
"""Bad-input matrix: each malformed input gives a clear error naming the file
or key (issue #5, "bad input"; table in ``docs/en/notes/bad_inputs.md``).

Cases already pinned elsewhere are not repeated here:
``tests/test_datasets/test_wsss_dataset.py`` (split / label file / XML /
mask errors, empty label set), ``tests/test_utils/test_checkpoint.py``
(missing, truncated and unsafe checkpoints), ``tests/test_refine/
test_densecrf.py`` (NaN scores, image dtype/shape, size mismatch),
``tests/test_models/test_cam_segmentor.py`` (missing ``img_labels``, NaN
CAMs), ``tests/test_apis/test_pseudo_labels.py`` (missing checkpoint,
resume) and ``tests/test_evaluation/test_label_maps.py``.
"""
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint
from mmseg.structures import SegDataSample
from PIL import Image

from mmwsss.apis import PseudoLabelError, make_pseudo_labels
from mmwsss.datasets.demo_scenes import generate_demo_dataset
from mmwsss.models import CAMSegmentor
from mmwsss.models.heads.cam_head import check_classifier_rows
from mmwsss.registry import DATASETS, MODELS
from mmwsss.utils import register_all_modules
from mmwsss.utils.checkpoint import UnsafeCheckpointError, safe_torch_load

register_all_modules()

REPO = Path(__file__).resolve().parents[2]
CAM_CFG = REPO / 'configs' / 'cam' / 'cam_r18-w32_1xb32-600it_demo-128x128.py'


@pytest.fixture(scope='module', autouse=True)
def one_torch_thread():
    """Tiny convolutions are much slower with a thread team."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load_tool(rel: str) -> ModuleType:
    """Import a script under ``tools/`` as a module."""
    path = REPO / rel
    spec = importlib.util.spec_from_file_location(path.stem, str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------
# datasets: images going through the pipeline


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Four 64x64 demo scenes, a tiny CAM config and its checkpoint."""
    root = tmp_path_factory.mktemp('demo')
    generate_demo_dataset(str(root), num_train=4, num_val=0, img_size=64)
    cfg = Config.fromfile(str(CAM_CFG))
    opts = {
        'model.backbone.base_channels': 8,
        'model.backbone.stem_channels': 8,
        'model.cam_head.in_channels': 64,
        'model.test_cfg.scales': (1.0, ),
        'model.test_cfg.flip': False,
    }
    for split in ('train', 'test'):
        opts[f'{split}_dataloader.dataset.data_root'] = str(root)
    cfg.merge_from_dict(opts)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = root / 'tiny_cam.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, str(ckpt))
    names = (root / 'ImageSets' / 'Segmentation' /
             'train.txt').read_text().split()
    return dict(root=root, cfg=cfg, ckpt=str(ckpt), names=names)


def demo_dataset(root: Path, **kwargs):
    """The demo train split with a loading pipeline."""
    cfg = dict(
        type='WSSSDemoDataset',
        data_root=str(root),
        ann_file='ImageSets/Segmentation/train.txt',
        data_prefix=dict(img_path='JPEGImages'),
        label_file='image_labels.json',
        pipeline=[
            dict(type='mmseg.LoadImageFromFile'),
            dict(type='PackWSSSInputs')
        ])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


@pytest.fixture
def demo_copy(demo, tmp_path):
    """A private copy of the demo data (images, split, labels)."""
    root = tmp_path / 'demo'
    for sub in ('JPEGImages', 'ImageSets'):
        shutil.copytree(demo['root'] / sub, root / sub)
    shutil.copy(demo['root'] / 'image_labels.json', root)
    return root


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'missing'])
def test_bad_image_file_in_pipeline(demo, demo_copy, damage):
    ds = demo_dataset(demo_copy)
    name = demo['names'][1]
    img = demo_copy / 'JPEGImages' / f'{name}.jpg'
    assert ds[0]['inputs'].shape == (3, 64, 64)  # control: intact image
    if damage == 'garbage':
        img.write_bytes(b'not a jpeg')
    elif damage == 'truncated':
        img.write_bytes(img.read_bytes()[:300])
    else:
        img.unlink()
    # mmcv's LoadImageFromFile names the file (an AssertionError for
    # undecodable bytes); BaseDataset.__getitem__ lets it through instead
    # of silently substituting another image.
    err = FileNotFoundError if damage == 'missing' else AssertionError
    with pytest.raises(err, match=f'{name}.jpg'):
        ds[1]


def test_bad_image_through_dataloader_worker(demo, demo_copy):
    name = demo['names'][0]
    (demo_copy / 'JPEGImages' / f'{name}.jpg').write_bytes(b'\xff\xd8junk')
    loader = torch.utils.data.DataLoader(
        demo_dataset(demo_copy),
        batch_size=1,
        num_workers=1,
        collate_fn=pseudo_collate)
    # The worker re-raises with the original message (and traceback).
    with pytest.raises(
            AssertionError, match=f'(?s)DataLoader worker.*{name}.jpg'):
        next(iter(loader))


def test_grayscale_and_rgba_images_load_as_bgr(demo, demo_copy):
    name = demo['names'][0]
    img = cv2.imread(str(demo_copy / 'JPEGImages' / f'{name}.jpg'))
    path = demo_copy / 'JPEGImages' / f'{name}.jpg'
    cv2.imwrite(str(path), img[..., 0])
    assert demo_dataset(demo_copy)[0]['inputs'].shape == (3, 64, 64)
    # RGBA: cv2.IMREAD_COLOR drops alpha
    png = demo_copy / 'JPEGImages' / f'{name}.png'
    cv2.imwrite(str(png), np.dstack([img, img[..., :1]]))
    path.unlink()
    png.rename(path)  # a PNG behind a .jpg name still decodes
    assert demo_dataset(demo_copy)[0]['inputs'].shape == (3, 64, 64)


def test_demo_dataset_rejects_voc_class_index(demo_copy):
    # wrong class count: a VOC label (15 = person) in an 8-class dataset
    table = json.loads((demo_copy / 'image_labels.json').read_text())
    name = sorted(table)[0]
    table[name] = [15]
    (demo_copy / 'image_labels.json').write_text(json.dumps(table))
    with pytest.raises(
            ValueError, match=rf'image_labels.json.*"{name}".*15.*\[1, 7\]'):
        demo_dataset(demo_copy)


# ----------------------------------------------------------------------
# CAMSegmentor


def tiny_segmentor(num_classes: int = 4) -> CAMSegmentor:
    """A random CAM segmentor on a ResNet-18 at 1/8 width."""
    return CAMSegmentor(
        backbone=dict(
            type='mmseg.ResNetV1c',
            depth=18,
            base_channels=8,
            stem_channels=8,
            init_cfg=None),
        cam_head=dict(
            type='CAMHead',
            in_channels=64,
            num_classes=num_classes,
            init_cfg=None),
        test_cfg=dict(scales=(1.0, ), flip=False)).eval()


def sample(labels, path='data/x/img_007.jpg') -> SegDataSample:
    return SegDataSample(
        metainfo=dict(
            img_labels=list(labels),
            img_path=path,
            ori_shape=(32, 32),
            img_shape=(32, 32)))


def test_predict_label_out_of_range_names_image():
    model = tiny_segmentor(4)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        model.predict(x, [sample([3])])  # control: last valid class
        with pytest.raises(ValueError, match=r'img_007\.jpg.*4.*\[1, 3\]'):
            model.predict(x, [sample([4])])


def test_loss_label_out_of_range_names_image():
    model = tiny_segmentor(4).train()
    x = torch.rand(2, 3, 32, 32)
    model.loss(x, [sample([1]), sample([3], 'b.jpg')])  # control
    with pytest.raises(ValueError, match=r'b\.jpg.*label 7'):
        model.loss(x, [sample([1]), sample([7], 'b.jpg')])


def test_nan_input_names_image():
    model = tiny_segmentor(4)
    x = torch.rand(1, 3, 32, 32)
    x[0, :, 3, 3] = float('nan')
    with torch.no_grad(), pytest.raises(
            FloatingPointError, match=r'img_007\.jpg.*NaN'):
        model.predict(x, [sample([1])])


@pytest.mark.parametrize('strict', [True, False])
def test_wrong_num_classes_checkpoint(tmp_path, strict):
    ckpt = tmp_path / 'voc21.pth'
    torch.save({'state_dict': tiny_segmentor(21).state_dict()}, str(ckpt))
    same = tiny_segmentor(21)
    load_checkpoint(same, str(ckpt), map_location='cpu', strict=strict)
    # strict=False (MMEngine's load_from) used to warn and keep the random
    # classifier: silently wrong CAMs
    with pytest.raises(
            ValueError,
            match=r'cam_head\.classifier\.weight.*20 foreground'
            r'.*num_classes=8'):
        load_checkpoint(
            tiny_segmentor(8), str(ckpt), map_location='cpu', strict=strict)


def test_backbone_only_checkpoint_still_loads(tmp_path):
    src = tiny_segmentor(21)
    ckpt = tmp_path / 'backbone.pth'
    torch.save(
        {
            'state_dict': {
                k: v
                for k, v in src.state_dict().items()
                if k.startswith('backbone')
            }
        }, str(ckpt))
    model = tiny_segmentor(8)
    load_checkpoint(model, str(ckpt), map_location='cpu', strict=False)
    assert torch.equal(model.backbone.layer1[0].conv1.weight,
                       src.backbone.layer1[0].conv1.weight)


def test_classifier_rows_check_covers_igcam_keys():
    good = {'head.classifiers.0.weight': torch.zeros(7, 4, 1, 1)}
    check_classifier_rows(good, 'head.', 8)
    bad = {'head.classifiers.1.bias': torch.zeros(20)}
    with pytest.raises(ValueError, match=r'head\.classifiers\.1\.bias'):
        check_classifier_rows(bad, 'head.', 8)
    # other keys of the same shape are left alone
    check_classifier_rows({'head.scorers.0.weight': torch.zeros(20)}, 'head.',
                          8)


# ----------------------------------------------------------------------
# checkpoint files


@pytest.mark.parametrize(
    'content', [b'', b'hello world\n', b'{"a": 1}\n',
                bytes(range(256))])
def test_non_checkpoint_file(tmp_path, content):
    path = tmp_path / 'model.pth'
    path.write_bytes(content)
    with pytest.raises(
            RuntimeError, match='cannot read checkpoint.*model'
            r'\.pth') as info:
        safe_torch_load(str(path))
    # not reported as an unsafe pickle (whose advice is to convert it)
    assert not isinstance(info.value, UnsafeCheckpointError)
    with pytest.raises(RuntimeError, match=r'model\.pth'):
        load_checkpoint(nn.Linear(1, 1), str(path), map_location='cpu')


# ----------------------------------------------------------------------
# pseudo-label tool


def test_pseudo_labels_stop_at_corrupt_image_and_resume(demo, tmp_path):
    root = tmp_path / 'data'
    for sub in ('JPEGImages', 'ImageSets'):
        shutil.copytree(demo['root'] / sub, root / sub)
    shutil.copy(demo['root'] / 'image_labels.json', root)
    cfg = demo['cfg'].copy()
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': str(root)})
    names = demo['names']
    bad = root / 'JPEGImages' / f'{names[2]}.jpg'
    original = bad.read_bytes()
    bad.write_bytes(original[:200])
    out = tmp_path / 'out'
    with pytest.raises(PseudoLabelError, match=f'{names[2]}.jpg') as info:
        make_pseudo_labels(
            cfg, demo['ckpt'], str(out), split='train', progress=False)
    assert 'run the same command again' in str(info.value)
    assert sorted(p.stem for p in out.glob('*.png')) == sorted(names[:2])
    assert not list(out.rglob('*.tmp'))
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['complete'] is False
    # the CLI turns it into a one-line error naming the file
    tool = load_tool('tools/make_pseudo_labels.py')
    opts = [
        f'train_dataloader.dataset.data_root={root}',
        'model.backbone.base_channels=8', 'model.backbone.stem_channels=8',
        'model.cam_head.in_channels=64', 'model.test_cfg.scales=[1.0]',
        'model.test_cfg.flip=False'
    ]
    with pytest.raises(SystemExit, match=f'error: cannot load.*{names[2]}'):
        tool.main([
            str(CAM_CFG), demo['ckpt'], '--out',
            str(out), '--split', 'train', '--no-progress', '--cfg-options'
        ] + opts)
    bad.write_bytes(original)
    res = make_pseudo_labels(
        cfg, demo['ckpt'], str(out), split='train', progress=False)
    assert (res['skipped'], res['processed']) == (2, 2)
    assert sorted(p.stem for p in out.glob('*.png')) == sorted(names)


# ----------------------------------------------------------------------
# analysis tools


@pytest.fixture
def sweep_dirs(tmp_path):
    """Two images of 4-class scores with their ground truth."""
    scores_dir, gt_dir = tmp_path / 'scores', tmp_path / 'gt'
    scores_dir.mkdir()
    gt_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in ('a', 'b'):
        np.savez(
            scores_dir / f'{name}.npz',
            scores=rng.random((4, 5, 6)).astype(np.float32),
            img_labels=np.array([1, 2]))
        Image.fromarray(rng.integers(0, 4, (5, 6), dtype=np.uint8)).save(
            gt_dir / f'{name}.png')
    return scores_dir, gt_dir


def run_sweep(scores_dir, gt_dir, tmp_path):
    return load_tool('tools/analysis_tools/sweep_thresholds.py').main([
        '--scores-dir',
        str(scores_dir), '--gt-dir',
        str(gt_dir), '--out',
        str(tmp_path / 'res.json'), '--step', '0.25'
    ])


def test_sweep_control(sweep_dirs, tmp_path):
    assert run_sweep(*sweep_dirs, tmp_path)['num_images'] == 2


@pytest.mark.parametrize(
    'damage, pattern',
    [('missing_gt', r'ground truth not found: .*b\.png'),
     ('corrupt_gt', r'cannot read ground truth .*b\.png'),
     ('corrupt_npz', r'cannot read scores file .*b\.npz'),
     ('no_scores_key', r'b\.npz has no "scores"'),
     ('class_count', r'image "b": scores have 6 channels.*num_classes=4'),
     ('gt_class_id', r'image "b": gt contains labels \[9\]'),
     ('nan_scores', r'image "b": scores contain NaN')])
def test_sweep_bad_inputs(sweep_dirs, tmp_path, damage, pattern):
    scores_dir, gt_dir = sweep_dirs
    npz, gt = scores_dir / 'b.npz', gt_dir / 'b.png'
    if damage == 'missing_gt':
        gt.unlink()
    elif damage == 'corrupt_gt':
        gt.write_bytes(b'\x89PNG\r\n')
    elif damage == 'corrupt_npz':
        npz.write_bytes(npz.read_bytes()[:100])
    elif damage == 'no_scores_key':
        np.savez(npz, cams=np.zeros((4, 5, 6)))
    elif damage == 'class_count':
        np.savez(npz, scores=np.zeros((6, 5, 6)), img_labels=[1])
    elif damage == 'gt_class_id':
        Image.fromarray(np.full((5, 6), 9, np.uint8)).save(gt)
    else:
        np.savez(npz, scores=np.full((4, 5, 6), np.nan), img_labels=[1])
    with pytest.raises(SystemExit, match=pattern):
        run_sweep(scores_dir, gt_dir, tmp_path)


def test_eval_label_maps_tool_errors(tmp_path):
    pred_dir, gt_dir = tmp_path / 'pred', tmp_path / 'gt'
    pred_dir.mkdir()
    gt_dir.mkdir()
    g = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    for name in ('a', 'b'):
        Image.fromarray(g).save(pred_dir / f'{name}.png')
    Image.fromarray(g).save(gt_dir / 'a.png')
    tool = load_tool('tools/analysis_tools/eval_label_maps.py')
    args = [str(pred_dir), str(gt_dir), '--split', str(tmp_path / 's.txt')]
    (tmp_path / 's.txt').write_text('a\n')
    assert tool.main(args + ['--num-classes', '3'])['miou'] == 1.0
    (tmp_path / 's.txt').write_text('a\nb\n')
    with pytest.raises(SystemExit, match=r'label map not found: .*gt.b\.png'):
        tool.main(args + ['--num-classes', '3'])
    (tmp_path / 's.txt').write_text('a\n')
    with pytest.raises(SystemExit, match=r'image "a".*\[2\]'):
        tool.main(args + ['--num-classes', '2'])
    (gt_dir / 'a.png').write_bytes(b'not a png')
    with pytest.raises(SystemExit, match=r'cannot read label map .*a\.png'):
        tool.main(args + ['--num-classes', '3'])


def test_all_zero_cams_give_background_not_nan():
    """CAMs that are zero everywhere (a dead classifier) are normalised
    with ``norm_eps``: every pixel goes to background, no NaN."""
    model = tiny_segmentor(4)
    with torch.no_grad():
        model.cam_head.classifier.weight.zero_()
        out = model.predict(torch.rand(1, 3, 32, 32), [sample([1, 3])])
    scores = out[0].seg_logits.data
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[1:], torch.zeros_like(scores[1:]))
    assert int(out[0].pred_sem_seg.data.max()) == 0


def test_image_smaller_than_the_crop(demo, demo_copy):
    """A 40x30 image with a 64x64 crop: RandomCrop keeps the whole image
    (no error), the data preprocessor pads it to the batch size with
    ``pad_val`` (image) and ``seg_pad_val`` 255 (mask, ignored)."""
    img_path = demo_copy / 'JPEGImages' / 'demo_000000.jpg'
    cv2.imwrite(str(img_path), np.full((30, 40, 3), 90, np.uint8))
    ds = demo_dataset(
        demo_copy,
        pipeline=[
            dict(type='mmseg.LoadImageFromFile'),
            dict(type='mmseg.RandomCrop', crop_size=(64, 64)),
            dict(type='PackWSSSInputs')
        ])
    item = ds.prepare_data(0)
    assert tuple(item['inputs'].shape) == (3, 30, 40)
    pre = MODELS.build(
        dict(
            type='mmseg.SegDataPreProcessor',
            mean=[0., 0., 0.],
            std=[1., 1., 1.],
            size=(64, 64),
            pad_val=0,
            seg_pad_val=255))
    batch = pre(pseudo_collate([item]), training=True)
    assert tuple(batch['inputs'].shape) == (1, 3, 64, 64)
    assert float(batch['inputs'][0, :, 30:, :].abs().max()) == 0.0
