"""The run's record in its work dir: ``config.yaml`` (the resolved config) and
``mmengine_config.py`` (the mmengine config it runs) once the checkpoint has loaded and fits
the model, and ``metrics.json`` after every evaluation, so the work dir
always holds the numbers of the latest evaluated checkpoint (with ``evaluator.per_image=true``,
also ``per_image.npz``: each image's per-class areas, written just before metrics.json)."""
from __future__ import annotations

import io
import json
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from omegaconf import OmegaConf

from domino_seg.evaluation.metrics import PER_IMAGE_FILE
from domino_seg.io import (
    MMENGINE_CONFIG,
    RECORDED_CONFIG,
    atomic_write_bytes,
    atomic_write_json,
    save_in_run,
)


@HOOKS.register_module()
class MetricsJsonHook(Hook):
    """Writes ``config`` to ``config.yaml`` before training or testing starts (after the
    checkpoint loaded: a resume refused for not fitting keeps the run's record), and collects
    the evaluation report into
    ``{"conditions", "mean_unseen_mIoU", "checkpoint", ["iter",] "model", "inference",
    "config", **extra}``: that of the first metric with a ``report`` (a dict after
    ``evaluate``, as ConditionIoUMetric's); ``model.params``, and ``inference.ms_per_image``:
    the model's time per image in that evaluation, on ``inference.device``."""

    priority = 'LOW'

    def __init__(self, filename: str = 'metrics.json', config: Optional[dict] = None,
                 extra: Optional[dict] = None) -> None:
        self.filename = filename
        self.config = config or {}
        self.extra = extra or {}

    def before_train(self, runner) -> None:
        self._record_config(runner)

    def before_test(self, runner) -> None:
        self._record_config(runner)

    def _record_config(self, runner) -> None:
        """``config.yaml`` (what the user composed) and ``mmengine_config.py`` (what mmengine
        ran: pipelines, evaluator, hooks, loops; ``mmengine.Config.fromfile`` reloads it)."""
        if is_main_process():
            yaml = OmegaConf.to_yaml(json.loads(json.dumps(self.config)))
            for name, text in ((RECORDED_CONFIG, yaml), (MMENGINE_CONFIG, runner.cfg.pretty_text)):
                path = osp.join(runner.work_dir, name)
                save_in_run(path, lambda: atomic_write_bytes(path, text.encode()),
                            'run the same command again.')

    # the operating cost next to the scores: parameters, and the model's time per image in
    # this evaluation (mmengine's IterTimerHook: iteration time minus data time)
    def before_val_epoch(self, runner) -> None:
        self._timing = [0.0, 0]

    def before_test_epoch(self, runner) -> None:
        self._timing = [0.0, 0]

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._time(runner, 'val', data_batch)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._time(runner, 'test', data_batch)

    def _time(self, runner, mode: str, data_batch) -> None:
        hub = runner.message_hub
        if f'{mode}/time' in hub.log_scalars and data_batch:
            data_time = hub.log_scalars.get(f'{mode}/data_time')
            self._timing[0] += hub.get_scalar(f'{mode}/time').current() - \
                (data_time.current() if data_time is not None else 0.0)
            self._timing[1] += len(data_batch['inputs'])

    def _cost(self, runner) -> dict:
        import torch
        from mmengine.model import is_model_wrapper
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        device = next(model.parameters()).device
        seconds, images = getattr(self, '_timing', (0.0, 0))
        return dict(
            model=dict(params=sum(p.numel() for p in model.parameters())),
            inference=dict(ms_per_image=1e3 * seconds / images if images else None,
                           images=images, batch_size=runner.cfg.get(
                               'test_dataloader', {}).get('batch_size'),
                           device=torch.cuda.get_device_name(device)
                           if device.type == 'cuda' else 'cpu'))

    def after_val_epoch(self, runner, metrics=None) -> None:
        # the CheckpointHook saved this iteration's checkpoint just before validation
        ckpt = osp.join(runner.work_dir, f'iter_{runner.iter}.pth')
        self._write(runner, runner.val_evaluator, ckpt if osp.exists(ckpt) else None,
                    iter=runner.iter)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, runner.test_evaluator, runner.cfg.get('load_from'))

    def _write(self, runner, evaluator, checkpoint: Optional[str], **fields) -> None:
        if not is_main_process() or _swapped(runner):
            return
        scored = [m for m in evaluator.metrics if getattr(m, 'report', None) is not None]
        if not scored:  # a prediction-only test (evaluate=false) scores nothing
            return
        fix = (f'continue with resume={runner.work_dir} (it evaluates again); the checkpoints '
               'are saved.' if fields else 'run tools/test.py again.')
        areas = getattr(scored[0], 'image_areas', None)
        if areas is not None:  # first: a metrics.json is never newer than its per-image record
            npz = osp.join(runner.work_dir, PER_IMAGE_FILE)
            save_in_run(npz, lambda: atomic_write_bytes(npz, _npz_bytes(areas)), fix)
        payload = dict(scored[0].report, checkpoint=checkpoint, **fields, **self._cost(runner),
                       config=self.config, **self.extra)
        path = osp.join(runner.work_dir, self.filename)
        save_in_run(path, lambda: atomic_write_json(path, payload), fix)
        runner.logger.info(f'metrics written to {path}')


def _npz_bytes(arrays: dict) -> bytes:
    import numpy as np
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _swapped(runner) -> bool:
    """Whether the model evaluates with a swapped domain embedding (``tools/test.py swap=``):
    those scores are not the checkpoint's, so ``metrics.json`` keeps its own."""
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return getattr(model.data_preprocessor, 'swapped', None) is not None
