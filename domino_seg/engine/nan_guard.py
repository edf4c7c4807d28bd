"""Non-finite loss guard: checked before the backward pass and the optimizer step, so a NaN or
inf loss never reaches the weights."""
from __future__ import annotations

import logging

import torch
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

from domino_seg.errors import ConfigError, TrainingError

NAN_POLICIES = ('stop', 'skip')


class NonFiniteGuard:
    """Looks at the loss before an optim wrapper's backward pass and step: when it is NaN or
    inf (on any rank: all ranks decide together, so DDP stays in step), ``nan_policy='stop'``
    raises a TrainingError naming the iteration and the last checkpoint (no checkpoint of the
    bad step is written), ``'skip'`` leaves the weights and optimizer state untouched."""

    def __init__(self, *args, nan_policy: str = 'stop', **kwargs) -> None:
        if nan_policy not in NAN_POLICIES:
            raise ConfigError(f'nan_policy={nan_policy!r} is not one of {NAN_POLICIES}.')
        super().__init__(*args, **kwargs)
        self.nan_policy = nan_policy
        self.skipped = 0

    def update_params(self, loss: torch.Tensor, step_kwargs=None, zero_kwargs=None) -> None:
        finite = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
        all_reduce(finite, op='min')
        if finite.item():
            return super().update_params(loss, step_kwargs, zero_kwargs)
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter', 0) + 1
        if self.nan_policy == 'stop':
            raise TrainingError(
                f'the training loss is {loss.item()} at iteration {iteration}; training stopped '
                'without saving these weights. The last good checkpoint is '
                f'{hub.get_info("last_ckpt") or "none yet"} (resume=true continues from it). '
                'Lower model.optimizer.lr or lengthen schedule.warmup_iters, check the data of '
                'this iteration, or set nan_policy=skip to skip such steps.')
        self.skipped += 1
        print_log(f'non-finite loss ({loss.item()}) at iteration {iteration}: step skipped '
                  f'(nan_policy=skip; {self.skipped} skipped so far).', logger='current',
                  level=logging.WARNING)


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardOptimWrapper(NonFiniteGuard, OptimWrapper):
    """mmengine's OptimWrapper with the NonFiniteGuard (float32 training)."""


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardAmpOptimWrapper(NonFiniteGuard, AmpOptimWrapper):
    """mmengine's AmpOptimWrapper (``amp=bf16|fp16``) with the NonFiniteGuard. The guard reads
    the loss, which autocast computes in float32; fp16 gradient overflows are the GradScaler's
    (it skips that step and lowers the scale), so they never stop a run."""
