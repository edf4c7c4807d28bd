"""Domain embeddings for Domino: prompt bank, generator (open_clip or Hugging Face text encoder),
feature cache, the pipeline step that prepares each sample's input and the data preprocessor that
embeds a batch where the model runs.

Importing this package registers ``DomainEmbeddingInputs`` in mmseg's TRANSFORMS and
``DomainEmbeddingDataPreProcessor`` in its MODELS.
"""
from .cache import EmbeddingCache
from .clip_generator import IMAGE_MODES, MODES, TINY_CLIP, DomainPromptGenerator
from .data_preprocessor import DomainEmbeddingDataPreProcessor
from .embedder import DomainEmbedder
from .precompute import precompute_embeddings
from .prompts import DEFAULT_PROMPT_BANK, PromptBank, PromptBankError, load_prompt_bank
from .transforms import DomainEmbeddingInputs

__all__ = [
    'DEFAULT_PROMPT_BANK', 'IMAGE_MODES', 'MODES', 'TINY_CLIP', 'DomainEmbedder',
    'DomainEmbeddingDataPreProcessor', 'DomainEmbeddingInputs', 'DomainPromptGenerator',
    'EmbeddingCache', 'PromptBank', 'PromptBankError', 'load_prompt_bank', 'precompute_embeddings',
]
