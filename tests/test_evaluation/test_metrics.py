"""ConditionIoUMetric against hand-computed confusion matrices."""
import numpy as np
import pytest
import torch

from domino_seg.evaluation.metrics import ConditionIoUMetric

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
    """IoU per class from an explicit confusion matrix."""
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    for pred, label in zip(preds, labels):
        for p, l in zip(np.ravel(pred), np.ravel(label)):
            if l != ignore:
                conf[l, p] += 1
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = inter / union
    return iou * 100, inter.sum() / conf.sum() * 100


# two conditions, pixels chosen so that class 'd' is absent from fog entirely
CLEAR = [([[0, 0], [1, 2]], [[0, 1], [1, 2]]), ([[3, 3], [0, 1]], [[3, 2], [0, 255]])]
FOG = [([[0, 1], [1, 1]], [[0, 0], [1, 1]]), ([[2, 2], [2, 0]], [[2, 2], [255, 0]])]


def all_samples():
    return ([sample(p, l, 'cityscapes') for p, l in CLEAR] +
            [sample(p, l, 'fog') for p, l in FOG])


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
        iou, aacc = hand_iou([p for p, _ in pairs], [l for _, l in pairs])
        row = m.report['conditions'][condition]
        assert row['num_images'] == 2
        assert row['aAcc'] == pytest.approx(aacc)
        assert row['mIoU'] == pytest.approx(np.nanmean(iou))
        assert out[f'{condition}/mIoU'] == pytest.approx(np.nanmean(iou))
        for name, value in zip(CLASSES, iou):
            if np.isnan(value):
                assert row['per_class_iou'][name] is None
            else:
                assert row['per_class_iou'][name] == pytest.approx(value)
    # 'd' never appears in fog (prediction nor label): null, excluded from the mean
    assert m.report['conditions']['fog']['per_class_iou']['d'] is None
    assert m.report['mean_unseen_mIoU'] == pytest.approx(m.report['conditions']['fog']['mIoU'])


def test_exact_values_of_a_small_case():
    m = metric()
    # label 0 0 1 1, pred 0 1 1 1: IoU(0) = 1/2, IoU(1) = 2/3, classes 2, 3 absent
    m.process({}, [sample([[0, 1, 1, 1]], [[0, 0, 1, 1]], 'night')])
    m.compute_metrics(m.results)
    row = m.report['conditions']['night']
    assert row['per_class_iou'] == {'a': 50.0, 'b': pytest.approx(200 / 3), 'c': None,
                                    'd': None}
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


def test_predictions_are_saved_mirroring_relative_paths(tmp_path):
    from PIL import Image
    m = metric(output_dir=str(tmp_path))
    s = sample([[0, 1], [2, 3]], [[0, 1], [2, 3]], 'fog')
    s['rel_path'] = 'GOPR0001/GOPR0001_frame_000001_rgb_anon.png'
    m.process({}, [s])
    written = tmp_path / 'fog' / 'GOPR0001' / 'GOPR0001_frame_000001_rgb_anon.png'
    assert np.array_equal(np.array(Image.open(written)), [[0, 1], [2, 3]])
