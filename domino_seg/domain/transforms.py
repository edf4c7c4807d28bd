"""``DomainEmbedding``: the data pipeline step that attaches a domain embedding to each sample."""
from __future__ import annotations

import os
from typing import Optional

import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from domino_seg.conditions import DOMAIN_OF_CONDITION
from domino_seg.errors import WeightsError

from .cache import EmbeddingCache
from .clip_generator import DEFAULT_MODE, IMAGE_MODES, MODES, DomainPromptGenerator


@TRANSFORMS.register_module()
class DomainEmbedding(BaseTransform):
    """Sets ``results['domain_embedding']`` (float32 Tensor[D]) from ``results['img']`` or
    ``results['condition']``.

    Put it right after LoadImageFromFile, before any resize or crop, so CLIP sees the whole
    image, and list 'domain_embedding' in PackSegInputs' meta_keys so the segmentor finds it in
    ``data_sample.metainfo``. The baseline (``domain=none``) has no such transform.

    The generator is built lazily, once per process: every dataloader worker builds its own,
    always on CPU. In ``image``/``zero_shot`` modes the CLIP image features go through an
    EmbeddingCache when ``cache_dir`` is set; ``hits``/``misses`` count cache hits and CLIP
    forwards.

    Args:
        generator: DomainPromptGenerator kwargs (arch, pretrained, model_cfg, mode, temperature,
            prompt_bank, device, seed).
        cache_dir: root of the feature cache; None computes features for every sample.

    In ``text`` mode a sample's condition names its bank condition, except for the dataset
    conditions :data:`~domino_seg.conditions.DOMAIN_OF_CONDITION` maps (``cityscapes`` ->
    ``clear``) and samples that carry a ``prompt_condition`` (those of ``data.eval_sets``,
    e.g. Dark Zurich's: ``night``).
    """

    def __init__(self, generator: dict, cache_dir: Optional[str] = None):
        self.generator_cfg = dict(generator)
        self.mode = self.generator_cfg.get('mode', DEFAULT_MODE)
        if self.mode not in MODES:
            raise ValueError(f'unknown domain embedding mode {self.mode!r}; choose one of {MODES}')
        self.cache_dir = cache_dir
        self.hits = 0
        self.misses = 0
        self._generator = None
        self._cache = None
        self._built_in_pid = None

    @property
    def generator(self) -> DomainPromptGenerator:
        """This process's generator (rebuilt after a fork, so a worker never shares a model)."""
        if self._generator is None or self._built_in_pid != os.getpid():
            cfg = dict(self.generator_cfg)
            if torch.utils.data.get_worker_info() is not None:
                cfg['device'] = 'cpu'
            self._generator = DomainPromptGenerator(**cfg)
            if self.cache_dir is not None and self.mode in IMAGE_MODES:
                self._cache = EmbeddingCache(self.cache_dir, self._generator.identity)
            self._built_in_pid = os.getpid()
        return self._generator

    def transform(self, results: dict) -> dict:
        if self.mode == 'text':
            if 'condition' not in results:
                raise KeyError("DomainEmbedding in 'text' mode needs results['condition'] "
                               f"(set by the dataset) for {results.get('img_path')}")
            # an evaluation set's samples name their prompt (data.eval_sets[i].prompt)
            label = results.get('prompt_condition') or \
                DOMAIN_OF_CONDITION.get(results['condition'], results['condition'])
            embedding = self.generator.embed_conditions([label])[0]
        else:
            embedding = self.generator.embed_from_features(self._image_features(results['img']))[0]
        if not torch.isfinite(embedding).all():
            clip = self.generator_cfg
            raise WeightsError(
                f'the domain embedding of {results.get("img_path")} holds NaN/inf: CLIP '
                f'{clip.get("arch")!r} (domain.clip.pretrained={clip.get("pretrained")!r}, '
                f'model_cfg={clip.get("model_cfg")}) computes non-finite outputs. Check its '
                'weights (a damaged file: download it again) and the domain.clip.model_cfg '
                'overrides.')
        results['domain_embedding'] = embedding.float().contiguous()
        return results

    def _image_features(self, image) -> torch.Tensor:
        generator = self.generator
        if self._cache is None:
            self.misses += 1
            return generator.image_features([image])
        key = self._cache.key(image)
        cached = self._cache.load(key, dim=generator.embed_dim)
        if cached is not None:
            self.hits += 1
            return torch.from_numpy(cached)[None]
        self.misses += 1
        features = generator.image_features([image])
        if torch.isfinite(features).all():  # never cache what transform() rejects
            self._cache.save(key, features[0].numpy())
        return features

    def __getstate__(self):
        # Spawned workers build their own generator; never pickle a model (possibly on GPU).
        return {**self.__dict__, '_generator': None, '_cache': None, '_built_in_pid': None}

    def __repr__(self):
        return (f'{type(self).__name__}(generator={self.generator_cfg}, '
                f'cache_dir={self.cache_dir!r})')
