"""Turn the norm layers of an mmseg model (or any module) into Domino layers, in place."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn

from .domino_norm import NORM_TYPES, DominoNorm, domino_generator

SCOPE_PARTS = {
    'head': ('decode_head', 'auxiliary_head'),
    'backbone': ('backbone', 'neck'),
    'full': ('backbone', 'neck', 'decode_head', 'auxiliary_head'),
}


def convert_to_domino(model_or_module: nn.Module, embed_dim: int, scope: str = 'head',
                      mlp: Optional[dict] = None,
                      generator: Optional[torch.Generator] = None) -> int:
    """Wrap every BN/SyncBN/GN/LN in ``scope`` into a :class:`DominoNorm`; return how many.

    ``scope`` picks parts of a segmentor: ``'head'`` = decode_head + auxiliary_head,
    ``'backbone'`` = backbone + neck, ``'full'`` = both. A module that is not a segmentor (a
    decode head, a backbone, a ViT block: it has neither ``backbone`` nor ``decode_head``) is
    converted whole. Wrapped norms keep their parameters, buffers and ``requires_grad``, and the
    converted model computes what it did before (up to float32 rounding where BN is folded or
    fused with the modulation, see :mod:`domino_seg.models.domino_norm`). The MLPs are
    initialised, layer after layer, from ``generator`` (default:
    :func:`~domino_seg.models.domino_norm.domino_generator`), so converting draws nothing from
    torch's global generator.

    ``init_weights`` of mmseg backbones walks the modules (MiT re-initialises every
    ``nn.Linear``, ResNet's ``zero_init_residual`` zeroes ``norm3``): convert after
    ``init_weights``, or run it inside :func:`unconverted`, as ``DomainAwareEncoderDecoder``
    does.
    """
    if scope not in SCOPE_PARTS:
        raise ValueError(f'scope must be one of {sorted(SCOPE_PARTS)}, got {scope!r}')
    if hasattr(model_or_module, 'backbone') or hasattr(model_or_module, 'decode_head'):
        parts = [getattr(model_or_module, name, None) for name in SCOPE_PARTS[scope]]
    else:
        parts = [model_or_module]
    generator = domino_generator() if generator is None else generator
    num_converted = sum(_wrap_norms(part, embed_dim, mlp, generator)
                        for part in parts if part is not None)
    if num_converted == 0:
        raise ValueError(f'convert_to_domino found no BatchNorm/SyncBatchNorm/GroupNorm/LayerNorm '
                         f'in scope {scope!r} of {type(model_or_module).__name__}; nothing to '
                         'condition on the domain (already converted, or a norm-free part?)')
    return num_converted


def _wrap_norms(module: nn.Module, embed_dim: int, mlp: Optional[dict],
                generator: torch.Generator) -> int:
    num_converted = 0
    for name, child in list(module.named_children()):
        if isinstance(child, NORM_TYPES):
            setattr(module, name, DominoNorm(child, embed_dim, mlp, generator))
            num_converted += 1
        elif not isinstance(child, DominoNorm):
            num_converted += _wrap_norms(child, embed_dim, mlp, generator)
    return num_converted


@contextmanager
def unconverted(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with each Domino layer replaced by the norm it wraps, for the ``with`` block:
    code that walks the modules (``init_weights``) meets the unconverted model's modules, in
    its order, and so initialises them as it would the unconverted model, drawing the same
    random numbers."""
    converted = [(parent, name, child) for parent in model.modules()
                 for name, child in parent.named_children() if isinstance(child, DominoNorm)]
    for parent, name, child in converted:
        setattr(parent, name, child.wrapped)
    try:
        yield model
    finally:
        for parent, name, child in converted:
            setattr(parent, name, child)
