"""mmengine's LoggerHook, which also logs the last training iteration."""
from __future__ import annotations

from mmengine.hooks import LoggerHook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FinalIterLoggerHook(LoggerHook):
    """Logs every ``interval`` iterations and the last one: a run shorter than
    ``log_interval`` (or not a multiple of it) still shows its loss and iteration time."""

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        last = batch_idx + 1 == runner.max_iters
        if last and not self.every_n_inner_iters(batch_idx, self.interval) and \
                not self.end_of_epoch(runner.train_dataloader, batch_idx):
            tag, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')
            runner.logger.info(log_str)
            runner.visualizer.add_scalars(tag, step=runner.iter + 1, file_path=self.json_log_path)
