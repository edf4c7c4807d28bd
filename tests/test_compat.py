"""The compatibility fixes: mmseg imports under mmcv-lite, checkpoint loading is scoped, and an
unreadable checkpoint is a CheckpointError that is also what torch.load raised."""
import pickle

import pytest
import torch

from domino_seg.compat import trusted_checkpoint_loading


def test_mmseg_models_import_and_guarded_ops_fall_back():
    import mmseg.models  # noqa: F401
    from mmcv.ops import point_sample
    from mmseg.models.decode_heads import psa_head
    assert psa_head.PSAMask is None
    out = point_sample(torch.zeros(1, 2, 4, 4), torch.full((1, 3, 2), 0.5))
    assert out.shape == (1, 2, 3)


def test_missing_compiled_op_names_itself():
    with pytest.raises(ImportError, match='compiled mmcv extension'):
        from mmcv.ops import nms  # noqa: F401


def test_pickled_checkpoints_load_only_inside_the_trusted_scope(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'buffer': HistoryBuffer([1.0], [1])}, path)
    with pytest.raises(Exception, match='does not unpickle'):
        _load_checkpoint(str(path))
    with trusted_checkpoint_loading():
        ckpt = _load_checkpoint(str(path))
    assert isinstance(ckpt['buffer'], HistoryBuffer)
    with pytest.raises(Exception, match='does not unpickle'):
        _load_checkpoint(str(path))  # the scope ended


class _Runs:
    def __reduce__(self):
        return (print, ('arbitrary code ran',))


def test_trusted_scope_still_refuses_arbitrary_objects(tmp_path, capsys):
    """Even our own checkpoints load weights_only, with mmengine's training-state classes
    allowed: a pickled call is refused inside the scope too."""
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Runs()}, path)
    with trusted_checkpoint_loading(), pytest.raises(Exception, match='does not unpickle'):
        _load_checkpoint(str(path))
    assert 'arbitrary code ran' not in capsys.readouterr().out


def test_trusted_scope_does_not_reach_other_threads(tmp_path):
    import threading

    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'ckpt.pth'
    torch.save({'buffer': HistoryBuffer([1.0], [1])}, path)
    errors = []

    def load():
        try:
            _load_checkpoint(str(path))
        except Exception as err:
            errors.append(err)

    with trusted_checkpoint_loading():
        thread = threading.Thread(target=load)
        thread.start()
        thread.join()
    assert len(errors) == 1 and 'does not unpickle' in str(errors[0])


@pytest.mark.parametrize('content,raised', [
    (b'', EOFError), (b'hello', KeyError), (b'{"a": 1}', pickle.UnpicklingError),
    (pickle.dumps({'a': 1}, protocol=2), RuntimeError), ('truncated', RuntimeError),
], ids=['empty', 'text', 'json', 'plain-pickle', 'truncated'])
def test_an_unreadable_checkpoint_is_also_what_torch_load_raised(tmp_path, content, raised):
    """Code that called mmengine's load_checkpoint before ``import domino_seg`` catches what
    it caught (the RuntimeError of a truncated file, ...); the tools catch a CheckpointError."""
    from mmengine.runner import CheckpointLoader

    from domino_seg.errors import CheckpointError
    path = tmp_path / 'bad.pth'
    if content == 'truncated':
        torch.save({'w': torch.ones(64)}, path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(raised) as err:
        CheckpointLoader.load_checkpoint(str(path))
    assert isinstance(err.value, CheckpointError)
    assert str(err.value).startswith(f'checkpoint {path} ')  # (not quoted, as KeyError's)
    assert pickle.loads(pickle.dumps(err.value)).args == err.value.args
