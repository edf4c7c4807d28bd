"""Hydra <-> mmengine: compose the YAML configs and translate them into an mmengine Config.

Each config group is read in one place: ``data`` by :mod:`domino_seg.data.builder`,
``model``/``domino``/``finetune`` by :mod:`domino_seg.models.builder`, ``domain`` by
:mod:`domino_seg.domain.builder`, ``schedule`` and the top-level keys here. What each key
takes is declared once, in :mod:`domino_seg.schema`, and a composed config is checked against
it there (types, unknown keys); the value ranges and choices are ``VALUE_RANGES`` here.
"""
from __future__ import annotations

import json
import math
import os
from typing import Callable, Sequence

import torch
from hydra.core.config_store import ConfigStore
from mmengine.config import Config as MMConfig
from omegaconf import DictConfig, OmegaConf

from domino_seg import conditions, config_files, run_names, schema, tool_help
from domino_seg.data import builder as data_builder
from domino_seg.data.corruptions import CORRUPTIONS, SEVERITIES
from domino_seg.domain import builder as domain_builder
from domino_seg.errors import ConfigError
from domino_seg.io import recorded_config_path
from domino_seg.models import builder as model_builder
from domino_seg.models.convert import SCOPE_PARTS
from domino_seg.models.domino_norm import ACTIVATIONS, DEFAULT_MLP
from domino_seg.registry import extension_modules

# configs/runtime/: torch.distributed's backend for this machine
OmegaConf.register_new_resolver(
    'dist_backend', lambda: 'nccl' if torch.cuda.is_available() else 'gloo', replace=True)
# each tool's --help (hydra.help.template in its YAML)
OmegaConf.register_new_resolver('tool_help', tool_help.help_text, replace=True)
# configs/domain/onehot.yaml: the conditions a run trains on (a ListConfig: OmegaConf.resolve
# keeps a list only as a container)
OmegaConf.register_new_resolver(
    'seen_conditions', lambda *, _root_: OmegaConf.create(conditions.seen_conditions(_root_.data)),
    replace=True)

# the work_dir of configs/train.yaml: a new folder per run, or the folder of the run that
# resume= continues
OmegaConf.register_new_resolver('run_dir', run_names.run_dir, replace=True)
# the name of a new run folder; cached, so every use in one config (and Hydra's copies) agrees
OmegaConf.register_new_resolver('run_stamp', run_names.run_stamp, use_cache=True, replace=True)

# configs/domino/_base.yaml takes the Domino MLP's defaults from the models (written once):
# the config domino/_mlp, in Hydra's ConfigStore (searched beside the configs folder)
ConfigStore.instance().store(group='domino', name='_mlp', node=DEFAULT_MLP)

# the configs folder, for presets naming a file in it (e.g. a prompt bank) whatever the cwd
OmegaConf.register_new_resolver('config_dir', lambda: str(config_files.CONFIG_DIR), replace=True)


def compose(overrides: Sequence[str] = (), config_name: str = 'train') -> DictConfig:
    """The composed, resolved config that ``tools/{config_name}.py`` would get for the same
    command-line overrides (e.g. ``['+exp=acdc_fog', 'schedule.max_iters=10']``)."""
    cfg = config_files.compose_unresolved(overrides, config_name)
    schema.check(cfg, overrides, config_name)
    OmegaConf.resolve(cfg)
    check_value_ranges(cfg, overrides)
    return cfg


def _integer(low: int, high: int | None = None) -> tuple[Callable[[object], bool], str]:
    return (lambda v: type(v) is int and v >= low and (high is None or v <= high),
            f'an integer >= {low}' if high is None else f'an integer in {low}..{high}')


def _number(low: float, high: float, low_open: bool = False,
            optional: bool = False) -> tuple[Callable, str]:
    def ok(v):
        return (optional and v is None) or type(v) in (int, float) and math.isfinite(v) and \
            (v > low if low_open else v >= low) and v <= high
    text = f'a number {">" if low_open else ">="} {low}' if math.isinf(high) else \
        f'a number in {low}..{high}' if not low_open else f'a number in ({low}, {high}]'
    return ok, text + (' or null' if optional else '')


def _pair(low: int, what: str) -> tuple[Callable[[object], bool], str]:
    return (lambda v: isinstance(v, list) and len(v) == 2 and all(type(x) is int and x >= low
                                                                  for x in v),
            f'two integers >= {low} ({what})')


def _ratio_range(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and \
        all(type(x) in (int, float) and math.isfinite(x) and x > 0 for x in v) and v[0] <= v[1]


def _choice(options: Sequence, what: str = '') -> tuple[Callable[[object], bool], str]:
    return (lambda v: v in options and type(v) is type(options[0]),
            f'one of {", ".join(map(str, options))}' + (f' ({what})' if what else ''))


def _distinct(options: Sequence | None, what: str, empty: bool = True,
              note: str = '') -> tuple[Callable, str]:
    """A list of ``options`` (None: of names, which the data checks know), each at most once:
    a repeated entry would be evaluated twice and weigh double in the means."""
    def ok(v):
        return isinstance(v, list) and (empty or bool(v)) and len(set(v)) == len(v) and (
            all(type(x) is str for x in v) if options is None else
            all(x in options and type(x) is type(options[0]) for x in v))
    ok.distinct = True  # check_value_ranges names the repeated entry
    return ok, (f'a list of distinct {what}' + ('' if empty else ', at least one') +
                ('' if options is None else f', each one of {", ".join(map(str, options))}')
                + note)


SEED = _integer(0, 2 ** 32 - 1)  # numpy's seed range
SPLITS = ('train', 'val', 'test')  # the split folders of Cityscapes and ACDC (and eval_sets)

# key -> (is the value allowed, the allowed values in words); keys a config lacks are skipped
VALUE_RANGES: dict[str, tuple[Callable[[object], bool], str]] = {
    'seed': SEED,
    'log_interval': _integer(1),
    'batch_size': _integer(1),  # tools/embed_domains.py, tools/infer.py
    'num_workers': _integer(0),
    'launcher': _choice(('none', 'pytorch', 'slurm', 'mpi')),
    # tools/make_synthetic.py (its writer's bounds)
    'workers': _integer(1),
    'num_train': _integer(0),
    'num_val': _integer(0),
    'height': _integer(16),
    'width': _integer(16),
    'schedule.max_iters': _integer(1),
    'schedule.val_interval': _integer(1),
    'schedule.batch_size': _integer(1),
    'schedule.test_batch_size': _integer(1),
    'schedule.warmup_iters': _integer(0),
    # mmengine's CheckpointHook: -1 keeps every checkpoint (0 would too, unlike what it says)
    'schedule.max_keep_ckpts': (lambda v: type(v) is int and (v >= 1 or v == -1),
                                'an integer >= 1, or -1 to keep every checkpoint'),
    'model.embed_dim': _integer(1),
    'model.optimizer.lr': _number(0, math.inf, low_open=True),
    'model.optimizer.weight_decay': _number(0, math.inf),
    'finetune.layer_decay_rate': _number(0, 1, low_open=True, optional=True),
    'domino.scope': _choice(('none', *SCOPE_PARTS)),
    'domino.mlp.hidden': _integer(1),
    'domino.mlp.layers': _integer(1),
    'domino.mlp.act': _choice(ACTIVATIONS, 'a torch.nn activation'),
    'data.train_split': _choice(SPLITS, 'the split folder read'),
    'data.eval_split': _choice(SPLITS, 'the split folder read'),
    # (which names: the data's conditions, checked with the data: builder._check_conditions)
    'data.eval_conditions': _distinct(None, 'conditions', note=' (other datasets: '
                                      'data.eval_sets)'),
    'data.eval_corruptions': _distinct(CORRUPTIONS, 'corruption names'),
    'data.corruption_severities': _distinct(tuple(SEVERITIES), 'severities', empty=False),
    'data.corruption_seed': SEED,
    'data.generate.num_train': _integer(1),
    'data.generate.num_val': _integer(1),
    'data.generate.height': _integer(16),
    'data.generate.width': _integer(16),
    'data.generate.seed': SEED,
    'data.num_workers': _integer(0),
    'data.num_classes': _integer(1, 255),  # 8-bit label maps, 255 = ignore
    # the models downsample by 32
    'data.img_scale': _pair(32, '[w,h] in pixels'),
    'data.crop_size': _pair(32, '[h,w] in pixels'),
    'data.ratio_range': (_ratio_range, '[min,max] with 0 < min <= max'),
    'data.train_weather_prob': _number(0, 1),
    'domino.style.p': _number(0, 1),
    'domino.style.alpha': _number(0, math.inf, low_open=True),
    'domain.temperature': _number(0, math.inf, low_open=True),
}


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) or \
        isinstance(value, list) and all(isinstance(x, (int, float)) for x in value)


def check_value_ranges(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """Raise a ConfigError naming the key, its value, the allowed values and where the value
    came from (the command-line ``overrides`` or a config file) when a key of
    ``VALUE_RANGES`` is out of range or not a valid choice (e.g. ``schedule.max_iters=0``,
    ``data.eval_split=``, a corruption listed twice), before mmengine, the data loader or the
    model meets it as a traceback, a silently empty run or a silently wrong score."""
    for key, (allowed, text) in VALUE_RANGES.items():
        value = OmegaConf.select(cfg, key, default=KeyError)
        if value is KeyError:
            continue
        value = OmegaConf.to_object(value) if OmegaConf.is_config(value) else value
        if allowed(value):
            continue
        repeated = [x for i, x in enumerate(value) if x in value[:i]] \
            if getattr(allowed, 'distinct', False) and isinstance(value, list) else []
        line = schema.set_by(key, overrides)
        source = '' if line and line.lstrip('+~').split('=', 1)[0] == key else \
            f' (set by {line})' if line else f' ({schema.FROM_A_FILE})'
        raise ConfigError(
            f'{key}={json.dumps(value)} ' + ('is out of range' if _numeric(value) else
                                             'is not valid') +
            (f' ({json.dumps(repeated[0])} is listed twice)' if repeated else '') +
            f': {key} takes {text}{source}.')


def _param_schedulers(schedule: DictConfig) -> list[dict]:
    """Linear warm-up, then polynomial decay to zero (the usual segmentation schedule)."""
    warmup = min(schedule.warmup_iters, schedule.max_iters // 2)
    poly = dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup,
                end=schedule.max_iters)
    if warmup == 0:
        return [poly]
    return [dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup), poly]


AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}


def precision(amp) -> dict:
    """The optim wrapper for ``amp``: fp32 (also ``false``), or mixed precision bf16 | fp16
    through mmengine's AmpOptimWrapper (dynamic loss scaling). mmengine's AMP needs a GPU:
    without one a run warns and trains in float32, so a GPU preset still runs on CPU."""
    if amp in ('fp32', False, None):
        return dict(type='NonFiniteGuardOptimWrapper')
    if amp not in AMP_DTYPES:
        raise ConfigError(f'amp={amp!r}: choose fp32 (or false), bf16 or fp16.')
    if not torch.cuda.is_available():
        from mmengine.logging import print_log
        print_log(f'amp={amp}: mixed precision needs a GPU (mmengine AmpOptimWrapper); this '
                  'machine has none, so training runs in float32.', logger='current',
                  level=30)
        return dict(type='NonFiniteGuardOptimWrapper')
    return dict(type='NonFiniteGuardAmpOptimWrapper', dtype=AMP_DTYPES[amp],
                loss_scale='dynamic')


def _metrics(evaluator: DictConfig, data: DictConfig, conditions: list) -> list[dict]:
    """The evaluator's metrics; the per-condition IoU, first, gets the run's conditions and
    whether to keep each image's areas (``evaluator.per_image``)."""
    metrics = OmegaConf.to_container(evaluator.metrics, resolve=True)
    if not metrics or metrics[0].get('type') != 'ConditionIoUMetric':
        raise ConfigError('evaluator.metrics must start with {type: ConditionIoUMetric} (what '
                          f'metrics.json and the tables read); got {metrics}.')
    metrics[0].update(seen_conditions=data_builder.seen_conditions(data), conditions=conditions,
                      per_image=bool(evaluator.get('per_image', False)))
    return metrics


def _eval_loader(cfg: DictConfig, after_load: list[dict], labels: bool) -> dict:
    data = cfg.data
    return dict(
        batch_size=cfg.schedule.test_batch_size, num_workers=data.num_workers,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_sampler=dict(type='SubDatasetBatchSampler'),
        dataset=data_builder.eval_dataset(
            data, data_builder.eval_pipeline(data, after_load, labels), labels))


def _embedded(cfg: DictConfig) -> DictConfig:
    """The domain group, or mode none without Domino layers: nothing reads the embeddings
    then, so no encoder is built."""
    return cfg.domain if cfg.domino.scope != 'none' else OmegaConf.create(dict(mode='none'))


def segmentor_cfg(cfg: DictConfig, load_pretrained: bool = True) -> dict:
    """The segmentor dict (model, domino and finetune groups), whose data preprocessor also
    embeds each batch's domains when Domino layers read them; ``load_pretrained=False`` when a
    checkpoint will replace the backbone weights."""
    model = model_builder.segmentor_cfg(cfg.model, cfg.domino, domain_builder.embed_dim(cfg.domain),
                                        cfg.get('finetune'), load_pretrained=load_pretrained)
    model['data_preprocessor'] = domain_builder.data_preprocessor_cfg(
        _embedded(cfg), model.get('data_preprocessor'))
    return model


def scores_labels(cfg: DictConfig) -> bool:
    """Whether the run reads and scores labels: training always, tools/test.py unless
    ``evaluate=false`` (prediction only, e.g. splits without public labels)."""
    return cfg.get('task', 'train') != 'test' or bool(cfg.get('evaluate', True))


def to_mmengine(cfg: DictConfig):
    """Translate a composed config into the mmengine Config that mmengine's Runner runs: each
    group's pieces (data, domain, model, evaluator, runtime) merged with the run's keys."""
    task = cfg.get('task', 'train')
    labels = scores_labels(cfg)
    after_load = [step for step in [domain_builder.transform_cfg(_embedded(cfg))] if step]
    eval_loader = _eval_loader(cfg, after_load, labels)
    val_evaluator, test_evaluator = _evaluators(cfg, labels)
    mm = dict(
        default_scope='mmseg',
        custom_imports=dict(imports=['domino_seg', *extension_modules(cfg)],
                            allow_failed_imports=False),
        work_dir=str(cfg.work_dir),
        model=segmentor_cfg(cfg, load_pretrained=task == 'train'),
        val_dataloader=eval_loader, val_evaluator=val_evaluator, val_cfg=dict(type='ValLoop'),
        test_dataloader=eval_loader, test_evaluator=test_evaluator,
        test_cfg=dict(type='TestLoop'),
        custom_hooks=[dict(type='MetricsJsonHook',
                           config=OmegaConf.to_container(cfg, resolve=True),
                           extra=dict(domain=domain_builder.describe(cfg.domain))),
                      dict(type='EvalProgressHook')],
        randomness=dict(seed=cfg.seed, deterministic=cfg.deterministic),
        launcher=cfg.launcher,
        # DDP (launcher != none); on CPU (gloo) without the GPU id mmengine would pass
        model_wrapper_cfg=dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                               **({} if torch.cuda.is_available() else dict(device_ids=None))),
        # mmengine keys its logger, message hub and visualizer by this name: one per work dir,
        # so sequential sweep jobs in one process never share them
        experiment_name=os.path.abspath(cfg.work_dir),
        verbose=bool(cfg.get('verbose', False)),  # DominoRunner: the console's detail
        load_from=cfg.get('checkpoint') if task == 'test' else cfg.get('load_from'),
        resume=False,
        **OmegaConf.to_container(cfg.runtime, resolve=True),  # configs/runtime/
    )
    if task == 'test' and cfg.get('submission'):
        from domino_seg.evaluation.submission import check_format
        check_format(cfg.submission, cfg.data.num_classes)
        mm['custom_hooks'].append(dict(type='CityscapesSubmissionHook',
                                       out_dir=os.path.join(cfg.work_dir, 'submission')))
    if task != 'test':  # train, embed_domains
        _add_training(mm, cfg, after_load)
    # unformatted: yapf takes ~1 s of every run's start-up to format the text for the log,
    # mmengine_config.py and the checkpoints, for about as many lines (still Python that
    # Config.fromfile reads)
    return MMConfig(mm, format_python_code=False)


def _evaluators(cfg: DictConfig, labels: bool) -> tuple[list, list]:
    """Validation and test metrics (configs/evaluator/); a prediction-only test counts
    images instead, and ``save_predictions`` has the per-condition metric write them."""
    conditions = data_builder.evaluated_conditions(cfg.data)
    evaluator = _metrics(cfg.evaluator, cfg.data, conditions)
    test_evaluator = [dict(m) for m in evaluator] if labels else [
        dict(type='ConditionCountMetric', conditions=conditions)]
    if cfg.get('prediction_colors') and not cfg.get('save_predictions'):
        raise ConfigError('prediction_colors=true writes a colour PNG beside each saved '
                          'prediction, but none is saved: add save_predictions=true.')
    if cfg.get('save_predictions'):
        test_evaluator[0].update(output_dir=os.path.join(cfg.work_dir, 'predictions'),
                                 prediction_colors=bool(cfg.get('prediction_colors')))
    return evaluator, test_evaluator


def _add_training(mm: dict, cfg: DictConfig, after_load: list) -> None:
    """The training loop, its data, optimizer (NaN/inf losses are caught before the step:
    nan_policy stop | skip; amp) and schedule, and the exact-resume RNG hook."""
    data, schedule = cfg.data, cfg.schedule
    mm.update(
        train_dataloader=dict(
            batch_size=schedule.batch_size, num_workers=data.num_workers,
            persistent_workers=data.num_workers > 0, sampler=data_builder.train_sampler(data),
            dataset=data_builder.train_dataset(
                data, data_builder.train_pipeline(data, after_load))),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=schedule.max_iters,
                       val_interval=schedule.val_interval),
        optim_wrapper=dict(model_builder.optim_wrapper_cfg(cfg.model, cfg.get('finetune')),
                           **precision(cfg.get('amp', 'fp32')), nan_policy=cfg.nan_policy),
        param_scheduler=_param_schedulers(schedule),
    )
    if torch.cuda.is_available():  # torch's SyncBatchNorm is GPU-only
        mm['sync_bn'] = 'torch'  # BatchNorm statistics over all processes (launcher != none)
    # exact resume: the RNG states in checkpoints; Ctrl-C/SIGTERM: a checkpoint, then stop
    mm['custom_hooks'] += [dict(type='RngStateHook'), dict(type='InterruptHook')]


# the groups that describe a trained model (finetune: absent from configs before it existed)
MODEL_GROUPS = ('model', 'domino', 'domain')
OPTIONAL_MODEL_GROUPS = ('finetune',)


def command_line_keys(overrides: Sequence[str]) -> set[str]:
    """The keys and groups the command-line ``overrides`` set, as Hydra parses them
    (``model.x=1``: model.x; ``domain/clip=tiny``: domain/clip; ``+exp=a``: exp)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    return {o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides))}


def model_groups_in(keys: set[str]) -> list[str]:
    """The model groups (MODEL_GROUPS, OPTIONAL_MODEL_GROUPS) that ``keys``
    (:func:`command_line_keys`) set, in part or as a whole: a checkpoint's recorded model
    does not replace them (``keep`` of :func:`with_recorded_model`)."""
    import re
    given = {re.split(r'[./]', key)[0] for key in keys}
    return [group for group in MODEL_GROUPS + OPTIONAL_MODEL_GROUPS if group in given]


def with_recorded_model(cfg: DictConfig, checkpoint: str, key: str,
                        keep: Sequence[str] = (), keys: Sequence[str] = ()) -> DictConfig:
    """``cfg`` with the model groups (MODEL_GROUPS) of the run that wrote ``checkpoint``, read
    from the ``config.yaml`` beside it (:func:`recorded_config`), except the groups in
    ``keep``, and with the recorded values of ``keys`` (e.g. ``data.img_scale``) where it has
    them; ``key`` names the config key that gave ``checkpoint`` in the errors."""
    import copy

    from omegaconf import open_dict
    recorded = recorded_config(checkpoint, key)
    merged = copy.deepcopy(cfg)
    with open_dict(merged):
        for group in MODEL_GROUPS + OPTIONAL_MODEL_GROUPS:
            if group in recorded and group not in keep:
                merged[group] = recorded[group]
        for name in keys:
            value = OmegaConf.select(recorded, name, default=None)
            if value is not None:
                OmegaConf.update(merged, name, value)
    return merged


def recorded_config(checkpoint: str, key: str = 'checkpoint',
                    required: bool = True) -> DictConfig | None:
    """The config the run that wrote ``checkpoint`` recorded (:func:`recorded_config_path`),
    read as data: that folder may come from anyone, so a file that is not a mapping with the
    model groups of a run, whose groups do not have the schema's types, with a value out of
    its range (VALUE_RANGES) or that holds ``${...}`` interpolations (a recorded config is
    written resolved; resolving them here would run the reader's resolvers, e.g. ``oc.env``
    printing an environment variable) is a ConfigError naming the file. Without the file:
    None, or with ``required`` a ConfigError (``key`` names the config key that gave
    ``checkpoint``)."""
    import yaml
    from omegaconf.errors import OmegaConfBaseException
    path = recorded_config_path(checkpoint)
    if not os.path.isfile(path):
        if not required:
            return None
        raise ConfigError(f'{key}={checkpoint!r}: no config.yaml beside it, so its model is '
                          'unknown; pass a checkpoint inside the work dir tools/train.py wrote.')
    fix = (f'Restore the config.yaml tools/train.py wrote in that run, or pass ({key}=) a '
           'checkpoint of a run that has it.')
    try:
        recorded = OmegaConf.load(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, OmegaConfBaseException) as err:
        reason = ' '.join(str(err).split())
        raise ConfigError(f'{path} (beside {key}={checkpoint}) is not a domino-seg run config: '
                          f'{reason}. {fix}') from None
    if not isinstance(recorded, DictConfig):
        raise ConfigError(f'{path} (beside {key}={checkpoint}) is not a domino-seg run config: '
                          f'it holds a {type(recorded).__name__}, not a mapping of config '
                          f'groups. {fix}')
    missing = [group for group in MODEL_GROUPS
               if not isinstance(recorded.get(group), DictConfig)]
    if missing:
        raise ConfigError(f'{path} has no {", ".join(missing)} section; it is not a domino-seg '
                          f'run config ({key} must come from tools/train.py). {fix}')
    interpolated = _interpolations(OmegaConf.to_container(recorded, resolve=False))
    if interpolated:
        raise ConfigError(
            f'{path} holds interpolations (${{...}}) at {", ".join(interpolated[:5])}'
            f'{", ..." if len(interpolated) > 5 else ""}: tools/train.py records its config '
            'resolved, so this file was edited or written elsewhere, and domino-seg does not '
            "resolve it (that would run this machine's resolvers, e.g. read its environment "
            f'variables). Replace each with its value. {fix}')
    groups = OmegaConf.masked_copy(recorded, [group for group in MODEL_GROUPS +
                                              OPTIONAL_MODEL_GROUPS if group in recorded])
    try:
        schema.check(groups, (), 'train')
        check_value_ranges(recorded)  # (e.g. data.img_scale, which inference reads)
    except ConfigError as err:  # (the schema's words for a tool's own YAML do not apply)
        reason = str(err).replace(f' ({schema.FROM_A_FILE})', '')
        raise ConfigError(f'{path} (beside {key}={checkpoint}) is not a config this domino-seg '
                          f'can read: {reason} {fix}') from None
    return recorded


def _interpolations(node, key: str = '') -> list[str]:
    """The keys of ``node`` (a plain container) whose string values hold ``${``."""
    if isinstance(node, dict):
        items = ((f'{key}.{k}' if key else str(k), v) for k, v in node.items())
    elif isinstance(node, list):
        items = ((f'{key}[{i}]', v) for i, v in enumerate(node))
    else:
        return [key] if isinstance(node, str) and '${' in node else []
    return [found for k, v in items for found in _interpolations(v, k)]


def build_dataset(cfg: DictConfig, split: str = 'train'):
    """The dataset a run trains on (``'train'``: every training source in one ConcatDataset)
    or evaluates on (``'test'``: one sub-dataset per evaluated condition), as mmengine builds
    it; ``get_data_info(i)['condition']`` is each sample's condition."""
    from mmengine.registry import DATASETS, init_default_scope
    if split not in ('train', 'test'):
        raise ConfigError(f"split={split!r}: choose 'train' or 'test'.")
    init_default_scope('mmseg')
    return DATASETS.build(to_mmengine(cfg)[f'{split}_dataloader'].dataset)


def build_segmentor(cfg: DictConfig):
    """The mmseg segmentor a composed config describes (weights initialised, CPU)."""
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(to_mmengine(cfg).model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs one line per parameter without a runner
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model
