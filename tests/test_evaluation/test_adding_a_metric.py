"""A new metric is one class and one YAML option of configs/evaluator/: tried as a contributor
would, from outside the package (a module on PYTHONPATH, an option on Hydra's search path)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

METRIC = '''
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class LabelledPixels(BaseMetric):
    """Counts the labelled (not ignored) pixels of the evaluated images."""
    default_prefix = ''

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append(int((sample['gt_sem_seg']['data'] != 255).sum()))

    def compute_metrics(self, results):
        return {'labelled_pixels': sum(results)}
'''

OPTION = '''
metrics:
  - {type: ConditionIoUMetric, iou_metrics: [mIoU]}
  - {type: LabelledPixels}
imports: [labelled_pixels]
'''


@pytest.mark.slow
def test_a_metric_from_one_class_and_one_yaml_option(tiny_overrides, tiny_benchmark, tmp_path):
    import numpy as np
    from PIL import Image
    (tmp_path / 'labelled_pixels.py').write_text(textwrap.dedent(METRIC))
    (tmp_path / 'configs' / 'evaluator').mkdir(parents=True)
    (tmp_path / 'configs' / 'evaluator' / 'labelled_pixels.yaml').write_text(OPTION)
    run = tmp_path / 'run'
    result = subprocess.run(
        [sys.executable, 'tools/train.py', *tiny_overrides, 'schedule.max_iters=1',
         'schedule.val_interval=1', 'data.eval_conditions=[cityscapes]',
         'evaluator=labelled_pixels', f'hydra.searchpath=[file://{tmp_path / "configs"}]',
         f'work_dir={run}'], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=f'{tmp_path}:{os.environ.get("PYTHONPATH", "")}'))
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = [json.loads(line) for line in
               next(run.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    counted = [s['labelled_pixels'] for s in scalars if 'labelled_pixels' in s]
    labels = sorted((tiny_benchmark / 'cityscapes' / 'gtFine' / 'val').rglob(
        '*_labelTrainIds.png'))
    # the evaluation resizes images, not labels: every label pixel but 255 counts
    assert counted == [sum(int((np.array(Image.open(p)) != 255).sum()) for p in labels)]
    assert 'cityscapes' in json.loads((run / 'metrics.json').read_text())['conditions']
