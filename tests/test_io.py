"""Atomic writes: whole files only, and the mode any other file of the user gets; outputs
never land on inputs, a run's files or outside their folder."""
import os
import stat

import pytest

from domino_seg import io
from domino_seg.errors import ConfigError, DataError, DominoSegError


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


def test_a_full_disk_is_one_error_and_keeps_the_previous_file_whole(tmp_path, disk_full_after):
    path = tmp_path / 'a.png'
    io.atomic_write_bytes(path, b'old bytes')
    disk_full_after(0)
    with pytest.raises(DominoSegError) as err:
        with io.reported_write(path, 'Free space and run it again.'):
            io.atomic_write_bytes(path, b'new bytes, more of them')
    assert str(err.value) == (f'could not write {path}: the disk is full. Nothing was '
                              'half-written: the previous a.png is intact. Free space and run '
                              'it again.')
    assert path.read_bytes() == b'old bytes'
    assert os.listdir(tmp_path) == ['a.png']  # no temporary file left
    with pytest.raises(DataError, match='^the message$'):  # an OSError too, but said already
        with io.reported_write(path, 'Free space.'):
            raise DataError('the message')


def test_atomic_path_renames_on_success_and_removes_on_failure(tmp_path):
    target = tmp_path / 'v.mp4'
    target.write_bytes(b'before')
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            assert tmp.endswith('.mp4') and os.path.dirname(tmp) == str(tmp_path)
            open(tmp, 'wb').write(b'half')
            raise RuntimeError('the writer failed')
    assert target.read_bytes() == b'before' and os.listdir(tmp_path) == ['v.mp4']
    with io.atomic_path(target) as tmp:
        open(tmp, 'wb').write(b'after')
    assert target.read_bytes() == b'after' and os.listdir(tmp_path) == ['v.mp4']


@pytest.fixture
def files(tmp_path):
    """An input image, an output folder and a run folder (config.yaml, iter_1.pth)."""
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'a.png').write_bytes(b'image')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'run').mkdir()
    for name in ('config.yaml', 'iter_1.pth', 'mmengine_config.py'):
        (tmp_path / 'run' / name).write_bytes(b'run')
    return tmp_path


def refused(outputs, out, inputs=(), **kwargs):
    with pytest.raises(ConfigError) as err:
        io.check_outputs([str(p) for p in outputs], str(out), [str(p) for p in inputs],
                         **kwargs)
    return str(err.value)


def test_check_outputs_refuses_inputs_and_their_links(files):
    image = files / 'in' / 'a.png'
    message = refused([image], files / 'in', [image])
    assert message == (f'{image} would overwrite the input {image}: choose another out= (a '
                       'folder away from the inputs), or move the input.')
    os.link(image, files / 'out' / 'hard.png')
    os.symlink(image, files / 'out' / 'soft.png')
    assert 'would overwrite the input' in refused([files / 'out' / 'hard.png'], files / 'out',
                                                  [image])
    # a link to a file outside out=, whichever it is, would write there
    assert 'would be written outside' in refused([files / 'out' / 'soft.png'],
                                                       files / 'out')
    assert image.read_bytes() == b'image'


def test_check_outputs_keeps_outputs_inside_out(files):
    out = files / 'out'
    message = refused([out / '..' / 'in' / 'x_overlay.png'], out)
    assert message.startswith(f'{out}/../in/x_overlay.png would be written outside {out} '
                              f'(it resolves to {files}/in/x_overlay.png)')
    os.symlink(files / 'in', out / 'link')
    assert 'outside' in refused([out / 'link' / 'x.png'], out)
    assert 'are the same file' in refused([out / 'a.png', out / '.' / 'a.png'], out)
    io.check_outputs([str(out / 'sub' / 'new.png')], str(out))  # new subfolders are fine


def test_check_outputs_leaves_the_files_of_a_run_alone(files):
    run = files / 'run'
    message = refused([run / 'mmengine_config.py'], run, key='out')
    assert message == (f'{run}/mmengine_config.py exists in the folder of the run {run}, which '
                       'this tool did not write: it would be replaced. Choose another out= '
                       '(e.g. a new file or folder).')
    io.check_outputs([str(run / 'new.pth')], str(run))  # a new file beside the run's
    io.check_outputs([str(run / 'mmengine_config.py')], str(run), ours=lambda path: True)
    (run / 'sub').mkdir()  # and at any depth below it
    (run / 'sub' / 'x.png').write_bytes(b'test.py')
    assert 'in the folder of the run' in refused([run / 'sub' / 'x.png'], run / 'sub')
    assert (run / 'mmengine_config.py').read_bytes() == b'run'


def test_check_out_folder_refuses_a_file(files):
    with pytest.raises(ConfigError, match=r'out=.*a.png/new: .*a.png is a file, not a folder'):
        io.check_out_folder(str(files / 'in' / 'a.png' / 'new'))
    io.check_out_folder(str(files / 'new' / 'folder'))
    assert not (files / 'new').exists()
