"""ConditionIoUMetric against hand-computed confusion matrices; saved predictions."""
import numpy as np
import pytest
import torch
from PIL import Image

from domino_seg.evaluation.metrics import ConditionCountMetric, ConditionIoUMetric

CLASSES = ('a', 'b', 'c', 'd')


def sample(pred, label, condition):
    return dict(pred_sem_seg=dict(data=torch.tensor([pred])),
                gt_sem_seg=dict(data=torch.tensor([label])), condition=condition,
                img_path=f'/x/{condition}.png')


def metric(**kwargs):
    m = ConditionIoUMetric(seen_conditions=['cityscapes'], **kwargs)
    m.dataset_meta = dict(classes=CLASSES)
    return m


def hand_iou(preds, labels, num_classes=4, ignore=255):
    """IoU and accuracy (recall) per class, and aAcc, from an explicit confusion matrix."""
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    for pred, label in zip(preds, labels):
        for p, t in zip(np.ravel(pred), np.ravel(label)):
            if t != ignore:
                conf[t, p] += 1
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    with np.errstate(invalid='ignore', divide='ignore'):
        iou, acc = inter / union, inter / conf.sum(1)
    return iou * 100, acc * 100, inter.sum() / conf.sum() * 100


# two conditions, pixels chosen so that class 'd' is absent from fog entirely
CLEAR = [([[0, 0], [1, 2]], [[0, 1], [1, 2]]), ([[3, 3], [0, 1]], [[3, 2], [0, 255]])]
FOG = [([[0, 1], [1, 1]], [[0, 0], [1, 1]]), ([[2, 2], [2, 0]], [[2, 2], [255, 0]])]


def all_samples():
    return ([sample(p, t, 'cityscapes') for p, t in CLEAR] +
            [sample(p, t, 'fog') for p, t in FOG])


@pytest.mark.parametrize('batch_size', [1, 2, 3, 4])
def test_per_condition_iou_matches_confusion_matrix_for_any_batch_size(batch_size):
    m = metric(conditions=['cityscapes', 'fog'])
    samples = all_samples()
    # interleave conditions so batches mix them
    samples = [samples[0], samples[2], samples[1], samples[3]]
    for i in range(0, len(samples), batch_size):
        m.process({}, samples[i:i + batch_size])
    out = m.compute_metrics(m.results)

    for condition, pairs in (('cityscapes', CLEAR), ('fog', FOG)):
        iou, acc, aacc = hand_iou([p for p, _ in pairs], [t for _, t in pairs])
        row = m.report['conditions'][condition]
        assert row['num_images'] == 2
        assert row['aAcc'] == pytest.approx(aacc)
        assert row['mIoU'] == pytest.approx(np.nanmean(iou))
        assert out[f'{condition}/mIoU'] == pytest.approx(np.nanmean(iou))
        for key, values in (('per_class_iou', iou), ('per_class_acc', acc)):
            for name, value in zip(CLASSES, values):
                if np.isnan(value):
                    assert row[key][name] is None
                else:
                    assert row[key][name] == pytest.approx(value)
    # 'd' never appears in fog (prediction nor label): null, excluded from the mean
    assert m.report['conditions']['fog']['per_class_iou']['d'] is None
    # cityscapes (label, pred): a (0,0) (0,0); b (1,0) (1,1); c (2,2) (2,3); d (3,3)
    assert m.report['conditions']['cityscapes']['per_class_acc'] == {
        'a': 100.0, 'b': 50.0, 'c': 50.0, 'd': 100.0}
    assert m.report['mean_unseen_mIoU'] == pytest.approx(m.report['conditions']['fog']['mIoU'])


def test_exact_values_of_a_small_case():
    m = metric()
    # label 0 0 1 1, pred 0 1 1 1: IoU(0) = 1/2, IoU(1) = 2/3, classes 2, 3 absent
    m.process({}, [sample([[0, 1, 1, 1]], [[0, 0, 1, 1]], 'night')])
    m.compute_metrics(m.results)
    row = m.report['conditions']['night']
    assert row['per_class_iou'] == {'a': 50.0, 'b': pytest.approx(200 / 3), 'c': None,
                                    'd': None}
    # Acc: of each class's labelled pixels, the share predicted as it; None when unlabelled
    assert row['per_class_acc'] == {'a': 50.0, 'b': 100.0, 'c': None, 'd': None}
    assert row['mIoU'] == pytest.approx((50 + 200 / 3) / 2)
    assert row['aAcc'] == pytest.approx(75.0)


def test_seen_conditions_are_left_out_of_the_unseen_mean():
    m = metric(conditions=['cityscapes', 'fog', 'night'])
    m.process({}, [sample([[0, 0]], [[0, 0]], 'cityscapes'),
                   sample([[0, 1]], [[0, 0]], 'fog'),
                   sample([[1, 1]], [[0, 0]], 'night')])
    m.compute_metrics(m.results)
    report = m.report
    assert list(report['conditions']) == ['cityscapes', 'fog', 'night']
    assert report['conditions']['cityscapes']['mIoU'] == 100.0
    expected = (report['conditions']['fog']['mIoU'] + report['conditions']['night']['mIoU']) / 2
    assert report['mean_unseen_mIoU'] == pytest.approx(expected)


@pytest.mark.parametrize('condition,rel_path,written', [
    ('fog', 'GOPR0475/GOPR0475_frame_000041_rgb_anon.png',
     'fog/GOPR0475/GOPR0475_frame_000041_labelTrainIds.png'),
    ('cityscapes', 'frankfurt/frankfurt_000000_000294_leftImg8bit.png',
     'cityscapes/frankfurt/frankfurt_000000_000294_labelTrainIds.png'),
    ('night', 'seq/my_image.jpg', 'night/seq/my_image_labelTrainIds.png'),  # any other name
])
def test_predictions_are_saved_as_label_maps_mirroring_relative_paths(tmp_path, condition,
                                                                       rel_path, written):
    m = metric(output_dir=str(tmp_path))
    s = sample([[0, 1], [2, 3]], [[0, 1], [2, 3]], condition)
    s['rel_path'] = rel_path
    m.process({}, [s])
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*.png')] == [written]
    assert np.array_equal(np.array(Image.open(tmp_path / written)), [[0, 1], [2, 3]])


PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156]]


@pytest.mark.parametrize('counting', [False, True])  # ConditionIoUMetric, ConditionCountMetric
def test_prediction_colors_write_the_palette_colour_of_each_train_id(tmp_path, counting):
    kwargs = dict(output_dir=str(tmp_path), prediction_colors=True)
    m = ConditionCountMetric(**kwargs) if counting else metric(**kwargs)
    m.dataset_meta = dict(classes=CLASSES, palette=PALETTE)
    pred = [[0, 1, 255], [2, 3, 0]]
    s = sample(pred, pred, 'fog')
    s['rel_path'] = 'GOPR0475/GOPR0475_frame_000041_rgb_anon.png'
    m.process({}, [s])
    stem = tmp_path / 'fog' / 'GOPR0475' / 'GOPR0475_frame_000041'
    assert sorted(p.name for p in stem.parent.iterdir()) == [
        'GOPR0475_frame_000041_color.png', 'GOPR0475_frame_000041_labelTrainIds.png']
    with Image.open(f'{stem}_color.png') as png:
        assert png.mode == 'RGB'
        rgb = np.array(png)
    black = [0, 0, 0]  # ignore (255)
    assert rgb.tolist() == [[PALETTE[0], PALETTE[1], black], [PALETTE[2], PALETTE[3], PALETTE[0]]]
    assert np.array(Image.open(f'{stem}_labelTrainIds.png')).tolist() == pred


# mmseg IoUMetric's options, on the small case above: label 0 0 1 1, pred 0 1 1 1
SMALL = [sample([[0, 1, 1, 1]], [[0, 0, 1, 1]], 'night')]


def evaluated(**kwargs):
    m = metric(**kwargs)
    m.process({}, SMALL)
    return m.compute_metrics(m.results), m.report['conditions']['night']


def test_nan_to_num_counts_absent_classes_in_the_mean():
    _, row = evaluated(nan_to_num=0)
    assert row['per_class_iou'] == {'a': 50.0, 'b': pytest.approx(200 / 3), 'c': 0.0, 'd': 0.0}
    assert row['per_class_acc'] == {'a': 50.0, 'b': 100.0, 'c': 0.0, 'd': 0.0}
    assert row['mIoU'] == pytest.approx((50 + 200 / 3) / 4)
    _, row = evaluated(nan_to_num=1)
    assert row['mIoU'] == pytest.approx((50 + 200 / 3 + 200) / 4)


def test_dice_and_fscore_of_a_small_case():
    # a: tp 1, pred 1, label 2; b: tp 2, pred 3, label 2; c, d absent (left out)
    out, row = evaluated(iou_metrics=['mIoU', 'mDice', 'mFscore'])
    assert row['mIoU'] == pytest.approx((50 + 200 / 3) / 2)
    assert row['mDice'] == pytest.approx((2 / 3 + 4 / 5) / 2 * 100)
    assert row['mPrecision'] == pytest.approx((1 + 2 / 3) / 2 * 100)
    assert row['mRecall'] == pytest.approx((1 / 2 + 1) / 2 * 100)
    assert row['mFscore'] == pytest.approx((2 / 3 + 4 / 5) / 2 * 100)  # F1 = Dice
    assert out['night/mDice'] == row['mDice'] and out['night/mIoU'] == row['mIoU']
    # beta=2: F = 5 P R / (4 P + R)
    _, row = evaluated(iou_metrics='mFscore', beta=2)
    assert row['mFscore'] == pytest.approx((2.5 / 4.5 + 10 / 11) / 2 * 100)
    assert 'mDice' not in row and row['mIoU'] == pytest.approx((50 + 200 / 3) / 2)


def test_default_report_keys():
    """per_class_acc joins the report; the scalars logged stay as they were."""
    out, row = evaluated()
    assert set(row) == {'mIoU', 'aAcc', 'num_images', 'per_class_iou', 'per_class_acc'}
    assert set(out) == {'night/mIoU', 'night/aAcc', 'mean_unseen_mIoU'}


def test_options_build_through_the_registry():
    from mmseg.registry import METRICS
    m = METRICS.build(dict(type='ConditionIoUMetric', iou_metrics=['mDice'], nan_to_num=0))
    assert m.metrics == ['mIoU', 'mDice'] and m.nan_to_num == 0


@pytest.mark.parametrize('kwargs, message', [
    (dict(format_only=True), r'format_only=True\): this metric scores against labels; .*'
                             r'use ConditionCountMetric, which tools/test.py evaluate=false'),
    (dict(iou_metrics=['mAP']), r"iou_metrics=\['mAP'\]\): supported are mIoU, mDice, mFscore"),
    (dict(nan_to_num='zero'), r"nan_to_num='zero'\): expected a number"),
    (dict(beta=0), r'beta=0\): expected a number > 0'),
    (dict(iou_metric='mDice'), r"unknown arguments \['iou_metric'\]; it takes .*iou_metrics"),
])
def test_unsupported_options_are_config_errors(kwargs, message):
    from domino_seg.errors import ConfigError
    with pytest.raises(ConfigError, match=r'ConditionIoUMetric.*' + message):
        metric(**kwargs)
