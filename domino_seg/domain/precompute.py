"""Fill the embedding cache ahead of training (the core of ``tools/embed_domains.py``).

Running CLIP once over every image up front keeps it out of the training loop: training then
only reads cached features. Only ``image``/``zero_shot`` modes have anything to precompute.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Optional

import torch
from mmcv.transforms import LoadImageFromFile
from torch.utils.data import DataLoader
from tqdm import tqdm

import mmseg.datasets  # noqa: F401  (registers mmseg's dataset types)
from mmseg.registry import DATASETS, TRANSFORMS

from .cache import EmbeddingCache
from .clip_generator import IMAGE_MODES, DomainPromptGenerator


def precompute_embeddings(dataset_cfgs: list[dict], transform_cfg: dict,
                          progress: bool = True, batch_size: int = 16, num_workers: int = 0,
                          device: Optional[str] = None) -> dict:
    """Embed every image of every dataset into the feature cache a DomainEmbedding transform
    with ``transform_cfg`` reads in training: DataLoader workers decode (mmcv's
    LoadImageFromFile, as in training), CLIP runs here, ``batch_size`` images per forward, on
    ``device`` (default: a GPU if there is one). Cached images are not computed again.

    Args:
        dataset_cfgs: plain mmseg dataset configs (not wrappers); their pipeline is replaced.
        transform_cfg: the DomainEmbedding config used in training (``type`` may be omitted);
            it must name a ``cache_dir`` for the work to be kept.
        progress: show a tqdm bar per dataset.

    Returns:
        ``{'mode', 'has_language_meaning', 'computed', 'hits', 'images_per_s', 'device',
        'datasets': [{'dataset', 'samples', 'computed', 'hits'}, ...]}``, computed = images CLIP
        embedded, hits = cache hits, images_per_s = images (computed or not) per second.
    """
    transform = TRANSFORMS.build({'type': 'DomainEmbedding', **transform_cfg})
    stats = {'mode': transform.mode, 'computed': 0, 'hits': 0, 'datasets': []}
    if transform.mode not in IMAGE_MODES:
        stats['has_language_meaning'] = None
        return stats
    if transform.cache_dir is None:
        raise ValueError('precompute_embeddings needs transform_cfg["cache_dir"]; without a cache '
                         'the embeddings would be computed and thrown away')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    generator = DomainPromptGenerator(**{**transform.generator_cfg, 'device': device})
    cache = EmbeddingCache(transform.cache_dir, generator.identity)
    stats.update(has_language_meaning=generator.has_language_meaning, device=device)

    start, images = time.perf_counter(), 0
    for dataset_cfg in dataset_cfgs:
        dataset = DATASETS.build({**copy.deepcopy(dataset_cfg), 'pipeline': [LoadImageFromFile()]})
        name = describe_dataset(dataset_cfg)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                            collate_fn=_images)
        split = {'dataset': name, 'samples': len(dataset), 'computed': 0, 'hits': 0}
        with tqdm(total=len(dataset), desc=f'embed {name}', disable=not progress,
                  unit='img') as bar:
            for batch in loader:
                keys = [cache.key(image) for image in batch]
                todo = [i for i, key in enumerate(keys)
                        if cache.load(key, dim=generator.embed_dim) is None]
                if todo:
                    features = generator.image_features([batch[i] for i in todo])
                    for i, feature in zip(todo, features):
                        if torch.isfinite(feature).all():  # the transform rejects the rest
                            cache.save(keys[i], feature.numpy())
                split['computed'] += len(todo)
                split['hits'] += len(batch) - len(todo)
                bar.update(len(batch))
        images += len(dataset)
        stats['datasets'].append(split)
        stats['computed'] += split['computed']
        stats['hits'] += split['hits']
    seconds = time.perf_counter() - start
    stats['images_per_s'] = images / seconds if seconds > 0 else None
    return stats


def _images(samples: list[dict]) -> list:
    """A batch of decoded images (H x W x 3 uint8 BGR, any sizes), as a list."""
    return [sample['img'] for sample in samples]


def describe_dataset(dataset_cfg: dict) -> str:
    """E.g. ``ACDCDataset fog val (data/acdc)``: a name that tells the splits and conditions of
    an experiment apart."""
    parts = [dataset_cfg['type'], dataset_cfg.get('condition'), dataset_cfg.get('split')]
    prefix = dataset_cfg.get('data_prefix', {}).get('img_path', '')
    root = dataset_cfg.get('data_root', '')
    where = os.path.join(root, prefix) if prefix else root
    return ' '.join(str(p) for p in parts if p) + f' ({where})'
