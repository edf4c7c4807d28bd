"""Crafted checkpoints run no code: each builds its own malicious pickle whose code would
create a marker file, and sends it through the loader and through every entry point
(``checkpoint=``, ``load_from=``, ``resume``, ``compare_checkpoint=``, ``model.pretrained=``).
Unreadable files get one clear error that says what the file is."""
import fractions
import json
import shutil

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.logging import history_buffer as history_buffer_module
from mmengine.runner.checkpoint import _load_checkpoint

import domino_seg
from domino_seg.compat import trusted_checkpoint_loading
from domino_seg.engine.runner import read_checkpoint
from domino_seg.errors import CheckpointError

REFUSED = 'holds pickled objects that domino-seg does not unpickle'


class _Getattr:
    """Pickles as ``getattr(obj, name)``, then SETITEMs ``items`` into the result."""

    def __init__(self, obj, name, items=()):
        self.obj, self.name, self.items = obj, name, list(items)

    def __reduce__(self):
        return getattr, (self.obj, self.name), None, None, iter(self.items)


class _NewHistoryBuffer:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return HistoryBuffer, self.args


class _Exec:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def touch(marker) -> str:
    return f'open({str(marker)!r}, "w").close()'


def getattr_attack(path, marker, via='__init__'):
    """A pickle that, if ``builtins.getattr`` and ``HistoryBuffer`` are allowed, reaches
    ``eval`` (getattr's ``__self__`` is the builtins module), stores it as ``len`` in the
    globals of HistoryBuffer's module (a function's ``__globals__``, a plain dict the
    unpickler may SETITEM into), then builds a HistoryBuffer, whose ``__init__`` calls
    ``len(code)``. ``via``: the function whose ``__globals__`` are reached (``min`` is one of
    the statistics methods a real checkpoint looks up)."""
    function = _Getattr(HistoryBuffer, via)
    evaluate = _Getattr(_Getattr(getattr, '__self__'), 'eval')
    poison = _Getattr(function, '__globals__', [('len', evaluate)])
    torch.save({'state_dict': {}, 'meta': {'epoch': 0, 'iter': 1},
                'message_hub': [poison, _NewHistoryBuffer(touch(marker), '0')]}, path)
    return path


@pytest.mark.parametrize('via,refused', [
    ('__init__', "getattr(<class 'mmengine.logging.history_buffer.HistoryBuffer'>, '__init__')"),
    ('min', 'getattr(<function HistoryBuffer.min at '),
])
def test_getattr_chain_to_eval_is_refused(tmp_path, via, refused):
    marker = tmp_path / 'code_ran'
    path = getattr_attack(tmp_path / 'evil.pth', marker, via)
    with trusted_checkpoint_loading(), pytest.raises(CheckpointError) as err:
        _load_checkpoint(str(path))
    assert not marker.exists()
    assert 'len' not in vars(history_buffer_module)  # no global was overwritten
    assert str(err.value).startswith(f'checkpoint {path} {REFUSED} ({refused}')
    assert "only HistoryBuffer's statistics methods (min, max, current, mean)" in str(err.value)


@pytest.mark.parametrize('trusted', [False, True])
def test_pickled_call_is_refused_even_with_torch_force_no_weights_only_load(
        tmp_path, monkeypatch, trusted):
    """domino-seg's loader passes weights_only=True explicitly, so the variable (which
    only changes torch.load calls that leave weights_only unset) does not turn it off."""
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    harmless = tmp_path / 'fraction.pth'
    torch.save({'x': fractions.Fraction(1, 3)}, harmless)
    with pytest.warns(UserWarning, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        assert torch.load(harmless)['x'] == fractions.Fraction(1, 3)  # the variable is in effect
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Exec(touch(marker))}, path)
    with pytest.raises(CheckpointError, match=f'{REFUSED} \\(builtins.exec\\)'):
        if trusted:
            with trusted_checkpoint_loading():
                _load_checkpoint(str(path))
        else:
            _load_checkpoint(str(path))
    assert not marker.exists()


def test_real_training_state_still_loads(tmp_path):
    """What mmengine's checkpoints hold (a MessageHub with HistoryBuffers, which pickle their
    statistics methods through getattr) loads inside the trusted scope, methods included."""
    hub = MessageHub.get_instance('test_checkpoint_security')
    for loss in (3.0, 1.0, 2.0):
        hub.update_scalar('train/loss', loss)
    hub.update_info('iter', 3)
    path = tmp_path / 'iter_3.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'message_hub': hub.state_dict()}, path)
    with trusted_checkpoint_loading():
        state = _load_checkpoint(str(path))['message_hub']
    loss = state['log_scalars']['train/loss']
    assert (loss.mean(), loss.min(), loss.current()) == (2.0, 1.0, 2.0)
    assert loss.statistics('max') == 3.0
    assert state['runtime_info']['iter'] == 3


def test_code_in_meta_config_is_dropped(tmp_path):
    """mmengine's Runner.resume executes meta['config'] (Config.fromstring); domino-seg's
    checkpoints never hold it (mmengine writes meta['cfg'])."""
    path = tmp_path / 'iter_1.pth'
    torch.save({'state_dict': {'w': torch.ones(1)},
                'meta': {'iter': 1, 'cfg': 'kept', 'config': touch(tmp_path / 'x')}}, path)
    assert read_checkpoint(str(path))['meta'] == {'iter': 1, 'cfg': 'kept'}


@pytest.mark.parametrize('content', [[1, 2], {'state_dict': {'w': 'text'}},
                                     {'state_dict': {'w': torch.ones(1)}, 'meta': 3}])
def test_checkpoint_without_a_state_dict_is_refused(tmp_path, content):
    path = tmp_path / 'odd.pth'
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=f'checkpoint {path} holds no model weights'):
        read_checkpoint(str(path))


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize('name,make,expected', [
    ('random.pth', lambda p: _write(p, bytes(range(256)) * 8),
     'is not a PyTorch checkpoint: torch.save writes a zip archive, and this file is some '
     'other binary format'),
    ('run.json', lambda p: _write(p, json.dumps({'state_dict': {}}).encode()),
     'is not a PyTorch checkpoint: torch.save writes a zip archive, and this file is text'),
    ('notes.txt', lambda p: _write(p, b'hello\n'), 'this file is text'),
    ('dump.pkl', lambda p: _write(p, __import__('pickle').dumps({'state_dict': {}})),
     'this file is a plain pickle (pickle.dump), not torch.save'),
    ('empty.pth', lambda p: _write(p, b''), 'cannot be read: the file is empty'),
    ('half.pth', lambda p: (torch.save({'w': torch.ones(100)}, p),
                            _write(p, p.read_bytes()[:200]))[1],
     'cannot be read (PytorchStreamReader failed reading zip archive'),
    ('foreign.pth', lambda p: torch.save({'state_dict': {}, 'x': fractions.Fraction(1)}, p),
     f'{REFUSED} (fractions.Fraction): loading them could run code. Only if you trust where '
     'the file comes from, extract its tensors'),
])
def test_unreadable_files_say_what_they_are(tmp_path, name, make, expected):
    path = tmp_path / name
    make(path)
    with trusted_checkpoint_loading(), pytest.raises(CheckpointError) as err:
        _load_checkpoint(str(path))
    message = str(err.value)
    assert message.startswith(f'checkpoint {path} ') and expected in message
    if 'does not unpickle' not in message:  # not pickled objects: never suggest unpickling
        assert 'weights_only' not in message


# -- every entry point, end to end -----------------------------------------------------------
# (the tools run in this process: a crafted pickle that ran code would create the marker here
# just as in a tool's own process)

GENUINE = ('schedule.val_interval=1',)  # 2 iterations, a checkpoint each


@pytest.mark.slow
def test_no_crafted_checkpoint_runs_code_at_any_entry_point(
        trained_run, tiny_overrides, tmp_path, tool_main, fails):
    from domino_seg.apis import run
    base = tiny_overrides + list(GENUINE)
    genuine_dir, _ = trained_run(*GENUINE)
    marker = tmp_path / 'code_ran'
    evil = getattr_attack(tmp_path / 'evil.pth', marker)

    # resume=true picks the newest checkpoint of the newest run: a copy of the run, plus evil
    shutil.copytree(genuine_dir, tmp_path / 'work_dirs' / 'resumed' / 'run')
    shutil.copy(evil, tmp_path / 'work_dirs' / 'resumed' / 'run' / 'iter_3.pth')
    recorded = tmp_path / 'work_dirs' / 'resumed' / 'run' / 'config.yaml'  # the same experiment
    recorded.write_text(recorded.read_text().replace('exp_name: synthetic', 'exp_name: resumed'))
    (recorded.parent / 'metrics.json').unlink()  # its final evaluation is due: iter_3 is loaded
    # compare_checkpoint needs the config.yaml of the run that wrote it
    (tmp_path / 'other_run').mkdir()
    shutil.copy(genuine_dir / 'config.yaml', tmp_path / 'other_run')
    shutil.copy(evil, tmp_path / 'other_run' / 'iter_2.pth')
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint\n')
    weights = tmp_path / 'weights.pth'
    with trusted_checkpoint_loading():
        torch.save({'state_dict': _load_checkpoint(str(genuine_dir / 'iter_1.pth'))
                    ['state_dict']}, weights)

    def train_resuming(path, work_dir):
        """``train(resume=<path>)``: run.train, as tools/train.py calls it."""
        cfg = domino_seg.compose(base + [f'work_dir={work_dir}'])
        cfg.resume = str(path)
        return fails(lambda: run.train(cfg))

    def tool(name, overrides):
        result = tool_main(name, base + overrides, tmp_path)
        assert result.returncode == 2 and 'Traceback' not in result.stderr, \
            (name, overrides, result.stderr[-3000:])
        return result.stderr

    cases = {
        'checkpoint=': (lambda: tool('test.py', [f'checkpoint={evil}']), evil),
        'load_from=': (lambda: tool('train.py', [f'load_from={evil}', 'exp_name=load_from']),
                       evil),
        'resume=true': (lambda: tool('train.py', ['exp_name=resumed', 'resume=true']),
                        tmp_path / 'work_dirs' / 'resumed' / 'run' / 'iter_3.pth'),
        'resume=<file>': (lambda: train_resuming(evil, tmp_path / 'r'), evil),
        'compare_checkpoint=': (lambda: tool('test.py', [
            f'checkpoint={genuine_dir / "iter_2.pth"}', 'visualize=1',
            f'compare_checkpoint={tmp_path / "other_run" / "iter_2.pth"}']),
            tmp_path / 'other_run' / 'iter_2.pth'),
        'model.pretrained=': (lambda: tool('train.py', [f'model.pretrained={evil}',
                                                        'exp_name=pretrained']), evil),
    }
    for entry, (run_entry, path) in cases.items():
        err = run_entry()
        assert f'\nerror: checkpoint {path} {REFUSED} (' in err, (entry, err[-3000:])
        assert not marker.exists(), entry

    # not a checkpoint at all, and a resume from weights alone
    assert (f'\nerror: checkpoint {text} is not a PyTorch checkpoint: torch.save writes a zip '
            'archive, and this file is text.') in tool('test.py', [f'checkpoint={text}'])
    assert (f'\nerror: checkpoint {weights} holds no training state to resume (meta.iter, '
            f'message_hub): tools/train.py did not write it. To start a new run from its '
            f'weights, pass load_from={weights} instead of resume.') in \
        train_resuming(weights, tmp_path / 'w')


@pytest.mark.slow
def test_resume_never_executes_meta_config_and_genuine_runs_resume(
        trained_run, tiny_overrides, tmp_path, tool_main):
    run_dir = shutil.copytree(trained_run(*GENUINE)[0],
                              tmp_path / 'work_dirs' / 'synthetic' / 'run')
    (run_dir / 'iter_2.pth').unlink()
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_1.pth'))
    marker = tmp_path / 'code_ran'
    with trusted_checkpoint_loading():
        checkpoint = _load_checkpoint(str(run_dir / 'iter_1.pth'))
    checkpoint['meta']['config'] = touch(marker) + '\ngpu_ids = [0]\n'
    torch.save(checkpoint, run_dir / 'iter_1.pth')

    resumed = tool_main('train.py', tiny_overrides + list(GENUINE) + ['resume=true'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not marker.exists()
    assert 'resumed epoch: 0, iter: 1' in resumed.stdout + resumed.stderr
    assert (run_dir / 'iter_2.pth').exists()
    with trusted_checkpoint_loading():
        assert _load_checkpoint(str(run_dir / 'iter_2.pth'))['meta']['iter'] == 2
