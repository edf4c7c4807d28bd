"""The one place that reads the ``data`` config group: datasets, pipelines, data checks."""
from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig

from domino_seg.compat import import_imagecorruptions

# seen_conditions: read here by config and engine
from domino_seg.conditions import run_conditions, seen_conditions  # noqa: F401
from domino_seg.data import eval_sets as extra_sets
from domino_seg.data import sources as train_sources
from domino_seg.data.corruptions import corruption_conditions
from domino_seg.data.layouts import ACDC, CITYSCAPES, check_split
from domino_seg.errors import ConfigError, DataError

# metainfo each sample carries into its SegDataSample (besides mmseg's defaults): a given
# domain embedding (domino_seg.Segmenter's), or what the model's data preprocessor computes it
# from (the DomainEmbeddingInputs step's INPUT_KEYS)
META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor',
             'flip', 'flip_direction', 'reduce_zero_label', 'condition', 'rel_path',
             'domain_embedding', 'domain_condition', 'domain_clip_pixels', 'domain_cache_key')


def _check_conditions(data: DictConfig) -> None:
    """``data.conditions`` and ``data.train_weather`` are conditions the data can hold (the
    synthetic benchmark: any weather preset; ACDC: its four), ``data.eval_conditions`` are
    among the run's conditions, and something is evaluated (they may be [] when
    ``data.eval_sets`` or ``data.eval_corruptions`` give the conditions)."""
    known = train_sources.known_conditions(data)
    for key in ('conditions', 'train_weather'):
        unknown = [c for c in data.get(key) or () if c not in known]
        if unknown:
            raise ConfigError(f'data.{key} has unknown condition(s) {unknown}; the '
                              f'{data.get("name")} data has {", ".join(known)}.')
    val_only = (data.get('generate') or {}).get('val_only') or ()
    if val_only:  # (the sources checked first: seen_conditions reads them)
        train_sources.train_sources(data)
    held_out = [c for c in seen_conditions(data) if c in val_only] if val_only else []
    if held_out:
        raise ConfigError(f'{held_out} are held out from training (data.generate.val_only: '
                          'rendered in the val split only), but data.train_sources, '
                          'data.train_weather or data.seen_conditions train on them. Remove '
                          'them there, or from data.generate.val_only.')
    valid = run_conditions(data)
    unknown = [c for c in data.eval_conditions if c not in valid]
    if unknown or not (data.eval_conditions or data.get('eval_sets')
                       or data.get('eval_corruptions')):
        raise ConfigError(f'data.eval_conditions has unknown condition(s) {unknown}; valid: '
                          f'{", ".join(valid)} (the adverse ones: data.conditions; other '
                          'datasets: data.eval_sets).')


def train_pipeline(data: DictConfig, after_load: Sequence[dict] = ()) -> list[dict]:
    """``after_load`` transforms run on the full-size image, after weather augmentation
    (e.g. the domain embedding)."""
    return [
        dict(type='LoadCheckedImage'),
        dict(type='LoadCheckedAnnotations'),
        dict(type='MatchLabelToImage'),
        dict(type='CheckSegLabels', num_classes=data.num_classes),
        *([dict(type='SyntheticWeather', conditions=list(data.train_weather),
                prob=data.train_weather_prob)] if data.train_weather else []),
        *after_load,
        dict(type='RandomResize', scale=tuple(data.img_scale),
             ratio_range=tuple(data.ratio_range), keep_ratio=True),
        dict(type='RandomCrop', crop_size=tuple(data.crop_size), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        *([dict(type='PhotoMetricDistortion')] if data.photometric_distortion else []),
        dict(type='PackSegInputs', meta_keys=META_KEYS),
    ]


def eval_pipeline(data: DictConfig, after_load: Sequence[dict] = (),
                  labels: bool = True) -> list[dict]:
    """``labels=False``: images only (prediction on splits without public labels)."""
    return [
        dict(type='LoadCheckedImage'),
        *after_load,
        dict(type='Resize', scale=tuple(data.img_scale), keep_ratio=True),
        *([dict(type='LoadCheckedAnnotations'),
           dict(type='CheckSegLabels', num_classes=data.num_classes)] if labels else []),
        dict(type='PackSegInputs', meta_keys=META_KEYS),
    ]


def train_dataset(data: DictConfig, pipeline: list[dict]) -> dict:
    """Every training source in one ConcatDataset; each sample keeps its source's condition."""
    return dict(type='ConcatDataset', datasets=[
        train_sources.dataset_cfg(source, pipeline)
        for source in train_sources.train_sources(data)])


def train_sampler(data: DictConfig) -> dict:
    """Draws sources with their ``weight`` (default: in proportion to their size)."""
    return dict(type='SourceWeightedSampler',
                weights=train_sources.sampler_weights(train_sources.train_sources(data)))


def eval_dataset(data: DictConfig, pipeline: list[dict], labels: bool = True) -> dict:
    """All evaluated conditions in one ConcatDataset; each sample keeps its condition.
    ``labels=False`` lists the images only (no label folder needed)."""
    _check_conditions(data)
    datasets = []
    for condition in data.eval_conditions:
        if condition == 'cityscapes':
            datasets.append(dict(type='DominoCityscapesDataset', data_root=data.cityscapes_root,
                                 split=data.eval_split, labels=labels, pipeline=pipeline))
        else:
            datasets.append(dict(type='ACDCDataset', data_root=data.acdc_root,
                                 condition=condition, split=data.eval_split, labels=labels,
                                 pipeline=pipeline))
    datasets += [extra_sets.dataset_cfg(eval_set, pipeline, labels)
                 for eval_set in _eval_sets(data)]
    for _, corruption, severity in _corruptions(data):  # right after loading the image
        corrupt = dict(type='ImageCorruption', corruption=corruption, severity=severity,
                       seed=data.get('corruption_seed', 0))
        datasets.append(dict(type='DominoCityscapesDataset', data_root=data.cityscapes_root,
                             split=data.eval_split, labels=labels,
                             pipeline=[pipeline[0], corrupt, *pipeline[1:]]))
    return dict(type='ConcatDataset', datasets=datasets)


def _corruptions(data: DictConfig) -> list:
    """The corruption conditions ``(name, corruption, severity)`` the run evaluates; the
    imagecorruptions package must be installed for any."""
    conditions = corruption_conditions(list(data.get('eval_corruptions') or []),
                                       list(data.get('corruption_severities') or []))
    if conditions:
        try:
            import_imagecorruptions()
        except ImportError as err:
            raise ConfigError(f'data.eval_corruptions needs the imagecorruptions package ({err}); '
                              'install it with pip install -e ".[corruptions]".') from None
    return conditions


def _eval_sets(data: DictConfig) -> list[dict]:
    """The checked ``data.eval_sets``, one per condition; a condition evaluated twice (two sets
    of one name, or a set named as an ACDC or corruption condition) is a ConfigError, as its
    scores would merge."""
    sets = extra_sets.eval_sets(data)
    taken = {c: 'data.eval_conditions' for c in data.eval_conditions}
    taken.update({name: 'data.eval_corruptions' for name, _, _ in _corruptions(data)})
    for eval_set in sets:
        name = eval_set['condition']
        if name in taken:
            what = f'condition folder {name!r}' if eval_set['kind'] == 'folders' else \
                f'condition {name!r}'
            raise ConfigError(
                f'{eval_set["key"]}: its {what} is already evaluated (by {taken[name]}); the '
                'scores of the two would merge into one column. '
                + ('Rename the folder, or leave it out with ' + eval_set['key'] + '.conditions.'
                   if eval_set['kind'] == 'folders' else
                   f'Name it apart with {eval_set["key"]}.condition=<name>.'))
        taken[name] = eval_set['key']
    return sets


def evaluated_conditions(data: DictConfig) -> list[str]:
    """Every condition a run reports: ``data.eval_conditions``, the ``data.eval_sets``
    conditions, then the corruption conditions (``<corruption>@<severity>``)."""
    return [*data.eval_conditions, *(s['condition'] for s in _eval_sets(data)),
            *(name for name, _, _ in _corruptions(data))]


def prompt_conditions(data: DictConfig) -> list[str]:
    """The conditions whose prompts ``domain=text`` embeds at evaluation: the evaluated
    conditions, each ``data.eval_sets`` set replaced by its ``prompt`` (e.g. dark_zurich ->
    night)."""
    return [*data.eval_conditions, *(s['prompt'] for s in _eval_sets(data)),
            *(name for name, _, _ in _corruptions(data))]


def check_data(data: DictConfig, train: bool = True, labels: bool = True) -> None:
    """Check every split the run will read before any model is built, so a wrong path fails
    in a second with a message instead of deep inside the runner. ``labels=False``: the
    evaluated splits need images only."""
    _check_conditions(data)
    if train:
        for source in train_sources.train_sources(data):
            train_sources.check_source(source)
    if _corruptions(data) and 'cityscapes' not in data.eval_conditions:
        check_split(CITYSCAPES, data.cityscapes_root, data.eval_split, labels=labels)
    for condition in data.eval_conditions:
        if condition == 'cityscapes':
            check_split(CITYSCAPES, data.cityscapes_root, data.eval_split, labels=labels)
        else:
            check_split(ACDC, data.acdc_root, data.eval_split, condition, labels=labels)
    for eval_set in _eval_sets(data):
        extra_sets.check_set(eval_set, labels=labels)


def ensure_synthetic(data: DictConfig) -> None:
    """Generate the built-in synthetic benchmark on first use (no-op for real data), saying
    where; a folder the generator did not write is refused, never replaced."""
    if data.get('generate') is None:
        return
    from domino_seg.data.synthetic import write_benchmark
    params = dict(data.generate)
    root = params.pop('root')
    try:
        # overwrite only replaces a folder that holds nothing but a benchmark it generated
        write_benchmark(root, **params, progress=True, overwrite=True)
    except ValueError as err:
        raise ConfigError(f'data.generate: {err}') from None
    except DataError as err:
        raise DataError(f'paths.synthetic={root}: {err}') from None
