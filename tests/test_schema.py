"""The typed schema (domino_seg/schema.py): every key of a composed config is checked once
against it, whether the command line or a YAML file set it."""
import re
import shutil

import pytest

import domino_seg
from domino_seg import config_files, schema
from domino_seg.errors import ConfigError


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A copy of configs/ that compose() reads."""
    folder = tmp_path / 'configs'
    shutil.copytree(config_files.CONFIG_DIR, folder)
    monkeypatch.setattr(config_files, 'CONFIG_DIR', folder)
    return folder


def test_every_tool_config_has_a_schema():
    assert sorted(schema.SCHEMAS) == sorted(p.stem for p in config_files.CONFIG_DIR.glob('*.yaml'))


def test_a_wrong_type_on_the_command_line_names_the_override():
    with pytest.raises(ConfigError) as err:
        domino_seg.compose(['+exp=acdc_fog', 'data.num_classes=many'])
    assert str(err.value) == "data.num_classes=many: data.num_classes takes an integer, got " \
                             "'many'."


def test_a_wrong_type_in_an_exp_preset_is_found(configs):
    preset = configs / 'exp' / 'acdc_fog.yaml'
    preset.write_text(preset.read_text() + 'seed: ten\n')
    with pytest.raises(ConfigError, match=re.escape(
            "seed takes an integer, got 'ten' (set by a config file: the tool's YAML, a group "
            'option or an exp/ preset).')):
        domino_seg.compose(['+exp=acdc_fog'])


def test_a_misspelt_key_in_an_exp_preset_says_which_was_meant(configs):
    preset = configs / 'exp' / 'acdc_fog.yaml'
    preset.write_text(preset.read_text().replace('eval_conditions:', 'eval_condition:'))
    with pytest.raises(ConfigError) as err:
        domino_seg.compose(['+exp=acdc_fog'])
    assert str(err.value).startswith('data.eval_condition is not a key of this config (set '
                                     "by a config file: the tool's YAML, a group option")
    assert 'Did you mean data.eval_conditions?' in str(err.value)
    assert 'Valid keys here: name, cityscapes_root, acdc_root' in str(err.value)


def test_a_new_key_of_a_tool_config_is_checked_against_that_tool():
    with pytest.raises(ConfigError, match=re.escape('Did you mean video_fps (without +)?')):
        domino_seg.compose(['+video_fsp=3'], config_name='infer')
    assert domino_seg.compose(['domain.condition=fog'], config_name='infer').domain.condition \
        == 'fog'
    with pytest.raises(ConfigError, match='domain.condition is not a key of this config'):
        domino_seg.compose(['domain=text', '+domain.condition=fog'])  # train reads no condition


def test_interpolations_resolve_and_their_targets_are_checked(tmp_path):
    cfg = domino_seg.compose([f'paths.work_dirs={tmp_path}', 'data.num_workers=${seed}',
                              'seed=1'], config_name='infer')
    assert cfg.out == f'{tmp_path}/infer' and cfg.data.num_workers == 1
    with pytest.raises(ConfigError, match=re.escape("seed=one: seed takes an integer, got "
                                                    "'one'.")):
        domino_seg.compose(['data.num_workers=${seed}', 'seed=one'])


def test_values_of_the_open_mmseg_dicts_are_not_typed():
    cfg = domino_seg.compose(['model.optimizer.betas=abc', '+model.segmentor.backbone.x=[1,a]',
                              '+runtime.default_hooks.timer.extra=1'])
    assert cfg.model.optimizer.betas == 'abc' and list(cfg.model.segmentor.backbone.x) == [1, 'a']
