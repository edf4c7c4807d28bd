"""Writing files so that a crash never leaves a half-written one behind, and never where a
tool's inputs, a run's record or anything outside its output folder lie."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import os.path as osp
import shutil
import tempfile
from contextlib import contextmanager
from glob import escape as glob_escape
from glob import glob
from io import BytesIO
from typing import Callable, Iterable, Iterator, Optional

from domino_seg.errors import ConfigError, DominoSegError


def atomic_write_bytes(path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename over it (atomic on POSIX), so
    readers, including other processes, see the old file or the new one, never a part.
    Without the space for ``data`` on the disk, ENOSPC before anything is written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if shutil.disk_usage(folder).free < len(data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.',
                               suffix='.tmp')
    try:
        # mkstemp creates 0600; the file gets the mode open() would give it (umask applied),
        # so colleagues can read results as they can read checkpoints
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    umask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(umask)
    return umask


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + '\n').encode())


def atomic_write_png(path, array) -> None:
    """``array`` (H x W uint8, or H x W x 3 RGB) as a PNG, written atomically."""
    from PIL import Image
    buf = BytesIO()
    Image.fromarray(array).save(buf, format='PNG')
    atomic_write_bytes(path, buf.getvalue())


@contextmanager
def atomic_path(path) -> Iterator[str]:
    """A temporary name beside ``path`` (same suffix) for writers that take a file name
    (OpenCV's VideoWriter, the ONNX exporter): renamed over ``path`` when the block ends,
    removed when it raises, so ``path`` is never a part of a file."""
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, ext = osp.splitext(osp.basename(path))
    tmp = osp.join(folder, f'.{base}.{os.getpid()}.tmp{ext}')
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)


@contextmanager
def reported_write(path, fix: str) -> Iterator[None]:
    """An OSError (a full disk, no permission) in the block, an atomic write of ``path``,
    becomes a DominoSegError naming ``path`` and ending with ``fix``: nothing was half-written,
    and what was there before is intact."""
    try:
        yield
    except DominoSegError:  # (DataError is an OSError too) already says what is wrong
        raise
    except OSError as err:
        reason = 'the disk is full' if err.errno == errno.ENOSPC else err.strerror or err
        name = osp.basename(path)
        previous = (f'the previous {name} is intact' if osp.exists(path) else
                    f'there is no earlier {name}')
        raise DominoSegError(f'could not write {path}: {reason}. Nothing was half-written: '
                             f'{previous}. {fix}') from None


def save_in_run(path: str, write: Callable[[], None], fix: str) -> None:
    """``write()`` (an atomic write of ``path``, a file of a run folder): a failure, e.g. a
    full disk, is a clear error ending with ``fix``."""
    with reported_write(path, f'Free space (or set paths.work_dirs to another disk) and {fix}'):
        write()


def inside(path, folder) -> bool:
    """Whether ``path`` is ``folder`` or below it, symlinks and ``..`` resolved."""
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_out_folder(out, key: str = 'out') -> None:
    """``out``, the folder a tool writes into, must be (or become) one: neither it nor a
    folder above it may be a file."""
    existing = osp.abspath(out)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise ConfigError(f'{key}={out}: {existing} is a file, not a folder; {key}= names the '
                          'folder the outputs go to: choose a folder (a new one is created).')


# the resolved config a run records in its work dir, beside its checkpoints and metrics.json
RECORDED_CONFIG = 'config.yaml'
# the mmengine config a run records beside its config.yaml
MMENGINE_CONFIG = 'mmengine_config.py'
# the files that show a run wrote into a folder (tools/train.py's work dir)
RUN_FILES = (RECORDED_CONFIG, 'metrics.json', 'last_checkpoint', 'iter_*.pth')


def recorded_config_path(path: str) -> str:
    """The ``config.yaml`` (RECORDED_CONFIG) of the run that wrote ``path``, a file in its
    work dir (a checkpoint, metrics.json): the one place that says where a run's config is."""
    return osp.join(osp.dirname(osp.abspath(path)), RECORDED_CONFIG)


def run_files(folder: str) -> list[str]:
    """The files in ``folder`` that show a run wrote there (see RUN_FILES)."""
    return sorted(hit for pattern in RUN_FILES
                  for hit in glob(osp.join(glob_escape(folder), pattern)))


def run_folder(path) -> Optional[str]:
    """The run folder (one holding a run's record, ``RUN_FILES``) that ``path`` lies in, at
    any depth, or None."""
    folder = osp.dirname(osp.realpath(path))
    while True:
        if run_files(folder):
            return folder
        parent = osp.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _file_id(path) -> Optional[tuple]:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def check_outputs(outputs: Iterable[str], out: str, inputs: Iterable[str] = (),
                  ours: Callable[[str], bool] = lambda path: False, key: str = 'out') -> None:
    """Before a tool writes anything: a ConfigError naming the file and the fix for an output
    that resolves (symlinks followed) outside the folder ``out``, is one of ``inputs`` (the
    files the tool reads, its checkpoint included; hard links too), is another output's file,
    or would replace a file of a run folder that is not ``ours`` (an earlier output of the
    same tool)."""
    given = {}
    for path in inputs:
        given.setdefault(_file_id(path) or osp.realpath(path), path)
    written: dict[str, str] = {}
    for path in outputs:
        if not inside(path, out):
            raise ConfigError(f'{path} would be written outside {out} (it resolves to '
                              f'{osp.realpath(path)}): an output may not lead out of the '
                              f'folder of {key}= by .. or a symbolic link. Remove the link, or '
                              f'choose another {key}=.')
        ident = _file_id(path) or osp.realpath(path)
        if ident in given:
            raise ConfigError(f'{path} would overwrite the input {given[ident]}: choose another '
                              f'{key}= (a folder away from the inputs), or move the input.')
        real = osp.realpath(path)
        if real in written:
            raise ConfigError(f'{written[real]} and {path} are the same file: the second '
                              f'would overwrite the first; choose another {key}=.')
        written[real] = path
        if osp.lexists(path) and not ours(path):
            run = run_folder(path)
            if run is not None:
                raise ConfigError(f'{path} exists in the folder of the run {run}, which this '
                                  f'tool did not write: it would be replaced. Choose another '
                                  f'{key}= (e.g. a new file or folder).')


def lock_file(path, wait: bool = False) -> Optional[int]:
    """Take an exclusive lock on the file ``path`` (created if missing) for this process:
    the open descriptor, which must stay open while the lock is needed, or None when another
    process holds it (``wait``: block until it is free instead).

    A POSIX record lock (``fcntl.lockf``), not ``flock``: an flock belongs to the open file,
    so the processes this one forks (DataLoader workers) hold it with their copy of the
    descriptor and keep it for seconds after this process is killed; a record lock belongs to
    this process alone and ends with it (``kill -9`` included). Closing any descriptor of the
    file in this process releases it: open the file nowhere else. OSError where the file
    cannot be created or the file system has no locks."""
    path = os.fspath(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass  # removed by the holder releasing it (release_lock_file): lock the new one
        except BaseException as err:
            os.close(fd)
            if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EAGAIN):
                return None
            raise
        os.close(fd)


def release_lock_file(path, fd: int) -> None:
    """Release a lock of :func:`lock_file` and remove its file, so that a lock taken for a
    while leaves nothing behind (a process waiting for it then locks a new file)."""
    os.remove(path)
    os.close(fd)
