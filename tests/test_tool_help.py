"""Each tool's --help lists the groups it composes and the keys it reads, nothing internal."""
from pathlib import Path

import pytest

from domino_seg.tool_help import documented_keys

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tool_help(tool_main):
    """``tool_help(tool)``: what ``python tools/<tool>.py --help`` prints."""
    def tool_help(tool):
        result = tool_main(f'{tool}.py', ['--help'], ROOT)
        assert result.returncode == 0, result.stderr
        return result.stdout
    return tool_help


def test_documented_keys_take_the_comment_above_or_beside_and_the_parents(tmp_path):
    (tmp_path / 'base.yaml').write_text('# file header\n\n# the seed\nseed: 0\nlr: 1  # step\n'
                                        'plain: 2\nhydra:\n  run: {}\n')
    (tmp_path / 'tool.yaml').write_text('# tool\ndefaults:\n  - base\n  - _self_\n\n'
                                        '# overrides the doc\nlr: 2\nown: x\n')
    assert documented_keys(tmp_path, 'tool') == {
        'seed': 'the seed', 'lr': 'overrides the doc', 'plain': '', 'own': ''}


def test_train_help_lists_user_groups_and_keys_only(tool_help):
    text = tool_help('train')
    groups = text.split('== Config groups')[1].split('== Keys')[0]
    assert '  domino: backbone, full, head, none (default), style\n' in groups
    assert '  domain/text_encoder: clip, minilm\n' in groups
    assert 'synthetic_loo_fog' in groups and 'efficientnet_lite0_mlp (default)' in groups
    assert '_base' not in text and 'domain/prompts' not in text and 'hydra/' not in groups
    assert '  resume=false\n' in text and '  verbose=false\n' in text
    assert 'task=' not in text
    common = text.split('== Keys inside the groups set most often (group.key=value) ==\n')[1]
    assert common.startswith('  schedule.max_iters=600\n  schedule.batch_size=8\n')
    assert '  data.eval_split=val\n' in common and '  model.optimizer.lr=0.001\n' in common
    assert '  data.train_weather=[]\n      training-time weather augmentation' in common
    assert 'domino.mlp' not in common  # domino=none has no MLP


def test_test_help_leaves_out_training_keys(tool_help):
    text = tool_help('test')
    keys = text.split('== Keys')[1]
    assert '  checkpoint=??? (required)\n' in keys and '  evaluate=true\n' in keys
    for key in ('resume=', 'nan_policy=', 'load_from=', 'task='):
        assert f'  {key}' not in keys
    common = text.split('== Keys inside the groups set most often')[1]
    assert '  schedule.test_batch_size=8\n' in common and '  data.eval_split=val\n' in common
    assert '  schedule.max_iters=600' not in common


@pytest.mark.parametrize('absent', ['  model: ', '  domino: ', 'schedule', '== Config groups'])
def test_make_synthetic_help_has_its_own_keys_only(absent, tool_help):
    text = tool_help('make_synthetic')
    assert '  num_train=300\n      per split: Cityscapes (clear) and each ACDC condition' in text
    assert absent not in text
