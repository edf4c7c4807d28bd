"""Shared fixtures. Tests are CPU-only and offline."""
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
if os.environ.get('PYTEST_XDIST_WORKER'):  # pytest -n N: N processes share the cores, so
    os.environ.setdefault('OMP_NUM_THREADS', '1')  # one thread each (and each tool they run)

import pytest  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import domino_seg  # noqa: E402,F401  (compat fixes and registration)

init_default_scope('mmseg')  # as the Runner does: types in configs resolve in mmseg's registries
domino_seg.quiet()  # as tools/*.py do: the tests run their bodies
# mmengine's loggers outlive a test and keep the stderr it captured, which pytest then closes:
# a later test's log line would print "--- Logging error ---" and a traceback into the output
# the test reads. Handler errors are ignored in tests (as logging does when raiseExceptions is
# off); what the tools print is asserted through their own output.
logging.raiseExceptions = False

TINY = dict(num_train=4, num_val=2, height=64, width=128, seed=0)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_run_logger_outlives_its_test():
    """mmengine keeps every MMLogger, and the newest is the "current" one that later code logs
    to (e.g. ``init_weights``' initialisation report); a run closes its log file at the end,
    so a later test in the same worker would write into a closed file. The loggers a test
    created are dropped after it, and closed log files are taken off the ones that stay."""
    import logging

    from mmengine.logging import MMLogger
    before = set(MMLogger._instance_dict)
    yield
    for name in [name for name in MMLogger._instance_dict if name not in before]:
        logger = MMLogger._instance_dict.pop(name)
        for handler in logger.handlers[:]:
            handler.close()
            logger.removeHandler(handler)
    for logger in MMLogger._instance_dict.values():
        for handler in logger.handlers[:]:
            if isinstance(handler, logging.FileHandler) and handler.stream is None:
                logger.removeHandler(handler)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: "fails fast" means "never tries to
    download", which holds on a loaded machine where a wall-time bound would not."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError('the code under test tried to open a network connection')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


@pytest.fixture(scope='session')
def tiny_benchmark(tmp_path_factory):
    """A tiny synthetic benchmark in the real Cityscapes/ACDC layouts."""
    from domino_seg.data.synthetic import write_benchmark
    root = tmp_path_factory.mktemp('bench') / 'synthetic'
    write_benchmark(root, progress=False, **TINY)
    return root


@pytest.fixture
def unlabelled_test_split(tiny_benchmark, tmp_path):
    """Roots ``<tmp>/unlabelled/{cityscapes,acdc}`` holding only a ``test`` split of images
    (the tiny benchmark's val images) and no label files, like the official test splits."""
    import shutil
    root = tmp_path / 'unlabelled'
    shutil.copytree(tiny_benchmark / 'cityscapes' / 'leftImg8bit' / 'val',
                    root / 'cityscapes' / 'leftImg8bit' / 'test')
    for cond in ('fog', 'night', 'rain', 'snow'):
        shutil.copytree(tiny_benchmark / 'acdc' / 'rgb_anon' / cond / 'val',
                        root / 'acdc' / 'rgb_anon' / cond / 'test')
    return root


def tiny_overrides_for(bench, work_dirs) -> list:
    """Overrides that point the default experiment at the tiny benchmark ``bench``, CPU-fast
    (the smallest model, not the pretrained default), writing under ``work_dirs``."""
    return [f'paths.synthetic={bench}', f'paths.work_dirs={work_dirs}', 'model=segformer_mit_tiny',
            'data.generate.num_train=4', 'data.generate.num_val=2',
            'data.generate.height=64', 'data.generate.width=128',
            'data.img_scale=[128,64]', 'data.crop_size=[64,128]', 'data.num_workers=0',
            'schedule.max_iters=2', 'schedule.val_interval=2', 'schedule.batch_size=2',
            'schedule.test_batch_size=3', 'log_interval=1']


@pytest.fixture(scope='session')
def tiny_overrides_at():
    """``tiny_overrides_at(bench, work_dirs)``: tiny_overrides for fixtures of wider scope."""
    return tiny_overrides_for


@pytest.fixture
def tiny_overrides(tiny_benchmark, tmp_path):
    """Overrides that point the default experiment at the tiny benchmark, CPU-fast."""
    return tiny_overrides_for(tiny_benchmark, tmp_path / 'work_dirs')


@pytest.fixture(scope='session')
def trained_run(tiny_benchmark, tmp_path_factory):
    """``trained_run(*overrides)``: (run folder, console output) of one tiny tools/train.py run
    (tiny_overrides and ``overrides``), trained once per test session and shared by every test
    that only reads it (copy it to change it): the end-to-end runs are most of the suite's
    time. The pytest -n workers share it through a file lock."""
    import fcntl
    import hashlib
    runs = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        runs = runs.parent  # the session's folder, above each worker's
    runs = runs / 'trained_runs'
    runs.mkdir(exist_ok=True)

    def trained_run(*overrides):
        root = runs / hashlib.sha256('\n'.join(overrides).encode()).hexdigest()[:16]
        with open(f'{root}.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (root / 'output.txt').is_file():
                shutil.rmtree(root, ignore_errors=True)  # a failed try of another worker
                root.mkdir()
                result = subprocess.run(
                    [sys.executable, str(ROOT / 'tools' / 'train.py'),
                     *tiny_overrides_for(tiny_benchmark, root / 'work_dirs'), *overrides,
                     f'work_dir={root / "run"}'], cwd=root, capture_output=True, text=True,
                    timeout=600, env=dict(os.environ, HF_HUB_OFFLINE='1',
                                          PYTHONWARNINGS='ignore'))
                assert result.returncode == 0, result.stderr[-3000:]
                (root / 'output.txt').write_text(result.stdout + result.stderr)
        return root / 'run', (root / 'output.txt').read_text()
    return trained_run


@pytest.fixture
def overrides(tiny_overrides, tmp_path):
    """tiny_overrides, one iteration, into ``<tmp>/run``."""
    return tiny_overrides + ['schedule.max_iters=1', f'work_dir={tmp_path / "run"}']


@pytest.fixture
def bench(tiny_benchmark, tmp_path, overrides):
    """A private copy of the tiny benchmark to break, and overrides that read it as is."""
    root = tmp_path / 'bench'
    shutil.copytree(tiny_benchmark, root)
    cfg = [o for o in overrides if not o.startswith('paths.synthetic')]
    return root, cfg + [f'paths.synthetic={root}', 'data.generate=null']


@pytest.fixture
def fails(capsys):
    """``fails(job)``: run ``job`` through ``run_cli`` as the tools do, assert exit status 2 and
    one ``error:`` paragraph without a traceback, and return stderr."""
    from domino_seg.apis import run

    def fails(job):
        with pytest.raises(SystemExit) as exit:
            run.run_cli(job)
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert 'Traceback' not in err and '\nerror: ' in err
        return err
    return fails


@pytest.fixture
def disk_full_after(monkeypatch):
    """``disk_full_after(n)``: from now on, the write after the first ``n`` into files opened
    by ``os.fdopen`` (the atomic writes of domino_seg.io) writes half its bytes and fails as on
    a full disk (ENOSPC)."""
    import errno
    real = os.fdopen
    count = [0]

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *args):
            self.f.close()

        def write(self, data):
            count[0] += 1
            if count[0] > writes[0]:
                self.f.write(data[:len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

    writes = [0]

    def disk_full_after(n):
        writes[0] = n
        monkeypatch.setattr(os, 'fdopen', lambda fd, *args, **kwargs:
                            Full(real(fd, *args, **kwargs)))
    return disk_full_after


@pytest.fixture
def tool_main(monkeypatch, capsys):
    """``tool_main(tool, args, cwd)``: ``python tools/<tool> <args>`` in ``cwd``, run as that
    tool's ``__main__`` (Hydra and its callbacks included) in this process, as a
    subprocess.CompletedProcess: a process of its own costs seconds of imports (keep one
    where the test needs it: signals, kill -9, torchrun, a fresh interpreter). As in a fresh
    process, mmengine has no logger yet (what a tool logs before its Runner exists would go to
    the "current" logger of an earlier run, which prints into a closed capture); the run's
    loggers, and the root logger Hydra configures for a job, are dropped after."""
    import collections
    import runpy

    from mmengine.logging import MMLogger

    def tool_main(tool, args, cwd):
        path = str(ROOT / 'tools' / tool)
        monkeypatch.setattr(MMLogger, '_instance_dict', collections.OrderedDict())
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, 'argv', [path, *args])
        monkeypatch.setenv('HYDRA_FULL_ERROR', '1')  # (run_hydra sets it)
        root = logging.getLogger()
        level, handlers = root.level, root.handlers[:]
        code = 0
        try:
            runpy.run_path(path, run_name='__main__')
        except SystemExit as exit:
            code = exit.code or 0
        finally:
            root.setLevel(level)
            root.handlers[:] = handlers
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess([path, *args], code, out, err)
    return tool_main


@pytest.fixture
def tool_fails(tool_main):
    """``tool_fails(tool, overrides, cwd)``: :func:`tool_main`; assert exit status 2 without a
    traceback, and return stderr."""
    def tool_fails(tool, overrides, cwd):
        result = tool_main(tool, overrides, cwd)
        assert result.returncode == 2, result.stderr[-3000:]
        assert 'Traceback' not in result.stderr
        return result.stderr
    return tool_fails


def _trained_norms(module):
    """Non-trivial affine parameters and BN statistics, as after pretraining (so identity
    checks cannot pass by the norms being the identity themselves)."""
    import torch
    import torch.nn as nn
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                if getattr(m, 'running_var', None) is not None:
                    m.running_mean.normal_(std=0.1)
                    m.running_var.uniform_(0.5, 2)
    return module


@pytest.fixture
def pretrained_norms():
    """A function giving a module's norm layers pretrained-like parameters."""
    return _trained_norms


# per model config: overrides that shrink it to a CPU-fast size with random init
TINY_TEXT = '{width:32,heads:2,layers:1}'
TINY_HEADS = ['model.segmentor.decode_head.channels=16',
              'model.segmentor.auxiliary_head.channels=16']
TINY_VIT = ['model.pretrained=null', 'model.embed_dim=32',
            'model.segmentor.backbone.out_indices=[0,1,2,3]'] + TINY_HEADS
TINY_MODELS = {
    'segformer_mit_tiny': [],
    'efficientnet_lite0_mlp': ['model.pretrained=null'],
    'clip_vit_b16_upernet': TINY_VIT + [
        'model.segmentor.backbone.model_cfg={vision_cfg:{width:32,layers:4,head_width:16},'
        f'text_cfg:{TINY_TEXT},embed_dim:16}}'],
    'dinov2_vits14_upernet': TINY_VIT + [
        'model.segmentor.backbone.model_kwargs={embed_dim:32,depth:4,num_heads:2}'],
    'dinov2_vitb14_upernet': TINY_VIT + [
        'model.segmentor.backbone.model_kwargs={embed_dim:32,depth:4,num_heads:2}'],
    'clip_rn50_deeplabv3plus': ['model.pretrained=null'] + TINY_HEADS + [
        'model.segmentor.backbone.model_cfg={vision_cfg:{width:8,layers:[1,1,1,1]},'
        f'text_cfg:{TINY_TEXT},embed_dim:16}}',
        'model.segmentor.decode_head.in_channels=256',
        'model.segmentor.decode_head.c1_in_channels=32',
        'model.segmentor.auxiliary_head.in_channels=128'],
    'resnet50_deeplabv3plus': ['model.pretrained=null'] + TINY_HEADS + [
        'model.segmentor.backbone.depth=18', '+model.segmentor.backbone.stem_channels=8',
        '+model.segmentor.backbone.base_channels=8',
        'model.segmentor.decode_head.in_channels=64',
        'model.segmentor.decode_head.c1_in_channels=8',
        'model.segmentor.auxiliary_head.in_channels=32'],
}


@pytest.fixture
def tiny_model():
    """Model config name -> overrides that make it tiny (see TINY_MODELS)."""
    return TINY_MODELS


@pytest.fixture
def embed_samples():
    """The domain embeddings a composed config's model computes for dataset samples: its data
    preprocessor's (the DomainEmbedder fed by the pipeline's DomainEmbeddingInputs step)."""
    from mmengine.dataset import pseudo_collate

    def embed(model_or_cfg, samples):
        model = model_or_cfg if hasattr(model_or_cfg, 'data_preprocessor') else \
            domino_seg.build_segmentor(model_or_cfg)
        batch = model.data_preprocessor(pseudo_collate(list(samples)), training=True)
        return [sample.metainfo['domain_embedding'] for sample in batch['data_samples']]
    return embed
