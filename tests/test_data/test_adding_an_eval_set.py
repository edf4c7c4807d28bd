"""A new evaluation-set layout is one module and one YAML: tried as a contributor would, from
outside the package (a module on the path registering a kind, an exp/ preset on Hydra's search
path naming it in data.imports)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import domino_seg
from domino_seg.data.builder import evaluated_conditions, prompt_conditions
from domino_seg.errors import ConfigError, DataError
from domino_seg.registry import EVAL_SETS

ROOT = Path(__file__).resolve().parents[2]

MODULE = '''
from domino_seg.data.eval_sets import EvalSetDataset
from domino_seg.data.layouts import Layout
from domino_seg.registry import EVAL_SETS


@EVAL_SETS.register_module('street_cams')
class StreetCams(EvalSetDataset):
    """Street cameras in the rain: <root>/frames/<split>/<name>.jpg, their trainId labels in
    <root>/masks/<split>/<name>_mask.png."""
    layout = Layout(name='Street cams', img_dir='frames/{split}', ann_dir='masks/{split}',
                    img_suffix='.jpg', seg_map_suffix='_mask.png', nesting='', config_key='',
                    download='the street camera archive')
    splits = ('val',)
    prompt = 'rain'
'''

PRESET = '''# @package _global_
data:
  imports: [street_cams]
  eval_conditions: []
  eval_sets: [{kind: street_cams}]
  eval_set_roots: {street_cams: %s}
'''

LABELS = {'cam1_0001': [3, 255], 'cam2_0002': [7]}  # crafted: columns cycle through the ids


def street_cams(root: Path) -> Path:
    for value, (name, ids) in enumerate(LABELS.items()):
        (root / 'frames/val').mkdir(parents=True, exist_ok=True)
        (root / 'masks/val').mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 64, 3), 40 * value, np.uint8)).save(
            root / 'frames/val' / f'{name}.jpg')
        ids = np.asarray(ids, np.uint8)
        Image.fromarray(np.broadcast_to(ids[np.arange(64) % len(ids)], (32, 64)).copy()).save(
            root / 'masks/val' / f'{name}_mask.png')
    return root


@pytest.fixture
def contributed(tmp_path, monkeypatch):
    """The module and the preset, written outside the package; the overrides that use them.
    The kind is unregistered afterwards, so no other test sees it."""
    (tmp_path / 'street_cams.py').write_text(MODULE)
    (tmp_path / 'configs/exp').mkdir(parents=True)
    data = tmp_path / 'street'
    (tmp_path / 'configs/exp/street_cams.yaml').write_text(PRESET % data)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield data, ['+exp=street_cams', f'hydra.searchpath=[file://{tmp_path / "configs"}]']
    EVAL_SETS.module_dict.pop('street_cams', None)
    sys.modules.pop('street_cams', None)


def test_a_layout_from_one_module_and_one_yaml(tiny_overrides, contributed):
    data, overrides = contributed
    street_cams(data)
    cfg = domino_seg.compose(tiny_overrides + overrides)
    assert evaluated_conditions(cfg.data) == ['street_cams']
    assert prompt_conditions(cfg.data) == ['rain']
    dataset = domino_seg.build_dataset(cfg, 'test')
    assert type(dataset.datasets[0]).__name__ == 'StreetCams'
    found = [dataset[i]['data_samples'] for i in range(len(dataset))]
    assert [(s.condition, s.rel_path, s.seg_map_path) for s in found] == [
        ('street_cams', f'{name}.jpg', str(data / 'masks/val' / f'{name}_mask.png'))
        for name in LABELS]
    for sample, ids in zip(found, LABELS.values()):
        labels = sample.gt_sem_seg.data.numpy()[0]
        assert (labels == np.asarray(ids)[np.arange(64) % len(ids)]).all()
    assert 'street_cams' in domino_seg.to_mmengine(cfg).custom_imports.imports


def test_its_errors_name_its_layout_and_keys(tiny_overrides, contributed):
    data, overrides = contributed
    cfg = domino_seg.compose(tiny_overrides + overrides)
    with pytest.raises(DataError) as err:
        domino_seg.build_dataset(cfg, 'test')
    for text in (f"Street cams root '{data}' does not exist", f'{data}/frames/val/<name>.jpg',
                 f'{data}/masks/val/<name>_mask.png', 'the street camera archive',
                 '`data.eval_set_roots.street_cams=/path/to/street_cams`',
                 'Or drop data.eval_sets[0] from data.eval_sets.'):
        assert text in str(err.value)
    for entry, message in (('{kind:street_cams,split:train}',
                            "split='train': street_cams has the splits val."),
                           ('{kind:street_cams,beta:0.02}',
                            "(street_cams) has unknown key(s) ['beta']")):
        cfg = domino_seg.compose(tiny_overrides + overrides + [f'data.eval_sets=[{entry}]'])
        with pytest.raises(ConfigError) as err:
            evaluated_conditions(cfg.data)
        assert message in str(err.value)


def test_without_its_module_the_error_names_the_imports_key(tiny_overrides, contributed,
                                                            tmp_path):
    _, overrides = contributed
    with pytest.raises(ConfigError) as err:
        domino_seg.compose(tiny_overrides + overrides + ['data.imports=[]'])
    assert 'data.eval_set_roots.street_cams=' in str(err.value)
    assert 'registered: dark_zurich, foggy_cityscapes, bdd100k, mapillary.' in str(err.value)
    assert 'its module named in data.imports' in str(err.value)
    with pytest.raises(ConfigError, match="data.imports: module 'street_camz' cannot be "
                                          'imported'):
        domino_seg.compose(tiny_overrides + overrides + ['data.imports=[street_camz]'])
    # a kind of a name already taken
    (tmp_path / 'taken.py').write_text(MODULE.replace("'street_cams'", "'bdd100k'"))
    with pytest.raises(ConfigError, match="data.imports: module 'taken' cannot be imported "
                                          r"\('bdd100k is already registered in evaluation set "
                                          r"at domino_seg.data.eval_sets'\). Register it under "
                                          'another name.'):
        domino_seg.compose(tiny_overrides + ['data.imports=[taken]'])


@pytest.mark.slow
def test_a_tool_run_evaluates_the_new_layout(tiny_overrides, contributed, tmp_path):
    data, overrides = contributed
    street_cams(data)
    run = tmp_path / 'run'
    result = subprocess.run(
        [sys.executable, 'tools/train.py', *tiny_overrides, *overrides, 'schedule.max_iters=1',
         'schedule.val_interval=1', 'domino=head', 'domain=text', f'work_dir={run}'],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=f'{tmp_path}:{os.environ.get("PYTHONPATH", "")}'))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run / 'metrics.json').read_text())
    assert list(report['conditions']) == ['street_cams']
    assert report['conditions']['street_cams']['num_images'] == 2
