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
    """Within this block, local checkpoints load with full unpickling.

    torch >= 2.6 loads with ``weights_only=True``, and mmengine 0.10.7 training checkpoints
    hold pickled objects (``HistoryBuffer``, numpy arrays and dtypes) that it refuses. Only
    domino-seg's own checkpoints (``load_from``, ``checkpoint=``, resume) are loaded inside
    this block; everything else, e.g. third-party backbone weights, stays ``weights_only``.
    A ContextVar keeps the scope to this thread and this block.
    """
    token = _TRUSTED_CHECKPOINT.set(True)
    try:
        yield
    finally:
        _TRUSTED_CHECKPOINT.reset(token)


def _install_checkpoint_loader() -> None:
    """Replace mmengine's loader for local files by one that passes ``weights_only``
    explicitly: False inside :func:`trusted_checkpoint_loading`, True elsewhere."""
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return torch.load(filename, map_location=map_location,
                          weights_only=not _TRUSTED_CHECKPOINT.get())


def _silence_expected_warnings() -> None:
    """mmcv-lite warns on every import that it lacks MultiScaleDeformableAttention (a compiled
    op no domino-seg model uses); the stub above already explains missing ops when used."""
    import warnings
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def apply() -> None:
    _silence_expected_warnings()
    _install_mmcv_ops_stub()
    _install_checkpoint_loader()


apply()
