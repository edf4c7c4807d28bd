"""The language protocols on the built-in benchmark (+exp=synthetic_compose, synthetic_severity):
held-out conditions are evaluated, never trained on."""
import json

import numpy as np
import pytest
from mmseg.registry import DATASETS

import domino_seg
from domino_seg.data.builder import ensure_synthetic
from domino_seg.domain.prompts import load_prompt_bank
from domino_seg.errors import ConfigError

from .test_train_test import only_dir

TINY = ['data.generate.num_train=2', 'data.generate.num_val=1', 'data.generate.height=32',
        'data.generate.width=64', 'model.pretrained=null']
# preset -> (conditions it trains on, conditions it holds out)
PROTOCOLS = {
    'synthetic_compose': ({'cityscapes', 'fog', 'night', 'rain', 'snow', 'dusk'},
                          {'foggy_night', 'rainy_night', 'snowy_night', 'rainy_dusk',
                           'foggy_dusk', 'snowy_dusk'}),
    'synthetic_severity': ({'cityscapes', 'light_fog', 'dense_fog'}, {'fog'}),
}


@pytest.fixture(scope='module', params=sorted(PROTOCOLS))
def protocol(request, tmp_path_factory):
    """(preset, its overrides, its benchmark root): a preset on a tiny benchmark of its own,
    generated as a run generates it."""
    exp = request.param
    root = tmp_path_factory.mktemp(exp) / 'bench'
    overrides = [f'+exp={exp}', f'paths.{exp}={root}'] + TINY
    ensure_synthetic(domino_seg.compose(overrides).data)
    return exp, overrides, root


def test_held_out_conditions_are_never_in_the_training_data(protocol):
    exp, overrides, root = protocol
    trained, held_out = PROTOCOLS[exp]
    mm = domino_seg.to_mmengine(domino_seg.compose(overrides))
    train = DATASETS.build(mm.train_dataloader.dataset)
    conditions = [train.get_data_info(i)['condition'] for i in range(len(train))]
    assert set(conditions) == trained
    assert list((root / 'acdc').glob('rgb_anon/*/train'))      # (the trained ones have one)
    for condition in held_out:
        assert not list((root / 'acdc').glob(f'*/{condition}/train'))
        assert list((root / 'acdc').glob(f'rgb_anon/{condition}/val/*/*.png'))
    evaluated = DATASETS.build(mm.test_dataloader.dataset)
    counts = dict(zip(*np.unique([evaluated.get_data_info(i)['condition']
                                  for i in range(len(evaluated))], return_counts=True)))
    assert counts == {condition: 1 for condition in trained | held_out}


def test_training_on_a_held_out_condition_is_refused(protocol):
    exp, overrides, _ = protocol
    held_out = sorted(PROTOCOLS[exp][1])[0]
    cfg = domino_seg.compose(overrides + [f'data.train_weather=[{held_out}]'])
    with pytest.raises(ConfigError, match=rf"\['{held_out}'\] are held out from training "
                                          r'\(data.generate.val_only'):
        domino_seg.to_mmengine(cfg)


@pytest.mark.parametrize('exp', sorted(PROTOCOLS))
def test_presets_evaluate_200_images_per_condition_with_the_attribute_bank(exp):
    cfg = domino_seg.compose([f'+exp={exp}', 'model.pretrained=null'])
    trained, held_out = PROTOCOLS[exp]
    assert cfg.data.generate.num_val >= 200
    assert cfg.data.generate.root == cfg.paths[exp] == f'data/{exp}'
    assert set(cfg.data.generate.val_only) == held_out
    assert set(cfg.data.eval_conditions) == trained | held_out
    bank = load_prompt_bank(cfg.domain.prompt_bank)
    assert bank.source.endswith('configs/domain/prompts/weather_attributes.yaml')
    assert (trained - {'cityscapes'}) | held_out | {'clear'} <= set(bank.conditions)


@pytest.mark.parametrize('override,message', [
    ('data.eval_conditions=[cityscapes,dusk]', "data.eval_conditions has unknown condition(s) "
                                               "['dusk']; valid: cityscapes, fog, night, rain, "
                                               "snow"),
    ('data.conditions=[fog,dusk]', "data.conditions has unknown condition(s) ['dusk']; the "
                                   "cityscapes_acdc data has fog, night, rain, snow"),
    ('data.train_weather=[foggy_night]', "data.train_weather has unknown condition(s) "
                                         "['foggy_night']")])
def test_real_acdc_keeps_its_four_conditions(override, message):
    cfg = domino_seg.compose(['data=cityscapes_acdc', 'model.pretrained=null', override])
    with pytest.raises(ConfigError) as error:
        domino_seg.to_mmengine(cfg)
    assert message in str(error.value)


def test_bad_generation_parameters_are_a_config_error_before_anything_is_written(tmp_path):
    data = domino_seg.compose(['+exp=synthetic_compose', f'paths.synthetic_compose={tmp_path}',
                               'data.generate.val_only=[hail]'] + TINY).data
    with pytest.raises(ConfigError, match=r"^data.generate: val_only \['hail'\] are not among "
                                          r"the conditions \['fog', 'night'"):
        ensure_synthetic(data)
    assert list(tmp_path.iterdir()) == []


def test_a_benchmark_without_adverse_conditions_evaluates_none():
    cfg = domino_seg.compose(['data.conditions=[]', 'data.eval_conditions=[cityscapes,fog]'])
    with pytest.raises(ConfigError, match=r"unknown condition\(s\) \['fog'\]; valid: "
                                          r'cityscapes \('):
        domino_seg.to_mmengine(cfg)


@pytest.mark.slow
def test_protocol_trains_and_scores_the_held_out_conditions_as_unseen(protocol,
                                                                      tiny_overrides_at,
                                                                      tmp_path, tool_main):
    exp, overrides, root = protocol
    trained, held_out = PROTOCOLS[exp]
    tiny = [o for o in tiny_overrides_at(root, tmp_path / 'work_dirs')
            if not o.startswith(('paths.synthetic=', 'data.generate.'))]
    result = tool_main('train.py', overrides + tiny + ['domino=head', 'domain=text'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Generating' not in result.stdout       # the fixture's benchmark, as it is
    metrics = json.loads((only_dir(tmp_path / 'work_dirs' / exp) / 'metrics.json').read_text())
    assert set(metrics['conditions']) == trained | held_out
    unseen = [metrics['conditions'][c]['mIoU'] for c in held_out]
    assert metrics['mean_unseen_mIoU'] == pytest.approx(np.mean(unseen))
