"""mmengine's Runner with domino-seg's checkpoint rules: own checkpoints load with the training
state they hold, must fit the configured model, and are written atomically."""
from __future__ import annotations

import errno
import os
import os.path as osp
import re

import torch
from mmengine.dist import is_distributed, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader, Runner, load_state_dict
from mmseg.registry import RUNNERS

from domino_seg import console
from domino_seg.compat import trusted_checkpoint_loading
from domino_seg.errors import CheckpointError
from domino_seg.io import atomic_write_bytes


def keys_may_miss(model: torch.nn.Module) -> set[str]:
    """The state-dict keys a checkpoint of ``model`` may lack, as the model declares them
    (``checkpoint_keys_may_miss()``, e.g. the identity-initialised layers Domino adds); none
    for a model that declares nothing."""
    declared = getattr(model, 'checkpoint_keys_may_miss', None)
    return set(declared()) if callable(declared) else set()


def check_fits(model: torch.nn.Module, state_dict: dict, filename: str,
               allow_missing: set[str] = frozenset()) -> None:
    """Raise a CheckpointError when ``state_dict`` does not fit ``model``: a tensor of another
    shape (e.g. another number of classes), keys the model lacks (another architecture), or
    model keys it lacks, except ``allow_missing``."""
    own = model.state_dict()
    shapes = [f'{key}: checkpoint {tuple(value.shape)}, model {tuple(own[key].shape)}'
              for key, value in state_dict.items()
              if key in own and hasattr(value, 'shape') and value.shape != own[key].shape]
    unexpected = sorted(set(state_dict) - set(own))
    missing = sorted(set(own) - set(state_dict) - set(allow_missing))
    problems = [f'{label} ({len(keys)}): {", ".join(keys[:5])}{", ..." if len(keys) > 5 else ""}'
                for label, keys in (('shape mismatch', shapes), ('keys the model lacks',
                                    unexpected), ('model keys missing', missing)) if keys]
    if problems:
        raise CheckpointError(
            f'checkpoint {filename} does not fit the configured model: ' + '; '.join(problems) +
            '. It was trained with another model or number of classes: use the same model/, '
            'data/ and domino/ options (and overrides) as the run that wrote it (its work dir '
            'holds config.yaml), or another checkpoint.')


def check_model_fits(model: torch.nn.Module, state_dict: dict, filename: str,
                     resuming: bool = False) -> None:
    """:func:`check_fits` with what the model declares: how it renames a checkpoint's keys
    (``checkpoint_state_dict``: a baseline's norms into Domino layers) and, unless resuming,
    the keys a checkpoint may lack (``checkpoint_keys_may_miss``)."""
    rename = getattr(model, 'checkpoint_state_dict', None)
    check_fits(model, rename(state_dict) if callable(rename) else state_dict, filename,
               set() if resuming else keys_may_miss(model))


def read_checkpoint(filename: str, map_location='cpu') -> dict:
    """One of domino-seg's own checkpoints (``load_from``, ``checkpoint=``, resume,
    ``compare_checkpoint``), read with mmengine's training state allowed (``compat``, whose
    loader also explains unreadable files), checked to hold a state dict, and without
    ``meta['config']``: mmengine's ``Runner.resume`` would execute it (``Config.fromstring``)."""
    if not osp.isfile(filename):
        raise CheckpointError(f'checkpoint {filename} is not a file; pass a .pth that '
                              'tools/train.py wrote (see its work dir).')
    with trusted_checkpoint_loading():
        checkpoint = CheckpointLoader.load_checkpoint(filename, map_location=map_location,
                                                      logger=console.checkpoint_log())
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not (isinstance(state_dict, dict) and isinstance(meta, (dict, type(None)))
            and all(isinstance(v, torch.Tensor) for v in state_dict.values())):
        raise CheckpointError(
            f'checkpoint {filename} holds no model weights (a dict of tensors, alone or under '
            "'state_dict', and an optional 'meta' dict); pass a .pth that tools/train.py wrote.")
    if meta is not None:
        meta.pop('config', None)
    return checkpoint


def init_cpu_process_group(dist_cfg: dict) -> None:
    """Join torchrun's process group without CUDA (``launcher=pytorch`` on CPU): mmengine
    0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` first, which fails there. With the
    backend ``dist_cfg`` names (configs/runtime: ``${dist_backend:}``, gloo on CPU), or gloo,
    said in a log line, when it names none."""
    import datetime

    from mmengine.logging import print_log
    kwargs = dict(dist_cfg)
    if not kwargs.get('backend'):
        kwargs['backend'] = 'gloo'
        print_log('launcher=pytorch without CUDA and no env_cfg.dist_cfg.backend: using gloo',
                  logger='current')
    if isinstance(kwargs.get('timeout'), (int, float)):  # seconds, as mmengine's init_dist
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch.distributed.init_process_group(**kwargs)


def load_weights(model: torch.nn.Module, checkpoint: dict, strict: bool = False,
                 revise_keys=((r'^module\.', ''),)) -> None:
    """Load ``checkpoint``'s state dict (or ``checkpoint``, a state dict) into ``model``
    with mmengine's ``load_state_dict`` (which prints the keys that do not match, or with
    ``strict`` raises a RuntimeError naming them), its keys revised by ``revise_keys``
    (``(pattern, replacement)``: a DDP model's ``module.`` prefix off by default)."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    for pattern, replacement in revise_keys:
        if any(re.search(pattern, key) for key in state_dict):  # (else as saved, with torch's
            state_dict = {re.sub(pattern, replacement, key): value  # version metadata)
                          for key, value in state_dict.items()}
    load_state_dict(model, state_dict, strict)


@RUNNERS.register_module()
class DominoRunner(Runner):
    """mmengine's Runner, except that

    * ``load_from``/``checkpoint=``/resume checkpoints may hold mmengine's training state (see
      ``compat``), must fit the configured model (only the keys the model declares in
      ``checkpoint_keys_may_miss()``, Domino's identity-initialised layers, may be missing,
      and only when not resuming), are read by :func:`read_checkpoint` (no
      ``meta['config']`` for resume to execute) and, to resume, must hold training state;
    * checkpoints are written to a temporary file and renamed into place, so a crash or a full
      disk never leaves a truncated checkpoint, and ``last_checkpoint`` is updated only after;
    * ``launcher='pytorch'`` runs on CPU (:func:`init_cpu_process_group`);
    * ``randomness.deterministic`` only warns for ops without a deterministic implementation
      (several CUDA backward passes of mmseg models), instead of failing;
    * the console is short (``console.quiet``; the config key ``verbose`` prints everything)
      and names the device; ``experiment_name`` is the work dir, already unique per run
      (mmengine would append a second timestamp).
    """

    _resuming = False
    _said_checkpoint_size = False

    @classmethod
    def from_cfg(cls, cfg):
        """mmengine's, after importing ``custom_imports`` (``Config.fromfile`` does that for
        a file; a config built in code, as ``to_mmengine``'s, needs it here), e.g. the module
        of a metric that ``evaluator.imports`` names."""
        from mmengine.utils import import_modules_from_strings
        if cfg.get('custom_imports'):
            import_modules_from_strings(**cfg['custom_imports'])
        return super().from_cfg(cfg)

    @property
    def experiment_name(self) -> str:
        return self.work_dir

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        console.quiet(logger, verbose=bool(self.cfg.get('verbose', False)))
        return logger

    def _log_env(self, env_cfg: dict) -> None:
        """(mmengine 0.10.7's private step, pinned: the device line follows its environment
        dump, as the console shows it; no public hook runs there.)"""
        super()._log_env(env_cfg)
        self.logger.info(f'{console.device_line(self.world_size)}; full log: '
                         f'{osp.join(self.log_dir, self.timestamp)}.log')

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):
        """mmengine's ``Runner.load_checkpoint``, with domino-seg's checks between reading the
        file and using it (hooks and the model see only a checked checkpoint)."""
        checkpoint = read_checkpoint(filename, map_location)
        if self._resuming:
            meta = checkpoint.get('meta') or {}
            if not (all(isinstance(meta.get(key), int) for key in ('epoch', 'iter'))
                    and isinstance(checkpoint.get('message_hub'), dict)):
                raise CheckpointError(
                    f'checkpoint {filename} holds no training state to resume (meta.iter, '
                    'message_hub): tools/train.py did not write it. To start a new run from '
                    f'its weights, pass load_from={filename} instead of resume.')
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        for pattern, replacement in revise_keys:
            state_dict = {re.sub(pattern, replacement, k): v for k, v in state_dict.items()}
        check_model_fits(model, state_dict, filename, self._resuming)
        if self._resuming and 'optimizer' not in checkpoint:
            raise CheckpointError(
                f'checkpoint {filename} holds the weights only (schedule.save_optimizer=false), '
                'so the run cannot continue exactly. Start a new run from its weights with '
                f'load_from={filename} instead of resume.')
        load_weights(model, checkpoint, strict, revise_keys)
        self._has_loaded = True  # mmengine's flag (pinned 0.10.7): load_or_resume loads once
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def wrap_model(self, model_wrapper_cfg, model):
        """mmengine's, with ``sync_bn='torch'`` done by timm's converter. mmengine's (like
        torch's) turns timm's BatchNorm + activation layers (EfficientNet's ``BatchNormAct2d``)
        into plain SyncBatchNorms that keep the activation as an unused child: the network would
        silently lose its activations. timm's makes them ``SyncBatchNormAct`` and converts
        every other BatchNorm as torch's does."""
        if not (self.distributed and self.cfg.get('sync_bn') == 'torch'):
            return super().wrap_model(model_wrapper_cfg, model)
        from timm.layers import convert_sync_batchnorm
        sync_bn = self.cfg.pop('sync_bn')  # (converted here, not again by mmengine)
        try:
            return super().wrap_model(model_wrapper_cfg, convert_sync_batchnorm(model))
        finally:
            self.cfg['sync_bn'] = sync_bn

    def resume(self, filename, *args, **kwargs):
        self._resuming = True
        try:
            return super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = False

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        """Write ``filename`` atomically (rank 0 only, as mmengine does)."""
        if not is_main_process():
            return
        final = osp.join(out_dir, filename)
        tmp = osp.join(out_dir, f'.{filename}.{os.getpid()}.tmp')
        try:
            super().save_checkpoint(out_dir, osp.basename(tmp), *args, **kwargs)
            os.replace(tmp, final)
        except OSError as err:
            if osp.exists(tmp):
                os.remove(tmp)
            reason = 'the disk is full' if err.errno == errno.ENOSPC else err.strerror or err
            raise CheckpointError(
                f'could not write checkpoint {final}: {reason}. Nothing was half-written; the '
                f'last complete checkpoint is {self._last_checkpoint() or "none yet"}. Free '
                'space (or set paths.work_dirs to another disk) and continue with '
                'resume=true.') from None
        # the CheckpointHook rewrites it with the same path right after
        atomic_write_bytes(osp.join(self.work_dir, 'last_checkpoint'), final.encode())
        if not self._said_checkpoint_size:
            self._said_checkpoint_size = True
            full = kwargs.get('save_optimizer', True)
            self.logger.info(
                f'{filename}: {osp.getsize(final) / 2 ** 20:.1f} MB, ' +
                ('weights and optimizer state (to resume); schedule.save_optimizer=false keeps '
                 'the weights only' if full else 'weights only (schedule.save_optimizer=false)'))

    def _last_checkpoint(self):
        """The path ``<work_dir>/last_checkpoint`` names, or None. (mmengine's
        ``find_latest_checkpoint`` reads the same file, but logs "Did not find last_checkpoint
        to be resumed." when there is none yet, which would be wrong in the message above.)"""
        try:
            with open(osp.join(self.work_dir, 'last_checkpoint')) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def dump_config(self) -> None:
        """Nothing here: mmengine would write ``<timestamp>.py`` into the work dir while the
        Runner is built, before the checkpoint is known to fit (a refused resume would add a
        file to the run it refused); MetricsJsonHook writes ``mmengine_config.py`` beside
        ``config.yaml`` once the run starts."""

    def setup_env(self, env_cfg: dict) -> None:
        if self.launcher == 'pytorch' and not torch.cuda.is_available() and \
                not is_distributed():
            init_cpu_process_group(env_cfg.get('dist_cfg') or {})
        super().setup_env(env_cfg)  # (it skips init_dist when the group exists)

    def set_randomness(self, seed, diff_rank_seed: bool = False,
                       deterministic: bool = False) -> None:
        super().set_randomness(seed, diff_rank_seed, deterministic)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
