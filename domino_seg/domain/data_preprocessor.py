"""``DomainEmbeddingDataPreProcessor``: mmseg's data preprocessor plus the batch's domain
embeddings, computed on the model's device before the Domino layers read them."""
from __future__ import annotations

from typing import Optional

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from domino_seg.conditions import EMBEDDING_KEY

from .embedder import DomainEmbedder
from .transforms import INPUT_KEYS


@MODELS.register_module()
class DomainEmbeddingDataPreProcessor(SegDataPreProcessor):
    """SegDataPreProcessor that sets each data sample's ``metainfo['domain_embedding']`` with a
    :class:`DomainEmbedder` (in the main process, batched, on the inputs' device) and drops the
    embedding inputs the pipeline's DomainEmbeddingInputs step put there.

    ``swapped``, when set (Tensor[D]), is every sample's embedding instead of its own: the
    prompt-swap evaluation (``tools/test.py swap=``, :mod:`domino_seg.apis.swap`) runs the
    usual test loop with it.

    Args:
        embedder: DomainEmbedder kwargs (``generator``, ``cache_dir``). Other arguments are
            those of SegDataPreProcessor.
    """

    def __init__(self, embedder: dict, **kwargs):
        super().__init__(**kwargs)
        self.embedder = DomainEmbedder(**embedder)  # a plain attribute: not in the state dict
        self.swapped: Optional[torch.Tensor] = None

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        samples = data.get('data_samples')
        if samples is None:  # tensor mode without samples: nothing to condition on
            return data
        device = data['inputs'].device
        if self.swapped is None:
            embeddings = self.embedder([sample.metainfo for sample in samples], device)
        else:
            embeddings = self.swapped.to(device, torch.float32).expand(len(samples), -1)
        for sample, embedding in zip(samples, embeddings):
            for key in INPUT_KEYS:
                if key in sample:
                    delattr(sample, key)
            # set_field: set_metainfo would deep-copy every embedding, a copy per sample
            sample.set_field(embedding, EMBEDDING_KEY, field_type='metainfo')
        return data
