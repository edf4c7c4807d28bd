"""The weather and lighting conditions domino-seg knows, and which of them a run trains on.

The bottom layer: datasets, layouts, prompts, metrics and comparisons import these names from
here. Cityscapes samples carry the condition ``cityscapes``; as a domain they are ``clear``.
"""
from __future__ import annotations

from typing import Mapping

ACDC_CONDITIONS = ('fog', 'night', 'rain', 'snow')
# conditions a sample can carry (and be scored on): the Cityscapes domain plus the ACDC ones
EVAL_CONDITIONS = ('cityscapes',) + ACDC_CONDITIONS
# dataset condition -> the prompt-bank condition that describes it
DOMAIN_OF_CONDITION = {'cityscapes': 'clear'}


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
    return 'cityscapes' if source.get('kind') == 'cityscapes' else source.get('condition')
