"""Exact resume: a run killed with SIGKILL mid-training and resumed with resume=true ends with
the weights and metrics of an uninterrupted run; a resume right after the kill starts while
the killed run's DataLoader workers still live."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from domino_seg.compat import trusted_checkpoint_loading

from .test_train_test import ROOT, only_dir, run_tool

pytestmark = pytest.mark.slow

# dropout and drop-path stay on: the RNG states must be restored too
SCHEDULE = ['schedule.max_iters=6', 'schedule.val_interval=3', 'schedule.warmup_iters=2']


def state_dict(path):
    with trusted_checkpoint_loading():
        return _load_checkpoint(str(path), map_location='cpu')['state_dict']


def test_kill_9_then_resume_equals_an_uninterrupted_run(tiny_overrides, tmp_path):
    overrides = tiny_overrides + SCHEDULE
    full = run_tool('train.py', overrides + ['exp_name=full'], tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]

    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    killed = subprocess.Popen([sys.executable, str(ROOT / 'tools' / 'train.py'), *overrides,
                               'exp_name=killed'], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / 'work_dirs' / 'killed'
    deadline = time.time() + 300
    while not list(runs.glob('*/iter_3.pth')) and killed.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)  # during the evaluation after iteration 3
    killed.wait()
    run_dir = only_dir(runs)
    assert killed.returncode == -signal.SIGKILL and not (run_dir / 'iter_6.pth').exists()

    resumed = run_tool('train.py', overrides + ['exp_name=killed', 'resume=true'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert only_dir(runs) == run_dir  # continued in the same folder
    assert 'resumed epoch: 0, iter: 3' in resumed.stdout + resumed.stderr

    full_dir = only_dir(tmp_path / 'work_dirs' / 'full')
    expected, actual = state_dict(full_dir / 'iter_6.pth'), state_dict(run_dir / 'iter_6.pth')
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    expected = json.loads((full_dir / 'metrics.json').read_text())
    actual = json.loads((run_dir / 'metrics.json').read_text())
    assert actual['conditions'] == expected['conditions']
    assert actual['mean_unseen_mIoU'] == expected['mean_unseen_mIoU']


def test_same_seed_gives_bit_identical_metrics(tiny_overrides, tmp_path, tool_main):
    """Two runs of one process (the second after the first's state: a stricter check than two
    fresh processes) give bit-identical metrics."""
    reports = []
    for name in ('a', 'b'):
        result = tool_main('train.py', tiny_overrides + ['deterministic=true', f'exp_name={name}'],
                           tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads((only_dir(tmp_path / 'work_dirs' / name) / 'metrics.json')
                            .read_text())
        reports.append((report['conditions'], report['mean_unseen_mIoU']))
    assert reports[0] == reports[1]


def children(pid):
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            if int(stat.read_text().rsplit(')', 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            pass  # ended meanwhile
    return found


def test_resume_right_after_kill_9_while_data_workers_live(tiny_overrides, tmp_path):
    """The DataLoader workers of a killed run live on until they notice (a few seconds, longer
    when busy; stopped here so they surely outlive the resume's start): the resume starts."""
    overrides = tiny_overrides + ['schedule.val_interval=1', 'data.num_workers=2',
                                  'exp_name=crash']
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    killed = subprocess.Popen([sys.executable, str(ROOT / 'tools' / 'train.py'), *overrides],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    runs = tmp_path / 'work_dirs' / 'crash'
    deadline = time.time() + 300
    while not list(runs.glob('*/iter_1.pth')) and killed.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    workers = children(killed.pid)
    try:
        for worker in workers:
            os.kill(worker, signal.SIGSTOP)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert workers and all(Path(f'/proc/{w}').exists() for w in workers)
        resumed = run_tool('train.py', overrides + ['resume=true'], tmp_path)
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 1' in resumed.stdout + resumed.stderr
    assert json.loads((only_dir(runs) / 'metrics.json').read_text())['iter'] == 2
