"""A progress bar over evaluation batches (validation during training, and testing)."""
from __future__ import annotations

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from tqdm import tqdm

from domino_seg.console import progress_bar_enabled


@HOOKS.register_module()
class EvalProgressHook(Hook):
    """tqdm bar over the batches of each validation and test run (on stderr, main process,
    a terminal only): evaluating every condition of a real benchmark takes minutes between
    log lines."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._bar = None

    def _start(self, total: int, desc: str) -> None:
        if is_main_process() and progress_bar_enabled():
            self._bar = tqdm(total=total, desc=desc, unit='batch', leave=False)

    def _step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if self._bar.n >= self._bar.total:  # done before the metrics table is printed
                self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_val_epoch(self, runner) -> None:
        self._start(len(runner.val_dataloader), 'evaluate')

    def before_test_epoch(self, runner) -> None:
        self._start(len(runner.test_dataloader), 'test')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._close()  # (an empty or interrupted loop)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._close()
