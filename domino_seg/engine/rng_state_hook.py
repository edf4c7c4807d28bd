"""Exact resume: checkpoints carry the random number generator states, and evaluation never
moves them, so a resumed run draws the same dropout masks and augmentations as an
uninterrupted one."""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from domino_seg.models.style import style_generators


def get_rng_state() -> dict:
    """The python, numpy and torch (CPU and, if in use, CUDA) generator states."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())  # resume may map checkpoints to the GPU
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


class _RestoreAfter:
    """Wraps the train loop's data iterator: mmengine replays the batches trained before the
    checkpoint (so workers see the same samples and draw the same augmentations); right after
    the last replayed batch, the generators get their checkpointed states."""

    def __init__(self, iterator, replayed: int, state: dict) -> None:
        self.iterator, self.remaining, self.state = iterator, replayed, state

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.iterator)
        self.remaining -= 1
        if self.remaining == 0:
            set_rng_state(self.state)
        return batch


@HOOKS.register_module()
class RngStateHook(Hook):
    """Saves the generator states in every checkpoint (``meta.rng_state``), restores them when
    training resumes, and runs each evaluation on a copy of them. The model's own generators
    (MixStyle's, ``domino=style``) are saved and restored too: they draw at every step."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._loaded = None
        self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['meta']['rng_state'] = get_rng_state()
        style = [g.bit_generator.state for g in style_generators(runner.model)]
        if style:
            checkpoint['meta']['rng_state']['style'] = style

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get('meta', {}).get('rng_state')

    def before_train(self, runner) -> None:
        if self._loaded is not None and runner.iter > 0:  # resumed, not load_from
            loop = runner.train_loop
            loop.dataloader_iterator = _RestoreAfter(loop.dataloader_iterator, runner.iter,
                                                     self._loaded)
            # the model draws nothing while mmengine replays the trained batches
            for generator, state in zip(style_generators(runner.model),
                                        self._loaded.get('style', [])):
                generator.bit_generator.state = state
        self._loaded = None

    def before_val(self, runner) -> None:
        self._before_val = get_rng_state()

    def after_val(self, runner) -> None:
        set_rng_state(self._before_val)
