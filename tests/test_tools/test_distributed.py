"""torchrun: 2 CPU processes (gloo, DDP) train and evaluate like one process with the same
global batch."""
import json
import os
import socket
import subprocess
import sys

import pytest
from mmengine.runner.checkpoint import _load_checkpoint

from domino_seg.compat import trusted_checkpoint_loading

from .test_train_test import ROOT

pytestmark = pytest.mark.slow

# no dropout / drop-path: their masks are drawn per process
SAME_MATH = ['model.segmentor.decode_head.dropout_ratio=0',
             'model.segmentor.backbone.drop_path_rate=0', 'data.ratio_range=[1,1]',
             'schedule.max_iters=2', 'schedule.val_interval=2']


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def weights(run_dir):
    with trusted_checkpoint_loading():
        return _load_checkpoint(str(run_dir / 'iter_2.pth'))['state_dict']


# the baseline, and Domino with CLIP embedding each process's batch in its data preprocessor
@pytest.mark.parametrize('model', [[], ['domino=head', 'domain=zero_shot',
                                          'domain.cache_dir=null']], ids=['baseline', 'zero_shot'])
def test_two_processes_match_one_with_the_same_global_batch(tiny_overrides, tmp_path, model,
                                                           tool_main):
    """(The one process: tools/train.py in the test's own.)"""
    overrides = [o for o in tiny_overrides if not o.startswith('schedule.batch_size')] + \
        SAME_MATH + model
    single = tool_main('train.py', overrides + ['schedule.batch_size=2',
                                                f'work_dir={tmp_path / "single"}'], tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]

    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    multi = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', str(ROOT / 'tools' / 'train.py'), *overrides,
         'launcher=pytorch', 'schedule.batch_size=1', f'work_dir={tmp_path / "multi"}'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert 'Distributed training is not used' not in multi.stdout + multi.stderr

    one = json.loads((tmp_path / 'single' / 'metrics.json').read_text())
    two = json.loads((tmp_path / 'multi' / 'metrics.json').read_text())
    # every evaluation image counted once although each process scored half of them
    assert {c: r['num_images'] for c, r in two['conditions'].items()} == \
        {c: r['num_images'] for c, r in one['conditions'].items()}
    # Parameters only: on CPU each process normalises its own batch (torch's SyncBatchNorm is
    # GPU-only), so BatchNorm running statistics differ, and each process draws its own flips.
    a, b = weights(tmp_path / 'single'), weights(tmp_path / 'multi')
    assert a.keys() == b.keys()
    assert not any(k.startswith('data_preprocessor') for k in a)  # CLIP is no model weight
    params = [k for k in a if 'running_' not in k and 'num_batches' not in k]
    assert max((a[k] - b[k]).abs().max().item() for k in params) < 5e-3
