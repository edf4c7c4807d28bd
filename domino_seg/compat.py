"""Every fix domino-seg needs for modern torch / numpy / mmcv-lite, each with its reason.

Imported by ``domino_seg/__init__.py`` before anything from mmseg, so that importing the
package is enough. Each fix is idempotent and touches only what it names.
"""
from __future__ import annotations

import ast
import importlib
import importlib.abc
import os
import sys
import types
from contextlib import contextmanager
from contextvars import ContextVar


class MissingCompiledOpError(ModuleNotFoundError):
    """An ``mmcv.ops`` op that needs mmcv's compiled extension, which mmcv-lite lacks.

    A ModuleNotFoundError because that is what mmseg's guarded imports
    (``try: from mmcv.ops import X except ModuleNotFoundError``) expect under mmcv-lite."""


def _missing_op_message(what: str, cause: ImportError) -> str:
    if getattr(cause, 'name', None) == 'mmcv._ext':
        return (f'{what} needs the compiled mmcv extension (mmcv._ext), which mmcv-lite does '
                'not have: install full mmcv instead of mmcv-lite to use it (pip uninstall '
                'mmcv-lite && mim install "mmcv==2.1.0", see mmcv\'s install guide).')
    return f'{what} could not be imported: {cause}'


def _unavailable(name: str, message: str) -> type:
    """A stand-in for a missing op that fails, with ``message``, only when called (a class:
    mmcv's layer builders accept classes only)."""
    def __new__(cls, *args, **kwargs):
        raise MissingCompiledOpError(message, name='mmcv._ext')

    return type(name, (), {'__new__': __new__, '__doc__': message, '__module__': 'mmcv.ops'})


def _ops_exports(ops_dir: str) -> dict:
    """The ops full mmcv's ``mmcv/ops/__init__.py`` imports: name -> (submodule, attribute)."""
    with open(os.path.join(ops_dir, '__init__.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    return {alias.asname or alias.name: (node.module, alias.name)
            for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
            for alias in node.names}


def _registered_names(path: str) -> list:
    """The names a module of ``mmcv.ops`` registers with ``@MODELS.register_module(...)``."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and getattr(deco.func, 'attr', '') == 'register_module':
                given = deco.args[:1] + [k.value for k in deco.keywords if k.arg == 'name']
                names += [a.value for a in given if isinstance(a, ast.Constant)] or [node.name]
    return names


class _MissingOpFinder(importlib.abc.MetaPathFinder):
    """``from mmcv.ops import X`` of a missing op raises :class:`MissingCompiledOpError`.

    Python tries a missing package attribute as a submodule ``mmcv.ops.X`` and lets a
    ModuleNotFoundError for another module name propagate, so the attribute itself can stay
    absent (``hasattr`` False) while the import fails as under plain mmcv-lite."""

    def __init__(self, missing: dict) -> None:
        self.missing = missing

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition('.')
        if package == 'mmcv.ops' and name in self.missing:
            raise MissingCompiledOpError(self.missing[name], name='mmcv._ext')
        return None


def _install_mmcv_ops_stub() -> None:
    """Make ``import mmcv.ops`` work under mmcv-lite, otherwise as upstream.

    mmcv-lite ships the Python files of ``mmcv.ops`` but not the compiled ``mmcv._ext``, and
    ``mmcv/ops/__init__.py`` imports every op eagerly, so it fails as a whole; mmseg 1.2.2
    imports ``mmcv.ops.point_sample`` unguarded, so ``import mmseg.models`` fails. We register
    a package for ``mmcv.ops`` holding every op whose module imports without the extension
    (``point_sample``, ``CrissCrossAttention``, ...), as full mmcv would. An op that needs the
    extension is absent (``hasattr`` False, ``getattr(..., None)`` None, the AttributeError
    says how to get it); importing it raises :class:`MissingCompiledOpError`, which mmseg's
    guarded imports (PSAHead) handle; the layers those modules register (``DCN``, ``DCNv2``,
    ``MMSyncBN``, ...) are registered as stand-ins that raise it when a config builds them.
    The only other stand-in is ``sigmoid_focal_loss``: mmseg's FocalLoss imports it unguarded
    (it calls it for CUDA tensors only).
    """
    try:
        import mmcv.ops  # noqa: F401  full mmcv with compiled ops: nothing to do
        return
    except ModuleNotFoundError as err:
        if err.name != 'mmcv._ext':
            raise
    import mmcv
    from mmengine.registry import MODELS

    ops_dir = os.path.join(os.path.dirname(mmcv.__file__), 'ops')
    stub = types.ModuleType('mmcv.ops', 'mmcv.ops under mmcv-lite (domino-seg): the ops that '
                                        'need no compiled extension.')
    stub.__path__ = [ops_dir]
    sys.modules['mmcv.ops'] = stub
    mmcv.ops = stub

    missing, failed_modules = {}, {}
    for name, (module, attr) in _ops_exports(ops_dir).items():
        try:
            setattr(stub, name, getattr(importlib.import_module(f'mmcv.ops.{module}'), attr))
        except ImportError as err:
            missing[name] = _missing_op_message(f'mmcv.ops.{name}', err)
            failed_modules.setdefault(module, err)
    if 'sigmoid_focal_loss' in missing:
        stub.sigmoid_focal_loss = _unavailable('sigmoid_focal_loss',
                                               missing['sigmoid_focal_loss'])

    def __getattr__(name):
        text = missing.get(name, f"module 'mmcv.ops' has no attribute '{name}'")
        raise AttributeError(text, name=name, obj=stub)

    stub.__getattr__ = __getattr__
    sys.meta_path.insert(0, _MissingOpFinder(missing))

    for module, err in failed_modules.items():
        for name in _registered_names(os.path.join(ops_dir, module + '.py')):
            if name not in MODELS.module_dict:
                MODELS.register_module(name=name, module=_unavailable(name, _missing_op_message(
                    f"The layer type '{name}' (mmcv.ops.{module})", err)))


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
