"""Atomic writes: whole files only, and the mode any other file of the user gets."""
import os
import stat

import pytest

from domino_seg import io


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        io.atomic_write_json(tmp_path / 'metrics.json', {'iter': 1})
        with open(tmp_path / 'plain.txt', 'w'):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / 'metrics.json').stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / 'plain.txt').stat().st_mode) == mode
    assert sorted(os.listdir(tmp_path)) == ['metrics.json', 'plain.txt']
