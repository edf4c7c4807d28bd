"""engine/process.py: the malloc and gc settings a tool's process makes before its job."""
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from domino_seg.engine import process

MODULE = Path(process.__file__)

# page faults of 20 rounds of allocating, filling and freeing three 9 MiB arrays (feature maps
# of a train step), after one warm-up round; the module loaded from its file, with no imports
FAULTS = f'''
import importlib.util, resource, sys
import numpy as np
spec = importlib.util.spec_from_file_location('process', {str(MODULE)!r})
process = importlib.util.module_from_spec(spec)
spec.loader.exec_module(process)
applied = process.keep_freed_memory() if sys.argv[1] == 'keep' else None
def step():
    maps = [np.ones(9 * 2 ** 20 // 8) for _ in range(3)]
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def faults(mode: str, **env) -> tuple:
    out = subprocess.run([sys.executable, '-c', FAULTS, mode], capture_output=True, text=True,
                         check=True, env={'PATH': '/usr/bin:/bin', **env}).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc malloc only')
def test_freed_feature_maps_are_reused_instead_of_faulted_in_again():
    pages = 9 * 2 ** 20 // 4096
    default = faults('default')[1]
    assert default > 4 * pages  # glibc's default: the trimmed heap is faulted in again
    applied, kept = faults('keep')
    assert applied == 'True' and kept < min(pages, default / 20)  # the warm-up's, reused


def test_the_users_malloc_variables_win(monkeypatch):
    monkeypatch.setenv('MALLOC_TRIM_THRESHOLD_', '131072')
    assert process.keep_freed_memory() is False


def test_a_job_starts_with_the_objects_alive_before_it_frozen():
    """mmengine collects garbage for every dataset it builds: the objects alive before the job
    (the imported libraries) are out of the collector's reach, so those collections skip them."""
    import gc
    gc.unfreeze()
    alive = len(gc.get_objects())
    try:
        process.freeze_imported_objects()
        assert gc.get_freeze_count() >= 0.9 * alive
        assert len(gc.get_objects()) < 0.1 * alive  # what a collection now walks
    finally:
        gc.unfreeze()
