"""The language controls end to end (CPU, 2 iterations): domain=onehot trains and its
checkpoint tests with the codes it was trained with; domino=style trains."""
import json

import pytest
import yaml

from .test_train_test import only_dir


@pytest.mark.slow
def test_onehot_trains_and_tests_on_its_checkpoint(tiny_overrides, tmp_path, tool_main):
    train = tool_main('train.py', tiny_overrides + [
        'domino=head', 'domain=onehot', 'data.train_weather=[fog]'], tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    work_dir = only_dir(tmp_path / 'work_dirs' / 'synthetic')
    trained = json.loads((work_dir / 'metrics.json').read_text())
    assert trained['domain'] == dict(mode='onehot', encoder='onehot', weights=None,
                                     has_language_meaning=False, seen=['clear', 'fog'])
    recorded = yaml.safe_load((work_dir / 'config.yaml').read_text())
    assert recorded['domain']['seen'] == ['cityscapes', 'fog']

    # without train_weather here: the codes (2-d) come from the checkpoint's recorded config;
    # night, rain and snow are unseen and get the mean code
    test = tool_main('test.py', tiny_overrides + [f'checkpoint={work_dir / "iter_2.pth"}'],
                     tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    tested = json.loads((only_dir(tmp_path / 'work_dirs' / 'test' / 'synthetic') /
                         'metrics.json').read_text())
    assert tested['domain'] == trained['domain']
    for condition, row in trained['conditions'].items():
        assert tested['conditions'][condition]['mIoU'] == pytest.approx(row['mIoU'], abs=1e-9)


@pytest.mark.slow
def test_style_trains_with_mixstyle_after_every_backbone_norm(tiny_overrides, tmp_path, tool_main):
    train = tool_main('train.py', tiny_overrides + ['domino=style', 'domino.style.p=1'],
                      tmp_path)  # p=1: every norm of the MiT backbone mixes at every step
    assert train.returncode == 0, train.stderr[-3000:]
    work_dir = only_dir(tmp_path / 'work_dirs' / 'synthetic')
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    assert metrics['domain'] == dict(mode='none')  # no embedding, no language
    recorded = yaml.safe_load((work_dir / 'config.yaml').read_text())
    assert recorded['domino'] == dict(scope='none', style=dict(p=1, alpha=0.1))
