"""Which folder and checkpoint ``resume=`` continues from.

Every run writes into its own folder ``<paths.work_dirs>/<exp_name>/<timestamp>/``; a resumed run
continues in the folder of the run it resumes, so its checkpoints, logs and metrics.json stay
together. Checkpoints are written atomically, so the newest ``iter_N.pth`` is always complete.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from glob import escape, glob
from typing import Optional, Union

from domino_seg.errors import CheckpointError, ConfigError

_ITER = re.compile(r'iter_(\d+)\.pth$')


def latest_checkpoint(run_dir: str) -> Optional[str]:
    """The ``iter_N.pth`` with the largest N in ``run_dir``, or None."""
    found = [(int(m.group(1)), path) for path in glob(osp.join(escape(run_dir), 'iter_*.pth'))
             if (m := _ITER.search(path))]
    return max(found)[1] if found else None


def run_dir(experiment_dir: str, timestamp: str, resume: Union[bool, str, None]) -> str:
    """The work dir of a run (the ``run_dir`` config resolver): a new
    ``<experiment_dir>/<timestamp>`` unless ``resume`` names a run (a folder or one of its
    checkpoints) or is true, which takes the folder under ``experiment_dir`` whose newest
    checkpoint is the most recent. When nothing is found, a new folder; ``train`` then says why.
    """
    _check_writable(experiment_dir)
    if isinstance(resume, str) and osp.exists(resume):
        return osp.dirname(osp.abspath(resume)) if osp.isfile(resume) else resume
    if resume is True:
        runs = [(osp.getmtime(ckpt), folder)
                for folder in glob(osp.join(escape(experiment_dir), '*'))
                if (ckpt := latest_checkpoint(folder))]
        if runs:
            return max(runs)[1]
    return osp.join(experiment_dir, timestamp)


def writable_dir(folder: str) -> str:
    """``folder``, checked as :func:`run_dir` checks its parent (the ``writable_dir`` resolver of
    ``hydra.run.dir``: an explicit ``work_dir=`` naming a file fails here, not in Hydra's mkdir)."""
    _check_writable(folder)
    return folder


def _check_writable(folder: str) -> None:
    """Fail before Hydra creates the run folder when it cannot be created."""
    existing = osp.abspath(folder)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing) or not os.access(existing, os.W_OK):
        raise ConfigError(f'the work dir {folder!r} cannot be created: {existing!r} is not a '
                          'writable folder. Set paths.work_dirs=/a/writable/folder (or '
                          'work_dir=<a new folder>).')


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
