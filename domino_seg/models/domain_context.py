"""How per-sample domain embeddings reach Domino layers during a forward pass.

A ``ContextVar`` rather than a module attribute or a global: the value is local to the thread
(and asyncio task) that set it and is restored when the ``with`` block ends, so concurrent or
nested forward passes never see each other's embeddings and nothing leaks after an exception.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

from torch import Tensor
from torch.utils.checkpoint import checkpoint

_domain_embeddings: ContextVar[Optional[Tensor]] = ContextVar('domain_embeddings', default=None)


@contextmanager
def domain_embedding_context(embeddings: Tensor) -> Iterator[Tensor]:
    """Make ``embeddings`` (B, D), one row per sample of the batch, visible to Domino layers.

    D is the layers' ``embed_dim``: the raw domain embedding for layers that own their whole MLP,
    the output of the shared ``domain_encoder`` inside ``DomainAwareEncoderDecoder``.
    """
    if embeddings.dim() != 2:
        raise ValueError('domain embeddings must have shape (batch, embed_dim), '
                         f'got {tuple(embeddings.shape)}')
    token = _domain_embeddings.set(embeddings)
    try:
        yield embeddings
    finally:
        _domain_embeddings.reset(token)


def current_domain_embeddings() -> Optional[Tensor]:
    """The embeddings of the innermost active ``domain_embedding_context``, else None."""
    return _domain_embeddings.get()


def checkpoint_with_domain_embeddings(function: Callable, *args, **kwargs):
    """``torch.utils.checkpoint`` of ``function`` whose recomputation, during the backward pass
    (after the forward's ``domain_embedding_context`` has ended), sees the same embeddings, so
    Domino layers inside a checkpointed block give the same activations and gradients."""
    embeddings = current_domain_embeddings()

    def contexts():
        return nullcontext(), (nullcontext() if embeddings is None else
                               domain_embedding_context(embeddings))
    return checkpoint(function, *args, use_reentrant=False, context_fn=contexts, **kwargs)
