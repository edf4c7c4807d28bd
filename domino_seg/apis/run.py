"""What tools/train.py and tools/test.py do, importable for tests and notebooks."""
from __future__ import annotations

import difflib
import json
import os
import os.path as osp
import shlex
import signal
import sys
from pathlib import Path
from typing import Callable, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from domino_seg import schema, tool_help
from domino_seg.config import (
    check_value_ranges,
    command_line_keys,
    model_groups_in,
    recorded_config_path,
    scores_labels,
    to_mmengine,
    with_recorded_model,
)
from domino_seg.data.builder import check_data, ensure_synthetic, prompt_conditions, seen_conditions
from domino_seg.domain import builder as domain_builder
from domino_seg.engine.interrupt_hook import (
    TrainingInterrupted,
    finish_stopped,
    stop_on_signals,
    stopped_by_error,
)
from domino_seg.engine.process import prepare_process
from domino_seg.engine.resume import (
    check_same_config,
    claim_work_dir,
    is_first_process,
    lock_work_dir,
    metrics_iter,
    remove_unstarted_work_dirs,
    resume_checkpoint,
    resumed_folder,
)
from domino_seg.errors import CheckpointError, ConfigError, DominoSegError
from domino_seg.evaluation.report import count_table, format_table, per_class_table
from domino_seg.run_names import checkpoint_iter, latest_checkpoint


def _check_work_dir(cfg: DictConfig) -> None:
    """Claim the work dir (rank 0; see :func:`claim_work_dir`) and check it is writable."""
    work_dir = cfg.work_dir
    try:
        if is_first_process(cfg.get('launcher', 'none')):
            claim_work_dir(work_dir, cfg.get('resume'))
        else:  # rank 0 claims the folder the processes share
            os.makedirs(work_dir, exist_ok=True)
        with open(osp.join(work_dir, '.write_test'), 'wb'):
            pass
        os.remove(osp.join(work_dir, '.write_test'))
    except OSError as err:
        raise ConfigError(f'the work dir {work_dir!r} is not writable ({err.strerror}). Set '
                          'paths.work_dirs=/a/writable/folder (or work_dir=...).') from None


def _runner(cfg: DictConfig, train: bool, **mm_updates):
    """Check the work dir, the domain embedding's inputs, data and weights (fast, clear
    errors), then build the Runner (``mm_updates`` amend the mmengine config). The resolved
    config is recorded in the work dir once the checkpoint has loaded and fits
    (MetricsJsonHook)."""
    from domino_seg.engine.runner import DominoRunner
    _check_work_dir(cfg)
    if cfg.domino.scope != 'none':  # (otherwise no embedding is computed)
        domain_builder.check_domain(cfg.domain, [*(seen_conditions(cfg.data) if train else []),
                                                 *prompt_conditions(cfg.data)])
    mm = to_mmengine(cfg)  # resolves backbone weights: fails in seconds, before generation
    ensure_synthetic(cfg.data)
    check_data(cfg.data, train=train, labels=scores_labels(cfg))
    mm.update(mm_updates)
    runner = DominoRunner.from_cfg(mm)
    runner.logger.info(_header(cfg, train))
    return runner


def _header(cfg: DictConfig, train: bool) -> str:
    """The run's first line: what is trained or tested, with which text encoder when it is
    not CLIP's text tower (a MiniLM run reads otherwise like a CLIP one), and ``domino=style``
    for the style-perturbation control (its scope is none: no Domino layers)."""
    crop = f', crop {cfg.data.crop_size[0]}x{cfg.data.crop_size[1]}' if train else ''
    encoder = cfg.domain.get('text_encoder') or {}
    named = encoder.get('backend', 'open_clip') != 'open_clip' and cfg.domain.mode != 'none'
    domain = cfg.domain.mode + (f' ({encoder.get("name") or encoder.backend})' if named else '')
    domino = 'style' if cfg.domino.get('style') else cfg.domino.scope
    return (f'{cfg.task} {cfg.exp_name}: model {cfg.model.get("name", "?")}, '
            f'domino={domino}, domain={domain}, '
            f'data={cfg.data.name}{crop}; work dir {cfg.work_dir}')


def _final_report(cfg: DictConfig, title: str, evaluated: bool = True) -> dict:
    """Log (console and log file) the per-class table of ``metrics.json`` and its path. The
    metric logged the summary table at this run's last evaluation, so it is repeated only
    when nothing was evaluated now (resuming a run already evaluated): each table once."""
    from mmengine.dist import is_main_process
    from mmengine.logging import print_log
    if not is_main_process():  # with torchrun, rank 0 writes and prints metrics.json
        return {}
    path = osp.join(cfg.work_dir, 'metrics.json')
    if not osp.isfile(path):  # e.g. resumed from a checkpoint at max_iters not named iter_N
        raise DominoSegError(f'{cfg.work_dir} has no metrics.json: this run was not evaluated. '
                             'Evaluate its last checkpoint with tools/test.py '
                             f'checkpoint={cfg.work_dir}/iter_{cfg.schedule.max_iters}.pth (or '
                             'the checkpoint you resumed from).')
    with open(path) as f:
        report = json.load(f)
    tables = [per_class_table(report)]
    if not evaluated:
        tables.append(format_table(report, seen_conditions(cfg.data)))
    print_log(f'\n{title} ({path}), IoU and accuracy per class (%):\n' + '\n'.join(tables),
              logger='current')
    return report


def train(cfg: DictConfig) -> dict:
    """Train, evaluating every ``schedule.val_interval`` iterations and at the end; returns
    the final report (also in ``<work_dir>/metrics.json``). With ``resume``, continue the
    run in ``cfg.work_dir`` from its newest checkpoint (or the one ``resume`` names), with the
    config that run recorded; a run interrupted after its last checkpoint only gets its
    final evaluation."""
    resume, finished = {}, False
    if cfg.get('resume'):
        if cfg.get('load_from'):
            raise ConfigError('resume and load_from are both set: resume continues a run '
                              '(weights, optimizer, schedule), load_from starts a new one from '
                              'weights. Keep one of them.')
        checkpoint = resume_checkpoint(cfg.resume, cfg.work_dir)
        check_same_config(cfg, checkpoint)
        resume = dict(resume=True, load_from=checkpoint)
        finished = (checkpoint_iter(checkpoint) or 0) >= cfg.schedule.max_iters
    runner = _runner(cfg, train=True, **resume)
    evaluated = not finished or metrics_iter(cfg.work_dir) != cfg.schedule.max_iters
    if not finished:
        with stop_on_signals():
            try:
                runner.train()
                finish_stopped(runner)
            except TrainingInterrupted as stop:
                _stopped(cfg, stop)
            except Exception:
                stop = stopped_by_error(runner)
                if stop is None:
                    raise
                _stopped(cfg, stop)
    elif evaluated:
        runner.val()  # the final evaluation the interrupted run did not finish
    return _final_report(cfg, 'Final evaluation', evaluated)


def _check_predict_only(cfg: DictConfig) -> None:
    """``evaluate=false`` scores nothing, so it must write something."""
    if not scores_labels(cfg) and not (cfg.get('submission') or cfg.get('save_predictions') or
                                       cfg.get('visualize')):
        raise ConfigError('evaluate=false scores nothing, so this run would produce nothing: add '
                          'submission=cityscapes (labelIds PNGs for the evaluation servers), '
                          'save_predictions=true (trainId PNGs) or visualize=N (grids).')


def _output_folders(cfg: DictConfig) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The PNG folders of this test: name -> (folder, how the names of its files end)."""
    from domino_seg.evaluation.metrics import COLOR_SUFFIX, LABEL_SUFFIX
    from domino_seg.evaluation.submission import SUFFIX
    outputs = {}
    if cfg.get('submission'):
        outputs['submission'] = (SUFFIX,)
    if cfg.get('save_predictions'):
        outputs['predictions'] = (LABEL_SUFFIX,) + \
            ((COLOR_SUFFIX,) if cfg.get('prediction_colors') else ())
    return {name: (osp.join(cfg.work_dir, name), ends) for name, ends in outputs.items()}


def _count(folder: str, end: str) -> int:
    return sum(1 for _ in Path(folder).rglob('*' + end))


def _print_outputs(cfg: DictConfig) -> None:
    """Where the PNGs went, a line per folder with its files of each kind counted on disk,
    e.g. ``predictions: <work_dir>/predictions (10 *_labelTrainIds.png)``."""
    from mmengine.dist import is_main_process
    folders = _output_folders(cfg)
    if folders and is_main_process():
        print('\n'.join(f'{name}: {folder} (' +
                        ', '.join(f'{_count(folder, end)} *{end}' for end in ends) + ')'
                        for name, (folder, ends) in folders.items()), flush=True)


def _prediction_report(cfg: DictConfig, runner) -> dict:
    """What a prediction-only test (``evaluate=false``) wrote: images per condition and the
    label maps in each output folder, counted on disk; printed, and returned."""
    from mmengine.dist import is_main_process
    if not is_main_process():
        return {}
    counts = runner.test_evaluator.metrics[0].counts
    written = {name: {c: _count(osp.join(folder, c), ends[0]) for c in counts}
               for name, (folder, ends) in _output_folders(cfg).items()}
    print('\nPredictions (evaluate=false: nothing scored, no metrics.json):\n' +
          count_table(counts, written), flush=True)
    return dict(num_images=counts, written=written)


def test(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.checkpoint`` on every evaluated condition (``data.eval_conditions``,
    ``data.eval_sets``, ``data.eval_corruptions``); with
    ``visualize=N``, then draw N samples per condition (apis/visualize.py). With
    ``evaluate=false`` predict only (splits without public labels): no label is read, nothing
    is scored, and what was written is reported instead of metrics. With ``swap=[...]``, then
    score it again with each entry's embedding in place of every image's own (apis/swap.py;
    the report's ``swap``). Ends with where the saved predictions and submission files went."""
    from domino_seg.apis import swap, visualize
    cfg.checkpoint = checkpoint_file(cfg.checkpoint)
    if not osp.isfile(cfg.checkpoint):
        raise DominoSegError(f'checkpoint={cfg.checkpoint!r} is not a file; pass the .pth that '
                             'tools/train.py wrote, or its run folder (its work dir).')
    _check_predict_only(cfg)
    visualize.check(cfg)
    swaps = swap.check(cfg) if cfg.get('swap') is not None else None
    runner = _runner(cfg, train=False)
    runner.test()
    if cfg.get('visualize'):
        visualize.write_test_grids(cfg, runner)
    report = _final_report(cfg, 'Test results') if scores_labels(cfg) else \
        _prediction_report(cfg, runner)
    if swaps:
        report = dict(report, swap=swap.evaluate(cfg, runner, swaps, report))
    _print_outputs(cfg)
    return report


def checked(cfg: DictConfig) -> DictConfig:
    """A tool's config after :func:`domino_seg.schema.check` (its command line names the
    override of a wrong key or value), a check that the values the tool requires (``???``,
    e.g. ``checkpoint``) are given, and :func:`check_value_ranges`."""
    from hydra.core.hydra_config import HydraConfig
    hydra_cfg = HydraConfig.get()
    schema.check(cfg, hydra_cfg.overrides.task, hydra_cfg.job.config_name)
    _check_required(cfg, hydra_cfg.job.config_name)
    check_value_ranges(cfg, hydra_cfg.overrides.task)
    return cfg


def _check_required(cfg: DictConfig, config_name: str) -> None:
    """A ConfigError naming the required keys (``???``) left unset (OmegaConf would say
    "Missing mandatory value" once a key is read)."""
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ConfigError(tool_help.missing_values(config_name, sorted(missing)))


def checkpoint_file(path: str, key: str = 'checkpoint') -> str:
    """``path``, or for a run folder its newest checkpoint (``iter_N.pth``, the one
    ``resume=<folder>`` continues from: see :func:`latest_checkpoint`), which it names on the
    console; a folder without one is a CheckpointError listing what the folder holds."""
    if not osp.isdir(path):
        return path
    found = latest_checkpoint(path)
    if found is None:
        entries = sorted(os.listdir(path))
        held = ', '.join(entries[:12]) + (f', ... ({len(entries)} in all)'
                                          if len(entries) > 12 else '')
        raise CheckpointError(
            f'{key}={path!r} is a folder without a checkpoint (iter_N.pth); it holds '
            + (held if entries else 'nothing') + f'. Pass {key}=<run folder>/iter_N.pth, or '
            'the work dir of a run that saved one (training saves a checkpoint every '
            'schedule.val_interval iterations and at the end).')
    print(f'{key}={path}: a run folder; using its newest checkpoint {found}', flush=True)
    return found


def with_checkpoint_model(cfg: DictConfig, overrides) -> DictConfig:
    """tools/test.py: ``cfg`` with the model, finetune, domino and domain groups the run that
    wrote ``cfg.checkpoint`` recorded (the ``config.yaml`` beside it), except the groups the
    command line ``overrides`` set; says which it used. A checkpoint without a config.yaml
    beside it (e.g. an mmseg one) keeps ``cfg`` as composed. A run folder stands for its
    newest checkpoint (:func:`checkpoint_file`)."""
    cfg.checkpoint = checkpoint_file(cfg.checkpoint)
    if not osp.isfile(recorded_config_path(cfg.checkpoint)):
        return cfg
    keep = model_groups_in(command_line_keys(overrides))
    merged = with_recorded_model(cfg, cfg.checkpoint, 'checkpoint', keep)
    domino, domain = merged.domino.scope, merged.domain.mode
    print(f'checkpoint={cfg.checkpoint}: model {merged.model.get("name", "?")}, '
          f'domino={domino}, domain={domain}, as recorded in '
          f'{recorded_config_path(cfg.checkpoint)}'
          + (f' (from the command line: {", ".join(keep)})' if keep else ''), flush=True)
    return merged


def _stopped(cfg: DictConfig, stop: TrainingInterrupted) -> None:
    """Say where a stopped run's work is and how to continue it, then exit 128 + signal."""
    from mmengine.logging import print_log
    args = [a for a in sys.argv[1:] if not a.startswith('resume=')]
    command = shlex.join(['python', sys.argv[0], *args, f'resume={cfg.work_dir}'])
    if stop.checkpoint is None:
        print_log(f'Stopped ({signal.Signals(stop.signum).name}) before the first checkpoint: '
                  'nothing to resume.', logger='current')
    else:
        print_log(f'Stopped at iteration {stop.iteration} of {cfg.schedule.max_iters} '
                  f'({signal.Signals(stop.signum).name}); checkpoint {stop.checkpoint}. '
                  f'Continue with:\n  {command}', logger='current')
    sys.exit(128 + stop.signum)


def _fail(message: str) -> None:
    remove_unstarted_work_dirs()
    print(f'\nerror: {message}', file=sys.stderr, flush=True)
    sys.exit(2)


def _user_message(err: DominoSegError) -> str:
    """The error's own message; an error raised in a DataLoader worker comes back with the
    worker's traceback in its text, which is cut off."""
    text = str(err)
    name = f'{type(err).__module__}.{type(err).__qualname__}: '
    return text.rsplit(name, 1)[-1].strip() if 'Original Traceback' in text else text


def run_cli(job: Callable[[], object]) -> None:
    """Run a tool's job; a DominoSegError becomes one clear paragraph and exit status 2. A
    job that ends before its run started leaves no run folder."""
    try:
        job()
    except DominoSegError as err:
        _fail(_user_message(err))
    except BaseException:  # Ctrl-C, SIGTERM (e.g. while the benchmark is generated), a bug
        remove_unstarted_work_dirs()
        raise


def _option_message(missing: str, options: list) -> str:
    """The error for an unknown option of a config group (``missing``: ``group/option``, as
    Hydra names it): the override that chose it, the closest option and the options."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    group, _, option = missing.rpartition('/')
    options = sorted(o for o in options if not o.startswith('_'))
    line = next((o.input_line for o in OverridesParser.create().parse_overrides(
        [a for a in sys.argv[1:] if '=' in a and not a.startswith('-')])
        if o.key_or_group == group), None)
    where, plus = (f'{line}: ', line.split(group)[0]) if line else ('', '')
    close = difflib.get_close_matches(option, options, n=1)
    return (f'{where}the config group {group} has no option {option!r} (no '
            f'configs/{group}/{option}.yaml).' +
            (f' Did you mean {plus}{group}={close[0]}?' if close else '') +
            f' Options of {group}: {", ".join(options)}.')


def _config_message(err: Exception) -> str:
    """Hydra's message, plus the valid keys for an unknown one (Hydra names the key only),
    or the closest option for an unknown group option."""
    from hydra.errors import MissingConfigException
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        return _option_message(err.missing_cfg_file, list(err.options))
    cause = err.__cause__ or err.__context__
    while cause is not None and not isinstance(cause, DominoSegError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:  # raised by a resolver, e.g. run_dir
        return str(cause)
    cause = err.__cause__
    text = str(err).split('\nConfig search path:')[0].replace('\t_base\n', '')
    parent = getattr(cause, 'parent_node', None)
    key = str(getattr(cause, 'full_key', '') or '')
    if parent is not None and hasattr(parent, 'keys') and key:
        valid = [str(k) for k in parent.keys()]
        renamed = schema.renamed_key(key, valid)
        if renamed:
            return renamed
        close = difflib.get_close_matches(key.rsplit('.', 1)[-1], valid, n=1)
        prefix = key.rsplit('.', 1)[0] + '.' if '.' in key else ''
        text = (text.split('\nTo append')[0] + f' Valid keys here: {", ".join(valid)}' +
                (f'. Did you mean {prefix}{close[0]}?' if close else '.') +
                ' (A new key needs a leading +.)')
    return text.replace('\n', ' ').replace('\t', ' ')


class ClaimWorkDir(Callback):
    """Hydra callback (configs/hydra/default.yaml): claim the work dir of a run, or the dir of
    a sweep, and lock it for this process, before Hydra writes ``.hydra/`` into it, so that a
    refused run leaves the other run's files as they were. Hydra turns a callback's exceptions
    into warnings, so its errors exit here (:func:`run_cli`)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        run_cli(lambda: self._claim(config, 'hydra.run.dir'))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        run_cli(lambda: self._claim(config, 'hydra.sweep.dir'))

    @staticmethod
    def _claim(config: DictConfig, key: str) -> None:
        from omegaconf.errors import OmegaConfBaseException
        sweep = key == 'hydra.sweep.dir'
        try:
            folder = OmegaConf.select(config, key)
            if not sweep and osp.abspath(folder) != osp.abspath(config.work_dir):
                return  # Hydra does not run in the work dir (tools/embed_domains.py)
        except OmegaConfBaseException:
            return  # Hydra resolves it next, and run_hydra reports the error
        launcher, resume = config.get('launcher', 'none'), config.get('resume')
        if launcher != 'none' and not sweep and not resume and \
                OmegaConf.is_interpolation(config, 'work_dir'):
            raise ConfigError(f'launcher={launcher} starts several processes and each would '
                              'name its own new work dir: pass the same work_dir=<folder> to '
                              'all of them, e.g. work_dir=work_dirs/my_run.')
        first = is_first_process(launcher)
        if not first or (not sweep and resumed_folder(resume, folder) == osp.abspath(folder)):
            # Hydra's record (.hydra/) is written by rank 0 when a run starts; a resume (even
            # one refused for another config) keeps it
            with read_write(config.hydra):
                config.hydra.output_subdir = None
        if first:
            claim_work_dir(folder, resume, runs_in_subfolders=sweep)
            lock_work_dir(folder)


def print_mmengine_config(config_name: str, overrides: list) -> None:
    """``--cfg mmengine``: print the mmengine config this tool would run with (the
    ``mmengine_config.py`` a run records), on stdout; nothing runs and nothing is written."""
    import contextlib

    from domino_seg.config import compose
    cfg = compose(overrides, config_name)
    _check_required(cfg, config_name)
    if cfg.get('task') == 'test':
        with contextlib.redirect_stdout(sys.stderr):  # (stdout: the config only)
            cfg = with_checkpoint_model(cfg, overrides)
    print(to_mmengine(cfg).pretty_text, flush=True)


def _mmengine_flag(argv: list) -> Optional[list]:
    """The overrides of a command line with ``--cfg mmengine`` (or ``-c mmengine``), else
    None (Hydra's own ``--cfg job|hydra|all`` go to Hydra)."""
    for i, arg in enumerate(argv[:-1]):
        if arg in ('--cfg', '-c') and argv[i + 1] == 'mmengine':
            return [a for a in argv[:i] + argv[i + 2:] if not a.startswith('-')]
    return None


def _refuse_flags(argv: list, tool: str) -> None:
    """A ConfigError for ``--key value`` flags (:func:`tool_help.flag_error`)."""
    message = tool_help.flag_error(argv, tool)
    if message:
        raise ConfigError(message)


def run_hydra(main: Callable[[], None], config_name: Optional[str] = None) -> None:
    """Run a ``@hydra.main`` entry point so that configuration errors (unknown key or group
    option, malformed override, missing value, a ``--key value`` flag) are one paragraph and
    exit status 2, like a DominoSegError; any other error keeps its full traceback. With
    ``config_name``, the tool also takes ``--cfg mmengine`` (:func:`print_mmengine_config`)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    os.environ['HYDRA_FULL_ERROR'] = '1'  # Hydra raises instead of printing and exiting 1
    tool = config_name or Path(sys.argv[0]).stem  # each tool reads configs/<its name>.yaml
    overrides = _mmengine_flag(sys.argv[1:]) if config_name else None
    try:
        if tool in schema.SCHEMAS:  # argparse would only say "unrecognized arguments"
            run_cli(lambda: _refuse_flags(sys.argv[1:], tool))
        if overrides is not None:
            run_cli(lambda: print_mmengine_config(config_name, overrides))
        else:
            prepare_process()  # (engine/process.py: malloc and gc settings, for speed)
            main()
    except (HydraException, OmegaConfBaseException) as err:
        _fail(_config_message(err))
