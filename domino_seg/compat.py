"""Every fix domino-seg needs for modern torch / numpy / mmcv-lite, each with its reason.

Imported by ``domino_seg/__init__.py`` before anything from mmseg, so that importing the
package is enough. Each fix is idempotent and touches only what it names.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from contextlib import contextmanager
from contextvars import ContextVar


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
    checkpoints (``load_from``, ``checkpoint=``, resume) are loaded inside this block, and even
    there only those classes are allowed (torch >= 2.5; older torch unpickles fully here);
    everything else, e.g. third-party backbone or CLIP weights, stays plain ``weights_only``.
    A ContextVar keeps the scope to this thread and this block.
    """
    token = _TRUSTED_CHECKPOINT.set(True)
    try:
        yield
    finally:
        _TRUSTED_CHECKPOINT.reset(token)


def _training_state_classes() -> list:
    """What mmengine's training checkpoints pickle besides tensors and containers
    (``HistoryBuffer`` pickles its statistics methods by ``getattr``)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    core = np._core if hasattr(np, '_core') else np.core
    dtypes = [c for c in vars(getattr(np, 'dtypes', np)).values()
              if isinstance(c, type) and issubclass(c, np.dtype)]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
            *dtypes, HistoryBuffer, getattr]


def _install_checkpoint_loader() -> None:
    """Replace mmengine's loader for local files by one that always passes
    ``weights_only=True``, allowing mmengine's training-state classes only inside
    :func:`trusted_checkpoint_loading`."""
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        if not _TRUSTED_CHECKPOINT.get():
            return torch.load(filename, map_location=map_location, weights_only=True)
        if not hasattr(torch.serialization, 'safe_globals'):  # torch < 2.5
            return torch.load(filename, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(_training_state_classes()):
            return torch.load(filename, map_location=map_location, weights_only=True)


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
