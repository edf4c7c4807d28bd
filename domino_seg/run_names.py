"""How run folders and their checkpoints are named: the folder a new or resumed run writes
into (the config's ``run_dir`` and ``run_stamp`` resolvers, registered in ``config.py``) and a
folder's newest ``iter_N.pth``. Low in the layers, so the config resolves a work dir without
importing the run machinery (``engine/resume.py`` claims and locks the folder)."""
from __future__ import annotations

import os
import os.path as osp
import re
from datetime import datetime
from glob import escape, glob
from typing import Optional, Union

from domino_seg.errors import ConfigError

_ITER = re.compile(r'iter_(\d+)\.pth$')


def run_stamp() -> str:
    """The default name of a new run folder (the ``run_stamp`` resolver, cached per config):
    ``YYYYmmdd_HHMMSS_mmm_<pid>``, sortable by start time and distinct for runs started in the
    same millisecond."""
    now = datetime.now()
    return f'{now:%Y%m%d_%H%M%S}_{now.microsecond // 1000:03d}_{os.getpid()}'


def latest_checkpoint(run_dir: str) -> Optional[str]:
    """The ``iter_N.pth`` with the largest N in ``run_dir``, or None.

    Not mmengine's ``find_latest_checkpoint``, which returns the path the run's
    ``last_checkpoint`` file names: an absolute path, so in a run folder that was copied or
    moved it points into the old folder (or at nothing), and one checkpoint behind when a run
    stopped between writing a checkpoint and updating that file. The checkpoints themselves are
    complete (written atomically), so the folder's own newest one is what a resume continues.
    """
    found = [(int(m.group(1)), path) for path in glob(osp.join(escape(run_dir), 'iter_*.pth'))
             if (m := _ITER.search(path))]
    return max(found)[1] if found else None


def checkpoint_iter(path: str) -> Optional[int]:
    """N of a checkpoint named ``iter_N.pth`` (as training writes them), else None."""
    m = _ITER.search(path)
    return int(m.group(1)) if m else None


def run_dir(experiment_dir: str, timestamp: str, resume: Union[bool, str, None]) -> str:
    """The work dir of a run (the ``run_dir`` config resolver): a new
    ``<experiment_dir>/<timestamp>`` (a :func:`run_stamp`) unless ``resume`` names a run (a
    folder or one of its checkpoints) or is true, which takes the folder under
    ``experiment_dir`` whose newest checkpoint is the most recent. When nothing is found, a
    new folder; ``train`` then says why.
    """
    check_writable(experiment_dir)
    if isinstance(resume, str) and osp.exists(resume):
        return osp.dirname(osp.abspath(resume)) if osp.isfile(resume) else resume
    if resume is True:
        runs = [(osp.getmtime(ckpt), folder)
                for folder in glob(osp.join(escape(experiment_dir), '*'))
                if (ckpt := latest_checkpoint(folder))]
        if runs:
            return max(runs)[1]
    return osp.join(experiment_dir, timestamp)


def check_writable(folder: str) -> None:
    """Fail before Hydra creates the run folder when it cannot be created."""
    existing = osp.abspath(folder)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing) or not os.access(existing, os.W_OK):
        raise ConfigError(f'the work dir {folder!r} cannot be created: {existing!r} is not a '
                          'writable folder. Set paths.work_dirs=/a/writable/folder (or '
                          'work_dir=<a new folder>).')
