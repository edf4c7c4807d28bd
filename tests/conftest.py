"""Shared fixtures. Tests are CPU-only and offline."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import pytest  # noqa: E402

import domino_seg  # noqa: E402,F401  (compat fixes and registration)
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope('mmseg')  # as the Runner does: types in configs resolve in mmseg's registries

TINY = dict(num_train=4, num_val=2, height=64, width=128, seed=0)


@pytest.fixture(scope='session')
def tiny_benchmark(tmp_path_factory):
    """A tiny synthetic benchmark in the real Cityscapes/ACDC layouts."""
    from domino_seg.data.synthetic import write_benchmark
    root = tmp_path_factory.mktemp('bench') / 'synthetic'
    write_benchmark(root, progress=False, **TINY)
    return root


@pytest.fixture
def tiny_overrides(tiny_benchmark, tmp_path):
    """Overrides that point the default experiment at the tiny benchmark, CPU-fast."""
    return [f'paths.synthetic={tiny_benchmark}', f'paths.work_dirs={tmp_path / "work_dirs"}',
            'data.generate.num_train=4', 'data.generate.num_val=2',
            'data.generate.height=64', 'data.generate.width=128',
            'data.img_scale=[128,64]', 'data.crop_size=[64,128]', 'data.num_workers=0',
            'schedule.max_iters=2', 'schedule.val_interval=2', 'schedule.batch_size=2',
            'schedule.test_batch_size=3', 'log_interval=1']
