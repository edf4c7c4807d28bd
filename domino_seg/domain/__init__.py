"""Domain embeddings for Domino: prompt bank, generator (open_clip or Hugging Face text encoder),
feature cache, pipeline transform.

Importing this package registers the ``DomainEmbedding`` transform in mmseg's TRANSFORMS.
"""
from .cache import EmbeddingCache
from .clip_generator import IMAGE_MODES, MODES, TINY_CLIP, DomainPromptGenerator
from .precompute import precompute_embeddings
from .prompts import DEFAULT_PROMPT_BANK, PromptBank, PromptBankError, load_prompt_bank
from .transforms import DomainEmbedding

__all__ = [
    'DEFAULT_PROMPT_BANK', 'IMAGE_MODES', 'MODES', 'TINY_CLIP', 'DomainEmbedding',
    'DomainPromptGenerator', 'EmbeddingCache', 'PromptBank', 'PromptBankError',
    'load_prompt_bank', 'precompute_embeddings',
]
