"""MixStyle (Zhou et al. 2021, "Domain Generalization with MixStyle"): the language-free
style-perturbation baseline (``domino=style``).

At training time, with probability ``p``, each sample's per-channel feature statistics (mean,
standard deviation over the spatial positions) are replaced by a mix with those of another
sample of the batch, ``lambda ~ Beta(alpha, alpha)``::

    y = (x - mu) / sigma * (lambda * sigma + (1 - lambda) * sigma[perm])
        + lambda * mu + (1 - lambda) * mu[perm]

(statistics detached from the graph, as in the paper). In eval mode it is the identity. Here it
follows every norm layer of the backbone: it no more needs a condition label than a domain
embedding, which makes it the control that perturbs the same statistics as Domino modulates,
without any language.

Its draws come from a NumPy generator of its own derived from the run's seed
(:func:`style_generator`), never from the global ones: a style run and its baseline built after
the same ``seed`` start from the same weights and draw the same batches and dropout.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from .domino_norm import NORM_TYPES

# tells the style generator apart from the global ones and Domino's (DOMINO_STREAM)
STYLE_STREAM = 0x57E1E


def style_generator(seed: Optional[int] = None) -> np.random.Generator:
    """The generator of MixStyle's draws, derived from ``seed`` (default: the run's seed,
    ``torch.initial_seed()``, which mmengine's Runner sets right before building the model)."""
    seed = torch.initial_seed() if seed is None else seed
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STYLE_STREAM, )))


@MODELS.register_module()
class MixStyle(nn.Module):
    """Mixes the feature statistics of a batch's samples in training; the identity in eval.

    Args:
        p: probability that a forward pass mixes (drawn once per call).
        alpha: the Beta(alpha, alpha) distribution of the mixing weights.
        channel_last: features are (B, ..., C) (LayerNorm tokens) rather than (B, C, ...).
        eps: added to the variance.
        generator: where the draws come from (default: :func:`style_generator`).
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, channel_last: bool = False,
                 eps: float = 1e-6, generator: Optional[np.random.Generator] = None):
        super().__init__()
        if not 0 <= p <= 1 or not alpha > 0:
            raise ValueError(f'MixStyle needs 0 <= p <= 1 and alpha > 0, got p={p}, '
                             f'alpha={alpha}')
        self.p, self.alpha, self.channel_last, self.eps = p, alpha, channel_last, eps
        self.generator = style_generator() if generator is None else generator

    def forward(self, x: Tensor) -> Tensor:
        dims = tuple(range(1, x.dim() - 1)) if self.channel_last else tuple(range(2, x.dim()))
        positions = int(np.prod([x.shape[d] for d in dims])) if dims else 0
        if not self.training or positions < 2 or self.generator.random() >= self.p:
            return x
        batch = x.shape[0]
        lam = self.generator.beta(self.alpha, self.alpha, size=batch)
        perm = torch.from_numpy(self.generator.permutation(batch)).to(x.device)
        features = x.float()  # statistics in float32 under mixed precision too
        mu = features.mean(dims, keepdim=True).detach()
        sigma = (features.var(dims, keepdim=True) + self.eps).sqrt().detach()
        lam = torch.as_tensor(lam, dtype=torch.float32, device=x.device).view(
            -1, *[1] * (x.dim() - 1))
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
        return ((features - mu) / sigma * sigma_mix + mu_mix).to(x.dtype)

    def extra_repr(self) -> str:
        return f'p={self.p}, alpha={self.alpha}'


def style_generators(model: nn.Module) -> list[np.random.Generator]:
    """The generators of ``model``'s MixStyle modules, each once, in module order (what exact
    resume saves and restores, :class:`~domino_seg.engine.rng_state_hook.RngStateHook`)."""
    found = {id(m.generator): m.generator for m in model.modules() if isinstance(m, MixStyle)}
    return list(found.values())


def _mix_after(norm: nn.Module, args: tuple, output: Tensor) -> Tensor:
    """Forward hook of a norm layer: its output through its MixStyle child."""
    return norm.style(output)


@MODELS.register_module()
def StyleMixedBackbone(backbone: dict, p: float, alpha: float) -> nn.Module:  # noqa: N802
    """Build ``backbone`` with a :class:`MixStyle` after each of its norm layers.

    Each MixStyle is a child ``style`` of its norm, run by a forward hook: it follows the
    norm's ``train()``/``eval()``, holds no parameter or buffer, and leaves every state-dict
    key as it is (pretrained weights and baseline checkpoints load unchanged). All of them share
    one :func:`style_generator`, created here without drawing from the global generators.
    Returns the backbone itself.
    """
    module = MODELS.build(backbone)
    generator = style_generator()
    norms = [m for m in module.modules() if isinstance(m, NORM_TYPES)]
    if not norms:
        raise ValueError(f'domino=style found no norm layer in the backbone '
                         f'{type(module).__name__} to put MixStyle after')
    for norm in norms:
        norm.add_module('style', MixStyle(p, alpha, isinstance(norm, nn.LayerNorm),
                                          generator=generator))
        norm.register_forward_hook(_mix_after)
    return module
