"""Fold a Domino model, for one fixed domain embedding, into the plain model it then computes.

For a fixed embedding ``e`` every Domino layer's modulation ``(d_gamma, d_beta)`` is a constant
per channel, and the layer (see :mod:`domino_seg.models.domino_norm`) returns::

    base * (1 + d_gamma) + d_beta - beta0 * d_gamma,   base = wrapped(x) = x_hat * w + b

    = x_hat * w * (1 + d_gamma) + b * (1 + d_gamma) + d_beta - b * d_gamma
    = x_hat * [w * (1 + d_gamma)] + [b + d_beta]

where ``x_hat`` is whatever the wrapped norm normalises with (batch or running statistics for
BN, group statistics for GN, token statistics for LN): the affine part never enters it. So the
layer *is* its wrapped norm with weight ``w * (1 + d_gamma)`` and bias ``b + d_beta``. A norm
without affine parameters (``affine=False`` / ``elementwise_affine=False``: ``w = 1``,
``b = 0``; the code's ``beta0`` is then None) gets new ones, ``1 + d_gamma`` and ``d_beta``;
LayerNorm's ``bias=False`` (``b = 0``) gets a bias ``d_beta``. Eval-mode BN, which the layer
evaluates as ``x * s * (1 + d_gamma) + t * (1 + d_gamma) + d_beta - b * d_gamma`` with
``s = w / sqrt(var + eps)`` and ``t = b - mean * s`` (``_running_affine``), is the same
expression expanded: ``(x - mean) / sqrt(var + eps) * w * (1 + d_gamma) + b + d_beta``.

:func:`fold_domino` returns a deep copy with every DominoNorm replaced by its folded wrapped
norm and the shared ``domain_encoder`` removed: a plain mmseg ``EncoderDecoder`` whose outputs
are the Domino model's for that embedding (up to float32 rounding; the fold itself is computed
in float64) at zero Domino cost, and whose state dict is the one an ``EncoderDecoder`` built
from the same config with ``domino=none`` has.
"""
from __future__ import annotations

import copy
from typing import Union

import numpy as np
import torch
import torch.nn as nn
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from domino_seg import compat  # noqa: F401  (must precede mmseg imports)

from .domino_norm import DominoNorm
from .segmentor import DomainAwareEncoderDecoder

# what DomainAwareEncoderDecoder adds to an EncoderDecoder's attributes
_DOMINO_ATTRIBUTES = ('domain_encoder', 'domino_scope', 'domain_embed_dim')


def has_domino(model: nn.Module) -> bool:
    """Whether ``model`` holds a Domino layer (a ``domino=none`` segmentor holds none)."""
    return any(isinstance(m, DominoNorm) for m in model.modules())


def fold_domino(model: nn.Module, embedding: Union[Tensor, np.ndarray, None]) -> nn.Module:
    """A plain copy of ``model`` computing what it computes for every sample's domain
    embedding equal to ``embedding`` (shape ``(D,)`` or ``(1, D)``).

    ``model`` is a :class:`DomainAwareEncoderDecoder` (its shared ``domain_encoder`` turns
    ``embedding`` into the code its Domino layers read; the copy is an ``EncoderDecoder``
    without ``domain_encoder``), or any module whose DominoNorms each own their whole MLP
    (``convert_to_domino``; ``embedding`` is then their input). ``model`` is left as it was.
    A model without Domino layers (``domino=none``) needs no embedding (pass None) and is
    copied as it is (a ``DomainAwareEncoderDecoder`` with ``scope='none'`` becomes an
    ``EncoderDecoder``).

    The copy is made by swapping the class of a deep copy rather than by building an
    ``EncoderDecoder`` from a config: it needs no config, and keeps everything the built model
    holds outside its state dict (data preprocessor, ``test_cfg``, non-persistent buffers,
    hooks) exactly as it was; ``DomainAwareEncoderDecoder`` only adds the attributes removed
    here and overrides the methods that open the embedding context.
    """
    if isinstance(model, DomainAwareEncoderDecoder) and \
            type(model) is not DomainAwareEncoderDecoder:
        raise TypeError(f'fold_domino knows DomainAwareEncoderDecoder, not its subclass '
                        f'{type(model).__name__}: what its extra methods do cannot be folded.')
    domino = has_domino(model)
    if domino and embedding is None:
        raise ValueError('this model has Domino layers: fold_domino needs the domain embedding '
                         'to fold them for')
    plain = copy.deepcopy(model)
    if domino:
        with torch.no_grad():
            code = _layer_input(model, _as_row(embedding, _embed_dim(model)))
            _replace_domino_layers(plain, code)
    if isinstance(plain, DomainAwareEncoderDecoder):
        for name in _DOMINO_ATTRIBUTES:
            if hasattr(plain, name):
                delattr(plain, name)
        plain.__class__ = EncoderDecoder
    return plain


def _embed_dim(model: nn.Module) -> int:
    if isinstance(model, DomainAwareEncoderDecoder):
        return model.domain_embed_dim
    dims = {m.embed_dim for m in model.modules() if isinstance(m, DominoNorm)}
    if len(dims) != 1:
        raise ValueError(f'the Domino layers of this model read embeddings of sizes '
                         f'{sorted(dims)}: one embedding cannot fold them all')
    return dims.pop()


def _as_row(embedding, embed_dim: int) -> Tensor:
    """The embedding as a float64 (1, D) tensor, checked."""
    row = torch.as_tensor(np.asarray(embedding) if not isinstance(embedding, Tensor)
                          else embedding.detach().cpu()).to(torch.float64)
    if row.dim() == 2 and row.shape[0] == 1:
        row = row[0]
    if row.shape != (embed_dim, ):
        raise ValueError(f'the domain embedding must have shape ({embed_dim},) (or '
                         f'(1, {embed_dim})) for this model, got {tuple(row.shape)}')
    if not torch.isfinite(row).all():
        raise ValueError('the domain embedding holds NaN/inf values')
    return row[None]


def _layer_input(model: nn.Module, row: Tensor) -> Tensor:
    """What the Domino layers read from ``domain_embedding_context`` for this embedding: the
    shared domain encoder's output (segmentor) or the embedding itself, in float64."""
    if isinstance(model, DomainAwareEncoderDecoder):
        return copy.deepcopy(model.domain_encoder).cpu().double()(row)
    return row


def _replace_domino_layers(module: nn.Module, code: Tensor) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, DominoNorm):
            setattr(module, name, fold_layer(child, code))
        else:
            _replace_domino_layers(child, code)


def fold_layer(layer: DominoNorm, code: Tensor) -> nn.Module:
    """``layer``'s wrapped norm (a copy) with weight ``w * (1 + d_gamma)`` and bias
    ``b + d_beta`` for the layer input ``code`` (1, embed_dim); see the module docstring."""
    modulation = copy.deepcopy(layer.mlp).cpu().double()(code.to(torch.float64))[0]
    d_scale, d_shift = modulation.chunk(2)
    norm = copy.deepcopy(layer.wrapped)
    reference = next((t for t in (*norm.parameters(), *norm.buffers())
                      if t.is_floating_point()), layer.mlp[-1].weight)
    weight, bias = norm.weight, norm.bias
    new_weight = 1 + d_scale if weight is None else weight.detach().double().cpu() * (1 + d_scale)
    new_bias = d_shift if bias is None else bias.detach().double().cpu() + d_shift

    def parameter(value: Tensor, old) -> nn.Parameter:
        requires_grad = True if old is None else old.requires_grad
        return nn.Parameter(value.to(device=reference.device, dtype=reference.dtype),
                            requires_grad=requires_grad)
    if weight is None:  # affine=False / elementwise_affine=False: the norm computes w=1, b=0
        _enable_affine(norm)
    norm.weight = parameter(new_weight, weight)
    norm.bias = parameter(new_bias, bias)
    return norm


def _enable_affine(norm: nn.Module) -> None:
    if isinstance(norm, (_BatchNorm, nn.GroupNorm)):
        norm.affine = True
    elif isinstance(norm, nn.LayerNorm):
        norm.elementwise_affine = True
