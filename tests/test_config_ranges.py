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
    # a repeated corruption or severity would score its condition on twice its images
    (['data.eval_corruptions=[fog,contrast,fog]'],
     'data.eval_corruptions=["fog", "contrast", "fog"] is not valid ("fog" is listed twice): '
     'data.eval_corruptions takes a list of distinct corruption names, each one of '
     'gaussian_noise, shot_noise,'),
    (['data.eval_corruptions=[fogg]'], 'data.eval_corruptions=["fogg"] is not valid'),
    (['data.corruption_severities=[3,3]'],
     'data.corruption_severities=[3, 3] is out of range (3 is listed twice): '
     'data.corruption_severities takes a list of distinct severities, at least one, each one '
     'of 1, 2, 3, 4, 5.'),
    (['data.corruption_severities=[0,6]'], 'data.corruption_severities=[0, 6] is out of range'),
    (['data.corruption_severities=[]'], 'data.corruption_severities=[] is out of range'),
    (['data.eval_conditions=[fog,fog]'], '("fog" is listed twice)'),
    # an empty split would read the split folders' parent: every split at once
    (['data.eval_split='], 'data.eval_split="" is not valid: data.eval_split takes one of '
                           'train, val, test (the split folder read).'),
    (['data.eval_split=../val'], 'data.eval_split="../val" is not valid'),
    (['data.train_split='], 'data.train_split="" is not valid'),
    (['domino=head', 'domino.mlp.hidden=0'],
     'domino.mlp.hidden=0 is out of range: domino.mlp.hidden takes an integer >= 1.'),
    (['domino=head', 'domino.mlp.layers=0'],
     'domino.mlp.layers=0 is out of range: domino.mlp.layers takes an integer >= 1.'),
    (['domino=head', 'domino.mlp.act=Gelu'],
     'domino.mlp.act="Gelu" is not valid: domino.mlp.act takes one of GELU, ReLU, SiLU'),
    (['domino=head', 'domino.mlp.act=Linear'], 'domino.mlp.act="Linear" is not valid'),
    (['domino.scope=heads'], 'domino.scope="heads" is not valid: domino.scope takes one of '
                             'none, head, backbone, full.'),
    (['schedule.max_keep_ckpts=0'], 'schedule.max_keep_ckpts takes an integer >= 1, or -1 to '
                                    'keep every checkpoint.'),
    (['model.optimizer.lr=0'], 'model.optimizer.lr=0 is out of range: model.optimizer.lr '
                               'takes a number > 0.'),
    (['model.optimizer.lr=-1e-4'], 'model.optimizer.lr takes a number > 0'),
    (['model.optimizer.weight_decay=-0.01'], 'model.optimizer.weight_decay takes a number >= 0'),
    (['finetune=llrd', 'finetune.layer_decay_rate=1.5'],
     'finetune.layer_decay_rate takes a number in (0, 1] or null.'),
    (['data.corruption_seed=-1'], 'data.corruption_seed takes an integer in 0..4294967295'),
    (['data.generate.num_val=0'], 'data.generate.num_val takes an integer >= 1'),
    (['data.generate.height=8'], 'data.generate.height takes an integer >= 16'),
    (['launcher=torchrun'], 'launcher takes one of none, pytorch, slurm, mpi.'),
])
def test_out_of_range_value_names_key_value_and_range(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        domino_seg.compose(overrides)


@pytest.mark.parametrize('overrides,message', [
    (['num_train=-1'], 'num_train takes an integer >= 0'),
    (['width=8'], 'width=8 is out of range: width takes an integer >= 16.'),
    (['seed=-3'], 'seed takes an integer in 0..4294967295'),
])
def test_make_synthetic_ranges(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        domino_seg.compose(overrides, config_name='make_synthetic')


def test_a_value_set_through_another_override_names_it():
    line = 'data.generate={root:x,num_train:0,num_val:2,height:64,width:128,seed:0}'
    with pytest.raises(ConfigError, match=re.escape(
            'data.generate.num_train=0 is out of range: data.generate.num_train takes an '
            f'integer >= 1 (set by {line}).')):
        domino_seg.compose([line])


def test_every_mlp_key_of_the_schema_has_a_range():
    """The Domino MLP's numbers and its activation are checked at composition, not by the
    model (hidden=0 would train a model that ignores the embedding)."""
    from domino_seg import config, schema
    keys = {f'domino.mlp.{name}' for name in schema.Mlp.__dataclass_fields__}
    assert keys <= set(config.VALUE_RANGES)


def test_every_activation_offered_builds():
    import torch

    from domino_seg.models.domino_norm import ACTIVATIONS, build_mlp
    for act in ACTIVATIONS:
        assert build_mlp(8, 6, hidden=4, layers=2, act=act)(torch.zeros(2, 8)).shape == (2, 6)
    # built directly (not from a config), the model refuses them too
    with pytest.raises(ValueError, match='hidden >= 1, got layers=2, hidden=0'):
        build_mlp(8, 6, hidden=0, layers=2, act='GELU')
    with pytest.raises(ValueError, match="one of GELU, .*; got 'Linear'"):
        build_mlp(8, 6, hidden=4, layers=2, act='Linear')  # a torch.nn class, no activation


def test_values_at_the_bounds_pass():
    cfg = domino_seg.compose(['schedule.max_iters=1', 'schedule.warmup_iters=0', 'seed=0',
                              'data.num_workers=0', 'data.crop_size=[32,32]',
                              'data.ratio_range=[1,1]', 'data.train_weather_prob=1',
                              'domain=zero_shot', 'domain.temperature=1e-5', 'domino=head',
                              'domino.mlp.hidden=1', 'domino.mlp.layers=1', 'domino.mlp.act=ReLU',
                              'data.eval_corruptions=[fog,contrast]',
                              'data.corruption_severities=[1,5]', 'data.eval_split=test',
                              'schedule.max_keep_ckpts=-1', 'finetune=llrd',
                              'finetune.layer_decay_rate=1', 'data.eval_conditions=[]'])
    assert cfg.schedule.max_iters == 1 and list(cfg.data.crop_size) == [32, 32]
    assert cfg.finetune.layer_decay_rate == 1 and cfg.domino.mlp.hidden == 1


def test_a_value_set_in_a_yaml_file_is_checked_too(tmp_path, monkeypatch):
    """Ranges are checked on the composed config, not only on command-line values."""
    import shutil

    from domino_seg import config_files
    configs = tmp_path / 'configs'
    shutil.copytree(config_files.CONFIG_DIR, configs)
    schedule = configs / 'schedule' / 'cpu_quick.yaml'
    schedule.write_text(schedule.read_text().replace('batch_size: 8', 'batch_size: 0'))
    monkeypatch.setattr(config_files, 'CONFIG_DIR', configs)
    with pytest.raises(ConfigError, match=re.escape(
            'schedule.batch_size=0 is out of range: schedule.batch_size takes an integer >= 1 '
            "(set by a config file: the tool's YAML")):
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
