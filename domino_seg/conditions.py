"""The benchmark's fixed facts: the weather and lighting conditions domino-seg knows (and which
of them a run trains on), the Cityscapes label ids and the image names of the two datasets.

The bottom layer: datasets, layouts, prompts, metrics, submissions and comparisons import these
names from here. Cityscapes samples carry the condition ``cityscapes``; as a domain they are
``clear``.
"""
from __future__ import annotations

import os.path as osp
from typing import Mapping

import numpy as np

# the condition Cityscapes samples carry (clear weather, the source domain)
CITYSCAPES = 'cityscapes'
ACDC_CONDITIONS = ('fog', 'night', 'rain', 'snow')
# conditions a sample of real data can carry (and be scored on): the Cityscapes domain plus
# the ACDC ones; the synthetic benchmark's data config may name more (run_conditions)
EVAL_CONDITIONS = (CITYSCAPES,) + ACDC_CONDITIONS
# dataset condition -> the prompt-bank condition that describes it
DOMAIN_OF_CONDITION = {CITYSCAPES: 'clear'}

# the metainfo key under which a sample's domain embedding reaches the Domino layers
EMBEDDING_KEY = 'domain_embedding'

# Cityscapes trainIds 0..18 -> labelIds (what the evaluation servers score); 255 (ignore) -> 0
TRAIN_ID_TO_ID = np.zeros(256, np.uint8)
TRAIN_ID_TO_ID[:19] = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]

# how the image files of each dataset end (data/layouts.py's layouts use them)
CITYSCAPES_IMAGE_SUFFIX = '_leftImg8bit.png'
ACDC_IMAGE_SUFFIX = '_rgb_anon.png'


def run_conditions(data: Mapping) -> tuple[str, ...]:
    """The conditions a run can evaluate: ``cityscapes`` and the adverse conditions of its
    ACDC-layout data, ``data.conditions`` (ACDC's four when the config has none)."""
    conditions = data.get('conditions')
    return (CITYSCAPES, *(ACDC_CONDITIONS if conditions is None else conditions))


def seen_conditions(data: Mapping) -> list[str]:
    """Conditions a run trains on: ``data.seen_conditions``, the conditions of its training
    sources and its weather augmentation, in that order (works on a DictConfig or the plain
    dict a run's ``config.yaml`` holds)."""
    sources = data.get('train_sources') or []
    return list(dict.fromkeys([*data.get('seen_conditions', []),
                               *(source_condition(source) for source in sources),
                               *data.get('train_weather', [])]))


def source_condition(source: Mapping) -> str:
    """The condition every sample of a training source carries (Cityscapes: ``cityscapes``)."""
    return CITYSCAPES if source.get('kind') == 'cityscapes' else source.get('condition')


def image_stem(rel_path: str) -> str:
    """An image's path without its image-type suffix (``_leftImg8bit.png``, ``_rgb_anon.png``;
    any other name loses its extension only): the part that the files written for it (label
    maps, submissions) keep, so that they are named as label files, not as images."""
    for suffix in (CITYSCAPES_IMAGE_SUFFIX, ACDC_IMAGE_SUFFIX):
        if rel_path.endswith(suffix):
            return rel_path[:-len(suffix)]
    return osp.splitext(rel_path)[0]
