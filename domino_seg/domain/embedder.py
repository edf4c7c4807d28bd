"""``DomainEmbedder``: a batch's domain embeddings, computed where the model runs.

Data-loader workers only prepare each sample's input (:class:`DomainEmbeddingInputs`: a
condition label, or CLIP's preprocessed pixels and the cache key); the embedder, called by the
model's data preprocessor in the main process, runs the frozen encoder once per batch on the
training device and reads/writes the same :class:`EmbeddingCache` as ``tools/embed_domains.py``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import torch

from domino_seg.conditions import EMBEDDING_KEY
from domino_seg.errors import WeightsError

from .cache import EmbeddingCache
from .clip_generator import (
    IMAGE_MODES,
    MODES,
    TINY_CLIP,
    DomainPromptGenerator,
    clip_preprocess_cfg,
)
from .transforms import CACHE_KEY, CONDITION_KEY, PIXELS_KEY

# image features kept in memory in front of the disk cache (~32 MB at 512-d): a training step
# then reads no file for images it has seen, e.g. a whole Cityscapes + ACDC training set
RECENT_FEATURES = 16384


def inputs_transform_cfg(generator: dict) -> dict:
    """The DomainEmbeddingInputs pipeline step that feeds a DomainEmbedder of ``generator``."""
    mode = generator['mode']
    if mode not in IMAGE_MODES:
        return dict(type='DomainEmbeddingInputs', mode=mode)
    return dict(type='DomainEmbeddingInputs', mode=mode, clip_preprocess=clip_preprocess_cfg(
        generator.get('arch', TINY_CLIP), generator.get('pretrained'), generator.get('model_cfg')))


class DomainEmbedder:
    """Turns the samples' metainfo into their domain embeddings, Tensor[B, D].

    The generator is built lazily, on the device of the first batch, and is not a module of
    the model that holds the embedder: CLIP stays out of its state dict, its optimizer and DDP.
    A sample that already carries a ``domain_embedding`` (e.g. from
    :class:`domino_seg.Segmenter`) keeps it. ``hits``/``misses`` count cache hits and images
    CLIP embedded. With a cache, the last RECENT_FEATURES features are also kept in memory, so
    the training loop reads each cached file once.

    Args:
        generator: DomainPromptGenerator kwargs (arch, pretrained, model_cfg, mode, temperature,
            prompt_bank, seed, or text_encoder).
        cache_dir: root of the image-feature cache; None computes the features of every image.
    """

    def __init__(self, generator: dict, cache_dir: Optional[str] = None):
        self.generator_cfg = dict(generator)
        self.mode = self.generator_cfg['mode']
        if self.mode not in MODES:
            raise ValueError(f'unknown domain embedding mode {self.mode!r}; choose one of {MODES}')
        self.cache_dir = cache_dir
        self.hits = 0
        self.misses = 0
        self._generator: Optional[DomainPromptGenerator] = None
        self._cache: Optional[EmbeddingCache] = None
        self._recent: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bank_is_finite: Optional[bool] = None

    def generator(self, device: torch.device) -> DomainPromptGenerator:
        """The generator, built on ``device`` at the first call."""
        if self._generator is None:
            self._generator = DomainPromptGenerator(**self.generator_cfg, device=device)
            if self.cache_dir is not None and self.mode in IMAGE_MODES:
                self._cache = EmbeddingCache(self.cache_dir, self._generator.identity)
        return self._generator

    def __call__(self, metainfos: Sequence[dict], device: torch.device) -> torch.Tensor:
        """float32 Tensor[B, D] on ``device``, one embedding per sample."""
        embeddings: list = [meta.get(EMBEDDING_KEY) for meta in metainfos]
        texts, images, missing = [], [], []
        for i, meta in enumerate(metainfos):
            if embeddings[i] is None:
                (texts if CONDITION_KEY in meta else images if PIXELS_KEY in meta
                 else missing).append(i)
        if missing:
            raise KeyError(
                f'the domain embedding of samples {missing} '
                f'({[metainfos[i].get("img_path") for i in missing]}) has no input: their '
                f'metainfo lacks {CONDITION_KEY!r} and {PIXELS_KEY!r}, which the data '
                "pipeline's DomainEmbeddingInputs step sets (list them in PackSegInputs' "
                'meta_keys).')
        if texts:
            labels = [metainfos[i][CONDITION_KEY] for i in texts]
            table = self.generator(device).embed_conditions(labels)
            if len(texts) == len(metainfos) and self._bank_finite(device):
                return table.to(device, torch.float32)  # text/onehot: one lookup, no loop
            for i, embedding in zip(texts, table):
                embeddings[i] = embedding
        if images:
            features = self.features([metainfos[i] for i in images], device)
            for i, embedding in zip(images, self.generator(device).embed_from_features(features)):
                embeddings[i] = embedding
        for i in texts + images:
            if not torch.isfinite(embeddings[i]).all():
                self._non_finite(metainfos[i].get('img_path'))
        return torch.stack([torch.as_tensor(e, dtype=torch.float32) for e in embeddings]
                           ).to(device)

    def _bank_finite(self, device: torch.device) -> bool:
        """Whether every bank embedding is finite: the bank is fixed, so it is checked once."""
        if self._bank_is_finite is None:
            self._bank_is_finite = bool(torch.isfinite(
                self.generator(device).condition_embeddings).all())
        return self._bank_is_finite

    def features(self, metainfos: Sequence[dict], device: torch.device) -> torch.Tensor:
        """CLIP image features of samples with ``domain_clip_pixels``, Tensor[N, D] (CPU):
        cached ones read, the others computed in one forward and cached when finite."""
        generator = self.generator(device)
        features: list = [None] * len(metainfos)
        if self._cache is not None:
            for i, meta in enumerate(metainfos):
                features[i] = self._recall(meta[CACHE_KEY], generator.embed_dim)
        todo = [i for i, f in enumerate(features) if f is None]
        self.hits += len(metainfos) - len(todo)
        self.misses += len(todo)
        if todo:
            computed = generator.features_from_pixels(
                torch.stack([torch.as_tensor(metainfos[i][PIXELS_KEY]) for i in todo]))
            for i, feature in zip(todo, computed):
                features[i] = feature
                if self._cache is not None and torch.isfinite(feature).all():
                    self._cache.save(metainfos[i][CACHE_KEY], feature.numpy())
                    self._remember(metainfos[i][CACHE_KEY], feature)
        return torch.stack(features)

    def _recall(self, key: str, dim: int) -> Optional[torch.Tensor]:
        """A cached image's features: from memory, else from its file (then kept), else None."""
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        cached = self._cache.load(key, dim=dim)
        if cached is None:
            return None
        feature = torch.from_numpy(cached)
        self._remember(key, feature)
        return feature

    def _remember(self, key: str, feature: torch.Tensor) -> None:
        self._recent[key] = feature
        if len(self._recent) > RECENT_FEATURES:
            self._recent.popitem(last=False)

    def _non_finite(self, img_path: Optional[str]) -> None:
        clip = self.generator_cfg
        raise WeightsError(
            f'the domain embedding of {img_path} holds NaN/inf: CLIP {clip.get("arch")!r} '
            f'(domain.clip.pretrained={clip.get("pretrained")!r}, '
            f'model_cfg={clip.get("model_cfg")}) computes non-finite outputs. Check its weights '
            '(a damaged file: download it again) and the domain.clip.model_cfg overrides.')

    def __getstate__(self):
        # a copy (e.g. a pickled config or model) never carries the encoder
        return {**self.__dict__, '_generator': None, '_cache': None, '_recent': OrderedDict(),
                '_bank_is_finite': None}

    def __repr__(self):
        return f'{type(self).__name__}(generator={self.generator_cfg}, ' \
               f'cache_dir={self.cache_dir!r})'
