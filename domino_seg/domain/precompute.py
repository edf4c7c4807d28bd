"""Fill the embedding cache ahead of training (the core of ``tools/embed_domains.py``).

Running CLIP once over every image up front keeps it out of the training loop: training then
only reads cached features (of un-augmented images; weather-augmented ones are new pixels).
Only ``image``/``zero_shot`` modes have anything to precompute.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Optional

import mmseg.datasets  # noqa: F401  (registers mmseg's dataset types)
import torch
from mmcv.transforms import LoadImageFromFile
from mmseg.registry import DATASETS, TRANSFORMS
from torch.utils.data import DataLoader
from tqdm import tqdm

from .clip_generator import IMAGE_MODES
from .embedder import DomainEmbedder, inputs_transform_cfg
from .transforms import CACHE_KEY, PIXELS_KEY


def precompute_embeddings(dataset_cfgs: list[dict], embedder_cfg: dict,
                          progress: bool = True, batch_size: int = 16, num_workers: int = 0,
                          device: Optional[str] = None) -> dict:
    """Embed every image of every dataset into the feature cache training reads, as training
    does: DataLoader workers decode and prepare CLIP's input (mmcv's LoadImageFromFile, then
    DomainEmbeddingInputs), a DomainEmbedder runs CLIP here, ``batch_size`` images per
    forward, on ``device`` (default: a GPU if there is one). Cached images are not computed
    again.

    Args:
        dataset_cfgs: plain mmseg dataset configs (not wrappers); their pipeline is replaced.
        embedder_cfg: the DomainEmbedder kwargs training uses (``generator``, ``cache_dir``;
            :func:`domino_seg.domain.builder.embedder_cfg`); ``cache_dir`` must be set for the
            work to be kept.
        progress: show a tqdm bar per dataset.

    Returns:
        ``{'mode', 'has_language_meaning', 'computed', 'hits', 'images_per_s', 'device',
        'datasets': [{'dataset', 'samples', 'computed', 'hits'}, ...]}``, computed = images CLIP
        embedded, hits = cache hits, images_per_s = images (computed or not) per second.
    """
    embedder = DomainEmbedder(**embedder_cfg)
    stats = {'mode': embedder.mode, 'computed': 0, 'hits': 0, 'datasets': []}
    if embedder.mode not in IMAGE_MODES:
        stats['has_language_meaning'] = None
        return stats
    if embedder.cache_dir is None:
        raise ValueError('precompute_embeddings needs embedder_cfg["cache_dir"]; without a cache '
                         'the embeddings would be computed and thrown away')
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    generator = embedder.generator(device)
    stats.update(has_language_meaning=generator.has_language_meaning, device=str(device))
    pipeline = [LoadImageFromFile(), TRANSFORMS.build(inputs_transform_cfg(embedder.generator_cfg))]

    start, images = time.perf_counter(), 0
    for dataset_cfg in dataset_cfgs:
        dataset = DATASETS.build({**copy.deepcopy(dataset_cfg), 'pipeline': pipeline})
        name = describe_dataset(dataset_cfg)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                            collate_fn=_embedding_inputs)
        split = {'dataset': name, 'samples': len(dataset), 'computed': 0, 'hits': 0}
        with tqdm(total=len(dataset), desc=f'embed {name}', disable=not progress,
                  unit='img') as bar:
            for batch in loader:
                hits, misses = embedder.hits, embedder.misses
                embedder.features(batch, device)
                split['computed'] += embedder.misses - misses
                split['hits'] += embedder.hits - hits
                bar.update(len(batch))
        images += len(dataset)
        stats['datasets'].append(split)
        stats['computed'] += split['computed']
        stats['hits'] += split['hits']
    seconds = time.perf_counter() - start
    stats['images_per_s'] = images / seconds if seconds > 0 else None
    return stats


def _embedding_inputs(samples: list[dict]) -> list[dict]:
    """A batch of DomainEmbeddingInputs outputs (CLIP pixels and cache key), without the
    decoded images (only the workers need those)."""
    return [{key: sample[key] for key in (PIXELS_KEY, CACHE_KEY)} for sample in samples]


def describe_dataset(dataset_cfg: dict) -> str:
    """E.g. ``ACDCDataset fog val (data/acdc)``: a name that tells the splits and conditions of
    an experiment apart."""
    parts = [dataset_cfg['type'], dataset_cfg.get('condition'), dataset_cfg.get('split')]
    prefix = dataset_cfg.get('data_prefix', {}).get('img_path', '')
    root = dataset_cfg.get('data_root', '')
    where = os.path.join(root, prefix) if prefix else root
    return ' '.join(str(p) for p in parts if p) + f' ({where})'
