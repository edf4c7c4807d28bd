"""What the foundation-model backbones share: pretrained loading, layer ids, ViT inputs."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from domino_seg.errors import ConfigError

from ..domain_context import checkpoint_with_domain_embeddings
from ..pretrained import StateDict, load_pretrained


class PretrainedBackbone(BaseModule):
    """A backbone that loads ``init_cfg=dict(type='Pretrained', checkpoint=FILE)`` through
    :func:`load_pretrained` with its own key mapping (``convert_weights``), and numbers its
    parameters by depth (``layer_id``) for layer-wise learning-rate decay.

    Without pretrained weights the library's own initialisation (open_clip, timm) is kept.
    """

    #: number of blocks (ViT) or stages (ResNet); ``layer_id`` is in ``0..num_layers``
    num_layers: int

    def init_weights(self) -> None:
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'], self.convert_weights)
        elif self.init_cfg:
            super().init_weights()
        self._is_init = True

    def convert_weights(self, state_dict: StateDict) -> StateDict:
        """The weights file's tensors under this module's keys, at this module's shapes."""
        return state_dict

    def layer_id(self, name: str) -> int:
        """0 for the input embedding or stem, ``i + 1`` for block or stage ``i`` and
        ``num_layers`` for the rest, for the parameter ``name`` of this module."""
        raise NotImplementedError


def check_out_indices(out_indices: Sequence[int], depth: int, what: str) -> Tuple[int, ...]:
    out_indices = tuple(int(i) for i in out_indices)
    if not out_indices or list(out_indices) != sorted(set(out_indices)) or \
            not 0 <= out_indices[0] <= out_indices[-1] < depth:
        raise ConfigError(f'out_indices={list(out_indices)} of {what}: give increasing indices '
                          f'of its {depth} blocks (0..{depth - 1}).')
    return out_indices


def patch_grid(size: Sequence[int], patch: Sequence[int]) -> Tuple[int, int]:
    """The token grid of an image of ``size`` (h, w): the nearest whole number of patches
    (at least one) per side."""
    return tuple(max(1, math.floor(s / p + 0.5)) for s, p in zip(size, patch))


def resize_to_patch_grid(x: Tensor, patch: Sequence[int]) -> Tensor:
    """Resize images whose size is not a multiple of the patch size to the nearest one.

    Resizing (by at most half a patch per side) rather than padding keeps the token grid
    exactly on the image, so the heads' logits, resized to the image, stay aligned.
    """
    grid = patch_grid(x.shape[-2:], patch)
    size = tuple(g * p for g, p in zip(grid, patch))
    if size == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


class _Checkpointed:
    """Mixed into a block's class by :func:`checkpoint_blocks`."""

    def forward(self, *args, **kwargs):
        if not (self.training and torch.is_grad_enabled()):
            return super().forward(*args, **kwargs)
        return checkpoint_with_domain_embeddings(super().forward, *args, **kwargs)


_CHECKPOINTED: dict = {}


def checkpoint_blocks(blocks: nn.ModuleList) -> None:
    """Gradient checkpointing of each of ``blocks`` in training (activations recomputed in the
    backward pass: less memory, about one more forward). Unlike the libraries' own switches
    (open_clip, timm), the recomputation sees the batch's domain embeddings, so Domino layers
    inside the blocks work. The blocks keep their parameters and state-dict keys."""
    for block in blocks:
        cls = type(block)
        if not issubclass(cls, _Checkpointed):
            if cls not in _CHECKPOINTED:
                _CHECKPOINTED[cls] = type(f'Checkpointed{cls.__name__}', (_Checkpointed, cls), {})
            block.__class__ = _CHECKPOINTED[cls]
