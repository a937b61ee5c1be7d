# Copyright (c) mmwsss contributors.
""":class:`InfluenceHook` with a tiny IG-CAM and a real MMEngine Runner.

Runs (8 iterations, batch 2, refreshes after iterations 2, 5 and 8):

- ``hooked``: with the hook and random flips, checkpoints every 4;
- ``plain``: the same without the hook: same data order, same flips and
  the same global RNG states at every iteration;
- ``again``: the same as ``hooked``: identical influence state (determinism);
- ``full`` / ``resumed``: no flips (so that the resumed run sees the same
  augmented data), ``resumed`` restarts from ``full``'s ``iter_4.pth``: the
  influence cache is restored and the run ends as ``full`` did.

Plus the choice of the validation images (exclusion, disjointness, one
size), and two CPU ranks with different data and BN statistics ending with
the same influence state.
"""
import os.path as osp
import random
import socket
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from igcam_hook_testlib import (Probe, dataset_cfg, influence_hook_cfg,
                                make_runner, model_cfg, pipeline, unwrap)
from mmseg.structures import SegDataSample

from mmwsss.engine.hooks import InfluenceHook, preserved_rng_state
from mmwsss.registry import HOOKS, MODELS
from mmwsss.utils import register_all_modules

register_all_modules()


def _hook(runner) -> InfluenceHook:
    (hook, ) = [h for h in runner.hooks if isinstance(h, InfluenceHook)]
    return hook


def _state(runner):
    return unwrap(runner.model).influence_state_dict()


@pytest.fixture(scope='module')
def runs(demo_root, tmp_path_factory):
    """Runner, probe and a snapshot of the final influence state and hook
    counters (other tests refresh the runner's model again)."""
    out = {}
    flip = pipeline(32, flip=True)
    for name, with_hook in [('hooked', True), ('plain', False),
                            ('again', True)]:
        probe = Probe()
        hooks = [influence_hook_cfg(demo_root, mix_warmup=2)] \
            if with_hook else []
        runner = make_runner(
            tmp_path_factory.mktemp(name),
            demo_root,
            hooks + [probe],
            train_pipeline=flip)
        runner.train()
        snap = None
        if with_hook:
            hook = _hook(runner)
            snap = dict(
                state={
                    k: v.clone()
                    for k, v in _state(runner).items()
                },
                counters=(hook.num_refreshes, hook.first_refresh_iter,
                          hook.last_refresh_iter),
                val_ids=list(hook.val_ids))
        out[name] = (runner, probe, snap)
    return out


def test_refresh_schedule_logging_and_mix_ramp(runs):
    runner, probe, snap = runs['hooked']
    # begin=2, interval=3: after iterations 2, 5 and 8 (runner.iter 1, 4, 7)
    assert probe.refresh_iters == [1, 4, 7]
    assert snap['counters'] == (3, 2, 8)
    assert len(snap['val_ids']) == 4
    assert unwrap(runner.model).influence_valid
    for s in range(4):
        res, _ = runner.message_hub.get_scalar(
            f'train/influence_residual_s{s}').data
        assert len(res) >= 3 and (res < 1e-8).all()
        cond, _ = runner.message_hub.get_scalar(
            f'train/influence_cond_s{s}').data
        assert np.isfinite(cond).all() and (cond > 1).all()
    # mix = 1 * min(1, (it - 2 + 1) / 2) from the first refresh (at 2) on
    assert [r['mix'] for r in probe.iters] == [0, 0, .5, 1, 1, 1, 1, 1]


def test_data_order_and_rng_untouched(runs):
    (_, a, _), (_, b, _) = runs['hooked'], runs['plain']
    assert len(a.iters) == len(b.iters) == 8
    flips = [f for r in a.iters for f in r['flips']]
    assert any(flips) and not all(flips)  # the flips do consume the RNG
    for ra, rb in zip(a.iters, b.iters):
        assert ra['paths'] == rb['paths']
        assert ra['flips'] == rb['flips']
        assert torch.equal(ra['rng'][0], rb['rng'][0])
        assert np.array_equal(ra['rng'][1], rb['rng'][1])
        assert ra['rng'][2] == rb['rng'][2]


def test_deterministic_given_seed(runs):
    sa, sb = runs['hooked'][2], runs['again'][2]
    assert sa['val_ids'] == sb['val_ids']
    assert sa['state'].keys() == sb['state'].keys()
    assert 'scale0.s_val' in sa['state']
    for k in sa['state']:
        assert torch.equal(sa['state'][k], sb['state'][k]), k
    # and it is not a trivial state
    assert sa['state']['scale0.s_val'].abs().max() > 0


def test_direct_refresh_is_pure(runs):
    runner = runs['hooked'][0]
    model = unwrap(runner.model)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {
        n: None if p.grad is None else p.grad.clone()
        for n, p in model.named_parameters()
    }
    s_before = model.influence[0].s_val.clone()
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy(),
           random.getstate())
    infos = _hook(runner).refresh(runner, runner.iter, reason='test')
    assert len(infos) == 4
    # the solve did change (new maps from the last refresh are in use)
    assert not torch.equal(model.influence[0].s_val, s_before)
    after = model.state_dict()
    assert before.keys() == after.keys()
    bn = [k for k in before if 'running_mean' in k]
    assert bn  # the backbone does have BN buffers
    for k in before:
        assert torch.equal(before[k], after[k]), k
    for n, p in model.named_parameters():
        assert (p.grad is None and grads[n] is None) or \
            torch.equal(grads[n], p.grad), n
    assert model.training and model.backbone.training
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert np.array_equal(np.random.get_state()[1], rng[1])
    assert random.getstate() == rng[2]


def test_checkpoints_load_weights_only(runs):
    runner, _, snap = runs['hooked']
    # the refresh runs before CheckpointHook saves: after iterations 2, 8
    for it, last in ((4, 2), (8, 8)):
        ckpt = torch.load(
            osp.join(runner.work_dir, f'iter_{it}.pth'), weights_only=True)
        saved = ckpt['influence']
        assert saved['hook']['last_refresh_iter'].item() == last
        assert all(
            isinstance(v, torch.Tensor) for v in saved['model'].values())
    assert int(saved['hook']['num_refreshes']) == 3
    for k, v in snap['state'].items():
        assert torch.equal(saved['model'][k], v), k


def test_resume_restores_influence_state(demo_root, tmp_path):
    hook = influence_hook_cfg(demo_root)
    full_probe = Probe(record_influence=True)
    full = make_runner(tmp_path / 'full', demo_root, [hook, full_probe])
    full.train()
    ckpt_path = osp.join(full.work_dir, 'iter_4.pth')
    ckpt = torch.load(ckpt_path, weights_only=True)
    probe = Probe(record_influence=True)
    resumed = make_runner(
        tmp_path / 'resumed', demo_root, [hook, probe], resume_from=ckpt_path)
    resumed.train()
    # the first resumed iteration sees the checkpoint's influence cache
    first = probe.iters[0]
    assert first['iter'] == 4
    saved = ckpt['influence']['model']
    assert first['influence'].keys() == saved.keys()
    for k, v in saved.items():
        assert torch.equal(first['influence'][k], v), k
        assert torch.equal(full_probe.iters[4]['influence'][k], v), k
    # the schedule continues (5 and 8) and the run ends as the full one
    assert probe.refresh_iters == [4, 7]
    assert [r['paths'] for r in probe.iters] == \
        [r['paths'] for r in full_probe.iters[4:]]
    for k, v in _state(full).items():
        torch.testing.assert_close(_state(resumed)[k], v)
    for (k, a), b in zip(full.model.state_dict().items(),
                         resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def _mock_runner(cfg=None):
    runner = MagicMock()
    runner.cfg = cfg or {}
    return runner


def test_val_batch_choice_exclude_and_disjointness(demo_root):
    val = dataset_cfg(demo_root, 'val', pipeline(32))
    # a random pipeline consumes the NumPy RNG: seeded inside, restored
    flip = dataset_cfg(demo_root, 'val', pipeline(32, flip=True))
    hook = HOOKS.build(
        dict(
            type='InfluenceHook',
            val_dataset=flip,
            num_samples=3,
            seed=1,
            report_split=None))
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy(),
           np.random.get_state()[2])
    batch = hook.build_batch(_mock_runner())
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert np.array_equal(np.random.get_state()[1], rng[1])
    assert np.random.get_state()[2] == rng[2]
    again = hook.build_batch(_mock_runner())
    for a, b in zip(batch['inputs'], again['inputs']):
        assert torch.equal(a, b)
    assert len(batch['inputs']) == 3 and len(hook.val_ids) == 3
    assert {tuple(x.shape) for x in batch['inputs']} == {(3, 32, 32)}
    ids = list(hook.val_ids)
    # exclude removes images from the pool
    hook2 = InfluenceHook(
        val, num_samples=3, seed=1, exclude=ids[:2], report_split=None)
    hook2.build_batch(_mock_runner())
    assert not set(ids[:2]) & set(hook2.val_ids)
    # 'auto' reads the runner config's test split: overlap is refused
    overlap = dict(test_dataloader=dict(dataset=val))
    hook3 = InfluenceHook(val, num_samples=3, seed=1)
    with pytest.raises(ValueError, match='reported split'):
        hook3.build_batch(_mock_runner(overlap))
    train = dict(
        test_dataloader=dict(dataset=dataset_cfg(demo_root, 'train', [])))
    hook3.build_batch(_mock_runner(train))  # disjoint: fine
    with pytest.raises(ValueError, match='reported split'):
        InfluenceHook(
            val, num_samples=3, seed=1,
            report_split=[ids[0]]).build_batch(_mock_runner())
    # images of different sizes cannot form one eval batch
    varied = dataset_cfg(demo_root, 'val', [
        dict(type='mmseg.LoadImageFromFile'),
        dict(
            type='mmseg.RandomResize',
            scale=(64, 64),
            ratio_range=(0.5, 1.5),
            keep_ratio=True),
        dict(type='PackWSSSInputs')
    ])
    with pytest.raises(ValueError, match='different sizes'):
        InfluenceHook(
            varied, num_samples=4,
            report_split=None).build_batch(_mock_runner())
    with pytest.raises(ValueError):
        InfluenceHook(val, begin=0)


def test_influence_split_disjoint_from_every_reported_split(
        demo_root, tmp_path):
    """The seeds are reported on train (``test_dataloader``: 'auto') and
    the final model on val (``reported_splits``): influence images drawn
    from val are refused, naming the split; a held-out influence split cut
    out of val (``hold_out_split``) passes against train and the rest of
    val."""
    from mmwsss.datasets.splits import (hold_out_split, read_split,
                                        write_split)
    val_split = osp.join(demo_root, 'ImageSets', 'Segmentation', 'val.txt')
    runner = _mock_runner(
        dict(test_dataloader=dict(
            dataset=dataset_cfg(demo_root, 'train', []))))
    val = dataset_cfg(demo_root, 'val', pipeline(32))
    hook = InfluenceHook(
        val, num_samples=3, seed=1, reported_splits=[val_split])
    with pytest.raises(ValueError, match=r'reported split.*val\.txt'):
        hook.build_batch(runner)
    # a dataset config names its ann file too
    hook = InfluenceHook(
        val, num_samples=3, seed=1, reported_splits=[val])
    with pytest.raises(ValueError, match=r'WSSSDemoDataset .*val\.txt'):
        hook.build_batch(runner)
    held, rest = hold_out_split(read_split(val_split), 4, seed=0)
    inf_file = str(tmp_path / 'influence.txt')
    rest_file = str(tmp_path / 'val_report.txt')
    write_split(inf_file, held)
    write_split(rest_file, rest)
    pool = dict(val, ann_file=inf_file)  # absolute ann_file: data_root kept
    hook = InfluenceHook(
        pool, num_samples=3, seed=1, reported_splits=[rest_file])
    hook.build_batch(runner)
    assert set(hook.val_ids) <= set(held)
    # and 'auto' still checks test_dataloader (train) besides the list
    hook = InfluenceHook(
        dataset_cfg(demo_root, 'train', pipeline(32)),
        num_samples=3,
        reported_splits=[rest_file])
    with pytest.raises(ValueError, match='reported split'):
        hook.build_batch(runner)
    # a relative split file is looked up under the dataset's data_root
    hook = InfluenceHook(
        val, num_samples=3, seed=1,
        reported_splits=['ImageSets/Segmentation/val.txt'])
    with pytest.raises(ValueError, match='reported split'):
        hook.build_batch(runner)
    hook = InfluenceHook(
        val, num_samples=3, seed=1, reported_splits=['nowhere/val.txt'])
    with pytest.raises(FileNotFoundError, match='nowhere/val.txt'):
        hook.build_batch(runner)
    with pytest.raises(TypeError):
        InfluenceHook(val, reported_splits=[['a', 'b']])


def test_preserved_rng_state():
    torch.manual_seed(3)
    ref = torch.rand(2)
    torch.manual_seed(3)
    with preserved_rng_state(seed=0):
        inside = torch.rand(2), np.random.rand(), random.random()
    assert torch.equal(torch.rand(2), ref)  # as if nothing had run
    with preserved_rng_state(seed=0):
        again = torch.rand(2), np.random.rand(), random.random()
    assert torch.equal(inside[0], again[0]) and inside[1:] == again[1:]


# ----------------------------------------------------------- two CPU ranks
def _rank_main(rank, port, queue):
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # same parameters on both ranks
        model = MODELS.build(model_cfg())
        gen = torch.Generator().manual_seed(10 + rank)  # rank data
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(2):
            data = model.data_preprocessor(
                dict(
                    inputs=[
                        torch.randint(0, 255, (3, 32, 32), generator=gen)
                        for _ in range(2)
                    ],
                    data_samples=_samples([[1, 2], [3]])),
                training=True)
            losses = model.loss(data['inputs'], data['data_samples'])
            opt.zero_grad()
            sum(v for k, v in losses.items() if 'loss' in k).backward()
            with torch.no_grad():  # keep the parameters in sync (no DDP)
                for p in model.parameters():
                    if p.grad is not None:
                        torch_dist.all_reduce(p.grad)
                        p.grad /= 2
            opt.step()
        gen = torch.Generator().manual_seed(99)  # the same val batch
        val = dict(
            inputs=[
                torch.randint(0, 255, (3, 32, 32), generator=gen)
                for _ in range(3)
            ],
            data_samples=_samples([[1], [2, 4], [5]]))
        local = model.refresh_influence(val, sync=False)
        local_s = model.influence[0].s_val.clone()
        hook = InfluenceHook(dict(), num_samples=3)
        hook.batch = val
        runner = MagicMock()
        runner.model = model
        runner.iter = 2
        hook.refresh(runner)
        # numpy: tensors would travel as shared memory of an exiting process
        state = {k: v.numpy() for k, v in model.influence_state_dict().items()}
        queue.put((rank, local_s.numpy(), state, local[0].residual))
    finally:
        torch_dist.destroy_process_group()


def _samples(label_lists):
    out = []
    for labels in label_lists:
        s = SegDataSample()
        s.set_metainfo(
            dict(img_labels=labels, img_shape=(32, 32), ori_shape=(32, 32)))
        out.append(s)
    return out


@pytest.mark.skipif(
    not torch_dist.is_gloo_available(), reason='needs the gloo backend')
def test_identical_on_two_ranks():
    """Each rank has its own BN statistics and curvature (different data);
    ``sync`` makes the curvature and the solved state identical."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_rank_main, args=(r, port, queue)) for r in range(2)
    ]
    for p in procs:
        p.start()
    results = dict(
        (r, rest) for r, *rest in (queue.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (s0, state0, _), (s1, state1, _) = results[0], results[1]
    # without sync the ranks disagree (different BN statistics/curvature)
    assert not np.allclose(s0, s1)
    assert state0.keys() == state1.keys() and 'scale3.s_val' in state0
    for k in state0:
        assert np.array_equal(state0[k], state1[k]), k
