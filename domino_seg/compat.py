"""Every fix domino-seg needs for modern torch / numpy / mmcv-lite, each with its reason.

Imported by ``domino_seg/__init__.py`` before anything from mmseg, so that importing the
package is enough. Each fix is idempotent and touches only what it names. One reaches beyond
domino-seg on purpose: mmengine's loader for local checkpoint files is replaced for the whole
process, always ``weights_only=True``, even when ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set
(see :func:`_install_checkpoint_loader`).
"""
from __future__ import annotations

import importlib.util
import os
import pickle
import re
import sys
import types
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Optional


def _install_mmcv_ops_stub() -> None:
    """Make ``import mmcv.ops`` work under mmcv-lite.

    mmcv-lite ships the Python files of ``mmcv.ops`` but not the compiled ``mmcv._ext``, and
    ``mmcv/ops/__init__.py`` imports the extension eagerly. mmseg 1.2.2 imports
    ``mmcv.ops.point_sample`` (pure torch) and ``sigmoid_focal_loss`` unguarded, so
    ``import mmseg.models`` fails. We register a package for ``mmcv.ops`` that exposes the pure
    torch ``point_sample`` module; every other op raises ImportError, which mmseg's guarded
    imports (CCHead, PSAHead) already handle by falling back to ``None``.
    """
    try:
        import mmcv.ops  # noqa: F401  full mmcv with compiled ops: nothing to do
        return
    except ImportError:
        pass
    import mmcv

    ops_dir = os.path.join(os.path.dirname(mmcv.__file__), 'ops')
    stub = types.ModuleType('mmcv.ops')
    stub.__path__ = [ops_dir]
    stub.__doc__ = 'domino-seg stub: mmcv-lite has no compiled ops; only point_sample works.'
    sys.modules['mmcv.ops'] = stub
    mmcv.ops = stub

    spec = importlib.util.spec_from_file_location('mmcv.ops.point_sample',
                                                  os.path.join(ops_dir, 'point_sample.py'))
    point_sample_mod = importlib.util.module_from_spec(spec)
    sys.modules['mmcv.ops.point_sample'] = point_sample_mod
    spec.loader.exec_module(point_sample_mod)
    stub.point_sample = point_sample_mod.point_sample
    stub.bilinear_grid_sample = point_sample_mod.bilinear_grid_sample

    def sigmoid_focal_loss(*args, **kwargs):
        raise RuntimeError(
            'mmcv.ops.sigmoid_focal_loss needs the compiled mmcv extension, which mmcv-lite '
            'does not have. Install full mmcv (see the mmcv install guide) to use FocalLoss on '
            'CUDA.')

    stub.sigmoid_focal_loss = sigmoid_focal_loss

    def __getattr__(name):
        # mmseg guards optional ops with `except ModuleNotFoundError`; dunder lookups (inspect,
        # hasattr) must still see a plain AttributeError.
        if name.startswith('__'):
            raise AttributeError(name)
        raise ModuleNotFoundError(f'mmcv.ops.{name} needs the compiled mmcv extension '
                                  '(mmcv-lite is installed); install full mmcv to use it.')

    stub.__getattr__ = __getattr__


_TRUSTED_CHECKPOINT = ContextVar('domino_seg_trusted_checkpoint', default=False)


@contextmanager
def trusted_checkpoint_loading():
    """Within this block, local checkpoints may hold mmengine's training state.

    mmengine 0.10.7 training checkpoints pickle objects besides tensors (``HistoryBuffer``,
    numpy arrays, dtypes and scalars) that ``weights_only=True`` refuses. Only domino-seg's own
    checkpoints (``load_from``, ``checkpoint=``, resume, ``compare_checkpoint``) are loaded
    inside this block, and even there only those classes are allowed, and ``getattr`` only for
    HistoryBuffer's statistics methods; everything else, e.g. third-party backbone or CLIP
    weights, stays plain ``weights_only``. A ContextVar keeps the scope to this thread and this
    block.
    """
    token = _TRUSTED_CHECKPOINT.set(True)
    try:
        yield
    finally:
        _TRUSTED_CHECKPOINT.reset(token)


# what HistoryBuffer.__getstate__ pickles: its default statistics methods (_set_default_statistics)
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_statistic(obj, name):
    """Stands in for ``builtins.getattr`` while unpickling training state.

    Pickle protocol 2 (torch.save's) stores ``HistoryBuffer.mean`` as ``getattr(HistoryBuffer,
    'mean')``. The real getattr would hand a crafted file everything reachable from an allowed
    class (``HistoryBuffer.__init__.__globals__``, ``getattr.__self__.eval``), enough to
    overwrite module globals and run code; this one returns those four methods and nothing else.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"getattr({obj!r}, {name!r}); only HistoryBuffer's statistics "
                                 f'methods ({", ".join(_HISTORY_BUFFER_STATISTICS)}) may be '
                                 'looked up')


def _training_state_globals() -> list:
    """What mmengine's training checkpoints pickle besides tensors and containers, for
    ``torch.serialization.safe_globals`` (which matches a global by the ``module.qualname``
    the pickle names: the restricted getattr is registered as ``builtins.getattr``)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    core = np._core if hasattr(np, '_core') else np.core
    dtypes = [c for c in vars(getattr(np, 'dtypes', np)).values()
              if isinstance(c, type) and issubclass(c, np.dtype)]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
            *dtypes, HistoryBuffer, (_history_buffer_statistic, 'builtins.getattr')]


_ZIP_MAGIC = b'PK\x03\x04'  # torch.save's format since torch 1.6
_LEGACY_MAGIC = b'\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19'  # older torch.save: its magic number


def _unreadable(filename: str, err: Exception) -> Optional[str]:
    """Why ``torch.load(weights_only=True)`` failed on ``filename``, with the fix, as a
    CheckpointError message; None for errors that are not about the file."""
    try:
        with open(filename, 'rb') as f:
            head = f.read(4096)
    except OSError as error:
        return f'checkpoint {filename} cannot be read: {error.strerror or error}.'
    if not head:
        return (f'checkpoint {filename} cannot be read: the file is empty. Copy it again or use '
                'another one, e.g. the previous iter_N.pth of the run.')
    if not head.startswith((_ZIP_MAGIC, _LEGACY_MAGIC)):
        kind = ('a plain pickle (pickle.dump), not torch.save' if head[:1] == b'\x80' else
                'text' if _is_text(head) else 'some other binary format')
        return (f'checkpoint {filename} is not a PyTorch checkpoint: torch.save writes a zip '
                f'archive, and this file is {kind}. Pass a .pth written by tools/train.py (or '
                'weights saved with torch.save).')
    text = str(err)
    if 'Weights only load failed' in text or isinstance(err, pickle.UnpicklingError):
        refused = _refused_globals(filename)
        reason = re.search(r'WeightsUnpickler error:\s*(.*?)(?:\n\s*\n|$)', text, re.S)
        what = ', '.join(refused) or (reason.group(1).strip() if reason else text.split('\n')[0])
        hint = (" domino-seg's own training checkpoints hold such objects (mmengine's training "
                'state): they load through load_from=, checkpoint= or resume, not as backbone '
                'weights.' if 'mmengine.logging.history_buffer.HistoryBuffer' in refused else '')
        return (f'checkpoint {filename} holds pickled objects that domino-seg does not unpickle '
                f'({what}): loading them could run code.{hint} Only if you trust where the file '
                'comes from, extract its tensors in a separate Python session and save them '
                "alone, e.g. torch.save({'state_dict': torch.load(path, weights_only=False)"
                "['state_dict']}, 'weights.pth'), and pass that file.")
    if isinstance(err, EOFError) or 'PytorchStreamReader' in text or 'inline_container' in text:
        # truncated, or a zip archive torch did not write
        reason = (text.strip().splitlines()[0].split('. This is an internal')[0]
                  if text.strip() else type(err).__name__)
        return (f'checkpoint {filename} cannot be read ({reason}): it is truncated or not a '
                'PyTorch checkpoint. Copy it again or use another one, e.g. the previous '
                'iter_N.pth of the run.')
    return None


def _refused_globals(filename: str) -> list:
    """The globals of ``filename`` that the current scope does not allow (read without
    unpickling); empty when they cannot be listed (older torch format)."""
    import torch
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:
        return []
    allowed = {entry[1] if isinstance(entry, tuple) else
               f'{entry.__module__}.{entry.__qualname__}' for entry in _training_state_globals()
               } if _TRUSTED_CHECKPOINT.get() else set()
    return sorted(name for name in found if name not in allowed)


def _is_text(head: bytes) -> bool:
    try:
        head.decode('utf-8')
    except UnicodeDecodeError as err:
        return err.start > len(head) - 4  # only a character cut at the end
    return True


def _install_checkpoint_loader() -> None:
    """Replace mmengine's loader for local files by one that always passes
    ``weights_only=True``, allowing mmengine's training-state classes only inside
    :func:`trusted_checkpoint_loading`, and that turns an unreadable file into a
    CheckpointError saying why.

    ``weights_only=True`` is passed explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (which
    only changes ``torch.load`` calls that leave ``weights_only`` unset) does not turn it off:
    after ``import domino_seg`` every local-file ``load_checkpoint`` of mmengine in the process
    loads this way. Deliberately: the variable is meant for trusted old files, but set in an
    environment it would let any crafted checkpoint given to a tool run code.
    """
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    from domino_seg.errors import CheckpointError

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        try:
            if not _TRUSTED_CHECKPOINT.get():
                return torch.load(filename, map_location=map_location, weights_only=True)
            with torch.serialization.safe_globals(_training_state_globals()):
                return torch.load(filename, map_location=map_location, weights_only=True)
        except Exception as err:
            message = _unreadable(filename, err)
            if message is None:
                raise
            raise CheckpointError(message) from None


def _allow_cpu_torchrun() -> None:
    """mmengine 0.10.7's ``launcher='pytorch'`` calls ``torch.cuda.set_device`` even without
    a GPU, so torchrun on CPU (gloo) fails; without CUDA, just join the process group."""
    import torch
    import torch.distributed as torch_dist
    from mmengine.dist import utils

    init_on_gpu = utils._init_dist_pytorch
    if getattr(init_on_gpu, 'domino_seg', False):
        return

    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return init_on_gpu(backend, init_backend=init_backend, **kwargs)
        torch_dist.init_process_group(backend='gloo', **kwargs)

    init_dist_pytorch.domino_seg = True
    utils._init_dist_pytorch = init_dist_pytorch


def _silence_expected_warnings() -> None:
    """mmcv-lite warns on every import that it lacks MultiScaleDeformableAttention (a compiled
    op no domino-seg model uses); the stub above already explains missing ops when used."""
    import warnings
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def apply() -> None:
    _silence_expected_warnings()
    _install_mmcv_ops_stub()
    _install_checkpoint_loader()
    _allow_cpu_torchrun()


apply()
