"""Compare finished runs (``tools/compare.py``; :mod:`domino_seg.apis.compare` prints and
writes what is computed here).

Every ``metrics.json`` under the given folders is one run. Runs whose resolved configs are
equal except for the seed (and where results go) are one row; its cells are the mean ± sample
standard deviation over those runs of the mIoU per condition and of the mean over unseen
conditions, and the Δ column is the difference of means to a baseline row. A row is named by
the Hydra overrides (``.hydra/overrides.yaml`` in each work dir) whose values differ between
rows, e.g. ``domino=head domain=zero_shot``. Each difference to the baseline gets a 95%
interval and a verdict: the paired t-interval over the seeds both rows ran (with what those
seeds can detect), or for single runs a per-image bootstrap (:mod:`.intervals`;
docs/comparisons.md). A metrics.json is checked value by value before use. ``--per-class``
adds one table per condition of the per-class IoU (mean ± std over each row's seeds, the Δ of
means to the baseline in parentheses), to see which classes a method wins or loses.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import os.path as osp
import re
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from omegaconf import OmegaConf

from domino_seg.conditions import seen_conditions
from domino_seg.errors import ConfigError, DataError
from domino_seg.evaluation import intervals
from domino_seg.evaluation.metrics import PER_IMAGE_FILE
from domino_seg.evaluation.report import markdown_table, save_figure
from domino_seg.io import (
    MMENGINE_CONFIG,
    RECORDED_CONFIG,
    atomic_write_bytes,
    reported_write,
)

# keys that never split nor name rows (besides hydra.*): the seed is what rows aggregate over
IGNORED_KEYS = ('seed', 'work_dir', 'paths.work_dirs', 'resume')
MEAN_UNSEEN = 'mean unseen'
_MISSING = object()
OUTPUT_FILES = ('comparison.md', 'comparison.csv', 'comparison.png',
                'comparison_intervals.png')
PER_CLASS_FILES = ('comparison_per_class.md', 'comparison_per_class.csv')


@dataclass
class Run:
    """One finished run: its metrics, resolved config and, if Hydra launched it, the command
    line overrides (key -> value) and the option chosen for each config group."""
    work_dir: str
    metrics: dict
    config: dict
    overrides: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)

    @property
    def seen(self) -> set:
        return set(seen_conditions(self.config.get('data', {})))

    def miou(self, condition: str) -> Optional[float]:
        return self.metrics['conditions'].get(condition, {}).get('mIoU')

    @property
    def params(self) -> Optional[int]:
        return (self.metrics.get('model') or {}).get('params')

    @property
    def ms_per_image(self) -> Optional[float]:
        return (self.metrics.get('inference') or {}).get('ms_per_image')

    @property
    def device(self) -> Optional[str]:
        return (self.metrics.get('inference') or {}).get('device')

    def class_iou(self, condition: str) -> dict:
        """Class -> IoU of one condition; {} when not evaluated or not recorded."""
        return self.metrics['conditions'].get(condition, {}).get('per_class_iou') or {}


@dataclass
class Stat:
    mean: Optional[float]
    std: Optional[float]  # sample standard deviation; None for fewer than two values
    n: int

    @classmethod
    def of(cls, values: Sequence[Optional[float]]) -> 'Stat':
        values = [v for v in values if v is not None]
        return cls(statistics.fmean(values) if values else None,
                   statistics.stdev(values) if len(values) > 1 else None, len(values))


@dataclass
class Row:
    name: str
    runs: list
    cells: dict = field(default_factory=dict)   # condition or MEAN_UNSEEN -> Stat
    delta: dict = field(default_factory=dict)   # condition or MEAN_UNSEEN -> Δ of means
    # condition or MEAN_UNSEEN -> Interval (t) of the per-seed differences to the baseline's
    # run of the same seed (paired: the seed's shared data order and initialisation cancel out)
    paired: dict = field(default_factory=dict)
    # single runs: condition or MEAN_UNSEEN -> Interval of the per-image bootstrap
    bootstrap: dict = field(default_factory=dict)
    # the operating cost (COST_KEYS -> Stat over the row's runs)
    cost: dict = field(default_factory=dict)

    @property
    def seen(self) -> set:
        return self.runs[0].seen


@dataclass
class Comparison:
    rows: list
    conditions: list     # columns, in evaluation order
    unseen: list         # the conditions MEAN_UNSEEN averages (unseen by every row)
    baseline: Row
    warnings: list = field(default_factory=list)
    seen: list = field(default_factory=list)  # the conditions every row has seen in training
    notes: list = field(default_factory=list)  # why a single-run row has no bootstrap


def _natural(path: Path) -> list:
    """Sort key: sweep job folders 2 before 10."""
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', str(path))]


def _ignored(key: str, ignore: Sequence[str]) -> bool:
    return key.startswith(('hydra.', 'hydra/')) or key == 'hydra' or any(
        key == k or key.startswith(k + '.') for k in (*IGNORED_KEYS, *ignore))


RUN_MARKERS = ('.hydra', RECORDED_CONFIG, MMENGINE_CONFIG)  # what makes a folder a work dir


def find_metrics(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """``metrics.json`` files given directly or found under the given folders, and one line per
    run folder under them that has none (with why), so that no run is left out unsaid."""
    found, skipped = [], []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            folders = _run_folders(path)
            found += [folder / 'metrics.json' for folder, scored in folders if scored]
            skipped += [f'skipped {folder}: {_why_no_metrics(folder)}'
                        for folder, scored in folders if not scored]
        else:
            raise DataError(f'{path} does not exist; pass work dirs, sweep dirs '
                            '(work_dirs/multirun/<time>) or metrics.json files.')
    if not found:
        raise DataError(f'no metrics.json under {", ".join(map(str, paths))}; pass the work '
                        'dirs of finished runs or a sweep dir (work_dirs/multirun/<time>).' +
                        ''.join(f' {line}.' for line in skipped))
    return list(dict.fromkeys(p.resolve() for p in found)), list(dict.fromkeys(skipped))


def _run_folders(root: Path) -> list[tuple[Path, bool]]:
    """The folders under ``root`` (``root`` included) holding a ``metrics.json`` or looking
    like a work dir (Hydra's ``.hydra``, ``config.yaml`` or ``mmengine_config.py``), each with
    whether it has a ``metrics.json``; in one walk of the tree, in natural order."""
    folders = []
    for folder, dirs, files in os.walk(root):
        scored = 'metrics.json' in files
        if scored or '.hydra' in dirs or not set(files).isdisjoint(RUN_MARKERS):
            folders.append((Path(folder), scored))
        dirs[:] = [d for d in dirs if d != '.hydra']
    return sorted(folders, key=lambda item: _natural(item[0]))


def _why_no_metrics(folder: Path) -> str:
    """Why a work dir has no ``metrics.json``, as far as its ``config.yaml`` tells."""
    try:
        config = OmegaConf.to_container(OmegaConf.load(folder / RECORDED_CONFIG))
    except Exception:  # absent or unreadable: the run did not get far
        config = None
    task = config.get('task') if isinstance(config, dict) else None
    if task == 'test' and config.get('evaluate') is False:
        return 'no metrics.json (a prediction-only test, evaluate=false: nothing is scored)'
    if task not in (None, 'train', 'test'):
        return f'no metrics.json (a task={task} run: it scores nothing)'
    return ('no metrics.json: the run stopped before its first evaluation (failed, '
            'interrupted or still running); resume it or leave it out')


def read_run(path: Path) -> Run:
    """The run whose ``metrics.json`` is ``path`` (config from it or ``config.yaml``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f'{path} is not readable JSON ({err}); delete it or rerun that '
                        'evaluation.') from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get('conditions'), dict):
        raise DataError(f'{path} has no "conditions"; it is not a metrics.json written by '
                        'domino-seg.')
    work_dir = path.parent
    check_metrics(path, metrics)
    config, source, prefix = metrics.get('config'), path, 'config.'
    if config in (None, {}) and (work_dir / RECORDED_CONFIG).is_file():
        source, prefix = work_dir / RECORDED_CONFIG, ''
        config = OmegaConf.to_container(_load_yaml(source))
    if config in (None, {}):
        raise DataError(f'{path} records no config and {work_dir / RECORDED_CONFIG} is missing, '
                        'so runs cannot be grouped; compare work dirs written by domino-seg.')
    check_config(source, config, prefix)
    run = Run(str(work_dir), metrics, config)
    hydra_dir = work_dir / '.hydra'
    if (hydra_dir / 'overrides.yaml').is_file():
        texts = OmegaConf.to_container(_load_yaml(hydra_dir / 'overrides.yaml'))
        try:
            overrides = OverridesParser.create().parse_overrides(texts)
        except Exception as err:  # Hydra's OverrideParseException, or not a list of strings
            raise DataError(f'{hydra_dir / "overrides.yaml"} is not a list of Hydra overrides '
                            f'({err}); restore it or delete it (rows are then named by '
                            'config keys).') from None
        for override in overrides:
            if not override.is_delete():
                run.overrides[override.key_or_group] = override.get_value_element_as_str()
    if (hydra_dir / 'hydra.yaml').is_file():
        choices = OmegaConf.select(_load_yaml(hydra_dir / 'hydra.yaml'),
                                   'hydra.runtime.choices', default=None)
        run.choices = OmegaConf.to_container(choices) if choices is not None else {}
    return run


def _load_yaml(path: Path):
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml's errors, or a file OmegaConf cannot hold
        raise DataError(f'{path} is not readable YAML ({err}); restore it from the run or '
                        'leave that run out of the comparison.') from None


REWRITE = ("rerun tools/test.py on that run's checkpoint (it rewrites metrics.json) or leave "
           'that run out of the comparison')


def _invalid(path: Path, key: str, value, expected: str) -> DataError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + '...'
    return DataError(f'{path}: "{key}" is {shown}, expected {expected}; domino-seg never writes '
                     f'that (an edited or damaged file). Fix: {REWRITE}.')


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _check(path: Path, value, key: str, kind: str, optional: bool = True):
    """``value`` (of ``key`` in ``path``) if it is of ``kind``, else an error naming both;
    None passes when ``optional``. Kinds: 'percent' (finite, 0..100), 'count' (int >= 0),
    'time' (finite >= 0), 'text', 'mapping', 'texts' (strings), 'mappings' (mappings), 'seed'."""
    if value is None and optional:
        return None
    ok, expected = {
        'percent': (_number(value) and 0 <= value <= 100, 'a finite number from 0 to 100 (%)'),
        'count': (isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                  'a whole number >= 0'),
        'time': (_number(value) and value >= 0, 'a finite number >= 0'),
        'text': (isinstance(value, str), 'a string'),
        'mapping': (isinstance(value, dict), 'a mapping'),
        'texts': (isinstance(value, list) and all(isinstance(v, str) for v in value),
                  'a list of strings'),
        'mappings': (isinstance(value, list) and all(isinstance(v, dict) for v in value),
                     'a list of mappings'),
        'seed': (isinstance(value, int) and not isinstance(value, bool), 'a whole number'),
    }[kind]
    if not ok:
        raise _invalid(path, key, value, expected + ('' if optional else ', required'))
    return value


def check_metrics(path: Path, metrics: dict) -> None:
    """Every value compare reads from a ``metrics.json`` has the type and range domino-seg
    writes (the config it records: :func:`check_config`), so a damaged file is an error naming
    it and the key, never a traceback or a silently wrong number."""
    for condition, entry in metrics['conditions'].items():
        key = f'conditions.{condition}'
        _check(path, entry, key, 'mapping', optional=False)
        _check(path, entry.get('mIoU'), f'{key}.mIoU', 'percent')
        per_class = _check(path, entry.get('per_class_iou'), f'{key}.per_class_iou', 'mapping')
        for name, value in (per_class or {}).items():
            _check(path, value, f'{key}.per_class_iou.{name}', 'percent')
    _check(path, metrics.get('mean_unseen_mIoU'), 'mean_unseen_mIoU', 'percent')
    _check(path, metrics.get('iter'), 'iter', 'count')
    model = _check(path, metrics.get('model'), 'model', 'mapping') or {}
    _check(path, model.get('params'), 'model.params', 'count')
    inference = _check(path, metrics.get('inference'), 'inference', 'mapping') or {}
    _check(path, inference.get('ms_per_image'), 'inference.ms_per_image', 'time')
    _check(path, inference.get('device'), 'inference.device', 'text')


def check_config(path: Path, config, prefix: str = 'config.') -> None:
    """The recorded config's keys compare reads (``prefix``: where they sit in ``path``)."""
    _check(path, config, prefix[:-1] or 'the whole file', 'mapping', optional=False)
    for key, kind in (('seed', 'seed'), ('task', 'text'), ('exp_name', 'text')):
        _check(path, config.get(key), prefix + key, kind)
    schedule = _check(path, config.get('schedule'), f'{prefix}schedule', 'mapping') or {}
    _check(path, schedule.get('max_iters'), f'{prefix}schedule.max_iters', 'count')
    data = _check(path, config.get('data'), f'{prefix}data', 'mapping') or {}
    for key in ('seen_conditions', 'train_weather'):
        _check(path, data.get(key), f'{prefix}data.{key}', 'texts')
    sources = _check(path, data.get('train_sources'), f'{prefix}data.train_sources', 'mappings')
    for i, source in enumerate(sources or []):
        for key in ('kind', 'condition'):
            _check(path, source.get(key), f'{prefix}data.train_sources.{i}.{key}', 'text')


def _unfinished(run: Run) -> Optional[str]:
    """Why a training run's metrics are not final, or None."""
    config = run.config
    max_iters = config.get('schedule', {}).get('max_iters')
    if config.get('task') == 'train' and run.metrics.get('iter') != max_iters:
        return (f'{run.work_dir}: metrics are from iteration {run.metrics.get("iter")} of '
                f'{max_iters} (unfinished or still running); left out')
    return None


def flatten_config(tree, prefix: str = '') -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}: configs compared leaf by leaf."""
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(flatten_config(value, f'{prefix}{key}.'))
        return flat or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def render_value(value) -> str:
    """A config value as one would type it in an override."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(map(render_value, value)) + ']'
    if isinstance(value, dict):
        return json.dumps(value, separators=(',', ':'))
    return str(value)


def _value(run: Run, key: str) -> str:
    """The option of group ``key``, else the resolved value of config key ``key``."""
    if key in run.choices:
        return render_value(run.choices[key]) if run.choices[key] is not None else '-'
    node = OmegaConf.select(OmegaConf.create(run.config), key, default=_MISSING)
    if node is _MISSING:
        return '-'
    return render_value(OmegaConf.to_container(node) if OmegaConf.is_config(node) else node)


def _name_groups(groups: list, ignore: Sequence[str]) -> list[str]:
    """Names from the overrides whose values differ between groups; groups that differ only
    elsewhere (e.g. an edited config file) also get the differing config keys."""
    if len(groups) == 1:
        return [str(groups[0][0].config.get('exp_name', 'all runs'))]
    candidates = [k for g in groups for run in g for k in run.overrides
                  if not _ignored(k, ignore)]
    keys = [k for k in dict.fromkeys(candidates) if len({_value(g[0], k) for g in groups}) > 1]
    # a group a row does not have (domain/text_encoder under domain=none) names nothing
    names = [' '.join(f'{k}={v}' for k in keys if (v := _value(g[0], k)) != '-')
             for g in groups]
    clashing = [i for i, name in enumerate(names) if not name or names.count(name) > 1]
    if clashing:
        flats = [{k: v for k, v in flatten_config(g[0].config).items() if not _ignored(k, ignore)}
                 for g in groups]
        among = clashing if len(clashing) > 1 else range(len(groups))
        all_keys = dict.fromkeys(k for i in among for k in flats[i])
        leaves = [k for k in all_keys if len({render_value(flats[i].get(k)) for i in among}) > 1]
        for i in clashing:
            names[i] = ' '.join(filter(None, [names[i]] + [
                f'{k}={render_value(flats[i].get(k))}' for k in leaves]))
    return names


def _pick_baseline(rows: list, baseline: Optional[str]) -> Row:
    """The row named ``baseline``, or the only row having all its ``key=value`` parts; the
    first row when None."""
    if baseline is None:
        return rows[0]
    exact = [row for row in rows if row.name == baseline]
    parts = set(baseline.split())
    matches = exact or [row for row in rows if parts <= set(row.name.split())]
    if len(matches) != 1:
        names = '; '.join(row.name for row in rows)
        raise ConfigError(f'baseline {baseline!r} matches {len(matches)} rows; give the name '
                          f'of one row, or key=value parts only it has. Rows: {names}.')
    return matches[0]


def compare_runs(paths: Sequence[str], baseline: Optional[str] = None,
                 ignore: Sequence[str] = ()) -> Comparison:
    """Read, group and aggregate the runs under ``paths``; ``ignore`` adds config keys that
    neither split nor name rows."""
    paths, warnings = find_metrics(paths)
    runs = []
    for path in paths:
        run = read_run(path)
        why = _unfinished(run)
        if why:
            warnings.append(why)
        else:
            runs.append(run)
    if not runs:
        raise DataError('no finished run to compare: ' + '; '.join(warnings))

    groups: dict[str, list] = {}
    for run in runs:
        flat = {k: v for k, v in flatten_config(run.config).items() if not _ignored(k, ignore)}
        groups.setdefault(json.dumps(flat, sort_keys=True, default=str), []).append(run)
    groups = list(groups.values())
    rows = [Row(name, group) for name, group in zip(_name_groups(groups, ignore), groups)]

    conditions = list(dict.fromkeys(c for run in runs for c in run.metrics['conditions']))
    unseen = [c for c in conditions
              if all(c not in row.seen and row.runs[0].miou(c) is not None for row in rows)]
    for row in rows:
        seeds = [run.config.get('seed') for run in row.runs]
        if len(set(seeds)) < len(seeds):
            warnings.append(f'row {row.name!r} has runs with the same seed ({seeds}): '
                            'repeated runs count twice; ' +
                            ', '.join(run.work_dir for run in row.runs))
        for key in (*conditions, MEAN_UNSEEN):
            row.cells[key] = Stat.of([_score(run, key, unseen) for run in row.runs])
    if not unseen:
        warnings.append('no condition is unseen in training by every row: no mean unseen')

    base = _pick_baseline(rows, baseline)
    base_by_seed = {run.config.get('seed'): run for run in base.runs}
    for row in rows:
        pairs = [(run, base_by_seed[run.config.get('seed')]) for run in row.runs
                 if run.config.get('seed') in base_by_seed]
        for key, stat in row.cells.items():
            ref = base.cells[key].mean
            row.delta[key] = None if stat.mean is None or ref is None else stat.mean - ref
            row.paired[key] = intervals.t_interval([_difference(_score(run, key, unseen),
                                                                _score(ref_run, key, unseen))
                                                    for run, ref_run in pairs])
    notes = _bootstrap_rows(rows, base, conditions, unseen)
    seen = [c for c in conditions if all(c in row.seen for row in rows)]
    for row in rows:
        row.cost = dict(params=Stat.of([run.params for run in row.runs]),
                        ms_per_image=Stat.of([run.ms_per_image for run in row.runs]),
                        mean_seen=Stat.of([_mean_of(run, seen) for run in row.runs]))
    devices = sorted({run.device for run in runs if run.device})
    if len(devices) > 1:
        warnings.append(f'the runs were timed on different devices ({", ".join(devices)}): '
                        'the time per image compares machines, not models')
    return Comparison(rows, conditions, unseen, base, warnings, seen, notes)


def _bootstrap_rows(rows: list, base: Row, conditions: list, unseen: list) -> list[str]:
    """The per-image bootstrap of each single-run row against a single-run baseline (seeds
    give no interval there); the notes say which rows lack a per-image record."""
    single = [row for row in rows if row is not base and len(row.runs) == 1]
    if len(base.runs) != 1 or not single:
        return []
    records = {}
    for row in [base, *single]:
        run = row.runs[0]
        records[row.name] = intervals.read_image_areas(
            run.work_dir, {c: run.miou(c) for c in run.metrics['conditions']})
    if records[base.name] is None:
        return [f'no per-image bootstrap: the baseline {base.runs[0].work_dir} has no '
                f'{PER_IMAGE_FILE} (evaluate it with evaluator.per_image=true)']
    notes = []
    for row in single:
        if records[row.name] is None:
            notes.append(f'no per-image bootstrap for "{row.name}": {row.runs[0].work_dir} has '
                         f'no {PER_IMAGE_FILE} (evaluate it with evaluator.per_image=true)')
            continue
        shared = [c for c in conditions
                  if row.runs[0].miou(c) is not None and base.runs[0].miou(c) is not None]
        row.bootstrap = intervals.bootstrap(records[row.name], records[base.name], shared,
                                            unseen, mean_key=MEAN_UNSEEN)
    return notes


def _mean_of(run: Run, conditions: list) -> Optional[float]:
    values = [run.miou(c) for c in conditions if run.miou(c) is not None]
    return float(np.mean(values)) if values and len(values) == len(conditions) else None


def _score(run: Run, key: str, unseen: list) -> Optional[float]:
    """A run's mIoU of one condition, or its mean over ``unseen`` for MEAN_UNSEEN."""
    return _mean_unseen(run, unseen) if key == MEAN_UNSEEN else run.miou(key)


def _difference(value: Optional[float], ref: Optional[float]) -> Optional[float]:
    return None if value is None or ref is None else value - ref


def _mean_unseen(run: Run, unseen: list) -> Optional[float]:
    """``mean_unseen_mIoU`` of metrics.json when it averages exactly ``unseen``; otherwise
    recomputed over ``unseen`` so that every row averages the same conditions."""
    own = [c for c in run.metrics['conditions'] if c not in run.seen and run.miou(c) is not None]
    if own == unseen:
        return run.metrics.get('mean_unseen_mIoU')
    values = [run.miou(c) for c in unseen if run.miou(c) is not None]
    return float(np.mean(values)) if values else None


def _cell(stat: Stat, sign: str = '') -> str:
    if stat.mean is None:
        return '-'
    mean = f'{stat.mean:{sign}.2f}'
    return mean if stat.std is None else f'{mean} ± {stat.std:.2f}'


def format_markdown(comp: Comparison) -> str:
    """The table (mean ± std over seeds) and a note saying what the columns mean."""
    seen_by_all = [c for c in comp.conditions if all(c in row.seen for row in comp.rows)]
    header = (['configuration', 'seeds'] +
              [c + (' (seen)' if c in seen_by_all else '') for c in comp.conditions] +
              [MEAN_UNSEEN, f'Δ {MEAN_UNSEEN}'])
    marked = False
    lines = []
    for row in comp.rows:
        cells = []
        for c in comp.conditions:
            text = _cell(row.cells[c])
            if c in row.seen and c not in seen_by_all:
                text, marked = text + ' †', True
            cells.append(text)
        delta = row.delta[MEAN_UNSEEN]
        delta = ('baseline' if row is comp.baseline else
                 '-' if delta is None else f'{delta:+.2f}')
        lines.append([row.name, len(row.runs), *cells, _cell(row.cells[MEAN_UNSEEN]), delta])
    notes = [f'mIoU (%), mean ± sample std over seeds; {MEAN_UNSEEN}: '
             f'{", ".join(comp.unseen) or "none"}; Δ: difference of means to '
             f'"{comp.baseline.name}".']
    if marked:
        notes.append('† seen in training by that row (its training sources, '
                     'data.train_weather or data.seen_conditions).')
    return markdown_table(header, lines) + '\n\n' + '\n'.join(notes) + '\n' + \
        _paired_markdown(comp) + _bootstrap_markdown(comp) + _cost_markdown(comp)


def _ratio(value: Optional[float], ref: Optional[float]) -> Optional[float]:
    return None if value is None or not ref else value / ref


def _cost_markdown(comp: Comparison) -> str:
    """Per row: parameters, the change on the seen conditions (no regression on what was
    trained for), the gain on the unseen ones, and the time per image against the baseline's;
    '' when no run recorded its cost."""
    rows = [row for row in comp.rows if row.cost['params'].n or row.cost['ms_per_image'].n]
    if not rows:
        return ''
    base = comp.baseline.cost
    header = ['configuration', 'params (M)', 'Δ params', 'Δ mean seen', f'Δ {MEAN_UNSEEN}',
              'ms / image', 'time vs baseline']
    lines = []
    for row in rows:
        params, ms = row.cost['params'].mean, row.cost['ms_per_image'].mean
        seen = _difference(row.cost['mean_seen'].mean, base['mean_seen'].mean)
        ratio = _ratio(ms, base['ms_per_image'].mean)
        extra = _difference(params, base['params'].mean)
        lines.append([row.name, '-' if params is None else f'{params / 1e6:.2f}',
                      'baseline' if row is comp.baseline else
                      '-' if extra is None else f'{extra / 1e6:+.3f} M',
                      '-' if seen is None else f'{seen:+.2f}',
                      '-' if row.delta[MEAN_UNSEEN] is None else
                      f'{row.delta[MEAN_UNSEEN]:+.2f}',
                      '-' if ms is None else f'{ms:.1f}',
                      '-' if ratio is None else f'{ratio:.3f}'])
    return (f'\nOperating cost (mean seen: {", ".join(comp.seen) or "none"}; ms / image: the '
            "model's time per image in the run's last evaluation, recorded in metrics.json; "
            'compare times measured on one machine):\n\n' + markdown_table(header, lines) +
            '\n')


def _interval_text(interval: intervals.Interval) -> str:
    return '-' if interval.low is None else f'[{interval.low:+.2f}, {interval.high:+.2f}]'


def _paired_markdown(comp: Comparison) -> str:
    """The per-seed differences to the baseline (rows sharing seeds with it) with their
    t-intervals and verdicts, then what these seeds can detect; '' when no row pairs."""
    rows = [row for row in comp.rows
            if row is not comp.baseline and any(i.n for i in row.paired.values())]
    if not rows:
        return ''
    header = ['configuration', 'condition', 'paired seeds', 'Δ mean ± std', '95% interval',
              'verdict']
    lines = [[row.name, key, row.paired[key].n, _cell(row.paired[key], '+'),
              _interval_text(row.paired[key]), row.paired[key].verdict]
             for row in rows for key in _keys(comp) if row.paired[key].n]
    power = ''.join(f'\n{line}' for line in map(_power_line, rows) if line)
    return (f'\nPaired per-seed difference to "{comp.baseline.name}" (mIoU points; mean ± '
            'sample std over the seeds both rows ran; 95% t-interval; verdict: better or worse '
            'when the interval excludes 0):\n\n' + markdown_table(header, lines) + '\n' +
            (f'{power}\n' if power else ''))


def _keys(comp: Comparison) -> list[str]:
    return comp.conditions + ([MEAN_UNSEEN] if comp.unseen else [])


def power_of(row: Row) -> tuple:
    """The row's pooled paired sd over its conditions, its fewest pairs, the smallest
    difference those seeds detect at 80% power and the seeds a ±1 mIoU interval needs."""
    sd, n = intervals.pooled_std([i for key, i in row.paired.items() if key != MEAN_UNSEEN])
    if sd is None:
        return None, n, None, None
    return sd, n, intervals.detectable_difference(sd, n), intervals.seeds_for_half_width(sd)


def _power_line(row: Row) -> str:
    sd, n, detectable, seeds = power_of(row)
    if sd is None:
        return ''
    if detectable is None:
        return f'"{row.name}": the paired differences do not vary over its {n} seeds (sd 0).'
    return (f'"{row.name}": paired sd {sd:.2f} (pooled over its conditions): {n} seeds detect '
            f'a difference of {detectable:.2f} mIoU with 80% power (paired t-test, two-sided '
            f'α = 0.05); a ±1.00 mIoU 95% interval needs {seeds} seeds.')


def _bootstrap_markdown(comp: Comparison) -> str:
    """The per-image bootstrap of single-run rows, or '' (with the notes on rows lacking it)."""
    rows = [row for row in comp.rows if row.bootstrap]
    notes = ''.join(f'\nnote: {note}' for note in comp.notes)
    if not rows:
        return notes + '\n' if notes else ''
    header = ['configuration', 'condition', 'images', 'Δ mIoU', '95% interval', 'verdict']
    lines = [[row.name, key, row.bootstrap[key].n, f'{row.bootstrap[key].mean:+.2f}',
              _interval_text(row.bootstrap[key]), row.bootstrap[key].verdict]
             for row in rows for key in _keys(comp) if key in row.bootstrap]
    return (f'\nSingle runs: per-image bootstrap of the difference to "{comp.baseline.name}" '
            f'(mIoU points on all images; 95% interval: percentiles of '
            f'{intervals.BOOTSTRAP_DRAWS} resamples of each condition\'s images, paired by '
            f'image, seed {intervals.BOOTSTRAP_SEED}; it covers the test images, not the '
            'training seed):\n\n' + markdown_table(header, lines) + '\n' + notes +
            ('\n' if notes else ''))


def _blank(value: Optional[float]) -> str:
    """A CSV cell: full precision, empty when undefined."""
    return '' if value is None else repr(value)


def format_csv(comp: Comparison) -> str:
    """One line per row: mean, std, Δ for each condition and the mean unseen, the paired
    per-seed difference (mean, std, pairs, 95% t-interval, verdict) and the per-image bootstrap
    of single runs (difference, interval, verdict); the cost, the pooled paired sd, the
    difference detectable at 80% power, the seeds for a ±1 interval, the seeds and work dirs
    (full precision; empty when undefined; the baseline's verdicts empty)."""
    keys = comp.conditions + [MEAN_UNSEEN]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    slug = {k: k.replace(' ', '_') for k in keys}
    stats = ('mean', 'std', 'delta', 'paired_delta_mean', 'paired_delta_std')
    tests = ('paired_n', 'paired_low', 'paired_high', 'paired_verdict', 'bootstrap_delta',
             'bootstrap_low', 'bootstrap_high', 'bootstrap_verdict')
    writer.writerow(['configuration', 'seeds', 'seed_values'] +
                    [f'{slug[k]}_{s}' for k in keys for s in stats] +
                    ['params', 'mean_seen', 'ms_per_image'] +
                    [f'{slug[k]}_{s}' for k in keys for s in tests] +
                    ['paired_std_pooled', 'detectable_at_80_power', 'seeds_for_1_mIoU',
                     'work_dirs'])
    none = intervals.Interval(None)
    for row in comp.rows:
        base = row is comp.baseline
        tested = [(row.paired[k], row.bootstrap.get(k, none)) for k in keys]
        sd, _, detectable, seeds = (None,) * 4 if base else power_of(row)
        writer.writerow([row.name, len(row.runs),
                         ' '.join(str(run.config.get('seed')) for run in row.runs)] +
                        [_blank(x) for k in keys
                         for x in (row.cells[k].mean, row.cells[k].std, row.delta[k],
                                   row.paired[k].mean, row.paired[k].std)] +
                        [_blank(row.cost[k].mean) for k in ('params', 'mean_seen',
                                                            'ms_per_image')] +
                        [x for paired, boot in tested for x in (
                            paired.n, _blank(paired.low), _blank(paired.high),
                            '' if base or paired.mean is None else paired.verdict,
                            _blank(boot.mean), _blank(boot.low), _blank(boot.high),
                            '' if boot.mean is None else boot.verdict)] +
                        [_blank(sd), _blank(detectable), '' if seeds is None else seeds,
                         ' '.join(run.work_dir for run in row.runs)])
    return out.getvalue()


@dataclass
class PerClass:
    """Per-class IoU over seeds: condition -> class -> a Stat for each row of the comparison
    (in its order); and notes on runs left out for recording no per-class IoU."""
    tables: dict
    notes: list


def aggregate_per_class(comp: Comparison) -> PerClass:
    """Each row's per-class IoU of each condition as a :class:`Stat` over the seeds where it
    is defined (``null``: absent from that run's predictions and labels, as in its mIoU)."""
    tables, notes = {}, []
    for condition in comp.conditions:
        runs = [run for row in comp.rows for run in row.runs
                if condition in run.metrics['conditions']]
        lacking = [run.work_dir for run in runs if not run.class_iou(condition)]
        if lacking:
            notes.append(f'{condition}: no per-class IoU in the metrics.json of '
                         f'{", ".join(lacking)}; left out of its per-class table')
        classes = dict.fromkeys(name for run in runs for name in run.class_iou(condition))
        if classes:
            tables[condition] = {
                name: [Stat.of([run.class_iou(condition).get(name) for run in row.runs])
                       for row in comp.rows] for name in classes}
    if not tables:
        raise DataError('no metrics.json of these runs records per-class IoU '
                        '(conditions.<condition>.per_class_iou): no per-class table. Evaluate '
                        'their checkpoints with tools/test.py to record it.')
    return PerClass(tables, notes)


def format_per_class_markdown(comp: Comparison, per: PerClass) -> str:
    """One table per condition: rows classes, columns configurations (mean ± std, and the Δ
    of means to the baseline in parentheses: one column per configuration, so a sweep of
    several stays readable), then the notes."""
    base = comp.rows.index(comp.baseline)
    header = ['class', *(row.name for row in comp.rows)]
    parts = [f'Per-class IoU (%), mean ± sample std over seeds; in parentheses: difference of '
             f'means to "{comp.baseline.name}".']
    for condition, classes in per.tables.items():
        seen = [row.name for row in comp.rows if condition in row.seen]
        title = condition + (' (seen)' if len(seen) == len(comp.rows) else
                             f' (seen in training by {", ".join(seen)})' if seen else '')
        lines = []
        for name, stats in classes.items():
            deltas = [None if i == base else _difference(stat.mean, stats[base].mean)
                      for i, stat in enumerate(stats)]
            lines.append([name, *(_cell(stat) + ('' if delta is None else f' ({delta:+.2f})')
                                  for stat, delta in zip(stats, deltas))])
        parts.append(f'### {title}\n\n' + markdown_table(header, lines))
    return '\n\n'.join(parts + [f'note: {note}' for note in per.notes]) + '\n'


def format_per_class_csv(comp: Comparison, per: PerClass) -> str:
    """One line per condition, class and row: the seeds counted, IoU mean, std and Δ of means
    to the baseline (full precision; empty when undefined)."""
    base = comp.rows.index(comp.baseline)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(['condition', 'class', 'configuration', 'seeds', 'mean', 'std', 'delta'])
    for condition, classes in per.tables.items():
        for name, stats in classes.items():
            for row, stat in zip(comp.rows, stats):
                writer.writerow([condition, name, row.name, stat.n, *map(_blank, (
                    stat.mean, stat.std, _difference(stat.mean, stats[base].mean)))])
    return out.getvalue()


# parts of row names that figures leave out (run lengths, rarely what is compared)
FIGURE_DROPS = ('schedule.max_iters=', 'schedule.val_interval=')


def figure_names(rows: Sequence[Row]) -> list[str]:
    """Row names for legends: without the FIGURE_DROPS parts unless that makes two rows alike
    (or one empty), wrapped to fit inside the axes."""
    short = [' '.join(p for p in row.name.split() if not p.startswith(FIGURE_DROPS))
             for row in rows]
    names = short if all(short) and len(set(short)) == len(short) else [r.name for r in rows]
    return [textwrap.fill(name, 40) for name in names]


def _tick_labels(comp: Comparison, keys: list) -> list[str]:
    return [k + (' (seen)' if all(k in r.seen for r in comp.rows) else '') for k in keys]


def plot_comparison(comp: Comparison):
    """Grouped bars: conditions (and the mean unseen) x rows, error bars = std over seeds."""
    from matplotlib.figure import Figure
    keys = _keys(comp)
    x = np.arange(len(keys))
    width = 0.8 / len(comp.rows)
    fig = Figure(figsize=(max(6.0, 1.1 * len(keys) * max(1, len(comp.rows) / 2)), 4.5),
                 layout='constrained')
    ax = fig.subplots()
    for i, (row, name) in enumerate(zip(comp.rows, figure_names(comp.rows))):
        stats = [row.cells[k] for k in keys]
        ax.bar(x - 0.4 + width * (i + 0.5), [np.nan if s.mean is None else s.mean for s in stats],
               width, yerr=[s.std or 0.0 for s in stats], capsize=3,
               label=f'{name} (n={len(row.runs)})')
    ax.set_xticks(x, _tick_labels(comp, keys))
    ax.set_ylabel('mIoU (%)')
    ax.set_title('mIoU per condition, mean ± std over seeds', fontsize=10)
    ax.grid(axis='y', alpha=0.3)
    ax.margins(y=0.3)  # room for the legend above the bars
    ax.legend(loc='upper right', fontsize=8, framealpha=0.9)
    return fig


def _shown_interval(row: Row, key: str) -> intervals.Interval:
    """What the interval figure shows: the bootstrap of a single run, else the paired seeds."""
    return row.bootstrap.get(key) or row.paired[key]


def plot_intervals(comp: Comparison):
    """Each row's difference to the baseline per condition (and mean unseen) with its 95%
    interval as error bars (a bare point where there is none), a line at 0, the conditions
    every row trained on shaded; None with no row to compare."""
    rows = [row for row in comp.rows if row is not comp.baseline]
    if not rows:
        return None
    from matplotlib.figure import Figure
    keys = _keys(comp)
    x = np.arange(len(keys))
    step = 0.6 / len(rows)
    fig = Figure(figsize=(max(6.0, 1.2 * len(keys) * max(1, len(rows) / 2)), 4.5),
                 layout='constrained')
    ax = fig.subplots()
    for i, key in enumerate(keys):
        if all(key in row.seen for row in comp.rows):
            ax.axvspan(i - 0.45, i + 0.45, color='0.9', zorder=0)
    names = figure_names(comp.rows)
    ax.axhline(0.0, color='0.3', linewidth=1,
               label=f'{names[comp.rows.index(comp.baseline)]} (baseline)')
    for i, row in enumerate(rows):
        shown = [_shown_interval(row, k) for k in keys]
        mean = np.array([np.nan if s.mean is None else s.mean for s in shown])
        low = np.array([np.nan if s.low is None else s.low for s in shown])
        high = np.array([np.nan if s.high is None else s.high for s in shown])
        what = 'per-image bootstrap' if row.bootstrap else \
            f'{max(s.n for s in row.paired.values())} paired seeds'
        ax.errorbar(x - 0.3 + step * (i + 0.5), mean,
                    yerr=np.nan_to_num(np.stack([mean - low, high - mean])), fmt='o',
                    capsize=4, label=f'{names[comp.rows.index(row)]} ({what})')
    ax.set_xticks(x, _tick_labels(comp, keys))
    ax.set_xlim(-0.5, len(keys) - 0.5)
    ax.set_ylabel('Δ mIoU to the baseline (points)')
    ax.set_title('Difference to the baseline with 95% intervals (shaded: seen in training)',
                 fontsize=10)
    ax.grid(axis='y', alpha=0.3)
    ax.margins(y=0.3)
    ax.legend(loc='upper right', fontsize=8, framealpha=0.9)
    return fig


# how a failed write (a full disk, no permission) ends: the message of reported_write
WRITE_FIX = 'Free space or make --out writable (or choose another --out), and run it again.'


def _write(path: str, data: bytes) -> None:
    with reported_write(path, WRITE_FIX):
        atomic_write_bytes(path, data)


def write_outputs(comp: Comparison, out_dir: str) -> list[str]:
    """``comparison.md``, ``comparison.csv``, ``comparison.png`` and, with a row to compare,
    ``comparison_intervals.png`` in ``out_dir``."""
    md, csv_path, png, intervals_png = (osp.join(out_dir, name) for name in OUTPUT_FILES)
    _write(md, format_markdown(comp).encode())
    _write(csv_path, format_csv(comp).encode())
    with reported_write(png, WRITE_FIX):
        save_figure(plot_comparison(comp), png)
    written = [md, csv_path, png]
    figure = plot_intervals(comp)
    if figure is not None:
        with reported_write(intervals_png, WRITE_FIX):
            save_figure(figure, intervals_png)
        written.append(intervals_png)
    return written


def write_per_class(comp: Comparison, per: PerClass, out_dir: str) -> list[str]:
    """``comparison_per_class.md`` and ``comparison_per_class.csv`` in ``out_dir``."""
    md, csv_path = (osp.join(out_dir, name) for name in PER_CLASS_FILES)
    _write(md, format_per_class_markdown(comp, per).encode())
    _write(csv_path, format_per_class_csv(comp, per).encode())
    return [md, csv_path]

