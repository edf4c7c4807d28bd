"""An mmseg EncoderDecoder whose norm layers are conditioned on each sample's domain."""
from __future__ import annotations

from typing import ContextManager, List, Optional

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from domino_seg.conditions import EMBEDDING_KEY

from .convert import SCOPE_PARTS, convert_to_domino, unconverted
from .domain_context import domain_embedding_context
from .domino_norm import (
    DEFAULT_MLP,
    DominoNorm,
    build_domain_encoder,
    domino_generator,
    domino_mlp_keys,
    init_linears,
    with_wrapped_norm_keys,
)

DEFAULT_DOMINO = dict(scope='head', embed_dim=512, mlp=None)


@MODELS.register_module()
class DomainAwareEncoderDecoder(EncoderDecoder):
    """EncoderDecoder with Domino layers in ``domino['scope']``.

    Each sample's embedding is read from ``metainfo['domain_embedding']`` (in ``loss``,
    ``encode_decode`` -- hence whole/slide inference and ``predict`` -- and ``_forward``), and the
    forward runs inside :func:`domain_embedding_context`, so mixed-domain batches are fine.

    The Domino MLP ``embed_dim -> hidden -> ... -> 2C`` is split: its first ``layers - 1``
    layers, the ``domain_encoder``, run once per forward and are shared by all Domino layers,
    which each keep only their zero-initialised last Linear(hidden, 2C). With a 512-d embedding
    and the default ``hidden=4``, scope 'head' adds 0.76% parameters to the default CPU model
    (configs/model/segformer_mit_tiny.yaml), 0.33% to SegFormer-B0 and 0.08% to UPerHead + FCN
    on ResNet-50; without sharing, every layer would pay the 512 * hidden input layer again.

    Paired with the baseline: built and initialised after the same seed, the two models hold
    the same values in every parameter and buffer they share (``checkpoint_state_dict`` maps
    the baseline's names to this model's) and leave torch's global generator in the same
    state, so they also draw the same dropout masks; Domino's own layers come from
    :func:`~domino_seg.models.domino_norm.domino_generator` of that seed.

    Args:
        domino: ``dict(scope='head'|'backbone'|'full', embed_dim=512, mlp=None)``, ``mlp``
            overriding :data:`~domino_seg.models.domino_norm.DEFAULT_MLP` (also the configs'
            defaults, configs/domino/_base.yaml). The baseline (``domino=none``)
            is mmseg's plain ``EncoderDecoder``. Other arguments are those of ``EncoderDecoder``.
    """

    def __init__(self, *args, domino: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        domino = {**DEFAULT_DOMINO, **(domino or {})}
        if set(domino) != set(DEFAULT_DOMINO):
            raise ValueError(f'unknown domino keys {sorted(set(domino) - set(DEFAULT_DOMINO))}; '
                             f'expected {sorted(DEFAULT_DOMINO)}')
        if domino['scope'] not in SCOPE_PARTS:
            raise ValueError(f"domino['scope'] must be one of {sorted(SCOPE_PARTS)}, got "
                             f"{domino['scope']!r} (the baseline is mmseg's EncoderDecoder)")
        self.domino_scope = domino['scope']
        self.domain_embed_dim = domino['embed_dim']
        mlp = {**DEFAULT_MLP, **(domino['mlp'] or {})}
        self.domino_seed = torch.initial_seed()  # the run's seed: the Runner has just set it
        generator = domino_generator(self.domino_seed)
        self.domain_encoder = build_domain_encoder(self.domain_embed_dim, **mlp,
                                                   generator=generator)
        code_dim = mlp['hidden'] if mlp['layers'] > 1 else self.domain_embed_dim
        convert_to_domino(self, code_dim, self.domino_scope, mlp=dict(layers=1),
                          generator=generator)

    def checkpoint_keys_may_miss(self) -> set[str]:
        """State-dict keys a checkpoint loaded into this model may lack: those Domino
        conversion adds (the shared domain encoder and each Domino layer's zero-initialised
        MLP), so a baseline checkpoint still fits and the model starts as that baseline."""
        return {f'domain_encoder.{key}' for key in self.domain_encoder.state_dict()} | \
            domino_mlp_keys(self)

    def checkpoint_state_dict(self, state_dict: dict) -> dict:
        """A checkpoint's state dict under this model's keys: a baseline's norm keys renamed
        into the Domino layers' wrapped norms, as loading does (load_from= a baseline)."""
        return with_wrapped_norm_keys(self, state_dict)

    def init_weights(self) -> None:
        """The baseline's init on the baseline's modules (each Domino layer replaced by its
        norm, no domain encoder: MiT/ViT re-initialise every ``nn.Linear`` they meet), so the
        shared weights and the global generator's state are the baseline's; then Domino's
        layers from their own generator, as at construction (the last layers zero: the model
        starts as the baseline)."""
        first_call = not self.is_init
        encoder = self.domain_encoder
        del self.domain_encoder
        try:
            with unconverted(self):
                super().init_weights()
        finally:
            self.domain_encoder = encoder
        if first_call:
            generator = domino_generator(self.domino_seed)
            init_linears(encoder, generator)
            for module in self.modules():
                if isinstance(module, DominoNorm):
                    module.reset_parameters(generator)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        with self._domain_context(inputs, [sample.metainfo for sample in data_samples]):
            return super().loss(inputs, data_samples)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        with self._domain_context(inputs, batch_img_metas):
            return super().encode_decode(inputs, batch_img_metas)

    # (mmseg's BaseSegmentor declares _forward abstract: the subclass contract of mode='tensor')
    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        metas = None if data_samples is None else [sample.metainfo for sample in data_samples]
        with self._domain_context(inputs, metas):
            return super()._forward(inputs, data_samples)

    def _domain_context(self, inputs: Tensor,
                        batch_img_metas: Optional[List[dict]]) -> ContextManager:
        embeddings = self._stack_embeddings(inputs, batch_img_metas)
        return domain_embedding_context(self.domain_encoder(embeddings))

    def _stack_embeddings(self, inputs: Tensor, batch_img_metas: Optional[List[dict]]) -> Tensor:
        """(B, D) embeddings on the inputs' device and dtype, one per sample."""
        if batch_img_metas is None:  # no data samples: no sample has an embedding
            batch_img_metas = [{}] * inputs.shape[0]
        missing = [i for i, meta in enumerate(batch_img_metas) if EMBEDDING_KEY not in meta]
        if missing:
            raise KeyError(
                f"DomainAwareEncoderDecoder (domino scope {self.domino_scope!r}) needs "
                f"metainfo['{EMBEDDING_KEY}'] for every sample, missing for samples {missing}. It "
                "is computed by the model's DomainEmbeddingDataPreProcessor from what the data "
                "pipeline's DomainEmbeddingInputs step prepares (set `domain=` in the config).")
        embeddings = [torch.as_tensor(meta[EMBEDDING_KEY]) for meta in batch_img_metas]
        shapes = {tuple(e.shape) for e in embeddings}
        if shapes != {(self.domain_embed_dim, )}:
            raise ValueError(f"metainfo['{EMBEDDING_KEY}'] must have shape "
                             f'({self.domain_embed_dim},), got {sorted(shapes)}')
        return torch.stack(embeddings).to(device=inputs.device, dtype=inputs.dtype)
