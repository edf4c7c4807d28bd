"""Write ``metrics.json`` after every evaluation, so the work dir always holds the numbers of
the latest evaluated checkpoint."""
from __future__ import annotations

import os.path as osp
from typing import Optional

from domino_seg import compat  # noqa: F401  (before mmseg)
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from domino_seg.evaluation.metrics import ConditionIoUMetric
from domino_seg.io import atomic_write_json


@HOOKS.register_module()
class MetricsJsonHook(Hook):
    """Collects the :class:`ConditionIoUMetric` report and writes
    ``{"conditions", "mean_unseen_mIoU", "checkpoint", ["iter",] "config", **extra}``."""

    priority = 'LOW'

    def __init__(self, filename: str = 'metrics.json', config: Optional[dict] = None,
                 extra: Optional[dict] = None) -> None:
        self.filename = filename
        self.config = config or {}
        self.extra = extra or {}

    def after_val_epoch(self, runner, metrics=None) -> None:
        # the CheckpointHook saved this iteration's checkpoint just before validation
        ckpt = osp.join(runner.work_dir, f'iter_{runner.iter}.pth')
        self._write(runner, runner.val_evaluator, ckpt if osp.exists(ckpt) else None,
                    iter=runner.iter)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, runner.test_evaluator, runner.cfg.get('load_from'))

    def _write(self, runner, evaluator, checkpoint: Optional[str], **fields) -> None:
        if not is_main_process():
            return
        reports = [m.report for m in evaluator.metrics
                   if isinstance(m, ConditionIoUMetric) and m.report is not None]
        if not reports:  # a prediction-only test (evaluate=false) scores nothing
            return
        payload = dict(reports[0], checkpoint=checkpoint, **fields, config=self.config,
                       **self.extra)
        path = osp.join(runner.work_dir, self.filename)
        atomic_write_json(path, payload)
        runner.logger.info(f'metrics written to {path}')
