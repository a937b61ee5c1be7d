# Copyright (c) mmwsss contributors.
"""The resumable stage runner on a fake repository with faked tools.

What each tool would write is faked (``conftest.FakeStages``); the runner's
own logic (which command, with which options, skipping, resuming, refusing
a row) is the real one.
"""
import json
import os
import os.path as osp

import pytest
from PIL import Image

from mmwsss.experiments.budget import check_row
from mmwsss.experiments.rows import load_rows, select_rows
from mmwsss.experiments.runner import (GT_CONFIG, ROOT, SEG_CONFIG,
                                       DataSpec, ExperimentRunner,
                                       RowRejected, RunSettings,
                                       data_root_options, init_option,
                                       schedule_options)

from wsss_fakes import NAMES, FakeStages

SEEDS = [100, 101]


def _runner(root, tmp_path, wanted=None, **kw):
    rows = load_rows(root)
    data = DataSpec(num_train=4, num_val=2, img_size=16)
    settings = RunSettings(
        work_dir=str(tmp_path / 'work'),
        data_root=str(tmp_path / 'data'),
        data=data,
        workers=1,
        params=False,
        # the real final-model configs
        seg_config=osp.join(ROOT, SEG_CONFIG),
        gt_config=osp.join(ROOT, GT_CONFIG),
        **kw)
    stages = FakeStages(data_meta=data.meta)
    return ExperimentRunner(
        rows, select_rows(rows, wanted), settings, stages, root=root), stages


def _opts(cmd):
    return cmd[cmd.index('--cfg-options') + 1:] \
        if '--cfg-options' in cmd else []


def test_config_options(fake_repo):
    opts = data_root_options('configs/igcam/inst-ms.py', '/d/seed7',
                             root=fake_repo)
    assert 'train_dataloader.dataset.data_root=/d/seed7' in opts
    assert 'test_dataloader.dataset.data_root=/d/seed7' in opts
    # the proposal folder inside a pipeline follows the data
    assert 'train_dataloader.dataset.pipeline.0.proposal_dir=' \
        '/d/seed7/proposals/ss' in opts
    assert not any(o.startswith('wsss_row') for o in opts)
    sched = schedule_options('configs/base.py', 0.3, root=fake_repo)
    assert sched == [
        'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=3',
        'default_hooks.logger.interval=3', 'param_scheduler.0.begin=0',
        'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
        'param_scheduler.1.end=3'
    ]
    assert schedule_options('configs/base.py', 1.0, root=fake_repo) == []
    assert schedule_options(
        'configs/base.py', iters=20, root=fake_repo)[0] == \
        'train_cfg.max_iters=20'
    # how a stage starts from the one before, as its config says
    assert init_option('configs/camguide/s1.py', '/t.pth', fake_repo) == [
        'model.teacher_checkpoint=/t.pth'
    ]
    assert init_option('configs/camguide/s2.py', '/s1.pth', fake_repo) == [
        'load_from=/s1.pth'
    ]
    assert init_option('configs/base.py', None, fake_repo) == []
    with pytest.raises(ValueError, match='s1.py: first stage of its chain'):
        init_option('configs/camguide/s1.py', None, fake_repo)
    with pytest.raises(ValueError, match='base.py: follows another stage'):
        init_option('configs/base.py', '/x.pth', fake_repo)


def test_fake_rows_pass_the_budget_check(fake_repo):
    for r in load_rows(fake_repo):
        assert check_row(r.config, fake_repo) == [], r.config


def test_runs_every_row_then_skips_everything(fake_repo, tmp_path):
    runner, stages = _runner(fake_repo, tmp_path)
    out = runner.run(SEEDS)
    data = {s: str(tmp_path / 'data' / f'seed{s}') for s in SEEDS}
    # the scenes of each dataset seed, made with that seed
    made = stages.commands('make_demo_dataset.py')
    assert [c[1][2] for c in made] == [data[s] for s in SEEDS]
    assert [c[1][c[1].index('--seed') + 1] for c in made] == ['100', '101']
    # proposals where the IG-CAM config reads them, per seed
    props = stages.commands('generate_proposals.py')
    assert [c[1][c[1].index('--out') + 1] for c in props] == [
        data[s] + '/proposals/ss' for s in SEEDS
    ]
    trains = stages.commands('train.py')
    stems = [osp.basename(c[1][2])[:-3] for c in trains]
    # every stage config is trained once per seed, in chain order (the
    # teacher is a row of its own and the first stage of Our*), then the
    # AffinityNet of +RW, the final model on the best labels, the one on
    # the baseline + dCRF labels (not the best here) and the upper bound
    per_seed = [
        'base', 'inst', 'inst-ms', 'teacher', 's1', 's2', 'rw',
        'deeplabv3plus_effl0-d16_1xb16-800it_demo-pseudo-128x128',
        'deeplabv3plus_effl0-d16_1xb16-800it_demo-pseudo-128x128',
        'deeplabv3plus_effl0-d16_1xb16-800it_demo-gt-128x128'
    ]
    assert stems == per_seed * 2
    for (stage, cmd), stem in zip(trains, stems * 1):
        seed = 100 if trains.index((stage, cmd)) < len(per_seed) else 101
        opts = _opts(cmd)
        assert f'randomness.seed={seed}' in opts, stage
        assert f'train_dataloader.dataset.data_root={data[seed]}' in opts \
            or stem.startswith('deeplab'), stage
    work = tmp_path / 'work' / 'seed100' / 'models'
    s1 = _opts(trains[4][1])
    assert f'model.teacher_checkpoint={work}/teacher/iter_1.pth' in s1
    s2 = _opts(trains[5][1])
    assert f'load_from={work}/s1/iter_1.pth' in s2
    assert not any(o.startswith(('load_from', 'model.teacher'))
                   for o in _opts(trains[3][1]))
    # the refine row reuses its parent's model and scores at its threshold
    refine = [
        c for c in stages.commands('make_pseudo_labels.py')
        if '--refine' in c[1] and c[1][c[1].index('--refine') + 1] ==
        'config'
    ]
    assert len(refine) == 2
    cmd = refine[0][1]
    assert cmd[2] == 'configs/igcam/crf.py'
    assert cmd[3] == f'{work}/inst-ms/iter_1.pth'
    assert cmd[cmd.index('--from-scores') + 1].endswith(
        'seed100/rows/igcam/inst-ms/seeds/scores')
    assert cmd[cmd.index('--bg-thr') + 1] == '0.25'
    aff = stages.commands('make_affinity_labels.py')[0][1]
    assert aff[2].endswith('seed100/rows/camguide/our/seeds/scores')
    # run records: the refine row repeats its parent's seeds
    runs = out[100]
    assert runs[('igcam', '+CRF (InfluenceCRF)')]['miou_global'] == \
        runs[('igcam', '+Inst +MS')]['miou_global'] == 0.45
    assert runs[('igcam', '+CRF (InfluenceCRF)')]['crf'] == 0.52
    assert runs[('igcam', '+CRF (InfluenceCRF)')]['seed_candidates'] is False
    assert runs[('baseline', 'CAM baseline')]['val_miou'] == \
        pytest.approx(0.30)
    assert 'val_miou' not in runs[('camguide', 'Our* + RW')]
    # seed 100's best pseudo-labels: Our* at class-wise thresholds (0.60)
    final = json.loads(
        (tmp_path / 'work' / 'seed100' / 'final.json').read_text())
    assert final['best']['row'] == 'Our*'
    assert final['best']['refinement'] == 'classwise'
    assert final['final_miou'] == pytest.approx(0.40)
    assert final['upper_miou'] == pytest.approx(0.60)
    lab = tmp_path / 'work' / 'seed100' / 'labels' / 'camguide-our-classwise'
    assert sorted(os.listdir(lab)) == [n + '.png' for n in NAMES]
    seg, seg_base = [c[1] for c in trains if 'pseudo' in c[1][2]][:2]
    assert f'train_dataloader.dataset.data_prefix.seg_map_path={lab}' in \
        _opts(seg)
    assert 'model.backbone.init_cfg.checkpoint=' + \
        f'{work}/base/iter_1.pth' in _opts(seg)
    # the baseline's final model: on the baseline row's dCRF labels, in a
    # folder of its own, and recorded beside the best one
    base_lab = tmp_path / 'work' / 'seed100' / 'rows' / 'baseline' / \
        'cam-baseline' / 'pseudo_labels_crf'
    assert 'train_dataloader.dataset.data_prefix.seg_map_path=' + \
        str(base_lab) in _opts(seg_base)
    assert seg_base[seg_base.index('--work-dir') + 1].endswith(
        'seed100/final/baseline-cam-baseline-crf')
    assert final['baseline_final']['slug'] == 'baseline-cam-baseline-crf'
    assert final['baseline_final']['pseudo_miou'] == \
        out[100][('baseline', 'CAM baseline')]['crf']
    assert final['baseline_final']['final_miou'] == pytest.approx(0.40)
    # seed 101: the IG-CAM InfluenceCRF labels (0.51) win
    final = json.loads(
        (tmp_path / 'work' / 'seed101' / 'final.json').read_text())
    assert final['best']['row'] == '+CRF (InfluenceCRF)'
    assert final['pseudo_miou'] == pytest.approx(0.51)

    # a second run: every stage is kept, no tool runs but the (resumable)
    # proposal generation
    again, stages2 = _runner(fake_repo, tmp_path)
    assert again.run(SEEDS)[100] == out[100]
    assert set(stages2.tools()) == {'generate_proposals.py'}


def test_baseline_labels_best_train_one_final_model(fake_repo, tmp_path):
    runner, stages = _runner(
        fake_repo, tmp_path, ['CAM baseline'], select_from=['crf'])
    runner.run([100])
    pseudo = [c for c in stages.commands('train.py') if 'pseudo' in c[1][2]]
    assert len(pseudo) == 1  # one model serves both figures
    final = json.loads(
        (tmp_path / 'work' / 'seed100' / 'final.json').read_text())
    assert final['best']['slug'] == 'baseline-cam-baseline-crf'
    assert final['baseline_final'] == dict(
        slug='baseline-cam-baseline-crf',
        title=final['best']['title'],
        pseudo_miou=final['pseudo_miou'],
        final_miou=final['final_miou'])
    # without the baseline's final model, an older final.json is kept
    off, stages2 = _runner(
        fake_repo, tmp_path, ['CAM baseline'], select_from=['crf'],
        baseline_final=False)
    off.run([100])
    assert stages2.commands('train.py') == []


def test_retrained_model_redoes_its_rows(fake_repo, tmp_path):
    runner, _ = _runner(fake_repo, tmp_path, ['inst'], final=False)
    runner.run([100])
    # a smoke run with a shorter schedule retrains (never reuses) the model
    # and so redoes the row's scores, sweep, CRF and val test
    smoke, stages = _runner(
        fake_repo, tmp_path, ['inst'], final=False, iters_scale=0.5)
    smoke.run([100])
    trained = [osp.basename(c[1][2]) for c in stages.commands('train.py')]
    assert trained == ['base.py', 'inst.py']
    assert 'train_cfg.max_iters=5' in _opts(stages.commands('train.py')[0][1])
    assert len(stages.commands('sweep_thresholds.py')) == 2
    assert len(stages.commands('test.py')) == 2


def test_edited_config_retrains_its_model(fake_repo, tmp_path):
    runner, stages = _runner(fake_repo, tmp_path, ['inst'], final=False)
    runner.run([100])
    cfg = osp.join(fake_repo, 'configs/igcam/inst.py')
    model = runner.layout.model(100, cfg)
    record = osp.join(model, 'train_options.json')
    assert len(json.load(open(record))['config_sha']) == 64

    def trained(stages):
        return [osp.basename(c[1][2]) for c in stages.commands('train.py')]

    # a comment does not change the resolved config: nothing is retrained
    with open(cfg, 'a') as f:
        f.write('# a note\n')
    again, stages = _runner(fake_repo, tmp_path, ['inst'], final=False)
    again.run([100])
    assert trained(stages) == []
    # a record written before the digest existed is judged on the rest
    rec = json.load(open(record))
    rec_sha = rec.pop('config_sha')
    with open(record, 'w') as f:
        json.dump(rec, f)
    again, stages = _runner(fake_repo, tmp_path, ['inst'], final=False)
    again.run([100])
    assert trained(stages) == []
    assert json.load(open(record))['config_sha'] == rec_sha
    # a changed value (here one the row does not declare, so the budget
    # check would refuse it; a changed base config is the same case)
    # retrains the row's model and redoes its rows, not the baseline's
    base = osp.join(fake_repo, 'configs/base.py')
    with open(base, 'a') as f:
        f.write('extra_setting = 1\n')
    again, stages = _runner(fake_repo, tmp_path, ['inst'], final=False)
    again.run([100])
    assert trained(stages) == ['base.py', 'inst.py']
    assert len(stages.commands('sweep_thresholds.py')) == 2


def test_refuses_a_row_that_breaks_its_budget(fake_repo, tmp_path):
    with open(osp.join(fake_repo, 'configs/igcam/inst.py'), 'a') as f:
        f.write('train_cfg = dict(max_iters=20)\n')
    runner, stages = _runner(fake_repo, tmp_path)
    with pytest.raises(RowRejected) as e:
        runner.run(SEEDS)
    msg = str(e.value)
    assert "configs/igcam/inst.py: key 'train_cfg.max_iters' differs" in msg
    assert 'not declared' in msg
    assert stages.calls == []  # refused before anything ran


def test_limit_trains_the_affinity_net_on_its_labels(fake_repo, tmp_path):
    runner, stages = _runner(
        fake_repo, tmp_path, ['Our* + RW'], limit=2, final=False)
    runner.run([100])
    rw = [c[1] for c in stages.commands('train.py') if c[1][2].endswith(
        'rw.py')]
    assert len(rw) == 1
    assert 'train_dataloader.dataset.indices=2' in _opts(rw[0])
    others = [c[1] for c in stages.commands('train.py')
              if not c[1][2].endswith('rw.py')]
    assert not any(o.startswith('train_dataloader.dataset.indices')
                   for c in others for o in _opts(c))


def test_limit_smoke_and_atomic_outputs(fake_repo, tmp_path):
    runner, stages = _runner(
        fake_repo, tmp_path, ['+CRF (InfluenceCRF)'], limit=2, final=False)
    runs = runner.run([100])[100]
    scores = runs[('igcam', '+Inst +MS')]['scores_dir']
    assert sorted(os.listdir(scores)) == ['a.npz', 'b.npz']
    for c in stages.commands('make_pseudo_labels.py'):
        assert c[1][c[1].index('--limit') + 1] == '2'
    for c in stages.commands('test.py'):
        assert 'test_dataloader.dataset.indices=2' in _opts(c[1])
    # JSON outputs go through a temporary name
    for c in stages.commands('sweep_thresholds.py'):
        assert c[1][c[1].index('--out') + 1].endswith('.json.tmp')
    work = tmp_path / 'work'
    assert not [p for p in work.rglob('*.tmp')]
    # the label PNGs of the refine row exist for the limited images
    labels = runs[('igcam', '+CRF (InfluenceCRF)')]['crf_labels_dir']
    with Image.open(osp.join(labels, 'a.png')) as im:
        assert im.size == (16, 16)


def test_aux_split_needed(fake_repo, tmp_path):
    with open(osp.join(fake_repo, 'configs/igcam/inst.py'), 'a') as f:
        f.write("pool = dict(ann_file='ImageSets/Segmentation/aux.txt')\n"
                "wsss_row = dict(table='igcam', name='+Inst', "
                "parent='configs/base.py', change=['model.neck', 'pool'])\n")
    runner, stages = _runner(fake_repo, tmp_path, ['inst'])
    with pytest.raises(ValueError, match='inst.py reads the demo.s aux'):
        runner.run([100])
    assert stages.calls == []
    runner.s.data.num_aux = 4
    runner.plan()


def test_candidate_titles_name_the_method_once(tmp_path):
    """A row whose name starts with its method's title is not prefixed
    again ('Baseline (CAM)', not 'Baseline Baseline (CAM)')."""
    from mmwsss.experiments.runner import candidates
    scores = tmp_path / 'scores'
    scores.mkdir()
    run = dict(miou_global=0.4, scores_dir=str(scores), thr=0.5)
    titles = [
        c['title'] for c in candidates(
            {('baseline', 'Baseline (CAM)'): run, ('igcam', 'Base'): run},
            refinements=('global', ))
    ]
    assert titles == ['Baseline (CAM), seed', 'IG-CAM Base, seed']
