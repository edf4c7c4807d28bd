"""The end of a run: the per-class table and the summary table, each once, in the console and
in the log file."""
import json

import pytest
import torch

import domino_seg
from domino_seg.apis import run
from domino_seg.evaluation.metrics import ConditionIoUMetric

SUMMARY_HEADER = '| condition '
PER_CLASS_HEADER = '| class '


def current_logger(request, log_file):
    """A fresh current MMLogger, its console on the captured stdout (so made in the test, not
    in a fixture's setup) and a log file; removed after, so later tests never write to this
    test's closed capture."""
    from mmengine.logging import MMLogger
    name = f'final_report_{request.node.name}'
    logger = MMLogger.get_instance(name, log_file=str(log_file))

    def remove():
        for handler in logger.handlers:
            handler.close()
        MMLogger._instance_dict.pop(name)
    request.addfinalizer(remove)


def evaluate(work_dir):
    """What an evaluation does: the metric scores (and logs the summary table), and
    MetricsJsonHook writes its report to metrics.json."""
    m = ConditionIoUMetric(seen_conditions=['cityscapes'], conditions=['cityscapes', 'fog'])
    m.dataset_meta = dict(classes=('road', 'car'))
    for condition, pred in (('cityscapes', [[0, 1]]), ('fog', [[1, 1]])):
        m.process({}, [dict(pred_sem_seg=dict(data=torch.tensor([pred])),
                            gt_sem_seg=dict(data=torch.tensor([[[0, 1]]])),
                            condition=condition, img_path=f'/x/{condition}.png')])
    m.compute_metrics(m.results)
    (work_dir / 'metrics.json').write_text(json.dumps(m.report))


@pytest.mark.parametrize('evaluated', [True, False])
def test_each_table_is_shown_once_at_the_end(evaluated, request, capsys, tmp_path):
    log_file = tmp_path / 'run.log'
    current_logger(request, log_file)
    cfg = domino_seg.compose([f'work_dir={tmp_path}'])
    evaluate(tmp_path)
    start = 0
    if not evaluated:  # resuming a run already evaluated: what it shows now, nothing scored
        capsys.readouterr()
        start = log_file.stat().st_size
    report = run._final_report(cfg, 'Test results', evaluated=evaluated)
    out = capsys.readouterr().out
    for text in (out, log_file.read_bytes()[start:].decode()):
        assert text.count(SUMMARY_HEADER) == 1 and text.count(PER_CLASS_HEADER) == 1
        assert f'Test results ({tmp_path}/metrics.json)' in text
        assert '| fog ' in text and '| car ' in text
    assert report['conditions']['fog']['per_class_acc'] == {'road': 0.0, 'car': 100.0}
