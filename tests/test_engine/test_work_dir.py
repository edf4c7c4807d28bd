"""Work dirs are claimed, never shared: new names are distinct per process, a folder holding a
run is refused unless that run is resumed, a locked folder is refused, a resume must keep the
recorded config, and a full disk while writing metrics.json is a clear error."""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

import domino_seg
from domino_seg import io
from domino_seg.apis import run
from domino_seg.engine.resume import check_same_config, claim_work_dir, lock_work_dir
from domino_seg.errors import ConfigError
from domino_seg.run_names import run_stamp


def test_default_names_differ_between_processes_started_at_once():
    code = 'from domino_seg.run_names import run_stamp; print(run_stamp())'
    procs = [subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    names = [p.communicate()[0].strip() for p in procs]
    assert names[0] != names[1]
    assert all(re.fullmatch(r'\d{8}_\d{6}_\d{3}_\d+', name) for name in names)
    assert run_stamp().endswith(f'_{os.getpid()}')


def test_one_config_names_one_folder(tmp_path):
    """The resolver is cached: resolving twice (Hydra does) gives the same folder."""
    cfg = domino_seg.compose([f'paths.work_dirs={tmp_path}'])
    assert cfg.work_dir.startswith(f'{tmp_path}/synthetic/')
    raw = OmegaConf.create({'a': '${run_stamp:}', 'b': '${run_stamp:}'})
    assert raw.a == raw.b == raw.a


def test_a_new_folder_is_created_an_empty_one_accepted(tmp_path):
    claim_work_dir(str(tmp_path / 'a' / 'run'))
    assert (tmp_path / 'a' / 'run').is_dir()
    (tmp_path / 'empty' / '.hydra').mkdir(parents=True)  # a start that failed before training
    claim_work_dir(str(tmp_path / 'empty'))


@pytest.mark.parametrize('name', ['config.yaml', 'metrics.json', 'iter_4.pth',
                                  'last_checkpoint'])
def test_a_folder_holding_a_run_is_refused_unless_resumed(tmp_path, name):
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / name).write_text('x')
    with pytest.raises(ConfigError) as err:
        claim_work_dir(str(tmp_path / 'run'), False)
    assert str(err.value) == (
        f'work_dir={tmp_path}/run already holds a run ({tmp_path}/run/{name}); a new run would '
        f'overwrite it. To continue that run pass resume={tmp_path}/run; for a new run choose '
        'another work_dir (or leave it out: each run then gets a new folder).')
    claim_work_dir(str(tmp_path / 'run'), True)
    claim_work_dir(str(tmp_path / 'run'), str(tmp_path / 'run'))
    if name.endswith('.pth'):
        claim_work_dir(str(tmp_path / 'run'), str(tmp_path / 'run' / name))
    with pytest.raises(ConfigError):  # resuming another run into this one
        claim_work_dir(str(tmp_path / 'run'), str(tmp_path))


def test_a_sweep_dir_holding_runs_is_refused(tmp_path):
    (tmp_path / 'sweep' / '1').mkdir(parents=True)
    claim_work_dir(str(tmp_path / 'sweep'), runs_in_subfolders=True)
    (tmp_path / 'sweep' / '1' / 'metrics.json').write_text('{}')
    with pytest.raises(ConfigError, match=re.escape(
            f'hydra.sweep.dir={tmp_path}/sweep already holds a run ({tmp_path}/sweep/1/'
            'metrics.json)')):
        claim_work_dir(str(tmp_path / 'sweep'), runs_in_subfolders=True)
    claim_work_dir(str(tmp_path / 'sweep'), True, runs_in_subfolders=True)  # resume the jobs


def test_a_work_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / 'f').write_text('')
    with pytest.raises(ConfigError, match=re.escape(
            f"the work dir '{tmp_path}/f' cannot be created: '{tmp_path}/f' is not a writable "
            'folder.')):
        claim_work_dir(str(tmp_path / 'f'))


def test_a_locked_work_dir_is_refused_to_another_process(tmp_path):
    lock_work_dir(str(tmp_path))
    lock_work_dir(str(tmp_path))  # this process holds it already
    code = f'from domino_seg.engine.resume import lock_work_dir; lock_work_dir({str(tmp_path)!r})'
    other = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert other.returncode == 1
    assert f'the work dir {tmp_path} is in use by another running process' in other.stderr


def locks_in_another_process(folder) -> bool:
    """Whether a process forked now gets the lock on ``folder``."""
    pid = os.fork()
    if pid == 0:
        try:
            lock_work_dir(str(folder))
            os._exit(0)
        except ConfigError:
            os._exit(1)
        finally:
            os._exit(2)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_the_lock_ends_with_its_process_though_its_forked_children_live(tmp_path):
    """kill -9 of a run whose DataLoader workers (forked, holding the lock file's descriptor)
    live on for seconds: a resume at once gets the lock."""
    ready_r, ready_w = os.pipe()
    owner = os.fork()
    if owner == 0:  # the run: lock, fork a worker that outlives it, wait to be killed
        try:
            lock_work_dir(str(tmp_path))
            worker = os.fork()
            if worker == 0:
                time.sleep(60)
            else:
                os.write(ready_w, str(worker).encode())
                time.sleep(60)
        finally:
            os._exit(0)
    os.close(ready_w)
    worker = int(os.read(ready_r, 20))
    os.close(ready_r)
    try:
        assert not locks_in_another_process(tmp_path)  # the run holds it
        os.kill(owner, signal.SIGKILL)
        os.waitpid(owner, 0)
        os.kill(worker, 0)  # the worker is alive (else ProcessLookupError)
        lock_work_dir(str(tmp_path))  # no ConfigError
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_start_interrupted_before_training_leaves_no_run_folder(tmp_path):
    """Ctrl-C or SIGTERM while the start generates the benchmark: as a failed start."""
    folder = tmp_path / 'runs' / 'run'
    claim_work_dir(str(folder))
    (folder / '.hydra').mkdir()
    (folder / '.hydra' / 'config.yaml').write_text('{}')
    lock_work_dir(str(folder))

    def interrupted():
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run.run_cli(interrupted)
    assert list(tmp_path.iterdir()) == []


def test_resume_values_take_true_false_or_a_path(tmp_path):
    assert domino_seg.compose([f'resume={tmp_path}']).resume == str(tmp_path)
    assert domino_seg.compose([f'resume={tmp_path}']).work_dir == str(tmp_path)
    assert domino_seg.compose(['resume=true']).resume is True
    with pytest.raises(ConfigError, match=re.escape(
            'resume=3: resume takes true, false or a path, got 3.')):
        domino_seg.compose(['resume=3'])


def recorded_run(tmp_path, overrides):
    """A run folder holding the config ``overrides`` give, a checkpoint and metrics."""
    folder = tmp_path / 'recorded'
    folder.mkdir()
    cfg = domino_seg.compose(overrides + [f'work_dir={folder}'])
    OmegaConf.save(cfg, folder / 'config.yaml')
    (folder / 'iter_2.pth').write_bytes(b'weights')
    (folder / 'metrics.json').write_text('{"iter": 2}')
    return folder


def test_resume_keeps_the_recorded_config(tmp_path, tiny_overrides):
    folder = recorded_run(tmp_path, tiny_overrides + ['load_from=x.pth'])
    same = domino_seg.compose(tiny_overrides + [f'resume={folder}', 'paths.work_dirs=/x'])
    check_same_config(same, str(folder / 'iter_2.pth'))  # resume replaces load_from
    other = domino_seg.compose(tiny_overrides + [
        f'resume={folder}', 'model.segmentor.decode_head.channels=16', 'seed=3'])
    with pytest.raises(ConfigError) as err:
        check_same_config(other, str(folder / 'iter_2.pth'))
    assert str(err.value).startswith(
        f'resume: the config differs from the one the run recorded in {folder}/config.yaml in '
        '2 key(s): model.segmentor.decode_head.channels: 128 -> 16; seed: 0 -> 3. A resume '
        'continues that run exactly')
    assert f'load_from={folder}/iter_2.pth' in str(err.value)


def test_resume_into_another_experiment_changes_nothing(tmp_path, tiny_overrides, fails):
    common = [o for o in tiny_overrides if not o.startswith('data.generate.')]
    fog = recorded_run(tmp_path, common + ['+exp=acdc_fog'])
    before = {p: p.read_bytes() for p in fog.iterdir()}
    night = domino_seg.compose(common + ['+exp=acdc_night', f'work_dir={fog}', 'resume=true'])
    err = fails(lambda: run.train(night))
    assert 'data.eval_conditions: [cityscapes,fog] -> [cityscapes,night]' in err
    assert 'exp_name: acdc_fog -> acdc_night' in err
    assert {p: p.read_bytes() for p in fog.iterdir()} == before


def test_a_resume_that_does_not_fit_leaves_no_config_behind(tmp_path, tiny_overrides, fails):
    import torch
    folder = tmp_path / 'run'
    folder.mkdir()
    other = domino_seg.build_segmentor(domino_seg.compose(tiny_overrides +
                                                          ['data.num_classes=5']))
    torch.save({'state_dict': other.state_dict(), 'meta': {'epoch': 0, 'iter': 1},
                'message_hub': {}}, folder / 'iter_1.pth')
    cfg = domino_seg.compose(tiny_overrides + [f'resume={folder}'])
    err = fails(lambda: run.train(cfg))
    assert f'checkpoint {folder}/iter_1.pth does not fit the configured model' in err
    assert not (folder / 'config.yaml').exists()


def test_free_space_is_checked_before_writing(tmp_path, monkeypatch):
    (tmp_path / 'metrics.json').write_text('old')
    monkeypatch.setattr(shutil, 'disk_usage', lambda folder: shutil._ntuple_diskusage(10, 10, 3))
    with pytest.raises(OSError) as err:
        io.atomic_write_json(tmp_path / 'metrics.json', {'iter': 2})
    assert err.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == ['metrics.json']
    assert (tmp_path / 'metrics.json').read_text() == 'old'


@pytest.mark.slow
def test_disk_full_while_writing_metrics_keeps_the_previous_ones(tmp_path, tiny_overrides,
                                                                 fails, monkeypatch):
    write = io.atomic_write_bytes

    def disk_full_at_iter_2(path, data):
        if str(path).endswith('metrics.json') and b'"iter": 2' in data:
            raise OSError(errno.ENOSPC, 'No space left on device', str(path))
        write(path, data)

    monkeypatch.setattr(io, 'atomic_write_bytes', disk_full_at_iter_2)
    folder = tmp_path / 'run'
    cfg = domino_seg.compose(tiny_overrides + ['schedule.val_interval=1', f'work_dir={folder}',
                                               'data.eval_conditions=[cityscapes,fog]'])
    err = fails(lambda: run.train(cfg))
    assert (f'could not write {folder}/metrics.json: the disk is full. Nothing was '
            'half-written: the previous metrics.json is intact. Free space (or set '
            f'paths.work_dirs to another disk) and continue with resume={folder} (it evaluates '
            'again); the checkpoints are saved.') in err
    assert json.loads((folder / 'metrics.json').read_text())['iter'] == 1
    assert (folder / 'iter_2.pth').exists()


def test_a_run_without_metrics_says_how_to_evaluate_it(tmp_path, tiny_overrides, fails):
    cfg = domino_seg.compose(tiny_overrides + [f'work_dir={tmp_path / "run"}'])
    (tmp_path / 'run').mkdir()
    err = fails(lambda: run._final_report(cfg, 'Final evaluation'))
    assert f'{tmp_path / "run"} has no metrics.json' in err
    assert f'tools/test.py checkpoint={tmp_path / "run"}/iter_2.pth' in err


def test_a_record_from_an_older_version_still_resumes_but_a_change_does_not(tmp_path,
                                                                            tiny_overrides):
    """Keys the recorded config.yaml lacks (added by a newer domino-seg) are not a change;
    a key the record has, with another value, is."""
    from omegaconf import OmegaConf

    from domino_seg.engine.resume import check_same_config
    from domino_seg.errors import ConfigError
    cfg = domino_seg.compose(tiny_overrides)
    record = OmegaConf.to_container(cfg, resolve=True)
    del record['verbose'], record['schedule']['save_optimizer']
    (tmp_path / 'config.yaml').write_text(OmegaConf.to_yaml(record))
    check_same_config(cfg, str(tmp_path / 'iter_1.pth'))
    with pytest.raises(ConfigError, match=r'seed: 0 -> 3'):
        check_same_config(domino_seg.compose(tiny_overrides + ['seed=3']),
                          str(tmp_path / 'iter_1.pth'))


@pytest.mark.slow
def test_a_domino_run_starts_from_a_baseline_checkpoint(tmp_path, tiny_overrides):
    """load_from= a plain fine-tuning checkpoint into a Domino model: the norms' keys are
    renamed into the Domino layers' wrapped norms, the Domino MLPs start at zero."""
    import torch
    baseline = tmp_path / 'baseline'
    run.train(domino_seg.compose(tiny_overrides + ['schedule.max_iters=1',
                                                   f'work_dir={baseline}']))
    domino = tmp_path / 'domino'
    run.train(domino_seg.compose(tiny_overrides + [
        'schedule.max_iters=1', 'domino=head', 'domain=text',
        f'load_from={baseline / "iter_1.pth"}', f'work_dir={domino}']))
    weights = torch.load(domino / 'iter_1.pth', map_location='cpu',
                         weights_only=False)['state_dict']
    assert any('.wrapped.' in key for key in weights)
