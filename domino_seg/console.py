"""What a run prints on the console: a short, readable log; everything else goes to the log
file (``verbose=true`` prints it all). Upstream noise is filtered here, in one place."""
from __future__ import annotations

import logging
import re
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

# messages that only repeat what the log file and config.yaml hold (start of the message)
FILE_ONLY = (
    '\n' + '-' * 60 + '\nSystem environment:',  # mmengine's environment dump
    'Config:\n',  # the mmengine config, in full
    'Hooks will be executed in the following order',
    'paramwise_options -- ',  # one line per parameter (DefaultOptimWrapperConstructor)
    'Exp name: ',  # the work dir, again at every epoch of the train loader
    'Distributed training is not used, all SyncBatchNorm',
    'Loads checkpoint by ',  # mmengine, at every load (DominoRunner logs "Load checkpoint")
    # the random-CLIP warning: the console had it before the run (domain.builder.check_weights)
    'DomainPromptGenerator: arch ',
)
# upstream deprecation notices about code that is not ours, dropped from console and file
UPSTREAM_NOISE = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)
EVAL_PROGRESS = ('Iter(val) [', 'Iter(test) [')
# upstream log records (start of the message) that repeat one of ours, dropped everywhere:
# open_clip's random-weights notice (root logger)
UPSTREAM_RECORDS = ('No pretrained weights loaded for model ',)
# Python warnings of the same kind (message start)
UPSTREAM_WARNINGS = (
    '``build_loss`` would be deprecated soon',
    'Please import `map_coordinates` from the `scipy.ndimage` namespace',  # imagecorruptions
)


def silence_upstream_warnings() -> None:
    """:func:`domino_seg.quiet`: filters for this process, set by the tools, never on import."""
    import warnings
    for message in UPSTREAM_WARNINGS:
        warnings.filterwarnings('ignore', message=re.escape(message))
    root = logging.getLogger()
    if not any(isinstance(f, DropUpstreamRecords) for f in root.filters):
        root.addFilter(DropUpstreamRecords())


@contextmanager
def no_hf_progress_bar() -> Iterator[None]:
    """Inside: transformers shows no progress bar (its "Loading weights" bar at every model
    load), and then as before."""
    from transformers.utils import logging as hf_logging
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def progress_bar_enabled() -> bool:
    """Evaluation progress is a tqdm bar on a terminal, and mmengine's ``Iter(val)`` lines
    anywhere else (a bar in a Slurm log is a wall of carriage returns): never both."""
    return sys.stderr.isatty()


def progress(items: Iterable, desc: str, unit: str, step: int = 10,
             total: Optional[int] = None) -> Iterable:
    """``items`` (``total`` of them, default ``len(items)``) with a tqdm bar on a terminal;
    elsewhere (a redirected log, where a bar is hundreds of carriage returns) with a line
    ``desc: k/N unit (p%)`` every ``step`` %."""
    total = len(items) if total is None else total
    if progress_bar_enabled():
        from tqdm import tqdm
        return tqdm(items, desc=desc, unit=unit, total=total)
    return _progress_lines(items, desc, unit, step, total)


def _progress_lines(items: Iterable, desc: str, unit: str, step: int, total: int) -> Iterator:
    for done, item in enumerate(items, 1):
        yield item
        if done * 100 // step // total > (done - 1) * 100 // step // total:
            print(f'{desc}: {done}/{total} {unit} ({done * 100 // total}%)', file=sys.stderr,
                  flush=True)


def checkpoint_log() -> str:
    """Where mmengine's "Loads checkpoint by ... backend" line goes (``print_log``'s logger):
    the current run's logger, which writes it to the log file (:class:`FileOnly` keeps it off
    the console), or nowhere outside a run (deploy, inference: a bare print otherwise)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    return 'current' if any(isinstance(h, logging.FileHandler) for h in logger.handlers) \
        else 'silent'


class DropUpstreamNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(UPSTREAM_NOISE)


class DropUpstreamRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(UPSTREAM_RECORDS)


class FileOnly(logging.Filter):
    """Keeps the console short: config dumps, per-parameter lines and repeats of what the
    console shows already go to the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith(FILE_ONLY):
            return False
        if msg.startswith(EVAL_PROGRESS) and (progress_bar_enabled() or
                                              not re.search(r'\beta\b', msg)):
            return False  # (without "eta": the metrics, which the condition table shows)
        return True


def quiet(logger: logging.Logger, verbose: bool) -> None:
    """Filter mmengine's logger: upstream deprecations everywhere and, unless ``verbose``,
    the file-only messages on the console (its stream handlers)."""
    if not any(isinstance(f, DropUpstreamNoise) for f in logger.filters):
        logger.addFilter(DropUpstreamNoise())
    for handler in logger.handlers:
        if type(handler) is logging.StreamHandler and not verbose and \
                not any(isinstance(f, FileOnly) for f in handler.filters):
            handler.addFilter(FileOnly())


def device_line(world_size: int) -> str:
    """The device this process runs on, by name (mmengine reports "GPU number" even on CPU)."""
    import torch
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        device = f'cuda:{index} ({torch.cuda.get_device_name(index)})'
    else:
        device = f'cpu ({torch.get_num_threads()} threads)'
    return f'device: {device}; processes: {world_size}'


def _sweep_size(config: DictConfig) -> int | None:
    """The number of jobs a basic Hydra sweep launches (command-line and
    ``hydra.sweeper.params`` sweeps), or None when it cannot be counted here."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    lines = list(config.hydra.overrides.task)
    params = config.hydra.sweeper.get('params') or {}
    lines += [f'{key}={value}' for key, value in params.items()]
    try:
        total = 1
        for override in OverridesParser.create().parse_overrides(lines):
            if override.is_sweep_override():
                total *= len(list(override.sweep_string_iterator()))
        return total
    except Exception:  # e.g. a glob over group options: Hydra expands it later
        return None


class SweepProgress(Callback):
    """Hydra callback (configs/hydra/default.yaml): in a sweep, each job starts with
    ``job k/N: <its overrides>`` (Hydra's own launcher lines are off)."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.sweeping = False

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.sweeping, self.total = True, _sweep_size(config)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if not self.sweeping:
            return
        of = f'/{self.total}' if self.total else ''
        print(f'\njob {config.hydra.job.num + 1}{of}: '
              f'{" ".join(config.hydra.overrides.task) or "-"}', flush=True)
