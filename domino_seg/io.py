"""Writing files so that a crash never leaves a half-written one behind."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from io import BytesIO
from typing import Optional


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
