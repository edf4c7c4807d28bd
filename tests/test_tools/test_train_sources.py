"""tools/train.py on several labelled training sources and on the leave-one-out presets."""
import json

import pytest

from domino_seg.data.synthetic import generated_folder, write_benchmark

from .test_train_test import only_dir


@pytest.mark.slow
def test_three_sources_train_domain_aware(tiny_overrides, tiny_benchmark, tmp_path, tool_main):
    root = tmp_path / 'bench'
    write_benchmark(root, progress=False, num_train=4, num_val=2, height=64, width=128,
                    generated=('night',))
    overrides = [o for o in tiny_overrides if not o.startswith(('paths.synthetic', 'data.gen'))]
    sources = ('data.train_sources=[{kind:cityscapes,root:' + f'{root}/cityscapes' + '},'
               '{kind:acdc,root:' + f'{root}/acdc' + ',condition:fog,weight:1},'
               '{kind:generated,root:' + f'{generated_folder(root, "night")}' +
               ',condition:night,weight:1}]')
    sources = sources.replace('cityscapes},', 'cityscapes,weight:2},')
    result = tool_main('train.py', overrides + [
        f'paths.synthetic={root}', 'data.generate=null', sources, 'domino=head', 'domain=text',
        'data.eval_conditions=[cityscapes,fog,night,rain]'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((only_dir(tmp_path / 'work_dirs' / 'synthetic') /
                          'metrics.json').read_text())
    assert set(metrics['conditions']) == {'cityscapes', 'fog', 'night', 'rain'}
    # rain is the only condition no source trains on
    assert metrics['mean_unseen_mIoU'] == metrics['conditions']['rain']['mIoU']
    assert 'Final evaluation' in result.stdout and 'night (seen)' in result.stdout


@pytest.mark.slow
def test_a_leave_one_out_preset_runs(tiny_overrides, tmp_path, tool_main):
    """One preset end to end; each preset's held-out condition is the evaluator's only unseen
    one (test_sources.py::test_leave_one_out_presets_hold_out_one_condition)."""
    held_out = 'fog'
    result = tool_main('train.py', tiny_overrides + [f'+exp=synthetic_loo_{held_out}'],
                       tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((only_dir(tmp_path / 'work_dirs' / f'synthetic_loo_{held_out}') /
                          'metrics.json').read_text())
    assert metrics['mean_unseen_mIoU'] == metrics['conditions'][held_out]['mIoU']
    assert len(metrics['conditions']) == 5


@pytest.mark.slow
def test_acdc_leave_one_out_on_the_real_layouts(tiny_overrides, tiny_benchmark, tmp_path,
                                                tool_main):
    overrides = [o for o in tiny_overrides if not o.startswith(('paths.synthetic', 'data.gen'))]
    result = tool_main('train.py', overrides + [
        '+exp=acdc_loo_night', f'paths.cityscapes={tiny_benchmark}/cityscapes',
        f'paths.acdc={tiny_benchmark}/acdc', 'data.num_workers=0'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((only_dir(tmp_path / 'work_dirs' / 'acdc_loo_night') /
                          'metrics.json').read_text())
    assert metrics['mean_unseen_mIoU'] == metrics['conditions']['night']['mIoU']
