"""The one place that reads the ``domain`` config group."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence

from omegaconf import DictConfig

from domino_seg.conditions import DOMAIN_OF_CONDITION
from domino_seg.domain import (
    clip_generator,  # noqa: F401  (registers the tiny CLIP config)
    embedder,
)
from domino_seg.domain.prompts import PromptBankError, load_prompt_bank
from domino_seg.errors import ConfigError
from domino_seg.registry import TEXT_ENCODERS, registered


def _backend(domain: DictConfig) -> Optional[type]:
    """The text encoder backend (``TEXT_ENCODERS``) of ``domain.text_encoder``, checked to
    serve the mode, or None when nothing encodes (none, onehot). Configs saved before the
    text_encoder group existed have none: CLIP's (open_clip)."""
    if domain.mode in ('none', 'onehot'):
        return None
    encoder = domain.get('text_encoder')
    name = encoder.backend if encoder is not None else 'open_clip'
    backend = TEXT_ENCODERS.get(name)
    if backend is None:
        raise ConfigError(f'domain.text_encoder.backend={name!r} is not a text encoder backend; '
                          f'registered: {", ".join(registered(TEXT_ENCODERS))}.')
    if domain.mode != 'text' and not backend.image_tower:
        raise ConfigError(f'domain={domain.mode} needs an image tower, and the text encoder '
                          f'domain/text_encoder ({encoder.get("name") or encoder.backend}) has '
                          'none: use domain=text with it, or domain/text_encoder=clip to embed '
                          'images with CLIP.')
    return backend


def generator_cfg(domain: DictConfig) -> dict:
    """Keyword arguments of DomainPromptGenerator for this domain config."""
    common = dict(mode=domain.mode, temperature=domain.temperature,
                  prompt_bank=domain.prompt_bank)
    if domain.mode == 'onehot':
        return dict(common, seen=seen_labels(domain))
    return dict(common, **_backend(domain).generator_kwargs(domain))


def seen_labels(domain: DictConfig) -> list[str]:
    """``domain=onehot``: the bank conditions of the run's seen conditions (``domain.seen``,
    recorded with the run; ``cityscapes`` is ``clear``)."""
    return list(dict.fromkeys(DOMAIN_OF_CONDITION.get(c, c) for c in domain.seen))


def transform_cfg(domain: DictConfig) -> Optional[dict]:
    """The DomainEmbeddingInputs pipeline step (what the data workers prepare), or None for
    the baseline (mode none)."""
    if domain.mode == 'none':
        return None
    return embedder.inputs_transform_cfg(generator_cfg(domain))


def embedder_cfg(domain: DictConfig) -> dict:
    """DomainEmbedder kwargs: the encoder and the image-feature cache."""
    return dict(generator=generator_cfg(domain), cache_dir=domain.cache_dir)


def precompute_cfg(domain: DictConfig) -> dict:
    """:func:`embedder_cfg` for tools/embed_domains.py, once the domain is checked: an image
    mode, with a cache to fill."""
    if domain.mode not in clip_generator.IMAGE_MODES:
        raise ConfigError(f'domain={domain.mode} has no image embeddings to precompute; '
                          'use domain=zero_shot or domain=image.')
    if not domain.cache_dir:
        raise ConfigError('domain.cache_dir is null; set it to where the cache should live.')
    check_domain(domain)
    return embedder_cfg(domain)


def data_preprocessor_cfg(domain: DictConfig, data_preprocessor: dict) -> dict:
    """The segmentor's ``data_preprocessor`` that also embeds each batch's domains, on the
    training device, in the main process (mode none: ``data_preprocessor`` as it is)."""
    data_preprocessor = data_preprocessor or dict(type='SegDataPreProcessor')
    if domain.mode == 'none':
        return data_preprocessor
    return dict(data_preprocessor, type='DomainEmbeddingDataPreProcessor',
                embedder=embedder_cfg(domain))


def embed_dim(domain: DictConfig) -> Optional[int]:
    """Size of the domain embedding, known from the encoder's config without building it."""
    if domain.mode == 'none':
        return None
    if domain.mode == 'onehot':
        return len(seen_labels(domain))
    return _backend(domain).configured_dim(domain)


def check_weights(domain: DictConfig) -> None:
    """Fail before any model or worker is built when the encoder's weights cannot be found;
    warn when they are random."""
    backend = _backend(domain)
    if backend is not None:
        backend.check_weights(domain)


def check_domain(domain: DictConfig, conditions: Sequence[str] = ()) -> None:
    """Everything the domain embeddings will need, checked before any model or
    data-loader worker is built (where a problem would be a traceback, or a worker's): the
    CLIP weights (:func:`check_weights`), the prompt bank, which in ``text`` and ``onehot``
    mode must name each of the dataset ``conditions`` the run embeds (and, onehot, the seen
    ones that make its codes), and a writable ``cache_dir``."""
    if domain.mode == 'none':
        return
    check_weights(domain)
    try:
        bank = load_prompt_bank(domain.prompt_bank)
    except PromptBankError as err:
        raise ConfigError(f'domain.prompt_bank: {err}. Fix the file (its format is described '
                          'at the top of configs/domain/prompts/weather.yaml) or set '
                          'domain.prompt_bank=null for the default weather bank.') from None
    if domain.mode == 'onehot' and not seen_labels(domain):
        raise ConfigError('domain.seen is empty: domain=onehot gives each seen (training) '
                          'condition a code, so it needs at least one. Leave domain.seen at '
                          'its default, the run\'s seen conditions.')
    if domain.mode in clip_generator.LABEL_MODES:
        needed = dict.fromkeys(DOMAIN_OF_CONDITION.get(c, c) for c in conditions)
        if domain.mode == 'onehot':
            needed.update(dict.fromkeys(seen_labels(domain)))
        missing = [c for c in needed if c not in bank.prompts]
        if missing:
            aliases = ', '.join(f'{c} samples use "{d}"' for c, d in DOMAIN_OF_CONDITION.items())
            raise ConfigError(
                f'domain.prompt_bank: the bank {bank.source} has no condition(s) {missing}, '
                f'which domain={domain.mode} embeds for this run (its conditions: '
                f'{bank.conditions}; {aliases}; a data.eval_sets entry embeds its `prompt:`, by '
                'default night for Dark Zurich, fog for Foggy Cityscapes, clear for BDD100K and '
                'Mapillary and the folder name for folders). Add them under `conditions:` in '
                'the bank, set the entry\'s prompt to one of the bank\'s conditions, or set '
                'domain.prompt_bank=null for the default weather bank.')
    if domain.mode in clip_generator.IMAGE_MODES and domain.cache_dir is not None:
        try:
            os.makedirs(domain.cache_dir, exist_ok=True)
            tempfile.TemporaryFile(dir=domain.cache_dir).close()
        except OSError as err:
            raise ConfigError(
                f'domain.cache_dir={domain.cache_dir!r} cannot hold the embedding cache '
                f'({err.strerror}). Set domain.cache_dir=/a/writable/folder, or '
                'domain.cache_dir=null to compute the embeddings without a cache.') from None


def describe(domain: DictConfig) -> dict:
    """What metrics.json records about the domain embeddings: the mode, the encoder that made
    them, its weights and whether they carry language meaning."""
    if domain.mode == 'none':
        return dict(mode='none')
    if domain.mode == 'onehot':
        return dict(mode='onehot', encoder='onehot', weights=None, has_language_meaning=False,
                    seen=seen_labels(domain))
    return dict(mode=domain.mode, **_backend(domain).describe(domain))
