# Copyright (c) mmwsss contributors.
"""Influence maps through :func:`mmwsss.apis.make_pseudo_labels`.

A tiny IG-CAM (the ResNetV1c-18 / FPN / attention / instance-guided head
of ``tests/test_engine/igcam_hook_testlib.py``) is trained two steps on 64
px demo scenes, its influence is refreshed on the val scenes and the
checkpoint carries the influence state as ``InfluenceHook`` saves it. The
reference is the model's own ``predict`` (the ``tools/test.py`` path) with
:class:`~mmwsss.refine.InfluenceCRF` as ``test_cfg.refine``.
"""
import copy
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from PIL import Image

from mmwsss.apis import make_pseudo_labels
from mmwsss.datasets.demo_scenes import generate_demo_dataset
from mmwsss.refine import InfluenceCRF
from mmwsss.registry import DATASETS, MODELS
from mmwsss.utils import register_all_modules

register_all_modules()

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    'igcam_hook_testlib',
    REPO / 'tests' / 'test_engine' / 'igcam_hook_testlib.py')
testlib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(testlib)

# Clean-up that keys on the influence (components below the image's mean
# influence are dropped), so uniform and real maps give different labels.
REFINE = dict(type='InfluenceCRF', beta=1.0, gamma=0.5, influence_thr=1.0)
TEST_PIPELINE = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='PackWSSSInputs')
]


@pytest.fixture(scope='module', autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def recorder(monkeypatch):
    """Record the ``influence`` every InfluenceCRF call receives."""
    calls = []
    original = InfluenceCRF.__call__

    def spy(self, img, scores, img_labels=None, influence=None):
        calls.append(None if influence is None else np.array(influence))
        return original(self, img, scores, img_labels, influence)

    monkeypatch.setattr(InfluenceCRF, '__call__', spy)
    return calls


def _config(root: str) -> Config:
    model = testlib.model_cfg()
    model['test_cfg'] = dict(
        scales=(1.0, 0.5), flip=True, bg_thr=0.3, refine=REFINE)
    return Config(
        dict(
            model=model,
            default_scope='mmwsss',
            test_dataloader=dict(
                dataset=testlib.dataset_cfg(root, 'train', TEST_PIPELINE))))


@pytest.fixture(scope='module')
def igcam(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    generate_demo_dataset(root, num_train=4, num_val=4, img_size=64)
    cfg = _config(root)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train = DATASETS.build(
        testlib.dataset_cfg(root, 'train', testlib.pipeline(64, flip=True)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(2):
        batch = pseudo_collate([train[2 * step], train[2 * step + 1]])
        data = model.data_preprocessor(batch, training=True)
        losses = model.loss(data['inputs'], data['data_samples'])
        opt.zero_grad()
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        opt.step()
    val = DATASETS.build(
        testlib.dataset_cfg(root, 'val', testlib.pipeline(64, flip=False)))
    model.refresh_influence(pseudo_collate([val[i] for i in range(4)]))
    assert model.influence_valid
    model.eval()
    ckpt = Path(root) / 'igcam.pth'
    # as CheckpointHook + InfluenceHook.before_save_checkpoint write it
    torch.save(
        dict(
            meta={},
            state_dict=model.state_dict(),
            influence=dict(model=model.influence_state_dict())), str(ckpt))
    bare = Path(root) / 'igcam_no_influence.pth'
    torch.save(dict(meta={}, state_dict=model.state_dict()), str(bare))

    # reference: predict with the model's own refiner (tools/test.py)
    test = DATASETS.build(cfg.test_dataloader.dataset)
    names, ref, ref_maps, uniform = [], {}, {}, {}
    crf = InfluenceCRF(**{k: v for k, v in REFINE.items() if k != 'type'})
    with torch.no_grad():
        for i in range(len(test)):
            data = model.data_preprocessor(
                pseudo_collate([test[i]]), training=False)
            (kw, ) = model.refine_kwargs(data['inputs'], data['data_samples'])
            (out, ) = model.predict(data['inputs'], data['data_samples'])
            name = Path(out.img_path).stem
            names.append(name)
            ref[name] = out.pred_sem_seg.data[0].numpy()
            ref_maps[name] = kw['influence']
            uniform[name] = crf(
                model.rgb_image(data['inputs'][0], out.metainfo),
                out.seg_logits.data.numpy(),
                sorted(out.metainfo['img_labels']))
    return SimpleNamespace(
        root=root,
        cfg=cfg,
        ckpt=str(ckpt),
        bare=str(bare),
        names=names,
        ref=ref,
        ref_maps=ref_maps,
        uniform=uniform)


def _labels(out, names):
    res = {}
    for n in names:
        with Image.open(Path(out) / f'{n}.png') as im:
            res[n] = np.asarray(im)
    return res


def _run(ctx, out, ckpt=None, **kwargs):
    kwargs.setdefault('progress', False)
    return make_pseudo_labels(ctx.cfg, ckpt or ctx.ckpt, str(out), **kwargs)


def test_influence_reaches_the_refiner_as_in_predict(igcam, tmp_path,
                                                     recorder):
    ctx = igcam
    # the reference can fail: real maps change the labels
    assert any((ctx.ref[n] != ctx.uniform[n]).any() for n in ctx.names)
    for n in ctx.names:
        assert ctx.ref_maps[n].shape == (64, 64)
        assert ctx.ref_maps[n].std() > 1e-3 * ctx.ref_maps[n].mean()

    recorder.clear()
    res = _run(ctx, tmp_path / 'pl', refine='config', save_scores=True)
    assert res['processed'] == res['influence'] == len(ctx.names)
    assert len(recorder) == len(ctx.names)
    got = _labels(tmp_path / 'pl', ctx.names)
    for name, inf in zip(ctx.names, recorder):
        np.testing.assert_array_equal(got[name], ctx.ref[name])
        # non-uniform, and exactly the map predict gives its refiner
        assert inf is not None and inf.std() > 1e-3 * inf.mean()
        np.testing.assert_array_equal(inf, ctx.ref_maps[name])
        with np.load(tmp_path / 'pl' / 'scores' / f'{name}.npz') as z:
            assert z['influence'].dtype == np.float32
            np.testing.assert_array_equal(z['influence'], ctx.ref_maps[name])

    # label assignment in worker processes: the same labels
    _run(ctx, tmp_path / 'w2', refine='config', workers=2)
    w2 = _labels(tmp_path / 'w2', ctx.names)
    for name in ctx.names:
        np.testing.assert_array_equal(w2[name], ctx.ref[name])


def test_from_scores_reuses_saved_influence(igcam, tmp_path, recorder):
    ctx = igcam
    # seeds only (argmax): the maps are still saved for a later refiner
    res = _run(ctx, tmp_path / 'seeds', refine='none', save_scores=True)
    assert res['influence'] == 0 and recorder == []
    score_dir = tmp_path / 'seeds' / 'scores'
    res = _run(
        ctx, tmp_path / 'reuse', refine='config', from_scores=str(score_dir))
    assert res['influence'] == len(ctx.names)
    got = _labels(tmp_path / 'reuse', ctx.names)
    for name, inf in zip(ctx.names, recorder):
        np.testing.assert_array_equal(got[name], ctx.ref[name])
        np.testing.assert_array_equal(inf, ctx.ref_maps[name])

    # scores saved without maps (older runs): uniform influence, said so
    old = tmp_path / 'old_scores'
    old.mkdir()
    for name in ctx.names:
        with np.load(score_dir / f'{name}.npz') as z:
            np.savez(
                old / f'{name}.npz',
                scores=z['scores'],
                img_labels=z['img_labels'])
    recorder.clear()
    res = _run(ctx, tmp_path / 'old', refine='config', from_scores=str(old))
    assert res['influence'] == 0 and recorder == [None] * len(ctx.names)
    got = _labels(tmp_path / 'old', ctx.names)
    for name in ctx.names:
        np.testing.assert_array_equal(got[name], ctx.uniform[name])

    # a map of the wrong size is refused with the file named
    bad = tmp_path / 'bad_scores'
    bad.mkdir()
    name = ctx.names[0]
    with np.load(score_dir / f'{name}.npz') as z:
        np.savez(
            bad / f'{name}.npz',
            scores=z['scores'],
            img_labels=z['img_labels'],
            influence=np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match=f'{name}.npz: influence'):
        _run(
            ctx,
            tmp_path / 'bad',
            refine='config',
            from_scores=str(bad),
            limit=1)


def test_other_refiners_and_checkpoints_without_influence(
        igcam, tmp_path, recorder, capsys):
    ctx = igcam
    # DenseCRF does not take influence: called as before (a TypeError
    # otherwise); the scores use the restored influence state, so the
    # argmax equals predict's without refiner
    res = _run(ctx, tmp_path / 'crf', refine='irn_label')
    assert res['processed'] == len(ctx.names) and res['influence'] == 0
    cfg = copy.deepcopy(ctx.cfg)
    cfg.model.test_cfg.refine = None
    res = make_pseudo_labels(
        cfg,
        ctx.ckpt,
        str(tmp_path / 'argmax'),
        refine='config',
        save_scores=True,
        progress=False)
    for name in ctx.names:
        with np.load(tmp_path / 'argmax' / 'scores' / f'{name}.npz') as z:
            assert 'influence' in z.files
    # without the influence state the maps are uniform, with a warning
    capsys.readouterr()
    res = _run(
        ctx, tmp_path / 'bare', ckpt=ctx.bare, refine='config', progress=True)
    err = capsys.readouterr().err
    assert res['influence'] == 0 and recorder == [None] * len(ctx.names)
    assert 'no influence state' in err and 'uniform influence' in err
    meta = json.loads((tmp_path / 'bare' / 'meta.json').read_text())
    assert meta['complete']
