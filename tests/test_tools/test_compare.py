"""A real 2x2 Hydra sweep (domino x seed) compared with tools/compare.py."""
import csv
import json
import statistics

import pytest
from omegaconf import OmegaConf

from .test_train_test import run_tool

# a seen and an unseen condition: every column and aggregate compare reports, at 2/5 of the
# evaluation
TWO_CONDITIONS = ['data.eval_conditions=[cityscapes,fog]']


def cells(line):
    return [c.strip() for c in line.split('|')[1:-1]]


@pytest.mark.slow
def test_sweep_jobs_are_independent_and_compare_aggregates_them(tiny_overrides, tmp_path,
                                                                tool_main):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    common = tiny_overrides + ['domain=zero_shot', f'domain.cache_dir={tmp_path / "cache"}',
                               *TWO_CONDITIONS]
    sweep = run_tool('train.py', ['-m', 'domino=none,head', 'seed=0,1'] + common, tmp_path,
                     timeout=900)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    sweep_dir, = (tmp_path / 'work_dirs' / 'multirun').iterdir()
    jobs = [sweep_dir / str(i) for i in range(4)]
    metrics = [json.loads((job / 'metrics.json').read_text()) for job in jobs]
    assert [(m['config']['domino']['scope'], m['config']['seed']) for m in metrics] == [
        ('none', 0), ('none', 1), ('head', 0), ('head', 1)]
    assert 'domino=head' in OmegaConf.load(jobs[2] / '.hydra' / 'overrides.yaml')
    # per-condition mIoU reaches TensorBoard
    events, = jobs[2].glob('*/vis_data/events.out.tfevents.*')
    scalars = EventAccumulator(str(events)).Reload().Tags()['scalars']
    assert {'loss', 'lr', 'fog/mIoU', 'cityscapes/mIoU', 'mean_unseen_mIoU'} <= set(scalars)

    # no state leaks between jobs of one process: job 2 (after two baseline jobs) equals the
    # same configuration run on its own
    alone = run_tool('train.py', common + ['domino=head', 'seed=0',
                                           f'work_dir={tmp_path / "alone"}'], tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert json.loads((tmp_path / 'alone' / 'metrics.json').read_text())['conditions'] == \
        metrics[2]['conditions']

    result = tool_main('compare.py', [str(sweep_dir)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = cells(lines[0])
    assert header[:3] == ['configuration', 'seeds', 'cityscapes (seen)']
    rows = {cells(line)[0]: dict(zip(header, cells(line))) for line in lines[2:4]}
    assert list(rows) == ['domino=none', 'domino=head']
    for name, runs in (('domino=none', metrics[:2]), ('domino=head', metrics[2:])):
        assert rows[name]['seeds'] == '2'
        fog = [m['conditions']['fog']['mIoU'] for m in runs]
        assert rows[name]['fog'] == f'{statistics.fmean(fog):.2f} ± {statistics.stdev(fog):.2f}'
    unseen = [statistics.fmean(m['mean_unseen_mIoU'] for m in runs)
              for runs in (metrics[:2], metrics[2:])]
    assert rows['domino=head']['Δ mean unseen'] == f'{unseen[1] - unseen[0]:+.2f}'
    table = list(csv.DictReader((sweep_dir / 'comparison.csv').open()))
    assert float(table[1]['mean_unseen_delta']) == pytest.approx(unseen[1] - unseen[0])
    assert (sweep_dir / 'comparison.png').stat().st_size > 0


def test_runners_of_sequential_jobs_never_share_mmengine_instances(tiny_overrides, tmp_path):
    """mmengine keys its logger, message hub and visualizer by name + a timestamp in seconds:
    two sweep jobs started within one second must still get their own."""
    from unittest import mock

    import domino_seg
    from domino_seg.engine.runner import DominoRunner
    runners = []
    with mock.patch('time.strftime', return_value='20260101_000000'):  # the same second
        for job in ('0', '1'):
            cfg = domino_seg.compose(tiny_overrides + [f'work_dir={tmp_path / job}'])
            runners.append(DominoRunner.from_cfg(domino_seg.to_mmengine(cfg)))
    first, second = runners
    assert first.logger is not second.logger
    assert first.message_hub is not second.message_hub
    assert first.visualizer is not second.visualizer
    assert str(tmp_path / '1') in second.visualizer._vis_backends['TensorboardVisBackend'] \
        ._save_dir


def test_compare_without_runs_fails_clearly(tmp_path, tool_fails):
    err = tool_fails('compare.py', [str(tmp_path)], tmp_path)
    assert 'no metrics.json under' in err and 'sweep dir' in err


def test_compare_on_a_damaged_metrics_json_is_one_paragraph(tmp_path, fails, capsys):
    from domino_seg.apis import compare
    from tests.test_evaluation.test_compare import write_run
    good = write_run(tmp_path / 'good', 0, (60.0, 10.0, 20.0))
    bad = write_run(tmp_path / 'bad', 1, (60.0, 10.0, 20.0))
    (bad / 'metrics.json').write_text((bad / 'metrics.json').read_text().replace(
        '"mIoU": 10.0', '"mIoU": NaN'))
    err = fails(lambda: compare.compare([str(tmp_path)]))
    assert f'{bad / "metrics.json"}: "conditions.fog.mIoU" is nan' in err
    assert not list(tmp_path.glob('comparison*'))  # nothing written
    (tmp_path / 'crashed' / '.hydra').mkdir(parents=True)
    (bad / 'metrics.json').unlink()
    compare.compare([str(good), str(tmp_path / 'crashed')], out=str(tmp_path / 'out'))
    err = capsys.readouterr().err
    assert f'warning: skipped {tmp_path / "crashed"}: no metrics.json' in err


def test_main_reads_the_command_line_and_exits_2_on_an_error(tmp_path, capsys):
    """tools/compare.py's body, in-process: the arguments reach compare(); an error is one
    paragraph and exit status 2."""
    from domino_seg.apis import compare
    from tests.test_evaluation.test_compare import write_run
    write_run(tmp_path / 'runs' / 'a', 0, (60.0, 10.0, 20.0))
    compare.main([str(tmp_path / 'runs'), '--out', str(tmp_path / 'out')])
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'comparison.csv', 'comparison.md', 'comparison.png']  # one row: no intervals
    assert f'wrote {tmp_path / "out" / "comparison.md"}' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        compare.main([str(tmp_path / 'runs'), '--baseline', 'domino=head'])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and 'Traceback' not in err and '\nerror: ' in err
    assert 'domino=head' in err and not list((tmp_path / 'runs').glob('comparison*'))

@pytest.mark.slow
def test_single_runs_with_per_image_records_get_a_bootstrap(tiny_overrides, tmp_path,
                                                            tool_main):
    """Two single runs trained with evaluator.per_image=true: each work dir holds a record that
    reproduces its metrics.json (compare checks it), and compare bootstraps their difference."""
    import numpy as np
    # after tiny_overrides, which set schedule.batch_size
    sweep = run_tool('train.py', ['-m'] + tiny_overrides + ['schedule.batch_size=1,2',
                                                            'evaluator.per_image=true',
                                                            *TWO_CONDITIONS],
                     tmp_path, timeout=900)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    sweep_dir, = (tmp_path / 'work_dirs' / 'multirun').iterdir()
    for job in ('0', '1'):
        metrics = json.loads((sweep_dir / job / 'metrics.json').read_text())
        with np.load(sweep_dir / job / 'per_image.npz', allow_pickle=False) as npz:
            counts = dict(zip(*np.unique(npz['conditions'], return_counts=True)))
            assert npz['intersect'].shape == (len(npz['images']), 19)
        assert counts == {c: row['num_images'] for c, row in metrics['conditions'].items()}
    result = tool_main('compare.py', [str(sweep_dir), '--baseline', 'schedule.batch_size=2'],
                       tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split('Single runs: per-image bootstrap of the difference to '
                                '"schedule.batch_size=2"')[1]
    lines = [cells(line) for line in table.split('\n\n')[1].splitlines()[2:]]
    assert [line[1] for line in lines][-1] == 'mean unseen'
    assert {line[0] for line in lines} == {'schedule.batch_size=1'}
    assert {line[-1] for line in lines} <= {'better', 'worse', 'not distinguishable'}
    assert (sweep_dir / 'comparison_intervals.png').stat().st_size > 0

