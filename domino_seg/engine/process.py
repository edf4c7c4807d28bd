"""What a tool's process sets for itself before its job (never on import), each for speed.

* :func:`keep_freed_memory`: glibc's malloc keeps freed blocks of up to 32 MiB for reuse;
* :func:`freeze_imported_objects`: the imported libraries leave the cyclic collector's view.

``domino_seg.apis.run.run_hydra`` (every tool) calls :func:`prepare_process`; a script or
notebook may call it too. ``bench/`` measures with and without (bench/README.md).
"""
from __future__ import annotations

import ctypes
import gc
import os
import platform

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# glibc's largest mmap threshold on 64-bit (HEAP_MAX_SIZE / 2)
MMAP_THRESHOLD = 32 * 1024 * 1024
# the user's own settings, which win
MALLOC_ENV = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_')


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed blocks of up to 32 MiB instead of handing them back to
    the kernel; return whether it applied.

    A training step allocates and frees the same feature maps at every iteration. By default
    glibc serves a block above its (sliding) mmap threshold with fresh pages and trims the
    freed top of the heap, so each step's maps are faulted in and zeroed again: about 8 % of
    the train step of bench/domino_overhead.py's SegFormer-B0-sized model on 2 CPU cores, 4 %
    of the default model's at its small crops (bench/README.md). With the threshold fixed at
    32 MiB and no trimming, freed memory stays with the process for the next step (data
    workers forked after inherit it); peak memory is unchanged. Skipped where malloc is not
    glibc's or the user set ``MALLOC_*_`` variables."""
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    if any(name in os.environ for name in MALLOC_ENV):
        return False
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def freeze_imported_objects() -> None:
    """Collect garbage once, then keep the objects alive now (the imported libraries, about
    half a million) out of the cyclic collector's reach: mmengine collects garbage for every
    dataset it builds (about 0.25 s each over those objects: seconds of start-up with the
    evaluation splits), and forked data workers then leave those memory pages shared."""
    gc.collect()
    gc.freeze()


def prepare_process() -> None:
    """Both of the above: what every tool does before its job."""
    keep_freed_memory()
    freeze_imported_objects()
