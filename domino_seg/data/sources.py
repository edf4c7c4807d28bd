"""Training sources: the labelled datasets a run trains on, each of one known condition.

``data.train_sources`` lists them; every sample keeps its source's condition in its metainfo,
so ``domain=text`` gives each domain its own embedding. Kinds:

* ``cityscapes``: a Cityscapes split (condition ``cityscapes``, i.e. clear);
* ``acdc``: the split of one ACDC condition (``condition``: fog, night, rain or snow, or one
  of the synthetic benchmark's ``data.conditions``);
* ``generated``: a folder of images generated from Cityscapes label maps in one ``condition``
  (see :mod:`domino_seg.data.generated`), labelled by the Cityscapes ``split`` labels under
  ``labels_root`` (default ``data.cityscapes_root``).

``weight`` is the probability of drawing from a source (normalised over the sources); with no
weights, sources are drawn in proportion to their size.
"""
from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig, OmegaConf

from domino_seg.conditions import ACDC_CONDITIONS, run_conditions
from domino_seg.data.generated import scan_generated
from domino_seg.data.layouts import ACDC, CITYSCAPES, check_split
from domino_seg.data.synthetic import RENDERABLE
from domino_seg.errors import ConfigError

KINDS = ('cityscapes', 'acdc', 'generated')
KEYS = {'cityscapes': ('kind', 'root', 'split', 'weight'),
        'acdc': ('kind', 'root', 'split', 'condition', 'weight'),
        'generated': ('kind', 'root', 'split', 'condition', 'labels_root', 'weight')}


def known_conditions(data: DictConfig) -> tuple[str, ...]:
    """The adverse conditions a data config may name (``data.conditions``, training sources,
    weather augmentation): any weather preset the synthetic benchmark renders
    (``data.name: synthetic``); real ACDC keeps its four."""
    if data.get('name') != 'synthetic':
        return ACDC_CONDITIONS
    return RENDERABLE


def train_sources(data: DictConfig) -> list[dict]:
    """``data.train_sources`` as checked plain dicts (each with every key of its kind)."""
    sources = OmegaConf.to_container(data.train_sources, resolve=True) \
        if data.get('train_sources') else None
    if not sources or not isinstance(sources, list):
        raise ConfigError('data.train_sources must be a non-empty list of sources, e.g. '
                          '[{kind: cityscapes, root: data/cityscapes}]; kinds: '
                          f'{", ".join(KINDS)}.')
    checked = [_checked(i, source, data) for i, source in enumerate(sources)]
    weights = [source['weight'] for source in checked]
    if any(w is not None for w in weights) and None in weights:
        raise ConfigError('data.train_sources: give every source a weight, or none (then '
                          f'sources are drawn in proportion to their size); got {weights}.')
    return checked


def check_kind_and_keys(key: str, entry, keys_of_kind: dict, what: str) -> str:
    """The ``kind`` of one entry of a list of typed mappings (a training source, an evaluation
    set), checked: a mapping, a known kind, only that kind's keys (``keys_of_kind``)."""
    if not isinstance(entry, dict) or entry.get('kind') not in keys_of_kind:
        raise ConfigError(f'{key}={entry!r}: each {what} is a mapping with a kind, one of '
                          f'{", ".join(keys_of_kind)}.')
    kind = entry['kind']
    unknown = sorted(set(entry) - set(keys_of_kind[kind]))
    if unknown:
        raise ConfigError(f'{key} ({kind}) has unknown key(s) {unknown}; a {kind} {what} '
                          f'takes {", ".join(keys_of_kind[kind])}.')
    return kind


def _checked(index: int, source, data: DictConfig) -> dict:
    key = f'data.train_sources[{index}]'
    kind = check_kind_and_keys(key, source, KEYS, 'source')
    if not source.get('root'):
        raise ConfigError(f'{key}.root is not set: the folder of this {kind} source.')
    checked = {'split': 'train', 'weight': None, **source}
    # an acdc source reads a condition of the data (data.conditions); a generated one may be
    # in any condition the data config knows
    valid = run_conditions(data)[1:] if kind == 'acdc' else known_conditions(data)
    if kind != 'cityscapes' and checked.get('condition') not in valid:
        raise ConfigError(f'{key}.condition={checked.get("condition")!r}: a {kind} source '
                          f'needs its condition, one of {", ".join(valid)}.')
    if kind == 'generated':
        checked.setdefault('labels_root', None)
        checked['labels_root'] = checked['labels_root'] or data.cityscapes_root
    weight = checked['weight']
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                               or weight <= 0):
        raise ConfigError(f'{key}.weight={weight!r}: a weight is a number > 0 (or null for '
                          'all sources: in proportion to their size).')
    return checked


def dataset_cfg(source: dict, pipeline: list[dict]) -> dict:
    """The mmseg dataset of one checked source."""
    if source['kind'] == 'cityscapes':
        return dict(type='DominoCityscapesDataset', data_root=source['root'],
                    split=source['split'], pipeline=pipeline)
    if source['kind'] == 'acdc':
        return dict(type='ACDCDataset', data_root=source['root'], condition=source['condition'],
                    split=source['split'], pipeline=pipeline)
    return dict(type='GeneratedDataset', data_root=source['root'],
                condition=source['condition'], labels_root=source['labels_root'],
                split=source['split'], pipeline=pipeline)


def sampler_weights(sources: list[dict]) -> Optional[list[float]]:
    """Normalised per-source draw probabilities, or None (in proportion to size)."""
    weights = [source['weight'] for source in sources]
    if weights[0] is None:
        return None
    return [w / sum(weights) for w in weights]


def check_source(source: dict) -> None:
    """Fail in a second, naming the folder and the expected layout, when a source's data is
    missing or empty."""
    if source['kind'] == 'cityscapes':
        check_split(CITYSCAPES, source['root'], source['split'])
    elif source['kind'] == 'acdc':
        check_split(ACDC, source['root'], source['split'], source['condition'])
    else:
        scan_generated(source['root'], source['labels_root'], source['split'])
