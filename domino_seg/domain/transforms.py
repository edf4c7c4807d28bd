"""``DomainEmbeddingInputs``: the data pipeline step that prepares what a sample's domain
embedding is computed from; :class:`~domino_seg.domain.embedder.DomainEmbedder` computes it.

The split keeps every encoder out of the data-loader workers: they only decode, resize for
CLIP and hash, while CLIP (or the text encoder) runs once, batched, on the training device.
"""
from __future__ import annotations

from typing import Optional

from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from domino_seg.conditions import DOMAIN_OF_CONDITION

from .cache import EmbeddingCache
from .clip_generator import IMAGE_MODES, LABEL_MODES, MODES, clip_preprocess, to_pil

# the metainfo keys this transform sets (listed in PackSegInputs' meta_keys)
CONDITION_KEY = 'domain_condition'
PIXELS_KEY = 'domain_clip_pixels'
CACHE_KEY = 'domain_cache_key'
INPUT_KEYS = (CONDITION_KEY, PIXELS_KEY, CACHE_KEY)


@TRANSFORMS.register_module()
class DomainEmbeddingInputs(BaseTransform):
    """In ``text`` and ``onehot`` mode sets ``results['domain_condition']``, the prompt-bank
    condition of the sample; in ``image``/``zero_shot`` mode ``results['domain_clip_pixels']``
    (CLIP's input, float32 Tensor[3, h, w], from ``results['img']``) and
    ``results['domain_cache_key']`` (the embedding cache's key of the decoded image).

    Put it right after the image is loaded (and weather-augmented), before any resize or crop,
    so CLIP sees the whole image, and list :data:`INPUT_KEYS` in PackSegInputs' meta_keys.

    A sample's condition names its bank condition, except for the dataset conditions
    :data:`~domino_seg.conditions.DOMAIN_OF_CONDITION` maps (``cityscapes`` -> ``clear``) and
    samples that carry a ``prompt_condition`` (those of ``data.eval_sets``, e.g. Dark Zurich's:
    ``night``).

    Args:
        mode: one of MODES.
        clip_preprocess: :func:`~domino_seg.domain.clip_generator.clip_preprocess_cfg` of the
            CLIP that embeds the images (image modes only).
    """

    def __init__(self, mode: str, clip_preprocess: Optional[dict] = None):
        if mode not in MODES:
            raise ValueError(f'unknown domain embedding mode {mode!r}; choose one of {MODES}')
        if mode in IMAGE_MODES and clip_preprocess is None:
            raise ValueError(f'mode {mode!r} needs clip_preprocess (clip_preprocess_cfg of the '
                             'CLIP that embeds the images)')
        self.mode = mode
        self.clip_preprocess_cfg = clip_preprocess
        self._preprocess = None

    def transform(self, results: dict) -> dict:
        if self.mode in LABEL_MODES:
            if 'condition' not in results:
                raise KeyError(f"domain={self.mode} needs results['condition'] (set by the "
                               f"dataset) for {results.get('img_path')}")
            # an evaluation set's samples name their prompt (data.eval_sets[i].prompt)
            results[CONDITION_KEY] = results.get('prompt_condition') or \
                DOMAIN_OF_CONDITION.get(results['condition'], results['condition'])
            return results
        if self._preprocess is None:
            self._preprocess = clip_preprocess(self.clip_preprocess_cfg)
        results[PIXELS_KEY] = self._preprocess(to_pil(results['img'], 'bgr')).contiguous()
        results[CACHE_KEY] = EmbeddingCache.key(results['img'])
        return results

    def __getstate__(self):
        return {**self.__dict__, '_preprocess': None}

    def __repr__(self):
        return f'{type(self).__name__}(mode={self.mode!r})'
