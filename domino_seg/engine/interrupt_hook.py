"""Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption) stops training at the end of the
current iteration with a checkpoint of it, so no finished iteration is lost and the run
resumes exactly; a second signal stops at once."""
from __future__ import annotations

import contextlib
import os.path as osp
import signal
import threading
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmseg.registry import HOOKS

from domino_seg.errors import DominoSegError
from domino_seg.run_names import checkpoint_iter

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(DominoSegError):
    """Training stopped on a signal; ``checkpoint`` holds every finished iteration."""

    def __init__(self, signum: int, iteration: int, checkpoint: Optional[str]) -> None:
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        super().__init__(f'training stopped by {signal.Signals(signum).name} at iteration '
                         f'{iteration}')


class _StopRequest:
    """The signal received, if any (set by the handler, read by the hook)."""
    signum: Optional[int] = None


@contextlib.contextmanager
def stop_on_signals():
    """While training: the first SIGINT/SIGTERM only asks to stop (the hook does it at the end
    of the iteration), the second one stops at once (the handlers before it are back). The
    handlers are installed before the DataLoader workers fork, so a Ctrl-C that reaches the
    whole process group does not kill the workers the last iteration still needs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    on_child_exit = signal.getsignal(signal.SIGCHLD)

    def ask_to_stop(signum, frame):
        _StopRequest.signum = signum
        for other, handler in previous.items():
            signal.signal(other, handler)
        workers = signal.getsignal(signal.SIGCHLD)  # PyTorch's, once DataLoader workers run
        if callable(workers):
            signal.signal(signal.SIGCHLD, _quiet(workers))
        print(f'\n{signal.Signals(signum).name}: stopping after this iteration and saving a '
              'checkpoint; a second Ctrl-C (or signal) stops at once without saving.', flush=True)

    _StopRequest.signum = None
    for signum in SIGNALS:
        signal.signal(signum, ask_to_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.signal(signal.SIGCHLD, on_child_exit)
        _StopRequest.signum = None


def _quiet(handler):
    """PyTorch's SIGCHLD handler raises when a DataLoader worker dies, at whatever line the
    main process is on; PyTorch lets SIGTERM end its workers, so a SIGTERM sent to a whole job
    would fail the iteration in progress. After a stop request a dead worker is only noticed
    when the next batch is fetched: at an iteration's end, where a checkpoint can be written."""
    def handler_after_stop(signum, frame):
        try:
            handler(signum, frame)
        except RuntimeError:
            pass
    return handler_after_stop


def stop_requested() -> Optional[int]:
    """The signal that asked this process (or, in a distributed run, any process) to stop."""
    signum = _StopRequest.signum or 0
    if get_world_size() > 1:  # every process must stop at the same iteration
        flag = torch.tensor([signum])
        all_reduce(flag, op='max')
        signum = int(flag.item())
    return signum or None


@HOOKS.register_module()
class InterruptHook(Hook):
    """Turns a stop request into a checkpoint of the last finished iteration (unless the
    CheckpointHook just wrote it: this hook runs after it) and :class:`TrainingInterrupted`.
    A request during an evaluation inside training stops once that evaluation is over if the
    iteration it scores has no checkpoint yet (its random states are restored then).

    ``finished`` is the number of finished iterations while the training state is that of an
    iteration's end (between two steps, outside an evaluation), else None: what a checkpoint
    may be written from when the signal has also ended a DataLoader worker and the next batch
    fails (:func:`stopped_by_error`)."""

    priority = 'LOWEST'
    _training = False
    finished = None

    def before_train(self, runner) -> None:
        self._training, self.finished = True, runner.iter

    def after_train(self, runner) -> None:
        self._training = False

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.finished = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        signum = stop_requested()
        if signum:
            raise TrainingInterrupted(signum, runner.iter + 1,
                                      save_unless_saved(runner, runner.iter + 1))
        self.finished = runner.iter + 1

    def before_val(self, runner) -> None:
        self.finished = None

    def after_val(self, runner) -> None:
        self.finished = runner.iter if self._training else None

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        signum = self._training and stop_requested()
        if not signum:
            return  # (or an evaluation outside training: a resumed run's last one)
        saved = _saved_at(runner, runner.iter)
        if saved:
            raise TrainingInterrupted(signum, runner.iter, saved)
        runner.train_loop.stop_training = True  # then train() saves (see finish_stopped)


def _saved_at(runner, iteration: int) -> Optional[str]:
    """The run's last checkpoint if it holds ``iteration``, else None."""
    path = runner._last_checkpoint()
    return path if path and checkpoint_iter(path) == iteration else None


def save_unless_saved(runner, iteration: int) -> str:
    """A checkpoint holding ``iteration`` finished iterations, written (atomically, with the
    CheckpointHook's optimizer setting) unless the last checkpoint already is one."""
    saved = _saved_at(runner, iteration)
    if saved:
        return saved
    hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
    full = getattr(hook, 'save_optimizer', True)
    runner.save_checkpoint(runner.work_dir, f'iter_{iteration}.pth', save_optimizer=full,
                           save_param_scheduler=getattr(hook, 'save_param_scheduler', full),
                           meta=dict(iter=iteration), by_epoch=False)
    return osp.join(runner.work_dir, f'iter_{iteration}.pth')


def finish_stopped(runner) -> None:
    """After ``runner.train()`` returned: if a stop request ended it early, save and raise
    :class:`TrainingInterrupted` as the hook would have."""
    signum = stop_requested()
    if signum and runner.iter < runner.max_iters:
        raise TrainingInterrupted(signum, runner.iter, save_unless_saved(runner, runner.iter))


def stopped_by_error(runner) -> Optional[TrainingInterrupted]:
    """After ``runner.train()`` failed: None unless this process was asked to stop, which is
    then the likely cause (a SIGTERM sent to a whole job also ends the DataLoader workers, which
    PyTorch lets SIGTERM kill). The last finished iteration is saved if the failure came
    between two steps, else the last checkpoint is what is left."""
    signum = _StopRequest.signum
    if not signum:
        return None
    hook = next((h for h in runner.hooks if isinstance(h, InterruptHook)), None)
    if hook is not None and hook.finished is not None:
        return TrainingInterrupted(signum, hook.finished, save_unless_saved(runner,
                                                                            hook.finished))
    last = runner._last_checkpoint()
    return TrainingInterrupted(signum, last and checkpoint_iter(last) or 0, last)
