# Copyright (c) mmwsss contributors.
"""Fakes for the experiments tests: row configs and a tool-faking runner.

The row configs are tiny plain dicts (no model is built): a CAM baseline,
three IG-CAM rows (one of them a refine row), a CamGuide teacher row, a
staged CamGuide row (teacher -> stage 1 -> stage 2) and a random-walk row.

:class:`FakeStages` is the real :class:`StageRunner` whose ``run`` writes,
instead of running a tool, what that tool would write: demo data, score
``.npz`` files, label PNGs, the sweep and evaluation JSON (numbers taken
from :data:`VALUES`), checkpoints and ``tools/test.py`` metrics. So every
resume, skip and atomic-rename path of the runner is the real one.
"""
import json
import os
import os.path as osp
import re
import time

import numpy as np
from PIL import Image

from mmwsss.experiments.runner import StageRunner

SIZE = 16
NCLS = 4
NAMES = ['a', 'b', 'c', 'd']
VAL_NAMES = ['v0', 'v1']
PALETTE = [[0, 0, 0], [200, 0, 0], [0, 200, 0], [0, 0, 200]]
CLASSES = ['background', 'x', 'y', 'z']

BASE_DATA = """
data_root = 'data/demo'
train_dataloader = dict(batch_size=4, num_workers=2,
                        dataset=dict(data_root=data_root,
                                     ann_file='ImageSets/Segmentation/train.txt'))
test_dataloader = dict(batch_size=1, num_workers=2,
                       dataset=dict(data_root=data_root,
                                    ann_file='ImageSets/Segmentation/train.txt'))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=10)
param_scheduler = [
    dict(type='LinearLR', begin=0, end=2, by_epoch=False),
    dict(type='PolyLR', begin=2, end=10, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=5), logger=dict(interval=5))
randomness = dict(seed=0)
model = dict(type='CAMSegmentor', backbone=dict(type='B', depth=1),
             test_cfg=dict(bg_thr=0.5))
"""

CONFIGS = {
    'configs/_base_/data.py': BASE_DATA,
    'configs/base.py': """
_base_ = ['./_base_/data.py']
wsss_row = dict(table='baseline', name='CAM baseline')
""",
    'configs/igcam/inst.py': """
_base_ = ['../base.py']
wsss_row = dict(table='igcam', name='+Inst', parent='configs/base.py',
                change=['model.neck'])
model = dict(neck=dict(type='N', num_outs=1))
""",
    'configs/igcam/inst-ms.py': """
_base_ = ['./inst.py']
wsss_row = dict(table='igcam', name='+Inst +MS',
                parent='configs/igcam/inst.py',
                change=['model.neck.num_outs', 'train_dataloader.dataset'])
model = dict(neck=dict(num_outs=2))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadProposals', proposal_dir='data/demo/proposals/ss')]))
""",
    'configs/igcam/crf.py': """
_base_ = ['./inst-ms.py']
wsss_row = dict(table='igcam', name='+CRF (InfluenceCRF)',
                parent='configs/igcam/inst-ms.py',
                change=['model.test_cfg.refine'], refine='influence_crf')
model = dict(test_cfg=dict(refine=dict(type='InfluenceCRF')))
""",
    'configs/camguide/teacher.py': """
_base_ = ['../base.py']
wsss_row = dict(table='camguide', name='Teacher',
                parent='configs/base.py', change=['model.backbone.depth'])
model = dict(backbone=dict(depth=2))
""",
    'configs/camguide/s1.py': """
_base_ = ['../base.py']
model = dict(type='CamGuide', teacher_checkpoint='work_dirs/t/iter_1.pth')
train_cfg = dict(max_iters=5)
""",
    'configs/camguide/s2.py': """
_base_ = ['./s1.py']
load_from = 'work_dirs/s1/iter_5.pth'
model = dict(teacher_checkpoint=None)
wsss_row = dict(table='camguide', name='Our*', parent='configs/base.py',
                change=['model.type', 'model.teacher_checkpoint',
                        'train_cfg.max_iters', 'load_from'],
                stages=['configs/camguide/teacher.py',
                        'configs/camguide/s1.py', 'configs/camguide/s2.py'],
                extra_images=40)
""",
    'configs/camguide/rw.py': """
_base_ = ['../base.py']
model = dict(type='AffinityNet')
wsss_row = dict(table='camguide', name='Our* + RW',
                parent='configs/camguide/s2.py',
                change=['model.type', 'model.teacher_checkpoint',
                        'train_cfg.max_iters', 'load_from'],
                # the parent's 40 beyond the budget and the AffinityNet's own
                refine='random_walk', extra_images=80)
""",
}

#: Row slug -> (seed mIoU global, class-wise, CRF) per dataset seed.
VALUES = {
    'cam-baseline': {100: (0.40, 0.41, 0.45), 101: (0.42, 0.43, 0.47),
                     102: (0.41, 0.42, 0.46)},
    'inst': {100: (0.41, 0.42, 0.44), 101: (0.43, 0.44, 0.46),
             102: (0.40, 0.41, 0.47)},
    'inst-ms': {100: (0.45, 0.46, 0.50), 101: (0.44, 0.45, 0.49),
                102: (0.43, 0.44, 0.48)},
    'crf-influencecrf': {100: (None, None, 0.52), 101: (None, None, 0.51),
                         102: (None, None, 0.50)},
    'teacher': {100: (0.30, 0.31, 0.35), 101: (0.31, 0.32, 0.36),
                102: (0.32, 0.33, 0.37)},
    'our': {100: (0.50, 0.60, 0.55), 101: (0.48, 0.49, 0.50),
            102: (0.47, 0.48, 0.52)},
    'our-rw': {100: (0.39, 0.40, 0.42), 101: (0.38, 0.39, 0.41),
               102: (0.37, 0.38, 0.40)},
}
#: ``tools/test.py`` mIoU (%) by the kind of work dir.
TEST_MIOU = {'upper_bound': 60.0, 'final': 40.0, 'rows': 30.0}


def _seed_of(path):
    m = re.search(r'seed(\d+)', path)
    return int(m.group(1)) if m else None


def _row_of(path):
    m = re.search(r'/rows/[^/]+/([^/]+)', path)
    return m.group(1) if m else None


def write_configs(root):
    """Write :data:`CONFIGS` under ``root``; return it as a string."""
    for rel, text in CONFIGS.items():
        p = osp.join(root, rel)
        os.makedirs(osp.dirname(p), exist_ok=True)
        with open(p, 'w') as f:
            f.write(text)
    return str(root)


def write_fake_data(root, seed):
    """Images, masks, splits and ``meta.json`` of a fake dataset."""
    rng = np.random.default_rng(seed)
    split = osp.join(root, 'ImageSets', 'Segmentation')
    os.makedirs(split, exist_ok=True)
    os.makedirs(osp.join(root, 'JPEGImages'), exist_ok=True)
    os.makedirs(osp.join(root, 'SegmentationClass'), exist_ok=True)
    for names, name in ((NAMES, 'train'), (VAL_NAMES, 'val')):
        with open(osp.join(split, name + '.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
        for n in names:
            img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(img).save(osp.join(root, 'JPEGImages', n + '.jpg'))
            gt = rng.integers(0, NCLS, (SIZE, SIZE)).astype(np.uint8)
            Image.fromarray(gt).save(
                osp.join(root, 'SegmentationClass', n + '.png'))
    return rng


class FakeStages(StageRunner):
    """A :class:`StageRunner` whose tools write fake outputs."""

    def __init__(self, data_meta=None, **kw):
        super().__init__(workers=1, log=lambda m: None, **kw)
        self.calls = []
        self.data_meta = data_meta

    def tools(self):
        return [osp.basename(c[1][1]) for c in self.calls]

    def commands(self, tool):
        return [c for c in self.calls if osp.basename(c[1][1]) == tool]

    def run(self, cmd, stage):
        self.calls.append((stage, list(cmd)))
        tool = osp.basename(cmd[1])

        def opt(name):
            return cmd[cmd.index(name) + 1]

        if tool == 'make_demo_dataset.py':
            root = cmd[2]
            seed = int(opt('--seed'))
            write_fake_data(root, seed)
            meta = dict(self.data_meta(seed), classes=CLASSES,
                        palette=PALETTE)
            with open(osp.join(root, 'meta.json'), 'w') as f:
                json.dump(meta, f)
        elif tool in ('generate_proposals.py', 'make_affinity_labels.py'):
            os.makedirs(opt('--out') if '--out' in cmd else cmd[3],
                        exist_ok=True)
        elif tool == 'make_pseudo_labels.py':
            out = opt('--out')
            limit = int(opt('--limit')) if '--limit' in cmd else None
            names = NAMES[:limit]
            rng = np.random.default_rng(abs(hash(out)) % 2**32)
            if '--save-scores' in cmd:
                os.makedirs(osp.join(out, 'scores'), exist_ok=True)
                for n in names:
                    np.savez(
                        osp.join(out, 'scores', n + '.npz'),
                        scores=rng.random((NCLS, SIZE, SIZE)).astype(
                            np.float32),
                        img_labels=np.array([1, 3]))
            else:
                os.makedirs(out, exist_ok=True)
                for n in names:
                    Image.fromarray(
                        rng.integers(0, NCLS, (SIZE, SIZE)).astype(
                            np.uint8)).save(osp.join(out, n + '.png'))
        elif tool == 'sweep_thresholds.py':
            scores = opt('--scores-dir')
            g, c, _ = VALUES[_row_of(scores)][_seed_of(scores)]
            with open(opt('--out'), 'w') as f:
                json.dump(
                    dict(
                        best_global=dict(thr=0.25, miou=g),
                        classwise=dict(
                            miou=c, thr_vector=[None, 0.2, 0.3, 0.4])), f)
        elif tool == 'eval_label_maps.py':
            pred = cmd[2]
            crf = VALUES[_row_of(pred)][_seed_of(pred)][2]
            with open(opt('--out'), 'w') as f:
                json.dump(dict(miou=crf), f)
        elif tool == 'train.py':
            work = opt('--work-dir')
            os.makedirs(work, exist_ok=True)
            ckpt = osp.join(work, 'iter_1.pth')
            with open(ckpt, 'wb') as f:
                f.write(b'fake')
            with open(osp.join(work, 'last_checkpoint'), 'w') as f:
                f.write(ckpt)
        elif tool == 'test.py':
            work = opt('--work-dir')
            kind = ('upper_bound' if 'upper_bound' in work else
                    'final' if '/final/' in work else 'rows')
            d = osp.join(work, 'run')
            os.makedirs(d, exist_ok=True)
            time.sleep(0.01)
            with open(osp.join(d, 'run.json'), 'w') as f:
                json.dump({'mIoU': TEST_MIOU[kind]}, f)
        else:
            raise AssertionError(f'unexpected tool {tool}')
