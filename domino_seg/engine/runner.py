"""mmengine's Runner with domino-seg's checkpoint rules: own checkpoints load with the training
state they hold, must fit the configured model, and are written atomically."""
from __future__ import annotations

import errno
import os
import os.path as osp
import re
from contextlib import contextmanager

import torch
from domino_seg.compat import trusted_checkpoint_loading  # (before mmseg)
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from domino_seg.errors import CheckpointError
from domino_seg.io import atomic_write_bytes
from domino_seg.models.domino_norm import DominoNorm


def domino_added_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys that Domino conversion adds to a model (the domain encoder and each
    Domino layer's zero-initialised MLP): a checkpoint without them still fits the model."""
    added = {key for key in model.state_dict() if key.startswith('domain_encoder.')}
    for name, module in model.named_modules():
        if isinstance(module, DominoNorm):
            added |= {f'{name}.mlp.{key}' for key in module.mlp.state_dict()}
    return added


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


@RUNNERS.register_module()
class DominoRunner(Runner):
    """mmengine's Runner, except that

    * ``load_from``/``checkpoint=``/resume checkpoints may hold mmengine's training state (see
      ``compat``), must fit the configured model (only Domino's identity-initialised layers
      may be missing, and only when not resuming), and unreadable files are clear errors;
    * checkpoints are written to a temporary file and renamed into place, so a crash or a full
      disk never leaves a truncated checkpoint, and ``last_checkpoint`` is updated only after;
    * ``randomness.deterministic`` only warns for ops without a deterministic implementation
      (several CUDA backward passes of mmseg models), instead of failing.
    """

    _resuming = False

    @contextmanager
    def _loading(self, filename):
        if not osp.isfile(filename):
            raise CheckpointError(f'checkpoint {filename} is not a file; pass a .pth that '
                                  'tools/train.py wrote (see its work dir).')
        try:
            with trusted_checkpoint_loading():
                yield
        except (EOFError, RuntimeError) as err:  # truncated zip, not a torch file
            raise CheckpointError(f'checkpoint {filename} cannot be read ({err}); it is '
                                  'truncated or not a PyTorch checkpoint. Use another one, '
                                  'e.g. the previous iter_*.pth of the run.') from None
        except Exception as err:
            if 'Weights only load failed' not in str(err):
                raise
            raise CheckpointError(
                f'checkpoint {filename} holds pickled objects beyond model weights and '
                "mmengine's training state, which domino-seg does not unpickle (arbitrary "
                'code could run). If you trust the file, re-save only its weights: '
                "torch.save({'state_dict': torch.load(f, weights_only=False)['state_dict']}, "
                'new_file).') from None

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):
        with self._loading(filename):
            checkpoint = super().load_checkpoint(filename, map_location, strict, revise_keys)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        for pattern, replacement in revise_keys:
            state_dict = {re.sub(pattern, replacement, k): v for k, v in state_dict.items()}
        check_fits(model, state_dict, filename,
                   set() if self._resuming else domino_added_keys(model))
        return checkpoint

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

    def _last_checkpoint(self):
        try:
            with open(osp.join(self.work_dir, 'last_checkpoint')) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def set_randomness(self, seed, diff_rank_seed: bool = False,
                       deterministic: bool = False) -> None:
        super().set_randomness(seed, diff_rank_seed, deterministic)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
