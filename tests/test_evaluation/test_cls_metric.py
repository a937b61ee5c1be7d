# Copyright (c) mmwsss contributors.
""":class:`MultiLabelClsMetric` and the ``pred_img_logits`` of predict.

References are independent of the code under test: the BCE is summed
from its definition with ``math`` in Python loops, the AP enumerates the
score thresholds of the precision-recall curve one by one (scikit-learn is
not installed; on tie-free scores mmpretrain's ``AveragePrecision`` is a
second reference), and F1 counts are done by hand in the comments.
"""
import math
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import Evaluator
from mmengine.hooks import EarlyStoppingHook
from mmseg.structures import SegDataSample

from mmwsss.engine.hooks import StageSwitchHook
from mmwsss.evaluation import MultiLabelClsMetric, average_precision
from mmwsss.models import CAMSegmentor
from mmwsss.registry import HOOKS, METRICS
from mmwsss.utils import register_all_modules

register_all_modules()
CLASSES = ('background', 'a', 'b', 'c')  # 3 foreground classes


def _sample(logits, labels, path='img.jpg'):
    """A prediction as the Evaluator hands it to the metric (a dict)."""
    return dict(
        pred_img_logits=torch.tensor(logits, dtype=torch.float32),
        img_labels=list(labels),
        img_path=path)


def _run(metric, samples, meta=True):
    if meta:
        metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def _bce_by_definition(logits, labels, k=3):
    total, n = 0.0, 0
    for z_row, labs in zip(logits, labels):
        for c in range(k):
            y = 1.0 if c + 1 in labs else 0.0
            p = 1.0 / (1.0 + math.exp(-z_row[c]))
            total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
            n += 1
    return total / n


def _ap_by_definition(scores, targets):
    """sum over descending distinct thresholds t of (R_t - R_prev) P_t,
    with P_t, R_t the precision and recall of ``score >= t``."""
    pos = sum(targets)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        chosen = [y for s, y in zip(scores, targets) if s >= t]
        tp = sum(chosen)
        recall = tp / pos
        ap += (recall - prev_recall) * tp / len(chosen)
        prev_recall = recall
    return ap


LOGITS = [[2.0, -1.0, 0.3], [-0.5, 1.5, -2.0], [0.1, 0.1, 3.0],
          [-3.0, 0.7, 0.0], [1.2, -0.2, -1.0]]
LABELS = [[1], [2], [1, 3], [2, 3], [2]]


def test_cls_loss_matches_bce_by_definition():
    metric = MultiLabelClsMetric(metrics='cls_loss')
    res = _run(metric, [_sample(z, y) for z, y in zip(LOGITS, LABELS)])
    assert set(res) == {'cls_loss'}
    assert res['cls_loss'] == pytest.approx(
        _bce_by_definition(LOGITS, LABELS), rel=1e-6)
    # stable for large logits (a naive log(sigmoid) gives inf here)
    res = _run(
        MultiLabelClsMetric(metrics='cls_loss'),
        [_sample([80.0, -80.0, 0.0], [2])])
    assert res['cls_loss'] == pytest.approx((80 + 80 + math.log(2)) / 3)


def test_average_precision_by_definition_with_ties():
    gen = np.random.default_rng(0)
    for trial in range(20):
        # few distinct values: many ties
        scores = gen.integers(0, 4, size=9).astype(float).tolist()
        targets = gen.integers(0, 2, size=9).tolist()
        if not any(targets):
            targets[trial % 9] = 1
        assert average_precision(np.array(scores), np.array(targets)) == \
            pytest.approx(_ap_by_definition(scores, targets), abs=1e-12)
    # by hand: scores [3, 2, 2, 1], targets [1, 0, 1, 0]: at 3 P=1 R=.5,
    # at 2 P=2/3 R=1 -> AP = .5 + .5 * 2/3
    assert average_precision(
        np.array([3., 2., 2., 1.]), np.array([1, 0, 1,
                                              0])) == pytest.approx(5 / 6)
    assert math.isnan(average_precision(np.zeros(3), np.zeros(3)))


def test_map_skips_classes_without_positive():
    # class 'c' (index 2) has no positive image: skipped, not counted as 0
    logits = [[2.0, -1.0, 0.3], [-0.5, 1.5, -2.0], [0.1, 0.2, 3.0],
              [-3.0, 0.7, 0.4]]
    labels = [[1], [2], [1], [2]]
    res = _run(
        MultiLabelClsMetric(metrics=['mAP']),
        [_sample(z, y) for z, y in zip(logits, labels)])
    z = np.array(logits)
    expected = np.mean([
        _ap_by_definition(z[:, c].tolist(), [int(c + 1 in y) for y in labels])
        for c in (0, 1)
    ])
    assert res['mAP'] == pytest.approx(100 * expected)


def test_map_matches_mmpretrain_on_tie_free_scores():
    from mmpretrain.evaluation import AveragePrecision
    gen = np.random.default_rng(1)
    logits = gen.normal(size=(12, 3))
    target = (gen.random((12, 3)) < 0.4).astype(int)
    target[0] = 1  # every class has a positive
    res = _run(
        MultiLabelClsMetric(metrics='mAP'), [
            _sample(z.tolist(), [c + 1 for c in np.nonzero(t)[0]])
            for z, t in zip(logits, target)
        ])
    ref = AveragePrecision.calculate(
        torch.from_numpy(logits), torch.from_numpy(target))
    assert res['mAP'] == pytest.approx(float(ref), rel=1e-5)


def test_f1_by_hand_and_threshold():
    # LOGITS >= 0 (prob >= .5):        labels       TP FP FN
    #   [1, 0, 1]                       {1}          1  1  0
    #   [0, 1, 0]                       {2}          1  0  0
    #   [1, 1, 1]                       {1, 3}       2  1  0
    #   [0, 1, 1]                       {2, 3}       2  0  0
    #   [1, 0, 0]                       {2}          0  1  1
    # TP 6, FP 3, FN 1: F1 = 12 / (12 + 4)
    samples = [_sample(z, y) for z, y in zip(LOGITS, LABELS)]
    res = _run(MultiLabelClsMetric(metrics='F1'), samples)
    assert res == {'F1': pytest.approx(100 * 12 / 16)}
    # threshold .7 is logit .847: decisions
    #   [1, 0, 0] [0, 1, 0] [0, 0, 1] [0, 0, 0] [1, 0, 0]
    # TP 1 + 1 + 1 = 3 (rows 1-3), FP 1 (row 5), FN 1 + 2 + 1 = 4
    # (rows 3, 4, 5): F1 = 6 / (6 + 5)
    samples = [_sample(z, y) for z, y in zip(LOGITS, LABELS)]
    res = _run(MultiLabelClsMetric(metrics='F1', threshold=0.7), samples)
    assert res == {'F1': pytest.approx(100 * 6 / 11)}


def test_prefix_registry_and_evaluator_with_data_samples():
    """Through MMEngine's Evaluator, which turns SegDataSamples into dicts
    (the metadata and data fields flattened into one dict)."""
    evaluator = Evaluator(
        METRICS.build(dict(type='MultiLabelClsMetric', prefix='cls')))
    evaluator.dataset_meta = dict(classes=CLASSES)
    samples = []
    for i, (z, y) in enumerate(zip(LOGITS, LABELS)):
        s = SegDataSample(metainfo=dict(img_labels=y, img_path=f'{i}.jpg'))
        s.set_field(torch.tensor(z), 'pred_img_logits')
        samples.append(s)
    evaluator.process(samples[:2])
    evaluator.process(samples[2:])
    res = evaluator.evaluate(len(samples))
    assert set(res) == {'cls/cls_loss', 'cls/mAP', 'cls/F1'}
    assert res['cls/cls_loss'] == pytest.approx(
        _bce_by_definition(LOGITS, LABELS), rel=1e-6)
    assert res['cls/F1'] == pytest.approx(75.0)


def test_num_classes_without_dataset_meta():
    metric = MultiLabelClsMetric(num_classes=4)
    res = _run(
        metric, [_sample(z, y) for z, y in zip(LOGITS, LABELS)], meta=False)
    assert res['cls_loss'] == pytest.approx(
        _bce_by_definition(LOGITS, LABELS), rel=1e-6)


# ---------------------------------------------------------------- errors
def test_missing_logits_names_the_segmentor():
    metric = MultiLabelClsMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    sample = dict(img_labels=[1], img_path='x/a.jpg')
    with pytest.raises(
            KeyError,
            match=r'pred_img_logits.*x/a\.jpg.*'
            r'CAMSegmentor\.predict'):
        metric.process(None, [sample])


def test_wrong_number_of_classes():
    metric = MultiLabelClsMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(ValueError, match=r'b\.jpg.*shape \(4,\).*\(3,\)'):
        metric.process(None, [_sample([0., 1., 2., 3.], [1], 'b.jpg')])
    # lengths differ between images and no class count is known
    metric = MultiLabelClsMetric()
    metric.process(None, [_sample([0., 1., 2.], [1]), _sample([0., 1.], [1])])
    with pytest.raises(ValueError, match='different lengths'):
        metric.compute_metrics(metric.results)


def test_nan_logits_name_the_image():
    metric = MultiLabelClsMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(ValueError, match=r'nan\.jpg.*NaN'):
        metric.process(None, [_sample([0., float('nan'), 1.], [1], 'nan.jpg')])


def test_bad_labels_and_arguments():
    metric = MultiLabelClsMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(ValueError, match=r'c\.jpg.*img_labels holds 4'):
        metric.process(None, [_sample([0., 1., 2.], [4], 'c.jpg')])
    with pytest.raises(ValueError, match=r'img_labels holds 0'):
        metric.process(None, [_sample([0., 1., 2.], [0])])
    no_labels = _sample([0., 1., 2.], [])
    del no_labels['img_labels']
    with pytest.raises(KeyError, match='PackWSSSInputs'):
        metric.process(None, [no_labels])
    with pytest.raises(ValueError, match='threshold'):
        MultiLabelClsMetric(threshold=1.0)
    with pytest.raises(ValueError, match='metrics'):
        MultiLabelClsMetric(metrics=['mIoU'])
    with pytest.raises(ValueError, match='num_classes'):
        MultiLabelClsMetric(num_classes=1)
    with pytest.raises(ValueError, match='no predicted sample'):
        MultiLabelClsMetric().compute_metrics([])


# ------------------------------------------------------- segmentor predict
class ColumnRamp(nn.Module):
    """``f(x)[..., j] = x[..., j] * (2 j - 1)`` (not flip-equivariant)."""

    def forward(self, x):
        ramp = 2 * torch.arange(x.shape[-1], dtype=x.dtype) - 1
        return (x * ramp, )


def test_predict_fills_pred_img_logits():
    model = CAMSegmentor(
        backbone=dict(type=ColumnRamp),
        cam_head=dict(
            type='CAMHead', in_channels=3, num_classes=4, init_cfg=None),
        test_cfg=dict(scales=(1.0, ), flip=True)).eval()
    with torch.no_grad():
        model.cam_head.classifier.weight.copy_(
            torch.tensor([[1., 0., 0.], [0., 1., 1.], [1., -1.,
                                                       0.]])[:, :, None, None])
    img = torch.tensor([[[3., 1., 0.]], [[0., 1., 2.]], [[1., 1., 1.]]])
    inputs = torch.stack([img, img.flip(-1)])
    samples = [
        SegDataSample(
            metainfo=dict(img_labels=[2], ori_shape=(1, 3), img_shape=(1, 3)))
        for _ in range(2)
    ]
    with torch.no_grad():
        _, ref = model.multi_scale_cams(inputs, samples)
        out = model.predict(inputs, samples)
    # by hand (GAP of the raw CAMs; see tests/test_models/
    # test_cam_segmentor.py): unflipped [-2/3, 10/3, -3], flipped
    # [10/3, 2/3, 11/3]; mean of the view and its flip [4/3, 2, 1/3], the
    # same for the mirrored image
    for i in range(2):
        got = out[i].pred_img_logits
        assert got.shape == (3, )
        torch.testing.assert_close(got, ref[i])
        torch.testing.assert_close(
            got, torch.tensor([4 / 3, 2., 1 / 3]), rtol=0, atol=1e-6)
    # and the metric reads them from the packed samples
    evaluator = Evaluator(MultiLabelClsMetric())
    evaluator.dataset_meta = dict(classes=CLASSES)
    evaluator.process(out)
    res = evaluator.evaluate(2)
    assert res['cls_loss'] == pytest.approx(
        _bce_by_definition([[4 / 3, 2., 1 / 3]] * 2, [[2], [2]]), rel=1e-5)


# ------------------------------------------------------------ plateau hooks
def test_stage_switch_and_early_stopping_on_cls_loss(monkeypatch):
    """The hooks of the plateau configs infer rule 'less' from the metric's
    key and react to a rising validation loss."""
    stage = HOOKS.build(
        dict(
            type='StageSwitchHook',
            stages=[dict(), dict(), dict()],
            plateau=dict(monitor='cls_loss', rule='less', patience=2)))
    early = HOOKS.build(
        dict(
            type='EarlyStoppingHook',
            monitor='cls_loss',
            min_delta=0.0,
            patience=3))
    assert isinstance(stage, StageSwitchHook)
    assert isinstance(early, EarlyStoppingHook) and early.rule == 'less'
    assert StageSwitchHook(
        stages=[dict()],
        plateau=dict(monitor='cls_loss')).plateau['rule'] == 'less'
    applied = []
    monkeypatch.setattr(stage, 'apply_stage',
                        lambda runner, k, pos: applied.append((k, pos)))
    runner = MagicMock()
    runner.hooks = [stage, early]
    runner.message_hub.get_scalar.return_value = None
    runner.train_loop.stop_training = False
    stage._in_train = True
    # validation losses of a split: the loss falls, then rises
    metric = MultiLabelClsMetric(metrics='cls_loss')
    metric.dataset_meta = dict(classes=CLASSES)
    for step, scale in enumerate([0.5, 1.0, 1.5, 1.0, 0.2, 0.1]):
        # cls_loss falls while the logits grow, then rises again
        metric.process(None, [_sample([2 * scale, -2 * scale, 0.], [1])])
        metrics = metric.evaluate(1)
        runner.iter = 10 * (step + 1)
        stage.after_val_epoch(runner, metrics)
        early.after_val_epoch(runner, metrics)
    # best at scale 1.5 (step 2); steps 3 and 4 are worse: the plateau
    # hook switches after step 4 (iteration 50) and resets early stopping
    # (hook priority: the switch runs first), whose wait then counts
    # steps 4 and 5 against its best (step 2); the new stage starts its
    # own best at step 5
    assert applied == [(1, 50)]
    assert stage.stage == 1 and stage.wait == 0
    assert stage.best == pytest.approx(metrics['cls_loss'])
    assert early.wait_count == 2 and not runner.train_loop.stop_training


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize('name', [
    'igcam/igcam_r101-fpn_1xb16-20k_voc12aug-512x512_plateau.py',
    'igcam/igcam_effl0-fpn_1xb16-300it_demo-128x128_plateau.py',
])
def test_plateau_configs_monitor_a_held_out_split(name):
    from pathlib import Path

    from mmengine import Config
    root = Path(__file__).resolve().parents[2] / 'configs'
    cfg = Config.fromfile(str(root / name))
    assert cfg.val_evaluator.type == 'MultiLabelClsMetric'
    # seeds are still scored with masks on the reported split
    assert cfg.test_evaluator.type == 'mmseg.IoUMetric'
    val, test = cfg.val_dataloader.dataset, cfg.test_dataloader.dataset
    train = cfg.train_dataloader.dataset
    assert val.ann_file not in (test.ann_file, train.ann_file)
    assert 'seg_map_path' not in val.data_prefix  # image labels only
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert hooks['StageSwitchHook']['plateau']['monitor'] == 'cls_loss'
    assert hooks['EarlyStoppingHook']['monitor'] == 'cls_loss'
    assert hooks['EarlyStoppingHook']['min_delta'] == 0.0
    assert cfg.default_hooks.checkpoint.save_best == 'cls_loss'
    if 'voc12aug' in name:
        # the influence pool is the training split minus the reported one
        assert hooks['InfluenceHook']['val_dataset']['ann_file'] == \
            train.ann_file
        assert hooks['InfluenceHook']['exclude'].endswith('/train.txt')
    built = [HOOKS.build(h) for h in cfg.custom_hooks]
    stage = [h for h in built if isinstance(h, StageSwitchHook)][0]
    assert stage.plateau['rule'] == 'less' and len(stage.stages) == 3


def test_plateau_configs_log_the_current_cls_loss():
    """MMEngine averages keys matching 'loss' over the last validations in
    the log line; the configs' custom_cfg logs the current value."""
    from pathlib import Path

    from mmengine import Config
    from mmengine.logging import MessageHub
    from mmengine.runner import LogProcessor
    root = Path(__file__).resolve().parents[2] / 'configs'
    for name in ('igcam/igcam_effl0-fpn_1xb16-300it_demo-128x128_plateau.py',
                 'igcam/igcam_r101-fpn_1xb16-20k_voc12aug-512x512_plateau.py',
                 'camguide/camguide-stage1_r18_teacher-r50_1xb32-5k_'
                 'voc12aug-512x512_select-map.py'):
        cfg = Config.fromfile(str(root / name))
        runner = MagicMock()
        runner.message_hub = MessageHub(f'test_cls_metric_{name}')
        for value in (1.5, 0.9):
            runner.message_hub.update_scalar('val/cls_loss', value)
        runner.message_hub.update_scalar('val/mAP', 40.0)
        tags = {}
        for kwargs in ({}, cfg.log_processor):
            kwargs = dict(kwargs)
            kwargs.pop('type', None)
            tag, _ = LogProcessor(**kwargs).get_log_after_epoch(
                runner, 8, 'val')
            tags[bool(kwargs.get('custom_cfg'))] = tag
        assert tags[False]['cls_loss'] == pytest.approx(1.2)  # the mean
        assert tags[True]['cls_loss'] == pytest.approx(0.9)
        assert tags[True]['mAP'] == pytest.approx(40.0)
