"""Which folder a run writes into and which checkpoint ``resume=`` continues from (how both
are named: :mod:`domino_seg.run_names`).

Every run writes into its own folder ``<paths.work_dirs>/<exp_name>/<run stamp>/`` (date, time
to the millisecond and process id, so runs started at once never share one), claimed before
anything is written: a folder that already holds a run is only ever reused by resuming that
run. A resumed run continues in the folder of the run it resumes, so its checkpoints, logs and
metrics.json stay together, and only with the config that run recorded. Checkpoints are
written atomically, so the newest ``iter_N.pth`` is always complete.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import shutil
from glob import escape, glob
from typing import Optional, Union

from omegaconf import DictConfig, OmegaConf

from domino_seg.errors import CheckpointError, ConfigError
from domino_seg.io import lock_file, run_files
from domino_seg.run_names import check_writable, latest_checkpoint

# the file in a work dir whose lock the process writing into it holds (lock_work_dir)
LOCK_FILE = '.lock'
# what a run writes into its work dir (Hydra's .hydra/ alone is not a run: a failed start)
# keys a resumed run may change: where runs live and how this one is found, and load_from,
# which resume replaces (the run's own weights)
# (and how the run logs and which backend joins its processes: a run may move machines)
RESUME_MAY_CHANGE = ('resume', 'work_dir', 'paths.work_dirs', 'load_from', 'verbose',
                     'log_interval', 'runtime.env_cfg', 'runtime.log_level')


def resume_checkpoint(resume: Union[bool, str], work_dir: str) -> str:
    """The checkpoint ``resume`` continues from, or a CheckpointError saying why none fits."""
    if isinstance(resume, str) and osp.isfile(resume):
        return resume
    checkpoint = latest_checkpoint(work_dir)
    if checkpoint is None:
        if isinstance(resume, str) and not osp.exists(resume):
            problem = f'resume={resume!r} does not exist'
        elif isinstance(resume, str):
            problem = f'resume={resume!r} holds no checkpoint (iter_N.pth)'
        else:
            problem = (f'resume=true found no run with a checkpoint (iter_N.pth) under '
                       f'{osp.dirname(work_dir)!r}')
        raise CheckpointError(
            f'{problem}. Pass resume=<run folder> or resume=<run folder>/iter_N.pth, check '
            'exp_name and paths.work_dirs (they locate the runs of an experiment), or start '
            'a new run without resume.')
    return checkpoint


# the variable that holds a process's rank, per launcher (read before torch.distributed starts)
_RANK_VARIABLE = {'pytorch': 'RANK', 'slurm': 'SLURM_PROCID', 'mpi': 'OMPI_COMM_WORLD_RANK'}


def is_first_process(launcher: str) -> bool:
    """Whether this is rank 0, which claims the work dir the processes of a run share."""
    variable = _RANK_VARIABLE.get(launcher)
    return variable is None or os.environ.get(variable, '0') == '0'


def resumed_folder(resume: Union[bool, str, None], work_dir: str) -> Optional[str]:
    """The folder of the run ``resume`` continues (``work_dir`` for ``resume=true``), or None."""
    if not resume:
        return None
    if isinstance(resume, str) and osp.isfile(resume):
        return osp.dirname(osp.abspath(resume))
    return osp.abspath(resume if isinstance(resume, str) else work_dir)


def claim_work_dir(work_dir: str, resume: Union[bool, str, None] = None,
                   runs_in_subfolders: bool = False) -> None:
    """Create ``work_dir`` (exclusively when it is new), or accept an existing one that holds
    no run, or the run ``resume`` continues; a ConfigError otherwise, before anything in it is
    written. ``runs_in_subfolders``: a sweep dir, whose job folders hold the runs."""
    check_writable(work_dir)
    try:
        created = osp.abspath(work_dir)  # the outermost folder this claim creates
        while not osp.exists(osp.dirname(created)):
            created = osp.dirname(created)
        os.makedirs(osp.dirname(osp.abspath(work_dir)), exist_ok=True)
        os.mkdir(work_dir)
        _created.append(created)
        return
    except FileExistsError:
        pass
    except OSError as err:
        raise ConfigError(f'the work dir {work_dir!r} cannot be created ({err.strerror}). Set '
                          'paths.work_dirs=/a/writable/folder (or work_dir=...).') from None
    if resumed_folder(resume, work_dir) == osp.abspath(work_dir):
        return
    folders = [work_dir] + (sorted(glob(osp.join(escape(work_dir), '*', ''))) if
                            runs_in_subfolders else [])
    used = [f for folder in folders for f in run_files(folder)]
    if used:
        what = 'hydra.sweep.dir' if runs_in_subfolders else 'work_dir'
        raise ConfigError(
            f'{what}={work_dir} already holds a run ({", ".join(used[:3])}'
            f'{", ..." if len(used) > 3 else ""}); a new run would overwrite it. To continue '
            + (f'that run pass resume={work_dir}' if not runs_in_subfolders else
               'its runs add resume=true') +
            f'; for a new run choose another {what} (or leave it out: each run then gets a new '
            'folder).')


_locks: dict[str, int] = {}
_created: list[str] = []  # folders this process created for its work dirs (claim_work_dir)


def remove_unstarted_work_dirs() -> None:
    """Remove the work dirs this process created that hold nothing but Hydra's record of the
    start (``.hydra/``, a sweep's ``multirun.yaml``) and the lock, so that a start that failed
    (a bad value, missing weights or data, Ctrl-C) leaves no empty run folder behind."""
    for folder in _created:
        files = [osp.relpath(osp.join(path, name), folder)
                 for path, _, names in os.walk(folder) for name in names]
        if all('.hydra' in f.split(os.sep) or f == 'multirun.yaml' or
               osp.basename(f) == LOCK_FILE for f in files):
            shutil.rmtree(folder, ignore_errors=True)
    _created.clear()


def lock_work_dir(work_dir: str) -> None:
    """Hold an exclusive lock on ``work_dir`` (its LOCK_FILE) for the life of this process, so
    that a second process (a run started at the same time, or a resume while the run still
    trains) fails instead of writing into the same folder. The lock ends with this process,
    even by ``kill -9`` while its DataLoader workers still live, so a resume right after a
    crash starts (see :func:`domino_seg.io.lock_file`). Where the file system has no locks
    (some network mounts) or the folder is not writable this does nothing."""
    path = osp.abspath(work_dir)
    if path in _locks:
        return
    try:
        fd = lock_file(osp.join(path, LOCK_FILE))
    except OSError:
        return
    if fd is None:
        raise ConfigError(
            f'the work dir {work_dir} is in use by another running process (started at the '
            'same time, or the run itself is still training). Wait for it to end, or choose '
            'another work_dir.')
    _locks[path] = fd


def check_same_config(cfg: DictConfig, checkpoint: str) -> None:
    """A ConfigError listing the keys (old -> new value) in which ``cfg`` differs from the
    config the run of ``checkpoint`` recorded (its ``config.yaml``), except RESUME_MAY_CHANGE:
    a resume continues that run exactly, so it must not be another experiment, model or
    schedule (and must not overwrite that run's record with one)."""
    from domino_seg.config import recorded_config, recorded_config_path
    from domino_seg.evaluation.compare import flatten_config, render_value
    config = recorded_config(checkpoint, 'resume', required=False)
    if config is None:
        return  # a checkpoint from elsewhere: only its fit to the model is checked
    recorded = recorded_config_path(checkpoint)
    old = flatten_config(OmegaConf.to_container(config))
    new = flatten_config(OmegaConf.to_container(cfg, resolve=True))
    # keys the record lacks were added by a newer domino-seg (their defaults keep the old
    # behaviour); a real change of experiment also changes keys the record has
    keep = [k for k in sorted(old.keys())
            if not any(k == p or k.startswith(p + '.') for p in RESUME_MAY_CHANGE)]
    missing = object()
    changed = [f'{k}: {render_value(old[k]) if k in old else "(absent)"} -> '
               f'{render_value(new[k]) if k in new else "(absent)"}'
               for k in keep if old.get(k, missing) != new.get(k, missing)]
    if changed:
        raise ConfigError(
            f'resume: the config differs from the one the run recorded in {recorded} in '
            f'{len(changed)} key(s): {"; ".join(changed[:8])}{"; ..." if len(changed) > 8 else ""}'
            '. A resume continues that run exactly: pass the same experiment and overrides as '
            'the interrupted run (see its config.yaml). To train with the new settings start a '
            f'new run (without resume), e.g. from its weights with load_from={checkpoint}.')


def metrics_iter(work_dir: str) -> Optional[int]:
    """The iteration the run's ``metrics.json`` reports, or None (none yet, or unreadable)."""
    try:
        with open(osp.join(work_dir, 'metrics.json')) as f:
            return json.load(f).get('iter')
    except (OSError, ValueError, AttributeError):
        return None
