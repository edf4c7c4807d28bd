"""Per-condition IoU: one confusion summary per weather condition, whatever the batch size;
and, for splits without public labels, per-condition image counts."""
from __future__ import annotations

import math
import os.path as osp
from collections import Counter, defaultdict
from numbers import Real
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from domino_seg.conditions import CITYSCAPES, image_stem
from domino_seg.errors import ConfigError
from domino_seg.evaluation.report import format_table
from domino_seg.evaluation.visualize import colorize
from domino_seg.io import atomic_write_png, reported_write

IOU_METRICS = ('mIoU', 'mDice', 'mFscore')  # mmseg IoUMetric's iou_metrics
PER_IMAGE_FILE = 'per_image.npz'  # beside metrics.json with evaluator.per_image=true


def _pct(value) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value * 100.0


def _mean_pct(values) -> Optional[float]:
    """The mean over classes in %, leaving out NaN (classes absent from prediction and label,
    unless ``nan_to_num`` replaced them), as mmseg; None when all are NaN."""
    values = np.asarray(values, dtype=np.float64)
    return None if np.isnan(values).all() else _pct(np.nanmean(values))


def _check_options(metrics: list, nan_to_num, beta, format_only: bool, per_image: bool,
                   unknown: dict) -> None:
    """mmseg IoUMetric's options that ConditionIoUMetric keeps, or a clear error."""
    name = 'ConditionIoUMetric'
    if unknown:
        raise ConfigError(
            f'{name} got unknown arguments {sorted(unknown)}; it takes seen_conditions, '
            'conditions, prediction_colors, per_image and mmseg IoUMetric\'s iou_metrics, '
            'nan_to_num, beta, ignore_index, output_dir, collect_device, prefix.')
    if format_only:
        raise ConfigError(
            f'{name}(format_only=True): this metric scores against labels; to only predict '
            'and save files (e.g. a split without public labels) use ConditionCountMetric, '
            'which tools/test.py evaluate=false configures.')
    if not set(metrics) <= set(IOU_METRICS):
        raise ConfigError(f'{name}(iou_metrics={metrics!r}): supported are '
                          f'{", ".join(IOU_METRICS)} (mIoU is always reported).')
    if nan_to_num is not None and not _is_number(nan_to_num):
        raise ConfigError(f'{name}(nan_to_num={nan_to_num!r}): expected a number (the '
                          'fraction absent classes count as, e.g. 0) or None.')
    if not _is_number(beta) or beta <= 0:
        raise ConfigError(f'{name}(beta={beta!r}): expected a number > 0 (the weight of '
                          'recall in the F-score).')
    if per_image and nan_to_num is not None:
        raise ConfigError(f'{name}(per_image=True, nan_to_num={nan_to_num!r}): the per-image '
                          'record serves the bootstrap of tools/compare.py, which averages the '
                          'classes present as mmseg does without nan_to_num; drop one of them '
                          '(evaluator.per_image=false, or nan_to_num).')


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _report_order(conditions: Sequence[str], found: Iterable[str]) -> list[str]:
    """The configured conditions first (in their order), then any others as found."""
    found = list(dict.fromkeys(found))
    return [c for c in conditions if c in found] + [c for c in found if c not in conditions]


LABEL_SUFFIX = '_labelTrainIds.png'  # as Cityscapes' *_gtFine_labelTrainIds.png
COLOR_SUFFIX = '_color.png'          # as Cityscapes' *_gtFine_color.png
# how a failed write of tools/test.py's PNGs (a full disk) ends: the message of reported_write
WRITE_FIX = ('Free space (or set paths.work_dirs to another disk) and run tools/test.py '
             'again.')


def image_id(sample: dict) -> str:
    """The image's path relative to its images folder (its basename when the dataset records
    none): what names its saved prediction and its line in the per-image record."""
    return sample.get('rel_path') or osp.basename(sample['img_path'])


def per_image_areas(results: list, classes: Sequence[str]) -> dict:
    """ConditionIoUMetric's results as arrays, one line per image: ``images`` (path relative
    to the images folder), ``conditions``, and per class (``classes``) pixel counts
    ``intersect``, ``union`` and ``label`` (N x C, int64): enough to recompute any subset's
    mIoU as mmseg does (sum over images, then IoU per class), e.g. to bootstrap images."""
    shape = (len(results), len(classes))
    areas = {name: np.array([np.asarray(r[i]) for r in results], dtype=np.float64)
             .reshape(shape).round().astype(np.int64)
             for i, name in ((0, 'intersect'), (1, 'union'), (3, 'label'))}
    return dict(classes=np.array(classes, dtype=str),
                images=np.array([r[5] for r in results], dtype=str).reshape(-1),
                conditions=np.array([r[4] for r in results], dtype=str).reshape(-1), **areas)


def save_prediction(output_dir: str, pred: torch.Tensor, sample: dict,
                    palette: Optional[Sequence[Sequence[int]]] = None) -> None:
    """Write the trainId prediction as ``<output_dir>/<condition>/<stem>_labelTrainIds.png``
    (``<stem>``: the image's relative path without ``_leftImg8bit.png`` / ``_rgb_anon.png``),
    named as a label map since it is one; with a ``palette``, also ``<stem>_color.png`` (RGB,
    ignore black) to look at, as a trainId map looks black in an image viewer."""
    stem = osp.join(output_dir, sample['condition'], image_stem(image_id(sample)))
    train_ids = pred.cpu().numpy().astype(np.uint8)
    with reported_write(stem + LABEL_SUFFIX, WRITE_FIX):
        atomic_write_png(stem + LABEL_SUFFIX, train_ids)
    if palette is not None:
        with reported_write(stem + COLOR_SUFFIX, WRITE_FIX):
            atomic_write_png(stem + COLOR_SUFFIX, colorize(train_ids, palette))


def _palette(metric: BaseMetric) -> Optional[Sequence[Sequence[int]]]:
    """The dataset's palette (the Cityscapes one) when the metric saves colour PNGs."""
    return metric.dataset_meta['palette'] if metric.prediction_colors else None


@METRICS.register_module()
class ConditionIoUMetric(IoUMetric):
    """mmseg's IoU, accumulated separately for each sample's ``condition`` metainfo.

    Conditions come from each sample, never from its position in a batch, so the numbers are
    exact for any batch size and for batches that mix conditions. Classes absent from both
    prediction and ground truth of a condition get IoU ``None`` and are left out of its mean,
    as in mmseg (unless ``nan_to_num`` is set); a class's accuracy (mmseg's ``Acc``: the share
    of its labelled pixels predicted as it) is ``None`` where it is absent from the ground
    truth. ``mean_unseen_mIoU`` averages the conditions not in ``seen_conditions``.

    After ``evaluate`` the full report (per-class IoU and accuracy, image counts) is in
    ``self.report`` on the main process; the flat scalars returned go to mmengine's loggers.

    mmseg IoUMetric's options keep their meaning: ``iou_metrics`` adds ``mDice`` and
    ``mFscore`` (with ``mPrecision``, ``mRecall``) to each condition's mIoU; ``nan_to_num``
    replaces the NaN of absent classes (a fraction: 0 counts them as 0 %) before the means;
    ``beta`` weights recall in the F-score. ``format_only`` is refused (ConditionCountMetric
    predicts without labels), as are unknown arguments, which mmseg would ignore.

    ``output_dir`` saves each prediction (:func:`save_prediction`), with a colour PNG beside it
    when ``prediction_colors``. ``per_image`` keeps each image's per-class areas
    (:func:`per_image_areas`) in ``self.image_areas`` after ``evaluate``, which MetricsJsonHook
    writes to ``per_image.npz`` beside metrics.json (``evaluator.per_image=true``).
    """

    default_prefix = ''  # the names are '<condition>/<metric>' already

    def __init__(self, seen_conditions: Sequence[str] = (CITYSCAPES,),
                 conditions: Sequence[str] = (), iou_metrics: Union[str, Sequence[str]] = 'mIoU',
                 nan_to_num: Optional[float] = None, beta: float = 1, format_only: bool = False,
                 ignore_index: int = 255, collect_device: str = 'cpu',
                 output_dir: Optional[str] = None, prefix: Optional[str] = None,
                 prediction_colors: bool = False, per_image: bool = False, **unknown) -> None:
        metrics = [iou_metrics] if isinstance(iou_metrics, str) else list(iou_metrics)
        _check_options(metrics, nan_to_num, beta, format_only, per_image, unknown)
        super().__init__(ignore_index=ignore_index, nan_to_num=nan_to_num, beta=beta,
                         iou_metrics=['mIoU'] + [m for m in metrics if m != 'mIoU'],
                         collect_device=collect_device, output_dir=output_dir, prefix=prefix)
        self.seen_conditions = tuple(seen_conditions)
        self.conditions = tuple(conditions)  # report order; others follow as seen
        self.prediction_colors = prediction_colors
        self.per_image = per_image
        self.report: Optional[dict] = None
        self.image_areas: Optional[dict] = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze(0)
            label = sample['gt_sem_seg']['data'].squeeze(0).to(pred)
            areas = self.intersect_and_union(pred, label, num_classes, self.ignore_index)
            self.results.append((*areas, sample['condition'], image_id(sample)))
            if self.output_dir is not None:
                save_prediction(self.output_dir, pred, sample, _palette(self))

    def compute_metrics(self, results: list) -> dict:
        by_condition = defaultdict(list)
        for *areas, condition, _ in results:
            by_condition[condition].append(areas)
        order = _report_order(self.conditions, by_condition)
        classes = self.dataset_meta['classes']

        report = {'conditions': {}}
        for condition in order:
            inter, union, pred_area, label_area = (sum(a) for a in zip(*by_condition[condition]))
            scores = self.total_area_to_metrics(inter, union, pred_area, label_area,
                                                self.metrics, self.nan_to_num, self.beta)
            row = report['conditions'][condition] = {
                'mIoU': _mean_pct(scores['IoU']),
                'aAcc': _pct(scores['aAcc']),
                'num_images': len(by_condition[condition]),
                'per_class_iou': {name: _pct(v) for name, v in zip(classes, scores['IoU'])},
                'per_class_acc': {name: _pct(v) for name, v in zip(classes, scores['Acc'])},
            }
            row.update({f'm{key}': _mean_pct(value) for key, value in scores.items()
                        if key not in ('aAcc', 'IoU', 'Acc')})  # mDice, mFscore, ...
        unseen = [report['conditions'][c]['mIoU'] for c in order
                  if c not in self.seen_conditions]
        unseen = [v for v in unseen if v is not None]
        report['mean_unseen_mIoU'] = float(np.mean(unseen)) if unseen else None
        self.report = report
        self.image_areas = per_image_areas(results, classes) if self.per_image else None
        # the summary at every evaluation; run._final_report adds the per-class table once
        print_log('\n' + format_table(report, self.seen_conditions), logger='current')

        flat = {}
        for condition, row in report['conditions'].items():
            flat.update({f'{condition}/{key}': value for key, value in row.items()
                         if key not in ('num_images', 'per_class_iou', 'per_class_acc')})
        if report['mean_unseen_mIoU'] is not None:
            flat['mean_unseen_mIoU'] = report['mean_unseen_mIoU']
        return flat


@METRICS.register_module()
class ConditionCountMetric(BaseMetric):
    """Prediction only, for splits without public labels (``tools/test.py evaluate=false``):
    nothing is scored. Counts the predicted images of each condition (``self.counts`` on the
    main process after ``evaluate``) and, with ``output_dir``, saves the trainId predictions
    (and ``prediction_colors``) as :class:`ConditionIoUMetric` does."""

    default_prefix = ''

    def __init__(self, conditions: Sequence[str] = (), output_dir: Optional[str] = None,
                 prediction_colors: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conditions = tuple(conditions)
        self.output_dir = output_dir
        self.prediction_colors = prediction_colors
        self.counts: Optional[dict] = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(sample['condition'])
            if self.output_dir is not None:
                save_prediction(self.output_dir, sample['pred_sem_seg']['data'].squeeze(0),
                                sample, _palette(self))

    def compute_metrics(self, results: list) -> dict:
        counts = Counter(results)
        self.counts = {c: counts[c] for c in _report_order(self.conditions, counts)}
        return {f'{c}/num_images': n for c, n in self.counts.items()}
