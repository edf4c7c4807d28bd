"""The registries of domino-seg's extension points, and the config keys that import the modules
registering into them.

* ``EVAL_SETS``: the kinds of ``data.eval_sets`` (an evaluation-set layout: a dataset class,
  :class:`domino_seg.data.eval_sets.EvalSetDataset`), a child of mmseg's ``DATASETS``, so
  ``domino_seg.<kind>`` builds one there;
* ``TEXT_ENCODERS``: the backends of ``domain.text_encoder.backend`` (see
  :mod:`domino_seg.domain.text_encoder`).

A module of one's own registers into them and is named by a config key of ``IMPORT_KEYS``; the
modules are imported when a composed config is checked (:func:`domino_seg.schema.check`), as
mmengine's ``custom_imports`` are when it reads a config file, so the schema and the data and
domain builders find the new names.
"""
from __future__ import annotations

from typing import Sequence

from mmengine.registry import Registry
from mmengine.utils import import_modules_from_strings
from mmseg.registry import DATASETS
from omegaconf import DictConfig, OmegaConf

from domino_seg.errors import ConfigError

EVAL_SETS = Registry('evaluation set', parent=DATASETS, scope='domino_seg')
TEXT_ENCODERS = Registry('text encoder', scope='domino_seg')

# the config keys listing modules to import: metrics, evaluation-set kinds, text encoders
IMPORT_KEYS = ('evaluator.imports', 'data.imports', 'domain.text_encoder.imports')


def extension_modules(cfg: DictConfig) -> list[str]:
    """The modules the ``IMPORT_KEYS`` of ``cfg`` name, in that order, each once."""
    modules = []
    for key in IMPORT_KEYS:
        names = OmegaConf.select(cfg, key, default=None)
        names = OmegaConf.to_container(names, resolve=True) if OmegaConf.is_config(names) \
            else names
        if names is None:
            continue
        if isinstance(names, str) or not isinstance(names, list) or \
                not all(isinstance(name, str) and name for name in names):
            raise ConfigError(f'{key}={names!r}: a list of Python module names, e.g. '
                              f'[my_package.my_module] (imported before the config is read).')
        modules += [name for name in names if name not in modules]
    return modules


def import_extensions(cfg: DictConfig) -> None:
    """Import the modules of :func:`extension_modules`; one that cannot be imported, or that
    registers a name already taken (mmengine's KeyError), is a ConfigError naming it and its
    key."""
    for name in extension_modules(cfg):
        try:
            import_modules_from_strings([name], allow_failed_imports=False)
        except (ImportError, KeyError) as err:
            key = next(key for key in IMPORT_KEYS
                       if name in (OmegaConf.select(cfg, key, default=None) or ()))
            fix = ('Register it under another name.' if isinstance(err, KeyError) else
                   'Put its folder on PYTHONPATH (or install its package).')
            raise ConfigError(f'{key}: module {name!r} cannot be imported ({err}). {fix} Or '
                              f'remove it from {key}.') from None


def registered(registry: Registry) -> Sequence[str]:
    """The names registered in ``registry`` itself (not its parent's), in order."""
    return tuple(registry.module_dict)
