"""A NaN training loss never reaches the weights: stop keeps the last good checkpoint, skip
leaves the step out."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import _load_checkpoint
from mmseg.models.losses import CrossEntropyLoss

import domino_seg
from domino_seg.apis import run
from domino_seg.compat import trusted_checkpoint_loading


@pytest.fixture
def nan_at_iteration_2(monkeypatch):
    forward, calls = CrossEntropyLoss.forward, []

    def loss(self, *args, **kwargs):
        calls.append(1)
        value = forward(self, *args, **kwargs)
        return value * float('nan') if len(calls) == 2 else value

    monkeypatch.setattr(CrossEntropyLoss, 'forward', loss)


def compose(tiny_overrides, tmp_path, *extra):
    return domino_seg.compose(tiny_overrides + [
        'schedule.max_iters=3', 'data.eval_conditions=[cityscapes,fog]',
        f'work_dir={tmp_path / "run"}', *extra])


def test_stop_names_the_iteration_and_keeps_the_last_good_checkpoint(
        tiny_overrides, tmp_path, capsys, nan_at_iteration_2):
    cfg = compose(tiny_overrides, tmp_path, 'schedule.val_interval=1')
    with pytest.raises(SystemExit) as exit:
        run.run_cli(lambda: run.train(cfg))
    err = capsys.readouterr().err
    assert exit.value.code == 2 and 'Traceback' not in err
    assert 'the training loss is nan at iteration 2' in err
    assert f'The last good checkpoint is {tmp_path}/run/iter_1.pth' in err
    assert 'nan_policy=skip' in err
    assert sorted(p.name for p in (tmp_path / 'run').glob('*.pth')) == ['iter_1.pth']
    assert (tmp_path / 'run' / 'last_checkpoint').read_text() == str(tmp_path / 'run/iter_1.pth')


@pytest.mark.slow
def test_skip_leaves_the_step_out(tiny_overrides, tmp_path, monkeypatch, nan_at_iteration_2):
    step, steps = OptimWrapper.step, []
    monkeypatch.setattr(OptimWrapper, 'step',
                        lambda self, **kwargs: steps.append(1) or step(self, **kwargs))
    run.train(compose(tiny_overrides, tmp_path, 'schedule.val_interval=3', 'nan_policy=skip'))
    assert len(steps) == 2  # iterations 1 and 3
    with trusted_checkpoint_loading():
        weights = _load_checkpoint(str(tmp_path / 'run' / 'iter_3.pth'))['state_dict']
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    log = next((tmp_path / 'run').glob('*/*.log')).read_text()
    assert 'non-finite loss (nan) at iteration 2: step skipped' in log
