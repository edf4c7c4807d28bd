"""The one place that reads the ``domain`` config group."""
from __future__ import annotations

from typing import Optional

import open_clip
from omegaconf import DictConfig, OmegaConf

from domino_seg.domain import clip_generator  # noqa: F401  (registers the tiny CLIP config)


def generator_cfg(domain: DictConfig) -> dict:
    """Keyword arguments of DomainPromptGenerator for this domain config."""
    clip = OmegaConf.to_container(domain.clip, resolve=True)
    return dict(arch=clip['arch'], pretrained=clip['pretrained'], model_cfg=clip['model_cfg'],
                seed=clip['seed'], mode=domain.mode, temperature=domain.temperature,
                prompt_bank=domain.prompt_bank)


def transform_cfg(domain: DictConfig) -> Optional[dict]:
    """The DomainEmbedding pipeline transform, or None for the baseline (mode none)."""
    if domain.mode == 'none':
        return None
    return dict(type='DomainEmbedding', generator=generator_cfg(domain),
                cache_dir=domain.cache_dir)


def embed_dim(domain: DictConfig) -> Optional[int]:
    """Size of the domain embedding, known from the CLIP config without building CLIP."""
    if domain.mode == 'none':
        return None
    clip = domain.clip
    overrides = OmegaConf.to_container(clip.model_cfg, resolve=True) if clip.model_cfg else {}
    if 'embed_dim' in overrides:
        return int(overrides['embed_dim'])
    model_cfg = open_clip.get_model_config(clip.arch)
    if model_cfg is None:
        from domino_seg.errors import ConfigError
        raise ConfigError(f'domain.clip.arch={clip.arch!r} is not an open_clip model; choose '
                          'one of open_clip.list_models(), e.g. ViT-B-16.')
    return int(model_cfg['embed_dim'])


def check_weights(domain: DictConfig) -> None:
    """Fail before any model or worker is built when the CLIP weights cannot be found; warn
    when they are random."""
    if domain.mode == 'none':
        return
    from domino_seg.errors import WeightsError
    try:
        clip_generator.resolve_pretrained(domain.clip.arch, domain.clip.pretrained)
    except (FileNotFoundError, ValueError) as err:
        raise WeightsError(str(err)) from None
    if domain.clip.pretrained is None:
        from mmengine.logging import print_log
        print_log(f'domain.clip.pretrained is null: CLIP {domain.clip.arch!r} has random weights, '
                  'so the domain embeddings carry no language meaning (recorded in '
                  'metrics.json).', logger='current', level=30)


def describe(domain: DictConfig) -> dict:
    """What metrics.json records about the domain embeddings."""
    if domain.mode == 'none':
        return dict(mode='none')
    return dict(mode=domain.mode, clip_arch=domain.clip.arch,
                clip_pretrained=domain.clip.pretrained,
                has_language_meaning=domain.clip.pretrained is not None)
