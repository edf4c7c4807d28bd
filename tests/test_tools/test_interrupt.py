"""Ctrl-C or SIGTERM during training: a checkpoint of the iteration reached, one line saying
how to continue, and a resume that ends as an uninterrupted run."""
import os
import re
import shlex
import signal
import subprocess
import sys
import threading

import pytest
import torch

from .test_resume import state_dict
from .test_train_test import ROOT, only_dir, run_tool

pytestmark = pytest.mark.slow

SCHEDULE = ['schedule.max_iters=8', 'schedule.val_interval=4', 'schedule.warmup_iters=2',
            'data.num_workers=2']


def interrupt(overrides, cwd, signum, after_iter=2):
    """Start tools/train.py in its own process group, send ``signum`` to the whole group (as
    a terminal's Ctrl-C does, DataLoader workers included) once iteration ``after_iter`` is
    logged; return (exit code, output)."""
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    process = subprocess.Popen([sys.executable, str(ROOT / 'tools' / 'train.py'), *overrides],
                               cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    for line in process.stdout:
        lines.append(line)
        if re.search(rf'Iter\(train\) \[\s*{after_iter}/', line):
            os.killpg(process.pid, signum)
    process.wait()
    watchdog.cancel()
    return process.returncode, ''.join(lines)


def stop(overrides, tmp_path, signum):
    """Interrupt a run; check its checkpoint and message; return (iteration, run folder,
    the printed command's arguments)."""
    code, output = interrupt(overrides + ['exp_name=stopped'], tmp_path, signum)
    assert code == 128 + signum, output[-3000:]
    assert 'Traceback' not in output
    stopped = re.search(r'Stopped at iteration (\d+) of 8 \(SIG\w+\); checkpoint (\S+)\. '
                        r'Continue with:\n\s+(.+)', output)
    assert stopped, output[-3000:]
    iteration, checkpoint = int(stopped[1]), stopped[2]
    run_dir = only_dir(tmp_path / 'work_dirs' / 'stopped')
    assert 2 <= iteration < 8 and checkpoint == str(run_dir / f'iter_{iteration}.pth')
    assert torch.load(checkpoint, map_location='cpu', weights_only=False)['meta']['iter'] == \
        iteration
    assert (run_dir / 'last_checkpoint').read_text().strip() == checkpoint
    assert not list(run_dir.glob('.*.tmp'))

    command = shlex.split(stopped[3])
    assert command[:2] == ['python', str(ROOT / 'tools' / 'train.py')]
    assert command[-1] == f'resume={run_dir}'
    return iteration, run_dir, command[2:]


def test_sigterm_saves_the_iteration_reached(tiny_overrides, tmp_path):
    stop(tiny_overrides + SCHEDULE, tmp_path, signal.SIGTERM)


def test_ctrl_c_then_the_printed_command_ends_as_an_uninterrupted_run(tiny_overrides, tmp_path):
    overrides = tiny_overrides + SCHEDULE
    iteration, run_dir, command = stop(overrides, tmp_path, signal.SIGINT)
    resumed = run_tool('train.py', command, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'resumed epoch: 0, iter: {iteration}' in resumed.stdout + resumed.stderr

    full = run_tool('train.py', overrides + ['exp_name=full'], tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    expected = state_dict(only_dir(tmp_path / 'work_dirs' / 'full') / 'iter_8.pth')
    actual = state_dict(run_dir / 'iter_8.pth')
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
