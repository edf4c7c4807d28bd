"""More evaluation sets: datasets beyond Cityscapes and ACDC, each read in its official layout
(see the layouts in :mod:`domino_seg.data.layouts`) and scored as conditions of their own.

``data.eval_sets`` lists them; each entry ``{kind: ..., ...}`` is one evaluated condition,
except ``folders``, which is one per condition sub-folder. Each kind is a dataset class
registered by its name in ``EVAL_SETS`` (:class:`EvalSetDataset`; a kind of one's own: a module
registering one, named in ``data.imports``). The kinds here and their keys:

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

from mmseg.datasets import BDD100KDataset, CityscapesDataset, DarkZurichDataset
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
from domino_seg.registry import EVAL_SETS, registered

NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.@+-]*$')


def kinds() -> dict[str, type]:
    """The registered kinds (``EVAL_SETS``) and their classes, in registration order."""
    return {kind: EVAL_SETS.get(kind) for kind in registered(EVAL_SETS)}


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
                          f'{", ".join(kinds())}.')
    roots = data.get('eval_set_roots') or {}
    keys = {kind: cls.keys for kind, cls in kinds().items()}
    checked = []
    for index, entry in enumerate(entries):
        key = f'data.eval_sets[{index}]'
        kind = check_kind_and_keys(key, entry, keys, 'evaluation set')
        checked += EVAL_SETS.get(kind).checked(kind, key, entry, data, roots)
    return checked


def check_name(key: str, name) -> None:
    """A condition or prompt name: it names a column of the tables and a folder."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f'{key}={name!r}: a name of letters, digits and _ . @ + - that '
                          'starts with a letter or digit (it names a column of the tables and '
                          'a folder of saved predictions).')


def _kind(eval_set: dict) -> type:
    return EVAL_SETS.get(eval_set['kind'])


def layout(eval_set: dict) -> tuple[Layout, str, str]:
    """``(layout, cond, labels_root)`` of a checked set: its layout (naming the config key of
    its root), the ``{cond}`` of the layout's folders and the root of its label folders."""
    kind = _kind(eval_set)
    return (replace(kind.set_layout(eval_set), config_key=eval_set['root_key'],
                    hint=kind.hint(eval_set)),
            eval_set['folder'] or '', eval_set['labels_root'])


def check_set(eval_set: dict, labels: bool = True) -> None:
    """Fail in a second, naming the folder, the expected layout and where to get the data,
    when an evaluation set is missing, empty or has images without labels."""
    found, cond, labels_root = layout(eval_set)
    check_split(found, eval_set['root'], eval_set['split'], cond, labels=labels,
                ann_root=labels_root, what=_kind(eval_set).what(eval_set))


def dataset_cfg(eval_set: dict, pipeline: list[dict], labels: bool = True) -> dict:
    """The mmseg dataset of one checked set (its kind's class, ``domino_seg.<kind>`` in
    mmseg's DATASETS); its labels are mapped to trainIds right after loading when the
    dataset has ids of its own."""
    table = _kind(eval_set).label_table
    if labels and table:
        at = next(i for i, t in enumerate(pipeline) if t['type'] == 'LoadCheckedAnnotations')
        pipeline = [*pipeline[:at + 1], dict(type='MapLabels', table=table),
                    *pipeline[at + 1:]]
    return dict(type=f'{EVAL_SETS.scope}.{eval_set["kind"]}', data_root=eval_set['root'],
                eval_set={k: v for k, v in eval_set.items() if k != 'root'},
                labels=labels, pipeline=pipeline)


class EvalSetDataset(CityscapesDataset):
    """One evaluated condition of ``data.eval_sets`` (a checked entry of :func:`eval_sets`):
    its images in their layout, each paired with its label file, tagged with the set's
    ``condition`` and ``prompt_condition`` (the prompt ``domain=text`` embeds). Images of sets
    with mixed sizes carry ``size_group`` (width, height), by which evaluation batches are
    grouped. ``labels=False`` lists the images only.

    The base of the kinds: a kind is a subclass registered by its name in ``EVAL_SETS``, whose
    class attributes say what the kind's data is (the classmethods read them; a kind
    overrides one where its entries say more, e.g. Foggy Cityscapes' ``beta``). Its labels
    are the 19 Cityscapes trainIds (``label_table`` maps other ids to them), so every set is
    scored with the same classes.
    """

    layout: Layout = None  # folders ({split}, {cond}), suffixes, download site
    splits: tuple = ('train', 'val', 'test')  # the splits an entry may name
    split_folders: dict = {}  # a split's folder where it is named otherwise
    prompt = 'clear'  # the prompt-bank condition domain=text embeds by default
    label_table: Optional[str] = None  # a table of data/label_maps.py: its ids -> trainIds
    mixed_sizes = False  # images of several sizes (evaluation batches group them by size)
    root_key: Optional[str] = None  # the key of its default root (None: eval_set_roots.<kind>)
    keys: tuple = ('kind', 'root', 'split', 'condition', 'prompt')  # an entry's keys
    has_default_root = True  # its root may come from data.eval_set_roots.<kind>

    @classmethod
    def checked(cls, kind: str, key: str, entry: dict, data: DictConfig, roots) -> list[dict]:
        """The checked sets (one) of ``entry``, ``data.eval_sets[i]`` (``key``)."""
        root_key = cls.root_key or f'data.eval_set_roots.{kind}'
        root = entry.get('root')
        if root:
            root_key = f'{key}.root'
        else:
            root = roots.get(kind)
        if not root:
            raise ConfigError(f'{key}.root is not set: the folder of this {kind} set (or set '
                              f'{root_key}).')
        split = str(entry.get('split') or data.get('eval_split') or 'val')
        split = cls.split_folders.get(split, split)
        valid = tuple(cls.split_folders.get(s, s) for s in cls.splits)
        if split not in valid:
            raise ConfigError(f'{key}.split={split!r}: {kind} has the splits '
                              f'{", ".join(valid)}.')
        found = dict(kind=kind, key=key, root=str(root), root_key=root_key, split=split,
                     labels_root=str(entry.get('labels_root') or root), folder=None,
                     **cls.options(key, entry))
        found['condition'] = str(entry.get('condition') or cls.condition(kind, found))
        found['prompt'] = str(entry.get('prompt') or cls.prompt)
        check_name(f'{key}.condition', entry.get('condition') or found['condition'])
        check_name(f'{key}.prompt', entry.get('prompt') or found['prompt'])
        return [found]

    @classmethod
    def options(cls, key: str, entry: dict) -> dict:
        """The checked values of the kind's own keys (beyond the common ones)."""
        return {}

    @classmethod
    def condition(cls, kind: str, eval_set: dict) -> str:
        """The condition's default name (in tables, metrics.json, prediction folders)."""
        return kind

    @classmethod
    def set_layout(cls, eval_set: dict) -> Layout:
        """The layout of a checked set."""
        return cls.layout

    @classmethod
    def what(cls, eval_set: dict) -> Optional[str]:
        """How data errors name the set (None: '<layout name> <split> split')."""
        return None

    @classmethod
    def hint(cls, eval_set: dict) -> str:
        """The last sentence of a missing-data error."""
        return f'Or drop {eval_set["key"]} from data.eval_sets.'

    def __init__(self, data_root: str, eval_set: dict, labels: bool = True, **kwargs) -> None:
        self.eval_set = {**eval_set, 'root': data_root}
        self.condition = eval_set['condition']
        self.labels = labels
        self.group_by_size = self.mixed_sizes
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


# The kinds, in the order errors list them. mmseg's classes of the same datasets are bases where
# they read the same files as the same classes (Dark Zurich, BDD100K); its Mapillary class
# scores the 66 Vistas classes, not the trainIds they are mapped to here.

@EVAL_SETS.register_module('dark_zurich')
class DarkZurichSet(EvalSetDataset, DarkZurichDataset):
    """Dark Zurich (night): the labelled val split, or test (no public labels)."""
    layout = DARK_ZURICH
    splits = ('val', 'test')
    prompt = 'night'
    root_key = 'paths.dark_zurich'


@EVAL_SETS.register_module('foggy_cityscapes')
class FoggyCityscapesSet(EvalSetDataset):
    """Foggy Cityscapes at one fog density ``beta`` (0.005, 0.01, 0.02; default 0.02),
    labelled by the Cityscapes labels under ``labels_root`` (default: the root)."""
    prompt = 'fog'
    root_key = 'paths.foggy_cityscapes'
    keys = EvalSetDataset.keys + ('beta', 'labels_root')

    @classmethod
    def options(cls, key: str, entry: dict) -> dict:
        """``beta`` as the file names write it ('0.02')."""
        beta = entry.get('beta', 0.02)
        text = str(beta)
        for known in FOGGY_BETAS:
            try:
                if float(text) == float(known):
                    return dict(beta=known)
            except ValueError:
                break
        raise ConfigError(f'{key}.beta={beta!r}: Foggy Cityscapes has the fog densities '
                          f'{", ".join(FOGGY_BETAS)} (beta, the attenuation coefficient).')

    @classmethod
    def condition(cls, kind: str, eval_set: dict) -> str:
        return f'foggy_cityscapes_{eval_set["beta"]}'

    @classmethod
    def set_layout(cls, eval_set: dict) -> Layout:
        return foggy_cityscapes(eval_set['beta'])

    @classmethod
    def what(cls, eval_set: dict) -> Optional[str]:
        return f'Foggy Cityscapes beta={eval_set["beta"]} {eval_set["split"]} split'


@EVAL_SETS.register_module('bdd100k')
class BDD100KSet(EvalSetDataset, BDD100KDataset):
    """BDD100K semantic segmentation (10K images; labels already trainIds)."""
    layout = BDD100K
    root_key = 'paths.bdd100k'


@EVAL_SETS.register_module('mapillary')
class MapillarySet(EvalSetDataset):
    """Mapillary Vistas v1.2 (66 class ids, mapped to trainIds); splits train/val/test name
    the folders training/validation/testing."""
    layout = MAPILLARY
    split_folders = {'train': 'training', 'val': 'validation', 'test': 'testing'}
    label_table = 'mapillary_v1.2'
    mixed_sizes = True
    root_key = 'paths.mapillary'

    @classmethod
    def set_layout(cls, eval_set: dict) -> Layout:
        """The v2.0 release keeps the v1.2 labels in <split>/v1.2/labels."""
        if osp.isdir(osp.join(eval_set['root'], eval_set['split'], 'v1.2', 'labels')):
            return replace(MAPILLARY, ann_dir='{split}/v1.2/labels')
        return MAPILLARY


@EVAL_SETS.register_module('folders')
class ConditionFolders(EvalSetDataset):
    """A user's own data, one condition per sub-folder of the root (``conditions``: the
    sub-folders to evaluate, default all); each set is one folder."""
    layout = CONDITION_FOLDERS
    mixed_sizes = True
    keys = ('kind', 'root', 'conditions', 'prompt')
    has_default_root = False

    @classmethod
    def checked(cls, kind: str, key: str, entry: dict, data: DictConfig, roots) -> list[dict]:
        root = entry.get('root')
        if not root:
            raise ConfigError(f'{key}.root is not set: the folder of this folders set '
                              '(<root>/<condition>/images, <root>/<condition>/labels).')
        root = str(root)
        expected = (f'Expected layout:\n  {root}/<condition>/images/<...>/<name>.png|.jpg\n'
                    f'  {root}/<condition>/labels/<...>/<name>.png\n'
                    'Each condition is a folder of your own data: the images in images/, their '
                    'labels under the same names in labels/ (8-bit grey PNGs of the 19 '
                    'Cityscapes trainIds, 255 = ignore).')
        if not osp.isdir(root):
            raise DataError(f'{key}: the condition folders root {root!r} does not exist.\n'
                            f'{expected} Set {key}.root=/path/to/your/data.')
        found = sorted(name for name in os.listdir(root)
                       if osp.isdir(osp.join(root, name)) and not name.startswith('.'))
        chosen = entry.get('conditions')
        if chosen is not None:
            if isinstance(chosen, str) or not isinstance(chosen, list) or not chosen:
                raise ConfigError(f'{key}.conditions={chosen!r}: a list of condition folder '
                                  f'names of {root} (default: all of them).')
            absent = [name for name in chosen if name not in found]
            if absent:
                raise DataError(f'{key}.conditions: {root!r} has no condition folder(s) '
                                f'{absent}; its folders: {found}.\n{expected}')
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
            check_name(f'{key}: condition folder', name)
            folder_prompt = prompt.get(name, name) if isinstance(prompt, dict) else \
                prompt or name
            check_name(f'{key}.prompt', folder_prompt)
            sets.append(dict(kind=kind, key=key, root=root, root_key=f'{key}.root', split='',
                             condition=name, prompt=str(folder_prompt), labels_root=root,
                             folder=name))
        return sets

    @classmethod
    def what(cls, eval_set: dict) -> Optional[str]:
        return f'condition folder {eval_set["condition"]!r}'

    @classmethod
    def hint(cls, eval_set: dict) -> str:
        return f'Or list the condition folders to evaluate in {eval_set["key"]}.conditions.'
