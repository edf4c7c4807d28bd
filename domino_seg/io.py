"""Writing files so that a crash never leaves a half-written one behind."""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from io import BytesIO


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
