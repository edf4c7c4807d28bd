"""Out-of-range values (config.VALUE_RANGES) fail at composition with the key, the value and
the allowed range; an explicit ``work_dir=`` that is a file fails before Hydra creates it."""
import re

import pytest

import domino_seg
from domino_seg.errors import ConfigError


@pytest.mark.parametrize('overrides,message', [
    (['schedule.max_iters=0'], 'schedule.max_iters=0 is out of range: schedule.max_iters takes '
                               'an integer >= 1.'),
    (['schedule.batch_size=-2'], 'schedule.batch_size=-2 is out of range: schedule.batch_size '
                                 'takes an integer >= 1.'),
    (['schedule.test_batch_size=0'], 'schedule.test_batch_size takes an integer >= 1'),
    (['schedule.warmup_iters=-1'], 'schedule.warmup_iters=-1 is out of range: '
                                   'schedule.warmup_iters takes an integer >= 0.'),
    (['schedule.val_interval=0'], 'schedule.val_interval takes an integer >= 1'),
    (['data.crop_size=[1,1]'], 'data.crop_size=[1, 1] is out of range: data.crop_size takes two '
                               'integers >= 32 ([h,w] in pixels).'),
    (['data.crop_size=[64,128,3]'], 'data.crop_size takes two integers >= 32'),
    (['data.img_scale=[0,64]'], 'data.img_scale takes two integers >= 32 ([w,h] in pixels)'),
    (['seed=-1'], 'seed=-1 is out of range: seed takes an integer in 0..4294967295.'),
    (['log_interval=0'], 'log_interval=0 is out of range: log_interval takes an integer >= 1.'),
    (['data.num_workers=-1'], 'data.num_workers=-1 is out of range: data.num_workers takes an '
                              'integer >= 0.'),
    (['data.ratio_range=[2.0,0.5]'], 'data.ratio_range=[2.0, 0.5] is out of range: '
                                     'data.ratio_range takes [min,max] with 0 < min <= max.'),
    (['data.ratio_range=[0.0,1.0]'], 'data.ratio_range takes [min,max] with 0 < min <= max'),
    (['data.train_weather_prob=1.5'], 'data.train_weather_prob takes a number in 0..1'),
    (['data.num_classes=256'], 'data.num_classes takes an integer in 1..255'),
    (['domain=zero_shot', 'domain.temperature=0'],
     'domain.temperature=0 is out of range: domain.temperature takes a number > 0.'),
    (['domain=zero_shot', 'domain.temperature=-0.5'], 'domain.temperature takes a number > 0'),
])
def test_out_of_range_value_names_key_value_and_range(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        domino_seg.compose(overrides)


def test_values_at_the_bounds_pass():
    cfg = domino_seg.compose(['schedule.max_iters=1', 'schedule.warmup_iters=0', 'seed=0',
                              'data.num_workers=0', 'data.crop_size=[32,32]',
                              'data.ratio_range=[1,1]', 'data.train_weather_prob=1',
                              'domain=zero_shot', 'domain.temperature=1e-5'])
    assert cfg.schedule.max_iters == 1 and list(cfg.data.crop_size) == [32, 32]


def test_a_value_set_in_a_yaml_file_is_checked_too(tmp_path, monkeypatch):
    """Ranges are checked on the composed config, not only on command-line values."""
    import shutil

    from domino_seg import config
    configs = tmp_path / 'configs'
    shutil.copytree(config.CONFIG_DIR, configs)
    schedule = configs / 'schedule' / 'cpu_quick.yaml'
    schedule.write_text(schedule.read_text().replace('batch_size: 8', 'batch_size: 0'))
    monkeypatch.setattr(config, 'CONFIG_DIR', configs)
    with pytest.raises(ConfigError, match='schedule.batch_size=0 is out of range'):
        domino_seg.compose()


def test_tool_exits_2_on_an_out_of_range_value(tmp_path, tool_fails):
    err = tool_fails('train.py', ['schedule.max_iters=0', f'paths.work_dirs={tmp_path}'],
                     tmp_path)
    assert 'error: schedule.max_iters=0 is out of range: schedule.max_iters takes an integer ' \
           '>= 1.' in err


def test_work_dir_that_is_a_file(tmp_path, tool_fails):
    (tmp_path / 'a_file').write_text('')
    err = tool_fails('train.py', [f'work_dir={tmp_path}/a_file'], tmp_path)
    assert f"the work dir '{tmp_path}/a_file' cannot be created" in err
    assert 'work_dir=<a new folder>' in err
    assert (tmp_path / 'a_file').read_text() == ''
