"""Fill the embedding cache ahead of training (the core of ``tools/embed_domains.py``).

Running CLIP once over every image up front keeps it out of the training loop: training then
only reads cached features. Only ``image``/``zero_shot`` modes have anything to precompute.
"""
from __future__ import annotations

import copy
import os

from mmcv.transforms import LoadImageFromFile
from tqdm import tqdm

import mmseg.datasets  # noqa: F401  (registers mmseg's dataset types)
from mmseg.registry import DATASETS, TRANSFORMS

from .clip_generator import IMAGE_MODES


def precompute_embeddings(dataset_cfgs: list[dict], transform_cfg: dict,
                          progress: bool = True) -> dict:
    """Embed every image of every dataset through one DomainEmbedding transform.

    Args:
        dataset_cfgs: plain mmseg dataset configs (not wrappers); their pipeline is replaced by
            LoadImageFromFile (mmcv defaults, as in training) + the DomainEmbedding transform.
        transform_cfg: the DomainEmbedding config used in training (``type`` may be omitted);
            it must name a ``cache_dir`` for the work to be kept.
        progress: show a tqdm bar per dataset.

    Returns:
        ``{'mode', 'has_language_meaning', 'computed', 'hits', 'datasets': [{'dataset',
        'samples', 'computed', 'hits'}, ...]}`` where computed = CLIP forwards, hits = cache hits.
    """
    transform = TRANSFORMS.build({'type': 'DomainEmbedding', **transform_cfg})
    stats = {'mode': transform.mode, 'computed': 0, 'hits': 0, 'datasets': []}
    if transform.mode not in IMAGE_MODES:
        stats['has_language_meaning'] = None
        return stats
    if transform.cache_dir is None:
        raise ValueError('precompute_embeddings needs transform_cfg["cache_dir"]; without a cache '
                         'the embeddings would be computed and thrown away')
    stats['has_language_meaning'] = transform.generator.has_language_meaning

    for dataset_cfg in dataset_cfgs:
        dataset_cfg = {**copy.deepcopy(dataset_cfg), 'pipeline': [LoadImageFromFile(), transform]}
        dataset = DATASETS.build(dataset_cfg)
        name = describe_dataset(dataset_cfg)
        hits, misses = transform.hits, transform.misses
        for index in tqdm(range(len(dataset)), desc=f'embed {name}', disable=not progress):
            dataset[index]
        split = {'dataset': name, 'samples': len(dataset),
                 'computed': transform.misses - misses, 'hits': transform.hits - hits}
        stats['datasets'].append(split)
        stats['computed'] += split['computed']
        stats['hits'] += split['hits']
    return stats


def describe_dataset(dataset_cfg: dict) -> str:
    """E.g. ``ACDCDataset fog val (data/acdc)``: a name that tells the splits and conditions of
    an experiment apart."""
    parts = [dataset_cfg['type'], dataset_cfg.get('condition'), dataset_cfg.get('split')]
    prefix = dataset_cfg.get('data_prefix', {}).get('img_path', '')
    root = dataset_cfg.get('data_root', '')
    where = os.path.join(root, prefix) if prefix else root
    return ' '.join(str(p) for p in parts if p) + f' ({where})'
