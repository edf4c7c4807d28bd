"""What importing domino_seg changes outside domino-seg, each change with its reason.

``domino_seg/__init__.py`` calls :func:`apply` before importing anything from mmseg. This table
is the complete list; each fix is idempotent and touches only what it names.

Change on ``import domino_seg``         Why it must be made on import
--------------------------------------  --------------------------------------------------------
``mmcv.ops`` is a module holding the    mmcv-lite lacks the compiled ``mmcv._ext`` and mmseg
ops that need no compiled code          1.2.2 imports ``mmcv.ops.point_sample`` unguarded:
(:func:`_install_mmcv_ops_stub`)        without it ``import mmseg.models`` fails. Absent ops
                                        stay absent (attribute, import, registry); importing
                                        one raises :class:`MissingCompiledOpError`, as mmseg's
                                        guards expect.
mmcv's "Fail to import                  It would repeat, on every import, what the stub says
``MultiScaleDeformableAttention``"      when the op is used; full mmcv does not warn there
warning is not shown                    either (an ImportWarning, hidden by default). A scoped
                                        filter: no warning filter outlives the import.
mmengine's loader of local checkpoint   domino-seg's loads and mmseg's (a backbone's
files (``CheckpointLoader`` scheme      ``init_cfg``) reach torch.load through it: it always
``''``) always passes                   passes ``weights_only=True``, even when
``weights_only=True``                   ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set, so a
(:func:`_install_checkpoint_loader`)    crafted file runs no code. An unreadable file is a
                                        CheckpointError saying why that is also what torch.load
                                        raised (:func:`checkpoint_error_like`).
domino-seg's classes in mmseg's         Configs name them by type (DomainAwareEncoderDecoder,
registries (new names only) and         datasets, transforms, metrics, hooks); the YAML
OmegaConf resolvers: ``dist_backend``,  configs use the resolvers. Nothing upstream is
``run_dir``, ``run_stamp``,             replaced.
``tool_help``, ``seen_conditions``,
``config_dir``
--------------------------------------  --------------------------------------------------------

Not on import: warning and log filters are set by the tools (:func:`domino_seg.quiet`);
torchrun on CPU is handled by ``DominoRunner.setup_env`` for domino-seg's runs only (mmengine's
``init_dist`` is untouched); imagecorruptions is fixed when the first corruption needs it
(:func:`import_imagecorruptions`).
"""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.abc
import os
import pickle
import re
import sys
import types
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Optional


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


# the modules of mmcv.ops that did not import (the stub): module -> its ImportError
MISSING_LAYER_MODULES: dict = {}


# mmcv's warning when its transformer module cannot import this compiled op (see the table)
_MSDA_WARNING = 'Fail to import ``MultiScaleDeformableAttention``'


def _install_mmcv_ops_stub() -> None:
    """Make ``import mmcv.ops`` work under mmcv-lite, otherwise as upstream.

    mmcv-lite ships the Python files of ``mmcv.ops`` but not the compiled ``mmcv._ext``, and
    ``mmcv/ops/__init__.py`` imports every op eagerly, so it fails as a whole; mmseg 1.2.2
    imports ``mmcv.ops.point_sample`` unguarded, so ``import mmseg.models`` fails. We register
    a package for ``mmcv.ops`` holding every op whose module imports without the extension
    (``point_sample``, ``CrissCrossAttention``, ...), as full mmcv would. An op that needs the
    extension is absent (``hasattr`` False, ``getattr(..., None)`` None, the AttributeError
    says how to get it); importing it raises :class:`MissingCompiledOpError`, which mmseg's
    guarded imports (PSAHead) handle. The layers those modules would register (``DCN``,
    ``MMSyncBN``, ...) are absent from the registry, as under mmcv-lite; domino-seg's model
    configs are checked for them (:func:`check_compiled_layers`). The only stand-in is
    ``sigmoid_focal_loss``: mmseg's FocalLoss imports it unguarded (it calls it for CUDA
    tensors only), and calling it raises the error.
    """
    import warnings
    try:
        import mmcv.ops  # noqa: F401  full mmcv with compiled ops: nothing to do
        return
    except ModuleNotFoundError as err:
        if err.name != 'mmcv._ext':
            raise
    import mmcv

    ops_dir = os.path.join(os.path.dirname(mmcv.__file__), 'ops')
    stub = types.ModuleType('mmcv.ops', 'mmcv.ops under mmcv-lite (domino-seg): the ops that '
                                        'need no compiled extension.')
    stub.__path__ = [ops_dir]
    sys.modules['mmcv.ops'] = stub
    mmcv.ops = stub

    missing = {}
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=re.escape(_MSDA_WARNING))
        importlib.import_module('mmcv.cnn.bricks.transformer')
        for name, (module, attr) in _ops_exports(ops_dir).items():
            try:
                setattr(stub, name, getattr(importlib.import_module(f'mmcv.ops.{module}'), attr))
            except ImportError as err:
                missing[name] = _missing_op_message(f'mmcv.ops.{name}', err)
                MISSING_LAYER_MODULES.setdefault(module, err)
    if 'sigmoid_focal_loss' in missing:
        stub.sigmoid_focal_loss = _unavailable('sigmoid_focal_loss',
                                               missing['sigmoid_focal_loss'])

    def __getattr__(name):
        text = missing.get(name, f"module 'mmcv.ops' has no attribute '{name}'")
        raise AttributeError(text, name=name, obj=stub)

    stub.__getattr__ = __getattr__
    sys.meta_path.insert(0, _MissingOpFinder(missing))


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


@functools.lru_cache(maxsize=None)
def missing_layers() -> dict:
    """The layer types the modules of ``mmcv.ops`` that need the compiled extension would
    register (``DCN``, ``DCNv2``, ``MMSyncBN``, ``SAC``, ...) -> why each is absent and the
    fix; empty with full mmcv. (Read once: after :func:`apply`.)"""
    if not MISSING_LAYER_MODULES:
        return {}
    import mmcv
    ops_dir = os.path.join(os.path.dirname(mmcv.__file__), 'ops')
    return {name: _missing_op_message(f"The layer type '{name}' (mmcv.ops.{module})", err)
            for module, err in MISSING_LAYER_MODULES.items()
            for name in _registered_names(os.path.join(ops_dir, module + '.py'))}


def check_compiled_layers(cfg, key: str) -> None:
    """A ConfigError when the model dict ``cfg`` (config key ``key``) names a layer type
    that needs the compiled mmcv extension (:func:`missing_layers`): mmengine would only say
    the type is not in the registry (or "Cannot find None")."""
    from domino_seg.errors import ConfigError
    missing = missing_layers()
    found = _types_in(cfg) & set(missing)
    if found:
        raise ConfigError(f'{key}: {missing[sorted(found)[0]]}')


def _types_in(cfg) -> set:
    """Every ``type`` value in a nested dict/list config."""
    if isinstance(cfg, dict):
        own = {cfg['type']} if isinstance(cfg.get('type'), str) else set()
        return own.union(*(_types_in(v) for v in cfg.values()))
    if isinstance(cfg, (list, tuple)):
        return set().union(*(_types_in(v) for v in cfg))
    return set()


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
    # the module the pickles name (numpy._core since numpy 2, public np.core before; no
    # public alias: np.core is a deprecated shim there)
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
    CheckpointError saying why (one that is also what torch.load raised:
    :func:`checkpoint_error_like`).

    ``weights_only=True`` is passed explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (which
    only changes ``torch.load`` calls that leave ``weights_only`` unset) does not turn it off:
    after ``import domino_seg`` every local-file ``load_checkpoint`` of mmengine in the process
    loads this way. Deliberately: the variable is meant for trusted old files, but set in an
    environment it would let any crafted checkpoint given to a tool run code.
    """
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

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
            raise checkpoint_error_like(type(err))(message) from None


def checkpoint_error_like(raised: type) -> type:
    """The CheckpointError class that is also a ``raised`` (RuntimeError for a truncated
    file, UnpicklingError, EOFError, KeyError, ...): code that called mmengine's
    ``load_checkpoint`` before ``import domino_seg`` keeps catching what it caught. One class
    per type, a module attribute (``CheckpointRuntimeError``, ...) so that it pickles."""
    from domino_seg.errors import CheckpointError
    if issubclass(CheckpointError, raised):
        return CheckpointError
    name = f'Checkpoint{raised.__name__}'
    known = globals().get(name)
    if isinstance(known, type) and raised in known.__bases__:
        return known
    try:  # (BaseException's __str__: KeyError's would quote the message)
        cls = type(name, (CheckpointError, raised),
                   {'__module__': __name__, '__str__': BaseException.__str__})
    except TypeError:  # a type that cannot be a base (layout): the message still counts
        return CheckpointError
    globals()[name] = cls
    return cls


def import_imagecorruptions():
    """The ``imagecorruptions`` package (1.1.2, its latest), made to run on today's stack; not
    applied at import (scikit-image loads slowly), but by the first corruption condition:

    * ``pkg_resources`` (gone from recent setuptools) only gives it ``resource_filename``:
      a stand-in module with that function is installed when the real one is missing;
    * scikit-image >= 0.21 removed ``gaussian(multichannel=True)``: the module's ``gaussian``
      becomes one that maps it to ``channel_axis=-1`` (glass_blur, gaussian_blur);
    * NumPy 2 removed ``np.float_``: the module sees numpy through a view that adds it (fog);
    * scikit-image's ``random_noise`` draws from its own unseeded generator (impulse_noise):
      the module's view of ``skimage.util`` seeds it from numpy's global state, as every other
      corruption draws, so a seeded corruption repeats exactly.
    """
    import sys
    import types
    import warnings
    try:
        with warnings.catch_warnings():  # (its deprecation notice: the stand-in is next)
            warnings.simplefilter('ignore')
            import pkg_resources  # noqa: F401
    except ImportError:
        import os.path as osp
        shim = types.ModuleType('pkg_resources')
        shim.resource_filename = lambda module, name: osp.join(  # beside the module's file
            osp.dirname(sys.modules[module].__file__), name)
        sys.modules['pkg_resources'] = shim
    import imagecorruptions
    from imagecorruptions import corruptions
    if getattr(corruptions, 'domino_seg', False):
        return imagecorruptions
    import numpy as np
    import skimage
    import skimage.util
    from skimage.filters import gaussian

    def gaussian_multichannel(image, *args, multichannel=None, **kwargs):
        if multichannel:
            kwargs.setdefault('channel_axis', -1)
        return gaussian(image, *args, **kwargs)

    def view(module, **changes):
        copy = types.ModuleType(module.__name__)
        copy.__dict__.update(module.__dict__, **changes)
        return copy

    def seeded_random_noise(image, *args, rng=None, **kwargs):
        return skimage.util.random_noise(
            image, *args, rng=np.random.randint(2 ** 31) if rng is None else rng, **kwargs)

    corruptions.gaussian = gaussian_multichannel
    corruptions.np = view(np, float_=np.float64)
    corruptions.sk = view(skimage, util=view(skimage.util, random_noise=seeded_random_noise))
    corruptions.domino_seg = True
    return imagecorruptions


def apply() -> None:
    """The changes of the table above (``domino_seg/__init__.py`` calls it first)."""
    _install_mmcv_ops_stub()
    _install_checkpoint_loader()
