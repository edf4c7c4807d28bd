"""Label-id tables: datasets with classes of their own, mapped to the 19 Cityscapes trainIds.

A table maps a dataset's label ids to trainIds 0..18; every id it does not list becomes 255
(ignore, not scored). :class:`~domino_seg.data.transforms.MapLabels` applies one after the
label map is loaded, so CheckSegLabels still verifies the result.

Mapillary Vistas v1.2 (66 classes, ids 0..65 in ``<split>/labels/*.png``): the mapping used in
the domain-adaptation / domain-generalisation literature on Cityscapes -> Mapillary, e.g. in
lhoyer/HRDA ``tools/convert_datasets/mapillary.py`` (commit 2f27bea) and in
tue-mps/benchmark-vfm-ss ``datasets/mappings.py`` (``get_mapillary_mapping``), which agree
id for id: road <- road, lane marking (general), manhole; sidewalk <- curb, sidewalk; pole <-
pole, utility pole; rider <- the three riders; traffic sign <- its front; the other 13
Cityscapes classes <- the Vistas class of the same meaning (train <- on rails). Everything
else (bike lane, crosswalks, parking, snow, water, street lights, sign backs, caravans,
trailers, ego vehicle, unlabeled, ...) is ignore. The class ids and names are those of the
dataset's ``config.json`` (v1.2).
"""
from __future__ import annotations

from typing import Mapping, Union

import numpy as np

from domino_seg.errors import ConfigError

IGNORE = 255

# Cityscapes trainIds, in order
TRAIN_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                 'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
                 'truck', 'bus', 'train', 'motorcycle', 'bicycle')

# Mapillary Vistas v1.2 label ids 0..65 (config.json order)
VISTAS_V12_CLASSES = (
    'animal--bird', 'animal--ground-animal',
    'construction--barrier--curb', 'construction--barrier--fence',
    'construction--barrier--guard-rail', 'construction--barrier--other-barrier',
    'construction--barrier--wall',
    'construction--flat--bike-lane', 'construction--flat--crosswalk-plain',
    'construction--flat--curb-cut', 'construction--flat--parking',
    'construction--flat--pedestrian-area', 'construction--flat--rail-track',
    'construction--flat--road', 'construction--flat--service-lane',
    'construction--flat--sidewalk',
    'construction--structure--bridge', 'construction--structure--building',
    'construction--structure--tunnel',
    'human--person', 'human--rider--bicyclist', 'human--rider--motorcyclist',
    'human--rider--other-rider',
    'marking--crosswalk-zebra', 'marking--general',
    'nature--mountain', 'nature--sand', 'nature--sky', 'nature--snow', 'nature--terrain',
    'nature--vegetation', 'nature--water',
    'object--banner', 'object--bench', 'object--bike-rack', 'object--billboard',
    'object--catch-basin', 'object--cctv-camera', 'object--fire-hydrant',
    'object--junction-box', 'object--mailbox', 'object--manhole', 'object--phone-booth',
    'object--pothole', 'object--street-light', 'object--support--pole',
    'object--support--traffic-sign-frame', 'object--support--utility-pole',
    'object--traffic-light', 'object--traffic-sign--back', 'object--traffic-sign--front',
    'object--trash-can',
    'object--vehicle--bicycle', 'object--vehicle--boat', 'object--vehicle--bus',
    'object--vehicle--car', 'object--vehicle--caravan', 'object--vehicle--motorcycle',
    'object--vehicle--on-rails', 'object--vehicle--other-vehicle', 'object--vehicle--trailer',
    'object--vehicle--truck', 'object--vehicle--wheeled-slow',
    'void--car-mount', 'void--ego-vehicle', 'void--unlabeled',
)

# Cityscapes class <- the Vistas v1.2 classes that become it (sources in the module doc)
VISTAS_V12_TO_CITYSCAPES = {
    'road': ('construction--flat--road', 'marking--general', 'object--manhole'),
    'sidewalk': ('construction--barrier--curb', 'construction--flat--sidewalk'),
    'building': ('construction--structure--building',),
    'wall': ('construction--barrier--wall',),
    'fence': ('construction--barrier--fence',),
    'pole': ('object--support--pole', 'object--support--utility-pole'),
    'traffic light': ('object--traffic-light',),
    'traffic sign': ('object--traffic-sign--front',),
    'vegetation': ('nature--vegetation',),
    'terrain': ('nature--terrain',),
    'sky': ('nature--sky',),
    'person': ('human--person',),
    'rider': ('human--rider--bicyclist', 'human--rider--motorcyclist',
              'human--rider--other-rider'),
    'car': ('object--vehicle--car',),
    'truck': ('object--vehicle--truck',),
    'bus': ('object--vehicle--bus',),
    'train': ('object--vehicle--on-rails',),
    'motorcycle': ('object--vehicle--motorcycle',),
    'bicycle': ('object--vehicle--bicycle',),
}


def _by_name(source_classes: tuple, targets: Mapping[str, tuple]) -> dict[int, int]:
    source_id = {name: i for i, name in enumerate(source_classes)}
    return {source_id[name]: TRAIN_CLASSES.index(train_class)
            for train_class, names in targets.items() for name in names}


# name -> ({source id: trainId}, number of source ids, what the ids are)
LABEL_MAPS = {
    'mapillary_v1.2': (_by_name(VISTAS_V12_CLASSES, VISTAS_V12_TO_CITYSCAPES),
                       len(VISTAS_V12_CLASSES), 'Mapillary Vistas v1.2 label ids 0..65'),
}


def lookup_table(table: Union[str, Mapping]) -> tuple[np.ndarray, int, str]:
    """``(lut, num_ids, what)``: a 256-entry uint8 table (source id -> trainId, 255 for ids it
    does not list), the number of ids the source dataset has (ids from it on are not its
    labels) and a description. ``table`` is a name of LABEL_MAPS or a mapping
    ``{id: trainId}`` (keys may be digit strings, as YAML keys; any id 0..255 is accepted)."""
    if isinstance(table, str):
        if table not in LABEL_MAPS:
            raise ConfigError(f'MapLabels(table={table!r}): unknown table; known: '
                              f'{", ".join(LABEL_MAPS)}, or a mapping {{id: trainId}}.')
        mapping, num_ids, what = LABEL_MAPS[table]
    elif isinstance(table, Mapping):
        try:
            mapping = {int(k): int(v) for k, v in table.items()}
        except (TypeError, ValueError):
            raise ConfigError(f'MapLabels(table={dict(table)!r}): a table maps integer label '
                              'ids to trainIds.') from None
        num_ids, what = 256, 'label ids'
    else:
        raise ConfigError(f'MapLabels(table={table!r}): give a table name '
                          f'({", ".join(LABEL_MAPS)}) or a mapping {{id: trainId}}.')
    bad = {k: v for k, v in mapping.items() if not 0 <= k < 256
           or not (0 <= v < len(TRAIN_CLASSES) or v == IGNORE)}
    if bad:
        raise ConfigError(f'MapLabels: entries {bad} are out of range: ids are 0..255, trainIds '
                          f'0..{len(TRAIN_CLASSES) - 1} or {IGNORE} (ignore).')
    lut = np.full(256, IGNORE, np.uint8)
    for source, train_id in mapping.items():
        lut[source] = train_id
    return lut, num_ids, what
