"""No run overwrites another, through the real tools (in the test's process where a process
of their own is not the point): runs started at once get their own folders, a used work dir
is refused, a resume into another experiment changes nothing, resume takes a folder or a
checkpoint path, and a run interrupted during its final evaluation is finished by a resume."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from .test_train_test import ROOT, run_tool

pytestmark = pytest.mark.slow

# 2 iterations with a checkpoint and an evaluation after each
SCHEDULE = ['schedule.max_iters=2', 'schedule.val_interval=1', 'schedule.batch_size=2',
            'schedule.test_batch_size=3', 'log_interval=1', 'data.num_workers=0',
            'data.img_scale=[128,64]', 'data.crop_size=[64,128]']


def fog_overrides(bench):
    return ['+exp=acdc_fog', f'paths.cityscapes={bench / "cityscapes"}',
            f'paths.acdc={bench / "acdc"}'] + SCHEDULE


def files(folder):
    """Every file under ``folder`` (Hydra's .hydra/ and the logs included) -> its digest."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def error(result):
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    return result.stderr.split('\nerror: ', 1)[1].replace('\n', ' ')


@pytest.fixture(scope='module')
def fog_run(tiny_benchmark, tmp_path_factory):
    """A finished acdc_fog run (iter_1.pth, iter_2.pth, metrics.json at iteration 2)."""
    tmp = tmp_path_factory.mktemp('fog')
    result = run_tool('train.py', fog_overrides(tiny_benchmark) + [f'work_dir={tmp / "run"}'],
                      tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / 'run'


@pytest.fixture
def run_copy(fog_run, tmp_path):
    """A private copy of the finished run, to interrupt or to resume."""
    return shutil.copytree(fog_run, tmp_path / 'run')


def metrics(folder):
    return json.loads((folder / 'metrics.json').read_text())


def test_runs_started_at_once_get_their_own_folders(tiny_overrides, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    procs = [subprocess.Popen([sys.executable, str(ROOT / 'tools' / 'train.py'),
                               *tiny_overrides], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    runs = sorted((tmp_path / 'work_dirs' / 'synthetic').iterdir())
    assert len(runs) == 2
    for run in runs:  # each complete, with its own checkpoint
        report = metrics(run)
        assert report['iter'] == 2 and report['checkpoint'] == str(run / 'iter_2.pth')
        assert len(report['conditions']) == 5
        assert (run / 'config.yaml').is_file() and (run / '.hydra' / 'overrides.yaml').is_file()


def test_runs_started_at_once_into_one_work_dir_one_is_refused(tiny_overrides, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    procs = [subprocess.Popen([sys.executable, str(ROOT / 'tools' / 'train.py'),
                               *tiny_overrides, f'work_dir={tmp_path / "run"}'], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
             for _ in range(2)]
    codes = sorted(proc.wait(timeout=600) for proc in procs)
    errors = [proc.stderr.read() for proc in procs]
    assert codes == [0, 2], errors
    refused = next(e for e in errors if '\nerror: ' in e)
    assert 'Traceback' not in refused
    assert (f'{tmp_path / "run"} is in use by another running process' in refused or
            f'work_dir={tmp_path / "run"} already holds a run' in refused)
    assert metrics(tmp_path / 'run')['iter'] == 2


def test_a_used_work_dir_is_refused_and_left_as_it_was(fog_run, tiny_benchmark, tmp_path,
                                                        tool_main):
    before = files(fog_run)
    fog = fog_overrides(tiny_benchmark)
    night = [o.replace('acdc_fog', 'acdc_night') for o in fog]
    for overrides in (fog, fog + ['seed=1'], night):
        result = tool_main('train.py', overrides + [f'work_dir={fog_run}'], tmp_path)
        assert error(result).startswith(f'work_dir={fog_run} already holds a run (')
        assert f'To continue that run pass resume={fog_run}' in error(result)
    result = tool_main('test.py', fog_overrides(tiny_benchmark) + [
        f'checkpoint={fog_run / "iter_2.pth"}', f'work_dir={fog_run}'], tmp_path)
    assert error(result).startswith(f'work_dir={fog_run} already holds a run (')
    assert files(fog_run) == before


def test_resume_into_another_experiment_is_refused_and_changes_nothing(
        run_copy, tiny_benchmark, tmp_path, tool_main):
    before = files(run_copy)
    night = [o.replace('acdc_fog', 'acdc_night') for o in fog_overrides(tiny_benchmark)]
    result = tool_main('train.py', night + [f'work_dir={run_copy}', 'resume=true'], tmp_path)
    message = error(result)
    assert message.startswith(f'resume: the config differs from the one the run recorded in '
                              f'{run_copy}/config.yaml in ')
    assert 'exp_name: acdc_fog -> acdc_night' in message
    assert 'data.eval_conditions: [cityscapes,fog] -> [cityscapes,night]' in message
    assert files(run_copy) == before


@pytest.mark.parametrize('form', ['folder', 'checkpoint'])
def test_resume_takes_a_run_folder_or_a_checkpoint(form, fog_run, run_copy, tiny_benchmark,
                                                   tmp_path, tool_main):
    # killed after the checkpoint of iteration 1 and its evaluation
    (run_copy / 'iter_2.pth').unlink()
    report = metrics(fog_run)
    (run_copy / 'metrics.json').write_text(json.dumps(dict(report, iter=1)))
    resume = run_copy if form == 'folder' else run_copy / 'iter_1.pth'
    result = tool_main('train.py', fog_overrides(tiny_benchmark) + [f'resume={resume}'],
                       tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 1' in result.stdout + result.stderr
    resumed = metrics(run_copy)
    assert resumed['iter'] == 2 and resumed['checkpoint'] == str(run_copy / 'iter_2.pth')
    assert resumed['conditions'] == report['conditions']  # exact resume
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']  # no new folder


@pytest.mark.parametrize('metrics_json', ['earlier', 'missing'])
def test_resume_finishes_an_interrupted_final_evaluation(metrics_json, fog_run, run_copy,
                                                         tiny_benchmark, tmp_path, tool_main):
    report = metrics(fog_run)
    if metrics_json == 'missing':  # as if never written (e.g. the disk was full)
        (run_copy / 'metrics.json').unlink()
    else:  # killed during the final evaluation: the file holds iteration 1's
        earlier = dict(report, iter=1, checkpoint=str(run_copy / 'iter_1.pth'),
                       mean_unseen_mIoU=-1.0)
        (run_copy / 'metrics.json').write_text(json.dumps(earlier))
    result = tool_main('train.py', fog_overrides(tiny_benchmark) + [
        f'work_dir={run_copy}', 'resume=true'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    final = metrics(run_copy)
    assert final['iter'] == 2 and final['checkpoint'] == str(run_copy / 'iter_2.pth')
    assert final['conditions'] == report['conditions']
    assert final['mean_unseen_mIoU'] == report['mean_unseen_mIoU']
    assert f'Final evaluation ({run_copy}/metrics.json)' in result.stdout
    # the summary of this evaluation, once (the stale metrics.json's is never shown)
    assert result.stdout.count('| mean (unseen)') == 1
    assert f'{report["mean_unseen_mIoU"]:.2f}' in \
        result.stdout.split('| mean (unseen)')[1].splitlines()[0]
