"""cityscapesscripts' own evaluation in the project's environment (numpy < 2.4, which still
has ``np.in1d``): its command on a submission, and mmseg's CityscapesMetric."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from domino_seg.evaluation.metrics import ConditionIoUMetric
from domino_seg.evaluation.submission import to_label_ids

pytest.importorskip('cityscapesscripts')


def cityscapes_val(tiny_benchmark, root):
    """The tiny benchmark's Cityscapes val labels under ``root/gtFine/val``, with the
    ``*_instanceIds.png`` the official evaluation reads by default (stuff and unlabelled
    instances carry their labelId, as in Cityscapes)."""
    gt = root / 'gtFine' / 'val'
    shutil.copytree(tiny_benchmark / 'cityscapes' / 'gtFine' / 'val', gt)
    for label_ids in gt.rglob('*_gtFine_labelIds.png'):
        shutil.copy(label_ids, str(label_ids).replace('_labelIds', '_instanceIds'))
    return sorted(gt.rglob('*_gtFine_labelTrainIds.png'))


def noisy(label, seed):
    """The label with every third pixel predicted as road (0) or rider (12)."""
    pred = np.where(label == 255, 0, label).astype(np.uint8)
    flat = pred.reshape(-1)  # a view
    flat[seed::3] = np.random.default_rng(seed).choice([0, 12], flat[seed::3].size)
    return pred


def test_cityscapes_command_scores_a_submission_as_domino_seg_does(tiny_benchmark, tmp_path):
    label_files = cityscapes_val(tiny_benchmark, tmp_path / 'cityscapes')
    submission = tmp_path / 'submission' / 'cityscapes'
    metric = ConditionIoUMetric()
    metric.dataset_meta = dict(classes=[str(i) for i in range(19)])
    for seed, path in enumerate(label_files):
        label = np.array(Image.open(path))
        pred = noisy(label, seed % 3)
        name = path.name.replace('_gtFine_labelTrainIds', '_labelIds')
        (submission / path.parent.name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_label_ids(pred)).save(submission / path.parent.name / name)
        metric.process({}, [dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None].long()),
                                 gt_sem_seg=dict(data=torch.from_numpy(label)[None].long()),
                                 condition='cityscapes', img_path=str(path))])
    metric.compute_metrics(metric.results)

    command = shutil.which('csEvalPixelLevelSemanticLabeling',
                           path=os.pathsep.join([str(Path(sys.executable).parent),
                                                 os.environ.get('PATH', '')]))
    assert command, 'cityscapesscripts installs csEvalPixelLevelSemanticLabeling'
    result = subprocess.run(
        [command], cwd=tmp_path,
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, CITYSCAPES_DATASET=str(tmp_path / 'cityscapes'),
                 CITYSCAPES_RESULTS=str(submission), CITYSCAPES_EXPORT_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'Evaluating {len(label_files)} pairs of images' in result.stdout
    scores = json.loads((tmp_path / 'resultPixelLevelSemanticLabeling.json').read_text())
    mIoU = metric.report['conditions']['cityscapes']['mIoU']
    assert 0 < mIoU < 100
    assert scores['averageScoreClasses'] * 100 == pytest.approx(mIoU, rel=1e-6)


def test_mmseg_cityscapes_metric_runs_the_official_evaluation(tiny_benchmark, tmp_path):
    from mmseg.evaluation import CityscapesMetric
    label_files = cityscapes_val(tiny_benchmark, tmp_path / 'cityscapes')
    metric = CityscapesMetric(output_dir=str(tmp_path / 'pred'), keep_results=True)
    for path in label_files:
        label = torch.from_numpy(np.array(Image.open(path)))[None].long()
        metric.process({}, [dict(pred_sem_seg=dict(data=label.clone()), img_path=str(path),
                                 seg_map_path=str(path))])
    scores = metric.compute_metrics(metric.results)
    assert scores['averageScoreCategories'] == pytest.approx(1.0)  # perfect predictions
