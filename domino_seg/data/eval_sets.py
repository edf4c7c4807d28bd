"""More evaluation sets: datasets beyond Cityscapes and ACDC, each read in its official layout
(see the layouts in :mod:`domino_seg.data.layouts`) and scored as conditions of their own.

``data.eval_sets`` lists them; each entry ``{kind: ..., ...}`` is one evaluated condition,
except ``folders``, which is one per condition sub-folder. Kinds and their keys:

* ``dark_zurich``: Dark Zurich (night), ``split`` val (labelled) or test; condition
  ``dark_zurich``.
* ``foggy_cityscapes``: Foggy Cityscapes at one fog density ``beta`` (0.005, 0.01, 0.02;
  default 0.02), labelled by the Cityscapes labels under ``labels_root`` (default: ``root``,
  the Cityscapes root holding ``leftImg8bit_foggy/``); condition ``foggy_cityscapes_<beta>``.
* ``bdd100k``: BDD100K semantic segmentation (10K images; labels already trainIds); condition
  ``bdd100k``.
* ``mapillary``: Mapillary Vistas v1.2 (66 class ids, mapped to trainIds: label_maps.py);
  splits train/val/test name the folders training/validation/testing; condition
  ``mapillary``.
* ``folders``: a user's own data, ``<root>/<condition>/images/...`` and
  ``<root>/<condition>/labels/...`` (trainIds), each sub-folder a condition named after it
  (``conditions``: the sub-folders to evaluate, default all).

Common keys: ``root`` (default ``data.eval_set_roots.<kind>``, i.e. ``paths.<kind>``; required
for folders), ``split`` (default ``data.eval_split``), ``condition`` (the name in tables,
metrics.json and prediction folders) and ``prompt``: the prompt-bank condition ``domain=text``
embeds for its samples (default: night for Dark Zurich, fog for Foggy Cityscapes, clear for
BDD100K and Mapillary, which mix conditions but are mostly clear daytime; for folders the folder
name, or one prompt for all, or a mapping ``{folder: prompt}``).
"""
from __future__ import annotations

import os
import os.path as osp
import re
from dataclasses import replace
from typing import Optional

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from domino_seg.data.cityscapes import tag_samples
from domino_seg.data.layouts import (
    BDD100K,
    CONDITION_FOLDERS,
    DARK_ZURICH,
    FOGGY_BETAS,
    MAPILLARY,
    Layout,
    check_split,
    foggy_cityscapes,
    label_name,
    readable,
    scan,
)
from domino_seg.data.sources import check_kind_and_keys
from domino_seg.errors import ConfigError, DataError

KINDS = ('dark_zurich', 'foggy_cityscapes', 'bdd100k', 'mapillary', 'folders')
_COMMON = ('kind', 'root', 'split', 'condition', 'prompt')
KEYS = {'dark_zurich': _COMMON, 'foggy_cityscapes': _COMMON + ('beta', 'labels_root'),
        'bdd100k': _COMMON, 'mapillary': _COMMON, 'folders': ('kind', 'root', 'conditions',
                                                               'prompt')}
SPLITS = {'dark_zurich': ('val', 'test'), 'foggy_cityscapes': ('train', 'val', 'test'),
          'bdd100k': ('train', 'val', 'test'), 'mapillary': ('train', 'val', 'test')}
MAPILLARY_SPLITS = {'train': 'training', 'val': 'validation', 'test': 'testing'}
PROMPTS = {'dark_zurich': 'night', 'foggy_cityscapes': 'fog', 'bdd100k': 'clear',
           'mapillary': 'clear'}
# the label table of the kinds whose labels are not trainIds (data/label_maps.py)
LABEL_TABLES = {'mapillary': 'mapillary_v1.2'}
# kinds whose images differ in size: evaluation batches group them by size
MIXED_SIZES = ('mapillary', 'folders')
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.@+-]*$')


def eval_sets(data: DictConfig) -> list[dict]:
    """``data.eval_sets`` as checked plain dicts, one per evaluated condition (a ``folders``
    entry gives one per condition sub-folder, which is why its root must exist here)."""
    entries = data.get('eval_sets')
    entries = OmegaConf.to_container(entries, resolve=True) if OmegaConf.is_config(entries) \
        else entries
    if not entries:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f'data.eval_sets={entries!r}: a list of evaluation sets, e.g. '
                          '[{kind: dark_zurich}, {kind: folders, root: /data/site}]; kinds: '
                          f'{", ".join(KINDS)}.')
    roots = data.get('eval_set_roots') or {}
    checked = []
    for index, entry in enumerate(entries):
        checked += _checked(index, entry, data, roots)
    return checked


def _checked(index: int, entry, data: DictConfig, roots) -> list[dict]:
    key = f'data.eval_sets[{index}]'
    kind = check_kind_and_keys(key, entry, KEYS, 'evaluation set')
    root, root_key = entry.get('root'), f'{key}.root'
    if not root and kind != 'folders' and roots.get(kind):
        root, root_key = roots[kind], f'paths.{kind}'
    if not root:
        raise ConfigError(f'{key}.root is not set: the folder of this {kind} set'
                          + (' (<root>/<condition>/images, <root>/<condition>/labels).'
                             if kind == 'folders' else f' (or set paths.{kind}).'))
    root = str(root)
    if kind == 'folders':
        return _folder_sets(key, entry, root)
    split = str(entry.get('split') or data.get('eval_split') or 'val')
    if kind == 'mapillary':
        split = MAPILLARY_SPLITS.get(split, split)
        valid = tuple(MAPILLARY_SPLITS.values())
    else:
        valid = SPLITS[kind]
    if split not in valid:
        raise ConfigError(f'{key}.split={split!r}: {kind} has the splits {", ".join(valid)}.')
    beta = None
    if kind == 'foggy_cityscapes':
        beta = _beta(key, entry.get('beta', 0.02))
    condition = entry.get('condition') or (f'foggy_cityscapes_{beta}' if beta else kind)
    prompt = entry.get('prompt') or PROMPTS[kind]
    _check_name(f'{key}.condition', condition)
    _check_name(f'{key}.prompt', prompt)
    return [dict(kind=kind, key=key, root=root, root_key=root_key, split=split,
                 condition=str(condition), prompt=str(prompt), beta=beta,
                 labels_root=str(entry.get('labels_root') or root), folder=None)]


def _beta(key: str, beta) -> str:
    """The fog density as the file names write it ('0.02')."""
    text = str(beta)
    for known in FOGGY_BETAS:
        try:
            if float(text) == float(known):
                return known
        except ValueError:
            break
    raise ConfigError(f'{key}.beta={beta!r}: Foggy Cityscapes has the fog densities '
                      f'{", ".join(FOGGY_BETAS)} (beta, the attenuation coefficient).')


def _check_name(key: str, name) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f'{key}={name!r}: a name of letters, digits and _ . @ + - that '
                          'starts with a letter or digit (it names a column of the tables and '
                          'a folder of saved predictions).')


def _folder_sets(key: str, entry: dict, root: str) -> list[dict]:
    expected = (f'Expected layout:\n  {root}/<condition>/images/<...>/<name>.png|.jpg\n'
                f'  {root}/<condition>/labels/<...>/<name>.png\n'
                'Each condition is a folder of your own data: the images in images/, their labels '
                'under the same names in labels/ (8-bit grey PNGs of the 19 Cityscapes trainIds, '
                '255 = ignore).')
    if not osp.isdir(root):
        raise DataError(f'{key}: the condition folders root {root!r} does not exist.\n'
                        f'{expected} Set {key}.root=/path/to/your/data.')
    found = sorted(name for name in os.listdir(root)
                   if osp.isdir(osp.join(root, name)) and not name.startswith('.'))
    chosen = entry.get('conditions')
    if chosen is not None:
        if isinstance(chosen, str) or not isinstance(chosen, list) or not chosen:
            raise ConfigError(f'{key}.conditions={chosen!r}: a list of condition folder names '
                              f'of {root} (default: all of them).')
        absent = [name for name in chosen if name not in found]
        if absent:
            raise DataError(f'{key}.conditions: {root!r} has no condition folder(s) {absent}; '
                            f'its folders: {found}.\n{expected}')
    else:
        chosen = found
    if not chosen:
        raise DataError(f'{key}: {root!r} holds no condition folder.\n{expected}')
    prompt = entry.get('prompt')
    if prompt is not None and not isinstance(prompt, (str, dict)):
        raise ConfigError(f'{key}.prompt={prompt!r}: one prompt-bank condition for every '
                          'folder, or a mapping {folder: condition}.')
    sets = []
    for name in chosen:
        _check_name(f'{key}: condition folder', name)
        folder_prompt = prompt.get(name, name) if isinstance(prompt, dict) else prompt or name
        _check_name(f'{key}.prompt', folder_prompt)
        sets.append(dict(kind='folders', key=key, root=root, root_key=f'{key}.root', split='',
                         condition=name, prompt=str(folder_prompt), beta=None,
                         labels_root=root, folder=name))
    return sets


def layout(eval_set: dict) -> tuple[Layout, str, str]:
    """``(layout, cond, labels_root)`` of a checked set: its layout (naming the config key of
    its root), the ``{cond}`` of the layout's folders and the root of its label folders."""
    kind, root = eval_set['kind'], eval_set['root']
    if kind == 'dark_zurich':
        found = DARK_ZURICH
    elif kind == 'foggy_cityscapes':
        found = foggy_cityscapes(eval_set['beta'])
    elif kind == 'bdd100k':
        found = BDD100K
    elif kind == 'mapillary':
        found = MAPILLARY
        # the v2.0 release keeps the v1.2 labels in <split>/v1.2/labels
        if osp.isdir(osp.join(root, eval_set['split'], 'v1.2', 'labels')):
            found = replace(found, ann_dir='{split}/v1.2/labels')
    else:
        found = CONDITION_FOLDERS
    hint = (f'Or drop {eval_set["key"]} from data.eval_sets.' if kind != 'folders' else
            f'Or list the condition folders to evaluate in {eval_set["key"]}.conditions.')
    return (replace(found, config_key=eval_set['root_key'], hint=hint),
            eval_set['folder'] or '', eval_set['labels_root'])


def _what(eval_set: dict) -> Optional[str]:
    if eval_set['kind'] == 'folders':
        return f'condition folder {eval_set["condition"]!r}'
    if eval_set['kind'] == 'foggy_cityscapes':
        return f'Foggy Cityscapes beta={eval_set["beta"]} {eval_set["split"]} split'
    return None


def check_set(eval_set: dict, labels: bool = True) -> None:
    """Fail in a second, naming the folder, the expected layout and where to get the data,
    when an evaluation set is missing, empty or has images without labels."""
    found, cond, labels_root = layout(eval_set)
    check_split(found, eval_set['root'], eval_set['split'], cond, labels=labels,
                ann_root=labels_root, what=_what(eval_set))


def dataset_cfg(eval_set: dict, pipeline: list[dict], labels: bool = True) -> dict:
    """The mmseg dataset of one checked set; its labels are mapped to trainIds right after
    loading when the dataset has ids of its own."""
    table = LABEL_TABLES.get(eval_set['kind'])
    if labels and table:
        at = next(i for i, t in enumerate(pipeline) if t['type'] == 'LoadCheckedAnnotations')
        pipeline = [*pipeline[:at + 1], dict(type='MapLabels', table=table),
                    *pipeline[at + 1:]]
    return dict(type='EvalSetDataset', data_root=eval_set['root'],
                eval_set={k: v for k, v in eval_set.items() if k != 'root'},
                labels=labels, pipeline=pipeline)


@DATASETS.register_module()
class EvalSetDataset(CityscapesDataset):
    """One evaluated condition of ``data.eval_sets`` (a checked entry of :func:`eval_sets`):
    its images in their official layout, each paired with its label file, tagged with the
    set's ``condition`` and ``prompt_condition`` (the prompt ``domain=text`` embeds). Images of
    sets with mixed sizes carry ``size_group`` (width, height), by which evaluation batches are
    grouped. ``labels=False`` lists the images only."""

    def __init__(self, data_root: str, eval_set: dict, labels: bool = True, **kwargs) -> None:
        self.eval_set = {**eval_set, 'root': data_root}
        self.condition = eval_set['condition']
        self.labels = labels
        self.group_by_size = eval_set['kind'] in MIXED_SIZES
        found, _, _ = layout(self.eval_set)
        super().__init__(data_root=data_root, img_suffix=found.img_suffix,
                         seg_map_suffix=found.seg_map_suffix, **kwargs)

    def load_data_list(self) -> list[dict]:
        check_set(self.eval_set, self.labels)
        found, cond, labels_root = layout(self.eval_set)
        split = self.eval_set['split']
        img_dir = osp.join(self.data_root, found.img_dir.format(split=split, cond=cond))
        ann_dir = osp.join(labels_root, found.ann_dir.format(split=split, cond=cond))
        data_list = []
        for image in sorted(scan(img_dir, found.img_suffix)):
            info = dict(img_path=osp.join(img_dir, image), label_map=self.label_map,
                        reduce_zero_label=self.reduce_zero_label, seg_fields=[],
                        prompt_condition=self.eval_set['prompt'])
            if self.labels:
                info['seg_map_path'] = osp.join(ann_dir, label_name(found, image))
            if self.group_by_size:
                with readable(info['img_path'], 'image'), Image.open(info['img_path']) as img:
                    info['size_group'] = img.size
            data_list.append(info)
        return tag_samples(data_list, self.condition, img_dir)
