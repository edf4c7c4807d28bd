"""The typed schema of the composed configs: each key the project reads, with its type.

The YAML files under configs/ hold the values; these dataclasses say what each key takes, so
a composed config is checked once against them (:func:`check`): a value of another type
(``schedule.max_iters=abc``, ``deterministic=1``) or a key nothing reads
(``+schedule.max_iter=20``, a misspelt key in an exp/ preset) is a ConfigError naming the key,
what it takes and, for a command-line value, the override that set it. The mmseg, open_clip and
mmengine dicts passed on as they are (OPEN_KEYS) are open: a new key there is a new argument.
A new key in a YAML file needs its field here.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from domino_seg.domain.text_encoder import TextEncoder
from domino_seg.errors import ConfigError
from domino_seg.registry import EVAL_SETS, TEXT_ENCODERS, import_extensions, registered

# Every value defaults to MISSING: the schema types the keys, the YAML files give the values
# (a key that only some group options have, e.g. model.embed_dim, stays MISSING in the others).


@dataclass
class Paths:
    cityscapes: str = MISSING
    acdc: str = MISSING
    dark_zurich: str = MISSING
    foggy_cityscapes: str = MISSING
    bdd100k: str = MISSING
    mapillary: str = MISSING
    synthetic: str = MISSING
    synthetic_compose: str = MISSING
    synthetic_severity: str = MISSING
    work_dirs: str = MISSING
    embedding_cache: str = MISSING
    generated: str = MISSING


@dataclass
class Model:
    name: str = MISSING
    pretrained: Optional[str] = MISSING
    embed_dim: int = MISSING
    segmentor: Dict[str, Any] = MISSING  # mmseg's segmentor config
    optimizer: Dict[str, Any] = MISSING
    paramwise_cfg: Dict[str, Any] = MISSING


@dataclass
class Finetune:
    name: str = MISSING
    train_backbone: str = MISSING
    layer_decay_rate: Optional[float] = MISSING


@dataclass
class Generate:
    root: str = MISSING
    num_train: int = MISSING
    num_val: int = MISSING
    height: int = MISSING
    width: int = MISSING
    seed: int = MISSING
    conditions: List[str] = MISSING
    val_only: List[str] = MISSING


@dataclass
class Data:
    name: str = MISSING
    cityscapes_root: str = MISSING
    acdc_root: str = MISSING
    conditions: List[str] = MISSING
    generate: Optional[Generate] = field(default_factory=Generate)
    train_split: str = MISSING
    # entries: kind and keys are checked by data/sources.py and data/eval_sets.py
    train_sources: List[Any] = MISSING
    eval_split: str = MISSING
    eval_conditions: List[str] = MISSING
    eval_sets: List[Any] = MISSING
    # kind -> its default root; the kinds are those registered (checked by check())
    eval_set_roots: Dict[str, Optional[str]] = MISSING
    imports: List[str] = MISSING  # modules registering evaluation-set kinds
    eval_corruptions: List[str] = MISSING
    corruption_severities: List[int] = MISSING
    corruption_seed: int = MISSING
    seen_conditions: List[str] = MISSING
    train_weather: List[str] = MISSING
    train_weather_prob: float = MISSING
    num_classes: int = MISSING
    img_scale: List[int] = MISSING
    crop_size: List[int] = MISSING
    photometric_distortion: bool = MISSING
    ratio_range: List[float] = MISSING
    num_workers: int = MISSING


@dataclass
class Schedule:
    name: str = MISSING
    max_iters: int = MISSING
    val_interval: int = MISSING
    batch_size: int = MISSING
    test_batch_size: int = MISSING
    warmup_iters: int = MISSING
    max_keep_ckpts: int = MISSING
    save_optimizer: bool = MISSING


@dataclass
class Mlp:
    hidden: int = MISSING
    layers: int = MISSING
    act: str = MISSING


@dataclass
class Style:  # domino=style (MixStyle)
    p: float = MISSING
    alpha: float = MISSING


@dataclass
class Domino:
    scope: str = MISSING
    mlp: Mlp = field(default_factory=Mlp)
    style: Style = field(default_factory=Style)


@dataclass
class Clip:
    arch: str = MISSING
    pretrained: Optional[str] = MISSING
    model_cfg: Optional[Dict[str, Any]] = MISSING  # open_clip's model config
    seed: int = MISSING


@dataclass
class Domain:
    mode: str = MISSING
    clip: Clip = field(default_factory=Clip)
    # the keys of every backend; check() puts the backend's own (its Config) in its place
    text_encoder: TextEncoder = field(default_factory=TextEncoder)
    prompt_bank: Any = MISSING  # null, a YAML file or the bank itself
    temperature: float = MISSING
    cache_dir: Optional[str] = MISSING
    seen: List[str] = MISSING  # domain=onehot: the conditions that have a code


@dataclass
class InferDomain(Domain):
    condition: Optional[str] = MISSING


@dataclass
class Evaluator:
    metrics: List[Dict[str, Any]] = MISSING  # each metric checks its own arguments
    imports: List[str] = MISSING
    per_image: bool = MISSING


@dataclass
class Runtime:  # mmengine Runner arguments
    default_hooks: Dict[str, Any] = MISSING
    env_cfg: Dict[str, Any] = MISSING
    log_processor: Dict[str, Any] = MISSING
    visualizer: Dict[str, Any] = MISSING
    log_level: str = MISSING


@dataclass
class Train:
    paths: Paths = field(default_factory=Paths)
    model: Model = field(default_factory=Model)
    finetune: Finetune = field(default_factory=Finetune)
    data: Data = field(default_factory=Data)
    schedule: Schedule = field(default_factory=Schedule)
    domino: Domino = field(default_factory=Domino)
    domain: Domain = field(default_factory=Domain)
    evaluator: Evaluator = field(default_factory=Evaluator)
    runtime: Runtime = field(default_factory=Runtime)
    task: str = MISSING
    exp_name: str = MISSING
    seed: int = MISSING
    deterministic: bool = MISSING
    work_dir: str = MISSING
    resume: Union[bool, str] = MISSING  # true, false or a run folder or checkpoint
    nan_policy: str = MISSING
    launcher: str = MISSING
    amp: Optional[Union[bool, str]] = MISSING  # fp32 (or false), bf16, fp16
    load_from: Optional[str] = MISSING
    log_interval: int = MISSING
    verbose: bool = MISSING


@dataclass
class Test(Train):
    checkpoint: str = MISSING
    evaluate: bool = MISSING
    save_predictions: bool = MISSING
    prediction_colors: bool = MISSING
    visualize: int = MISSING
    compare_checkpoint: Optional[str] = MISSING
    submission: Optional[str] = MISSING
    swap: Optional[List[str]] = MISSING  # entries checked by apis/swap.py


@dataclass
class Infer(Train):
    domain: InferDomain = field(default_factory=InferDomain)
    checkpoint: str = MISSING
    input: Any = MISSING  # a path, a glob or a list of them
    out: str = MISSING
    condition: Optional[str] = MISSING
    batch_size: int = MISSING
    alpha: float = MISSING
    device: Optional[str] = MISSING
    video_codec: str = MISSING
    video_fps: Optional[float] = MISSING


@dataclass
class Deploy(Train):
    checkpoint: str = MISSING
    condition: Optional[str] = MISSING
    image: Optional[str] = MISSING
    embedding: Optional[str] = MISSING
    format: str = MISSING
    out: Optional[str] = MISSING
    size: Optional[List[int]] = MISSING
    clip_tower: bool = MISSING
    verify: bool = MISSING


@dataclass
class EmbedDomains(Train):
    batch_size: int = MISSING
    num_workers: int = MISSING
    device: Optional[str] = MISSING


@dataclass
class MakeSynthetic:
    out: str = MISSING
    num_train: int = MISSING
    num_val: int = MISSING
    height: int = MISSING
    width: int = MISSING
    seed: int = MISSING
    conditions: List[str] = MISSING
    val_only: List[str] = MISSING
    generated: List[str] = MISSING
    overwrite: bool = MISSING
    progress: bool = MISSING
    workers: int = MISSING


# each tool's config (configs/<name>.yaml) -> its schema
SCHEMAS = {'train': Train, 'test': Test, 'infer': Infer, 'deploy': Deploy,
           'embed_domains': EmbedDomains, 'make_synthetic': MakeSynthetic}

# the dicts passed on as they are (Dict[str, Any] above): a new key there is a new argument
OPEN_KEYS = ('model.segmentor.', 'model.optimizer.', 'model.paramwise_cfg.',
             'domain.clip.model_cfg.', 'runtime.default_hooks.', 'runtime.env_cfg.',
             'runtime.log_processor.', 'runtime.visualizer.')

# renamed top-level keys: old -> (new, what it does); the old name is an error that names the
# new one (Hydra, and the schema, would only call it unknown)
RENAMED = {'export': ('submission', 'submission=cityscapes writes the labelIds PNGs for the '
                      'evaluation servers, into <work_dir>/submission/')}


def renamed_key(key: str, valid: Sequence[str]) -> str | None:
    """The error for ``key`` when it is a renamed key whose new name is in ``valid`` (the
    keys of this config), else None."""
    new, what = RENAMED.get(key, (None, ''))
    if new not in valid:
        return None
    return f'{key}= was renamed to {new}= (same values): {what}.'


def _unoptional(hint):
    """``hint`` without ``Optional``: ``Optional[int]`` -> ``int``."""
    if typing.get_origin(hint) is Union and type(None) in typing.get_args(hint):
        rest = tuple(a for a in typing.get_args(hint) if a is not type(None))
        return rest[0] if len(rest) == 1 else Union[rest]
    return hint


@functools.lru_cache(maxsize=None)
def _hints(schema: type) -> dict:
    return typing.get_type_hints(schema)


def _field(hint, key) -> Any:
    """The declared type of ``key`` in a schema dataclass or ``Dict[str, X]`` ``hint``
    (without Optional); None where nothing is declared (``Any``, a key it lacks)."""
    hint = _unoptional(hint)
    if dataclasses.is_dataclass(hint):
        found = _hints(hint).get(str(key))
    elif typing.get_origin(hint) is dict:
        found = typing.get_args(hint)[1]
    else:
        return None
    return None if found is None or found is Any else _unoptional(found)


def _declared(schema: type, key: str, replaced: Optional[dict] = None):
    """The declared type of ``key`` (``data.crop_size``) in the ``schema`` dataclass, with
    the parts a registry gives in ``replaced`` (``{'domain.text_encoder': Config}``)."""
    hint, parts = schema, key.split('.')
    for i, part in enumerate(parts):
        hint = (replaced or {}).get('.'.join(parts[:i + 1])) or _field(hint, part)
    return hint


def declared_keys(schema: type, prefix: str = '') -> dict:
    """Every key of the ``schema`` dataclass (``schedule.max_iters``) -> its declared type
    (without Optional); a nested dataclass is walked, an open dict is one key."""
    keys = {}
    for key in _hints(schema):
        hint = _field(schema, key)
        if dataclasses.is_dataclass(hint):
            keys.update(declared_keys(hint, f'{prefix}{key}.'))
        else:
            keys[f'{prefix}{key}'] = hint
    return keys


def _takes(hint) -> str:
    """What a key of the declared type ``hint`` takes, in words."""
    if typing.get_origin(hint) is Union:  # resume
        return 'true, false or a path'
    if typing.get_origin(hint) is list:
        of = {int: ' of integers', float: ' of numbers', bool: ' of true or false'}
        return 'a list [a,b,...]' + of.get(typing.get_args(hint)[0], '')
    if typing.get_origin(hint) is dict or dataclasses.is_dataclass(hint):
        return 'a dict {key: value, ...}'
    return {bool: 'true or false', int: 'an integer', float: 'a number'}.get(hint, 'a string')


def _strict(hint, value) -> bool:
    """Whether a key of the declared type ``hint`` takes ``value`` as it is: OmegaConf
    converts 1 and 'yes' to true, '5' to 5 and '0.5' to 0.5, which on a command line are
    mistakes, not values."""
    if value is None or typing.get_origin(hint) is Union:
        return True
    if hint is bool:
        return type(value) is bool
    if hint is int:
        return type(value) is int
    if hint is float:
        return type(value) in (int, float)
    return True  # strings take any scalar, as YAML reads paths like 2024 as numbers


def _raw(cfg, key):
    """The value of ``cfg[key]`` (not an interpolation) as written: ``'???'`` when missing."""
    return '???' if OmegaConf.is_missing(cfg, key) else cfg[key]


def _converted(cfg, schema, prefix: str = '', replaced: Optional[dict] = None):
    """(key, value, declared type) of the first value of ``cfg`` that OmegaConf would take
    only by converting it to the type the ``schema`` dataclass declares (with the parts in
    ``replaced``, as in :func:`_declared`), else None; for a list's item, the list's."""
    for key in cfg.keys():
        if OmegaConf.is_interpolation(cfg, key):
            continue  # checked where it points to
        full = f'{prefix}.{key}' if prefix else str(key)
        hint, value = (replaced or {}).get(full) or _field(schema, key), _raw(cfg, key)
        if OmegaConf.is_dict(value) and (dataclasses.is_dataclass(hint) or
                                         typing.get_origin(hint) is dict):
            found = _converted(value, hint, full, replaced)
            if found:
                return found
        elif OmegaConf.is_list(value) and typing.get_origin(hint) is list:
            item = _unoptional(typing.get_args(hint)[0])
            if not all(OmegaConf.is_interpolation(value, i) or _strict(item, _raw(value, i))
                       for i in range(len(value))):
                return full, value, hint
        elif not OmegaConf.is_config(value) and not _strict(hint, value):
            return full, value, hint
    return None


def _not_a_dict(cfg: DictConfig, schema, prefix: str = '') -> str | None:
    """The key of the first value of ``cfg`` that is not a dict where the ``schema``
    dataclass has one (a merge error that names no key), else None."""
    for key in cfg.keys():
        hint = _field(schema, key)
        full = f'{prefix}.{key}' if prefix else str(key)
        if not dataclasses.is_dataclass(hint) or OmegaConf.is_interpolation(cfg, key):
            continue  # a value, or an open dict
        value = _raw(cfg, key)
        if OmegaConf.is_dict(value):
            found = _not_a_dict(value, hint, full)
            if found:
                return found
        elif value is not None:
            return full
    return None


# where a value the command line did not set comes from
FROM_A_FILE = "set by a config file: the tool's YAML, a group option or an exp/ preset"


def set_by(key: str, overrides: Sequence[str]) -> str | None:
    """The command-line override that set ``key`` (or the dict holding it), else None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    lines = {o.key_or_group: o.input_line
             for o in OverridesParser.create().parse_overrides(list(overrides))}
    setters = [k for k in lines if key == k or key.startswith(k + '.')]
    return lines[max(setters, key=len)] if setters else None


def _type_error(key: str, value, node, overrides: Sequence[str]) -> ConfigError:
    line = set_by(key, overrides)
    value = OmegaConf.to_object(value) if OmegaConf.is_config(value) else value
    where, source = (f'{line}: ', '') if line else ('', f' ({FROM_A_FILE})')
    return ConfigError(f'{where}{key} takes {_takes(node)}, got {value!r}{source}.')


def _key_error(key: str, cfg: DictConfig, schema: DictConfig,
               overrides: Sequence[str]) -> ConfigError:
    parent, _, leaf = key.rpartition('.')
    node = OmegaConf.select(cfg, parent) if parent else cfg
    fields = OmegaConf.select(schema, parent) if parent else schema
    valid = [str(k) for k in node.keys() if k in set(fields.keys())]
    line = set_by(key, overrides)
    where, source = (f'{line}: ', '') if line else ('', f' ({FROM_A_FILE})')
    renamed = renamed_key(key, valid)
    if renamed:
        return ConfigError(where + renamed)
    close = difflib.get_close_matches(leaf, valid, n=1)
    plus = ' (without +)' if line and line.startswith('+') else ''
    return ConfigError(
        f'{where}{key} is not a key of this config{source}, so nothing would read it and the '
        'run would silently ignore it.' +
        (f' Did you mean {parent + "." if parent else ""}{close[0]}{plus}?' if close else '') +
        (f' Valid keys here: {", ".join(valid)}.' if valid else '') +
        ' New keys are for the mmseg, open_clip and mmengine dicts only: ' +
        ', '.join(k + '*' for k in OPEN_KEYS) + '.')


def check(cfg: DictConfig, overrides: Sequence[str], config_name: str) -> None:
    """Raise a ConfigError when a key of the composed ``cfg`` (unresolved) is not in the
    schema of ``configs/{config_name}.yaml`` or its value has another type; ``overrides`` (the
    command line) name the override that set it. Interpolations are checked where they
    point to. The modules the config names to import (``*.imports``) are imported first, so
    the kinds and backends they register are known."""
    import_extensions(cfg)
    schema = OmegaConf.structured(SCHEMAS[config_name])
    replaced = _registered_schemas(schema, cfg, overrides)
    try:
        OmegaConf.merge(schema, cfg)
    except ConfigKeyError as err:
        raise _key_error(str(err.full_key), cfg, schema, overrides) from None
    except (ValidationError, ConfigAttributeError) as err:
        key = str(err.full_key).split('[', 1)[0] or _not_a_dict(cfg, SCHEMAS[config_name])
        if key is None:
            raise
        raise _type_error(key, OmegaConf.select(cfg, key),
                          _declared(SCHEMAS[config_name], key, replaced), overrides) from None
    found = _converted(cfg, SCHEMAS[config_name], replaced=replaced)
    if found:
        raise _type_error(*found, overrides)


def _registry_error(key: str, value, overrides: Sequence[str], what: str, names,
                    fix: str) -> ConfigError:
    line = set_by(key, overrides)
    where, source = (f'{line}: ', '') if line else ('', f' ({FROM_A_FILE})')
    return ConfigError(f'{where}{key}={value!r} is not {what}{source}; registered: '
                       f'{", ".join(names)}. {fix}')


def _registered_schemas(schema: DictConfig, cfg: DictConfig, overrides: Sequence[str]) -> dict:
    """The parts of the schema the registries give: ``domain.text_encoder`` takes the keys of
    its backend's ``Config``; ``data.eval_set_roots`` the registered kinds that have a default
    root. Returns the replaced parts (key -> dataclass)."""
    replaced = {}
    import domino_seg.data  # noqa: F401  (registers the built-in kinds and backends)
    import domino_seg.domain  # noqa: F401
    encoder = OmegaConf.select(cfg, 'domain.text_encoder', default=None)
    if isinstance(encoder, DictConfig) and 'backend' in encoder and \
            not OmegaConf.is_missing(encoder, 'backend'):
        backend = encoder.backend
        if backend not in registered(TEXT_ENCODERS):
            raise _registry_error(
                'domain.text_encoder.backend', backend, overrides, 'a text encoder backend',
                registered(TEXT_ENCODERS), 'A backend of your own: a class registered in '
                'domino_seg.registry.TEXT_ENCODERS, its module named in '
                'domain.text_encoder.imports (docs/extending.md).')
        replaced['domain.text_encoder'] = TEXT_ENCODERS.get(backend).Config
        schema.domain.text_encoder = OmegaConf.structured(replaced['domain.text_encoder'])
    roots = OmegaConf.select(cfg, 'data.eval_set_roots', default=None)
    if isinstance(roots, DictConfig):
        kinds = [kind for kind in registered(EVAL_SETS)
                 if EVAL_SETS.get(kind).has_default_root]
        for kind in roots:
            if kind not in kinds:
                raise _registry_error(
                    f'data.eval_set_roots.{kind}', _raw(roots, kind), overrides,
                    'the default root of an evaluation-set kind', kinds,
                    'A kind of your own: a class registered in domino_seg.registry.EVAL_SETS, '
                    'its module named in data.imports (docs/extending.md).')
    return replaced
