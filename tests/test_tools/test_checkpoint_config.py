"""tools/test.py takes the model settings of a checkpoint from the config.yaml beside it."""
import json

import pytest

from .test_train_test import TEXT_FOG, only_dir


@pytest.mark.slow
def test_a_checkpoint_brings_its_model_settings(trained_run, tiny_overrides, tmp_path,
                                                tool_main):
    run, _ = trained_run(*TEXT_FOG)
    trained = json.loads((run / 'metrics.json').read_text())

    test = tool_main('test.py', tiny_overrides + [f'checkpoint={run / "iter_2.pth"}'], tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    assert (f'checkpoint={run / "iter_2.pth"}: model segformer_mit_tiny, domino=head, '
            f'domain=text, as recorded in {run / "config.yaml"}') in test.stdout
    tested = json.loads((only_dir(tmp_path / 'work_dirs' / 'test' / 'synthetic') /
                         'metrics.json').read_text())
    assert tested['conditions'] == trained['conditions']

    # a group given on the command line wins (here: one the checkpoint does not fit)
    other = tool_main('test.py', tiny_overrides + [f'checkpoint={run / "iter_2.pth"}',
                                                   'domino=none', 'domain=none'], tmp_path)
    assert other.returncode == 2 and 'Traceback' not in other.stderr
    assert '(from the command line: model, domino, domain)' in other.stdout
    assert 'does not fit the configured model' in other.stderr
