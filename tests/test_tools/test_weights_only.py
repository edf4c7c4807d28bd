"""schedule.save_optimizer=false: checkpoints hold the weights only, say so, and a resume
from one is refused with the way to use it (load_from)."""
import pytest

from domino_seg.engine.runner import read_checkpoint

from .test_resume_guards import SCHEDULE, error

pytestmark = pytest.mark.slow


def test_weights_only_checkpoints_start_runs_but_do_not_resume(tiny_benchmark, tmp_path,
                                                              tool_main):
    run = tmp_path / 'run'
    common = [f'paths.synthetic={tiny_benchmark}', 'data.generate=null',
              'data.eval_conditions=[cityscapes]', *SCHEDULE]  # 2 iterations, a checkpoint each
    result = tool_main('train.py', common + ['schedule.save_optimizer=false',
                                             f'work_dir={run}'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = read_checkpoint(str(run / 'iter_1.pth'))
    assert 'optimizer' not in checkpoint and 'param_schedulers' not in checkpoint
    assert checkpoint['state_dict'] and checkpoint['meta']['iter'] == 1
    size = (run / 'iter_1.pth').stat().st_size / 2 ** 20
    assert f'iter_1.pth: {size:.1f} MB, weights only (schedule.save_optimizer=false)' in \
        result.stdout

    resumed = tool_main('train.py', common + ['schedule.save_optimizer=false',
                                              f'resume={run / "iter_1.pth"}'], tmp_path)
    assert f'load_from={run / "iter_1.pth"} instead of resume' in error(resumed)

    started = tool_main('train.py', common + [f'load_from={run / "iter_2.pth"}',
                                              f'work_dir={tmp_path / "new"}'], tmp_path)
    assert started.returncode == 0, started.stderr[-3000:]
    assert 'weights and optimizer state (to resume)' in started.stdout
