"""The console of a run is short; the log file keeps everything."""
import logging
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from domino_seg import console

ROOT = console.__file__.rsplit('/domino_seg/', 1)[0]


def _logger(name, verbose, tmp_path):
    logger = logging.Logger(name)
    stream, file = logging.StreamHandler(), logging.FileHandler(tmp_path / f'{name}.log')
    logger.addHandler(stream)
    logger.addHandler(file)
    console.quiet(logger, verbose)
    return logger, stream, file


@pytest.mark.parametrize('verbose', [False, True])
def test_file_only_messages_reach_the_console_only_when_verbose(tmp_path, verbose, capsys,
                                                                monkeypatch):
    monkeypatch.setattr(console, 'progress_bar_enabled', lambda: True)
    logger, stream, file = _logger(f'v{verbose}', verbose, tmp_path)
    stream.setStream(sys.stdout)
    for msg in ('Config:\nmodel = dict()', 'paramwise_options -- backbone.x:lr=0.1',
                'Iter(val) [3/25]  eta', 'Iter(train) [3/3]  loss: 1.0',
                '"FileClient" will be deprecated in future. Please use io functions'):
        logger.info(msg)
    file.flush()
    out = capsys.readouterr().out
    written = (tmp_path / f'v{verbose}.log').read_text()
    assert 'Iter(train) [3/3]' in out and 'Iter(train) [3/3]' in written
    for msg in ('Config:', 'paramwise_options', 'Iter(val)'):
        assert msg in written and (msg in out) is verbose
    assert 'FileClient' not in out + written  # upstream noise: nowhere


def test_evaluation_progress_lines_stay_when_there_is_no_progress_bar(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setattr(console, 'progress_bar_enabled', lambda: False)
    logger, stream, _ = _logger('nobar', False, tmp_path)
    stream.setStream(sys.stdout)
    logger.info('Iter(val) [3/25]  eta')
    assert 'Iter(val) [3/25]' in capsys.readouterr().out


@pytest.mark.parametrize('bar', [False, True])
def test_repeats_of_our_own_lines_go_to_the_log_file_only(tmp_path, capsys, monkeypatch, bar):
    """mmengine's line at every checkpoint load, the metrics line after each evaluation (the
    condition table shows them) and the generator's random-CLIP warning (said before the run):
    file only, with or without a progress bar; evaluation progress without a bar stays."""
    monkeypatch.setattr(console, 'progress_bar_enabled', lambda: bar)
    logger, stream, file = _logger(f'repeats{bar}', False, tmp_path)
    stream.setStream(sys.stdout)
    repeats = ['Loads checkpoint by local backend from path: run/iter_2.pth',
               'Iter(val) [5/5]    cityscapes/mIoU: 0.6580  cityscapes/aAcc: 3.5034',
               "DomainPromptGenerator: arch 'domino-tiny-clip' has random weights"]
    for msg in repeats + ['Iter(val) [3/5]    eta: 0:00:00  time: 0.1983']:
        logger.info(msg)
    file.flush()
    out = capsys.readouterr().out
    written = (tmp_path / f'repeats{bar}.log').read_text()
    for msg in repeats:
        assert msg in written and msg not in out
    assert ('Iter(val) [3/5]' in out) is not bar


def test_checkpoint_loads_are_logged_to_the_run_log_file_only(tmp_path, capsys, monkeypatch):
    """mmengine prints "Loads checkpoint by local backend" at every load: outside a run
    nowhere, in a run (its logger current, with a log file) to the log file only."""
    import torch
    from mmengine.logging import MMLogger

    from domino_seg.engine.runner import read_checkpoint
    path = str(tmp_path / 'iter_1.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(1)), meta={}), path)
    read_checkpoint(path)
    assert 'Loads checkpoint' not in ''.join(capsys.readouterr())
    logger, stream, file = _logger('run', False, tmp_path)  # a run's: console and log file
    stream.setStream(sys.stdout)
    monkeypatch.setattr(MMLogger, 'get_current_instance', classmethod(lambda cls: logger))
    read_checkpoint(path)
    file.flush()
    assert 'Loads checkpoint' not in ''.join(capsys.readouterr())
    assert f'Loads checkpoint by local backend from path: {path}' in \
        (tmp_path / 'run.log').read_text()


def test_open_clip_random_weights_notice_is_dropped(caplog):
    """open_clip says it on the root logger, after our own warning."""
    logging.warning("No pretrained weights loaded for model 'x'. Model initialized randomly.")
    logging.warning('another warning')
    assert [record.getMessage() for record in caplog.records] == ['another warning']


def test_progress_without_a_terminal_is_a_line_every_ten_percent(capsys, monkeypatch):
    monkeypatch.setattr(console, 'progress_bar_enabled', lambda: False)
    assert list(console.progress(range(700), 'synthetic benchmark', 'img')) == \
        list(range(700))
    err = capsys.readouterr().err
    assert '\r' not in err
    assert err.splitlines() == [f'synthetic benchmark: {70 * k}/700 img ({10 * k}%)'
                                for k in range(1, 11)]
    assert list(console.progress([], 'x', 'img')) == [] and not capsys.readouterr().err


def test_benchmark_generation_in_a_log_prints_lines(tmp_path, capsys, monkeypatch):
    """tools/make_synthetic.py and first runs, redirected: lines, not carriage returns."""
    from domino_seg.data.synthetic import write_benchmark
    monkeypatch.setattr(console, 'progress_bar_enabled', lambda: False)
    write_benchmark(tmp_path / 'bench', num_train=1, num_val=1, height=32, width=64)
    err = capsys.readouterr().err
    assert '\r' not in err and err.splitlines()[-1] == 'synthetic benchmark: 10/10 img (100%)'


def test_header_names_the_text_encoder():
    import domino_seg
    from domino_seg.apis.run import _header
    words = {encoder: _header(domino_seg.compose(['domino=head', 'domain=text',
                                                 f'domain/text_encoder={encoder}']), True)
             for encoder in ('minilm', 'clip')}
    assert 'domino=head, domain=text (all-MiniLM-L6-v2), data=' in words['minilm']
    assert 'domino=head, domain=text, data=' in words['clip']
    assert 'domino=style, domain=none, data=' in _header(domino_seg.compose(['domino=style']),
                                                          True)


def test_quiet_twice_adds_one_filter_each(tmp_path):
    logger, stream, file = _logger('twice', False, tmp_path)
    console.quiet(logger, False)
    assert len(logger.filters) == 1 and len(stream.filters) == 1 and not file.filters


@pytest.mark.parametrize('task, params, total', [
    (['seed=0,1,2', 'domino=head,full'], {}, 6),
    (['seed=range(0,4)'], {}, 4),
    (['seed=0'], {'domino': 'head,full,none'}, 3),
    (['seed=0'], {}, 1),
])
def test_sweep_size_counts_the_jobs(task, params, total):
    config = OmegaConf.create({'hydra': {'overrides': {'task': task},
                                         'sweeper': {'params': params}}})
    assert console._sweep_size(config) == total


@pytest.mark.slow
def test_a_tiny_sweep_prints_a_short_log(tiny_overrides, tmp_path):
    """Two jobs (the second with Domino and the tiny CLIP): each starts with "job k/2", at most
    a few lines come before its first iteration, and no upstream noise reaches the console;
    the log file still holds the config dump and the per-parameter lines."""
    args = [o for o in tiny_overrides if not o.startswith(('log_interval', 'schedule.max_iters',
                                                          'schedule.val_interval'))]
    result = subprocess.run(
        [sys.executable, 'tools/train.py', '-m', *args, 'domino=none,head', 'domain=text',
         'schedule.max_iters=3', 'schedule.val_interval=3', 'data.eval_conditions=[cityscapes]',
         f'hydra.sweep.dir={tmp_path / "sweep"}'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith('job ')]
    assert [lines[i].split(':')[0] for i in starts] == ['job 1/2', 'job 2/2']
    first_iter = [i for i, line in enumerate(lines) if 'Iter(train) [3/3]' in line]
    assert len(first_iter) == 2  # a run shorter than log_interval logs its last iteration
    assert first_iter[0] - starts[0] < 150 and first_iter[1] - starts[1] < 150
    assert first_iter[0] - starts[0] < 15  # (measured: 5)
    text = '\n'.join(lines)
    for noise in ('GPU number', 'paramwise_options', 'Config:', 'FileClient', 'HardDiskBackend',
                  'Parsing model identifier', 'prefix is not set', 'build_loss', 'Exp name'):
        assert noise not in text, noise
    assert text.count('device: cpu') == 2
    # the random-CLIP warning once (job 2), no metrics line after the condition table
    assert text.count('random weights') == 1 and 'No pretrained weights' not in text
    assert not [line for line in lines if 'Iter(val) [' in line and 'mIoU:' in line]
    log = next((tmp_path / 'sweep' / '1').glob('*/*.log')).read_text()
    assert 'Config:' in log and 'paramwise_options' in log
    assert 'DomainPromptGenerator: arch' in log and 'cityscapes/mIoU:' in log
