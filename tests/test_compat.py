"""The compatibility fixes: mmseg imports under mmcv-lite, checkpoint loading is scoped."""
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
