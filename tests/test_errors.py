"""The bad-input catalogue: each mistake gives one paragraph naming the file or key and the
fix, exit status 2 and no traceback, through the real entry points (``tools/*.py`` in a
subprocess where Hydra itself is involved, ``run_cli(train/test)`` in-process otherwise)."""
import errno
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import domino_seg
from domino_seg.apis import run
from domino_seg.errors import ConfigError


def first(root, pattern):
    return sorted(root.glob(pattern))[0]


def test_missing_data_root(overrides, tmp_path, fails):
    overrides = [o for o in overrides if not o.startswith('data.generate')]
    cfg = domino_seg.compose(overrides + ['+exp=acdc_fog', f'paths.cityscapes={tmp_path}/none'])
    err = fails(lambda: run.train(cfg))
    assert f"Cityscapes root '{tmp_path}/none' does not exist" in err
    assert 'paths.cityscapes=' in err and 'cityscapes-dataset.com' in err


def test_empty_split(bench, fails):
    root, overrides = bench
    for png in (root / 'acdc' / 'rgb_anon' / 'fog' / 'val').rglob('*.png'):
        png.unlink()
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    assert 'the ACDC fog val split is empty: no *_rgb_anon.png under' in err
    assert 'paths.acdc=' in err


@pytest.mark.parametrize('kind', ['image', 'label'])
def test_truncated_image_or_label(bench, fails, kind):
    root, overrides = bench
    folder = 'leftImg8bit' if kind == 'image' else 'gtFine'
    for path in (root / 'cityscapes' / folder / 'train').rglob('*.png'):
        path.write_bytes(path.read_bytes()[:200])  # every one: the sampler order is random
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    assert f'{kind} file {root}/cityscapes/{folder}/train/' in err
    assert 'is truncated' in err or 'cannot be read' in err
    assert 'Copy it again from the original dataset' in err


@pytest.mark.parametrize('workers', [0, 1])  # a worker's error comes back without its traceback
def test_label_ids_outside_train_ids(bench, fails, workers):
    root, overrides = bench
    for path in (root / 'cityscapes' / 'gtFine' / 'train').rglob('*.png'):
        label = np.array(Image.open(path))
        label[0, 0] = 33  # a Cityscapes labelId, not a trainId
        Image.fromarray(label).save(path)
    cfg = domino_seg.compose(overrides + [f'data.num_workers={workers}'])
    err = fails(lambda: run.train(cfg))
    assert 'holds ids [33] outside 0..18 and 255' in err and 'createTrainIdLabelImgs' in err
    assert 'Original Traceback' not in err


@pytest.mark.slow
def test_label_of_another_size_than_its_image(bench, fails):
    root, overrides = bench
    for path in (root / 'cityscapes' / 'gtFine' / 'train').rglob('*.png'):
        Image.fromarray(np.array(Image.open(path))[:32]).save(path)
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    assert 'is 128x32 but its image' in err and 'is 128x64 (WxH)' in err


def test_unknown_acdc_condition(overrides, fails):
    cfg = domino_seg.compose(overrides + ['data.eval_conditions=[cityscapes,fgo]'])
    err = fails(lambda: run.train(cfg))
    assert "data.eval_conditions has unknown condition(s) ['fgo']" in err
    assert 'valid: cityscapes, fog, night, rain, snow' in err


def test_a_repeated_condition_is_refused_when_composed():
    with pytest.raises(ConfigError) as err:
        domino_seg.compose(['data.eval_conditions=[cityscapes,fog,fog]'])
    assert str(err.value) == (
        'data.eval_conditions=["cityscapes", "fog", "fog"] is not valid ("fog" is listed '
        'twice): data.eval_conditions takes a list of distinct conditions (other datasets: '
        'data.eval_sets).')


def test_misspelled_config_key_lists_the_valid_ones(tmp_path, tool_fails):
    err = tool_fails('train.py', ['schedule.max_iter=5'], tmp_path)
    assert "Could not override 'schedule.max_iter'" in err
    assert 'Valid keys here: name, max_iters, val_interval' in err
    assert 'Did you mean schedule.max_iters?' in err


def test_value_of_the_wrong_type_names_the_key_and_its_default(tmp_path, tool_fails):
    err = tool_fails('train.py', ['schedule.max_iters=abc'], tmp_path)
    assert "schedule.max_iters=abc: schedule.max_iters takes an integer, got 'abc'." in err


@pytest.mark.parametrize('override,message', [
    ('deterministic=1', 'deterministic=1: deterministic takes true or false, got 1.'),
    ('data.crop_size=64', 'data.crop_size=64: data.crop_size takes a list [a,b,...] of integers, '
                          'got 64.'),
    ('data.crop_size=[64,"128"]', 'data.crop_size takes a list [a,b,...] of integers, got '
                                  "[64, '128']."),
    ('schedule.batch_size=2.5', 'schedule.batch_size takes an integer'),
    ('schedule.max_iters="5"', "schedule.max_iters takes an integer, got '5'."),
    ('schedule.max_iters=null', 'schedule.max_iters takes an integer, got None.'),
    ('data.generate=5', 'data.generate=5: data.generate takes a dict {key: value, ...}, got 5.'),
])
def test_values_keep_their_default_type(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        domino_seg.compose([override])


def test_well_typed_values_and_new_keys_pass():
    cfg = domino_seg.compose(['domain=zero_shot', 'domain.temperature=1', 'seed=3',
                              'data.crop_size=[64,128]',
                              '+model.segmentor.backbone.with_cp=false'])
    assert (cfg.domain.temperature, cfg.seed) == (1, 3)
    assert cfg.model.segmentor.backbone.with_cp is False  # a new mmseg argument


@pytest.mark.parametrize('override,message', [
    ('+schedule.max_iter=20', 'Did you mean schedule.max_iters (without +)?'),
    ('+seeds=3', 'Did you mean seed (without +)?'),
    ('+model.extra=abc', 'Valid keys here: name, pretrained, segmentor, optimizer'),
    ('+data.train_weather_probability=0.2', 'Did you mean data.train_weather_prob'),
])
def test_new_keys_outside_the_mmseg_dicts_are_errors(override, message):
    with pytest.raises(ConfigError) as err:
        domino_seg.compose([override])
    assert 'nothing would read it' in str(err.value) and message in str(err.value)


def test_a_misspelled_new_key_stops_the_tool(tmp_path, tool_fails):
    err = tool_fails('train.py', ['+schedule.max_iter=20'], tmp_path)
    assert 'schedule.max_iter is not a key' in err and 'schedule.max_iters' in err
    assert not (tmp_path / 'work_dirs').exists()


def test_unknown_group_option_lists_the_valid_ones(tmp_path, tool_fails):
    err = tool_fails('test.py', ['checkpoint=x.pth', 'domino=haed'], tmp_path)
    assert "error: domino=haed: the config group domino has no option 'haed' (no " \
           'configs/domino/haed.yaml). Did you mean domino=head? Options of domino: backbone, ' \
           'full, head, none, style.' in err
    assert '_base' not in err


@pytest.mark.parametrize('argv,message', [
    (['schedule=gpu40k'], "schedule=gpu40k: the config group schedule has no option 'gpu40k' "
                          '(no configs/schedule/gpu40k.yaml). Did you mean schedule=gpu_40k? '
                          'Options of schedule: cpu_quick, gpu_40k.'),
    (['seed=1', '+exp=acdc_fgo'], "+exp=acdc_fgo: the config group exp has no option "
                                  "'acdc_fgo'"),
    (['+exp=acdc_fgo'], 'Did you mean +exp=acdc_fog? Options of exp: acdc_all, acdc_fog,'),
    (['--cfg', 'job', 'schedule=zzz'], "schedule=zzz: the config group schedule has no option "
                                       "'zzz' (no configs/schedule/zzz.yaml). Options of "
                                       'schedule: cpu_quick, gpu_40k.'),
])
def test_group_option_typo_names_the_closest_option(monkeypatch, argv, message):
    """(Hydra's MissingConfigException gives the group/option and the options.)"""
    monkeypatch.setattr('sys.argv', ['tools/train.py', *argv])
    group, option = argv[-1].lstrip('+').split('=')
    options = [p.stem for p in (domino_seg.config_files.CONFIG_DIR / group).glob('*.yaml')]
    assert message in run._option_message(f'{group}/{option}', options + ['_base'])


def test_required_value_not_given(tmp_path, tool_fails):
    """(OmegaConf said: Missing mandatory value: checkpoint full_key: checkpoint ...)"""
    err = tool_fails('test.py', [f'paths.work_dirs={tmp_path}/runs'], tmp_path)
    assert err.strip() == (
        'error: checkpoint is not set, and tools/test.py needs it: checkpoint= the checkpoint '
        'to evaluate: a .pth written by tools/train.py, or the run folder holding it (its newest '
        'iter_N.pth), e.g. work_dirs/synthetic/<run>/iter_600.pth or work_dirs/synthetic/<run>. '
        'Give it on the command line: python tools/test.py checkpoint=PATH [the same overrides '
        'as training]')
    assert not (tmp_path / 'runs').exists()


def test_required_value_not_given_to_cfg_mmengine(capsys):
    with pytest.raises(SystemExit):
        run.run_cli(lambda: run.print_mmengine_config('test', []))
    assert capsys.readouterr().err.startswith('\nerror: checkpoint is not set, and tools/test.py '
                                              'needs it: checkpoint= the checkpoint to evaluate')


def test_two_required_values_not_given():
    from domino_seg.tool_help import missing_values
    text = missing_values('infer', ['checkpoint', 'input'])
    assert text.startswith('checkpoint and input are not set, and tools/infer.py needs them: '
                           'checkpoint= the checkpoint to run')
    assert '; input= an image, a video' in text
    assert text.endswith('Give them on the command line: python tools/infer.py checkpoint=PATH '
                         'input=<image | folder | glob | video> [out=DIR]')


def test_checkpoint_may_be_a_run_folder(tmp_path, capsys):
    """tools/test.py checkpoint=<run folder>: its newest iter_N.pth (as resume= takes), said."""
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    for name in ('iter_2.pth', 'iter_10.pth', 'iter_9.pth', 'last_checkpoint'):
        (run_dir / name).write_text('')
    assert run.checkpoint_file(str(run_dir)) == str(run_dir / 'iter_10.pth')
    assert capsys.readouterr().out == (f'checkpoint={run_dir}: a run folder; using its newest '
                                       f'checkpoint {run_dir}/iter_10.pth\n')
    assert run.checkpoint_file(str(run_dir / 'iter_2.pth')) == str(run_dir / 'iter_2.pth')
    assert run.checkpoint_file('missing.pth') == 'missing.pth'  # test() says it is no file


def test_run_folder_gives_the_recorded_model(tmp_path, capsys):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / 'iter_4.pth').write_text('')
    OmegaConf.save(domino_seg.compose(['domino=head', 'domain=zero_shot']),
                   run_dir / 'config.yaml')
    cfg = domino_seg.compose([f'checkpoint={run_dir}'], config_name='test')
    merged = run.with_checkpoint_model(cfg, [f'checkpoint={run_dir}'])
    assert merged.checkpoint == str(run_dir / 'iter_4.pth') and merged.domino.scope == 'head'
    assert f'as recorded in {run_dir}/config.yaml' in capsys.readouterr().out


def test_run_folder_without_a_checkpoint(tmp_path, fails):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    for name in ('config.yaml', 'train.log'):
        (run_dir / name).write_text('')
    err = fails(lambda: run.checkpoint_file(str(run_dir)))
    assert f"error: checkpoint='{run_dir}' is a folder without a checkpoint (iter_N.pth); it " \
           'holds config.yaml, train.log. Pass checkpoint=<run folder>/iter_N.pth, or the work ' \
           'dir of a run that saved one' in err
    assert sorted(p.name for p in run_dir.iterdir()) == ['config.yaml', 'train.log']


@pytest.mark.parametrize('argv,message', [
    (['--max_iters', '20'], '--max_iters 20: did you mean schedule.max_iters=20? The tools take '
                            "key=value overrides, not --flags (only Hydra's own, e.g. --help, "
                            '--cfg job, --multirun): python tools/train.py schedule.max_iters=20. '
                            'python tools/train.py --help lists the keys.'),
    (['seed=1', '--max-iters=20', '--verbose', 'domain=text'],
     '--max-iters=20: did you mean schedule.max_iters=20? --verbose: did you mean verbose=true? '
     'The tools take key=value overrides, not --flags (only Hydra\'s own, e.g. --help, --cfg '
     'job, --multirun): python tools/train.py seed=1 schedule.max_iters=20 verbose=true '
     'domain=text.'),
    (['--domino', 'head'], '--domino head: did you mean domino=head?'),
    (['--lr', '1e-4'], '--lr 1e-4: did you mean model.optimizer.lr=1e-4?'),
    (['--batch_size', '4'], '--batch_size 4: did you mean schedule.batch_size=4?'),
    (['--max_iter', '5'], '--max_iter 5: did you mean schedule.max_iters=5?'),
    (['--zzz', '1'], '--zzz 1: no key of this tool has that name. The tools take key=value '
                     "overrides, not --flags (only Hydra's own, e.g. --help, --cfg job, "
                     '--multirun). python tools/train.py --help lists the keys.'),
])
def test_flags_are_mapped_to_overrides(argv, message):
    from domino_seg.tool_help import flag_error
    assert message in flag_error(argv, 'train')


@pytest.mark.parametrize('argv', [['seed=1'], ['--help'], ['--cfg', 'job', 'seed=1'],
                                  ['--multirun', 'seed=1,2'], ['-m', 'seed=1,2'], ['--hydra-h']])
def test_hydra_flags_are_left_to_hydra(argv):
    from domino_seg.tool_help import flag_error
    assert flag_error(argv, 'train') is None


def test_a_flag_stops_the_tool_with_the_override_it_meant(tmp_path, tool_fails):
    err = tool_fails('train.py', ['--max_iters', '20'], tmp_path)
    assert 'error: --max_iters 20: did you mean schedule.max_iters=20?' in err
    assert 'unrecognized arguments' not in err and 'usage:' not in err


def test_a_flag_maps_to_the_tools_own_key_first():
    from domino_seg.tool_help import flag_error
    assert '--batch_size=2: did you mean batch_size=2?' in flag_error(['--batch_size=2'], 'infer')


def test_work_dir_not_writable(tmp_path, tool_fails):
    (tmp_path / 'a_file').write_text('')
    err = tool_fails('train.py', [f'paths.work_dirs={tmp_path}/a_file/runs'], tmp_path)
    assert f"'{tmp_path}/a_file' is not a writable folder" in err
    assert 'paths.work_dirs=' in err


def test_checkpoint_of_another_number_of_classes(overrides, tmp_path, fails):
    other = domino_seg.build_segmentor(domino_seg.compose(overrides + ['data.num_classes=5']))
    path = tmp_path / 'five_classes.pth'
    torch.save({'state_dict': other.state_dict()}, path)
    cfg = domino_seg.compose(overrides + [f'checkpoint={path}'], config_name='test')
    err = fails(lambda: run.test(cfg))
    assert f'checkpoint {path} does not fit the configured model: shape mismatch' in err
    assert 'decode_head.conv_seg.weight: checkpoint (5, 128, 1, 1), model (19, 128, 1, 1)' in err


def test_checkpoint_of_another_architecture(overrides, tmp_path, fails):
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.stem.weight': torch.zeros(1)}}, path)
    cfg = domino_seg.compose(overrides + [f'load_from={path}'])
    err = fails(lambda: run.train(cfg))
    assert "keys the model lacks (1): backbone.stem.weight" in err
    assert 'model keys missing' in err and 'config.yaml' in err


@pytest.mark.slow
def test_truncated_or_missing_checkpoint(overrides, tmp_path, fails):
    path = tmp_path / 'half.pth'
    model = domino_seg.build_segmentor(domino_seg.compose(overrides))
    torch.save({'state_dict': model.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:1000])
    err = fails(lambda: run.train(domino_seg.compose(overrides + [f'load_from={path}'])))
    assert f'checkpoint {path} cannot be read' in err and 'truncated' in err
    err = fails(lambda: run.train(domino_seg.compose(overrides + ['load_from=missing.pth'])))
    assert 'checkpoint missing.pth is not a file' in err


def test_nothing_to_resume(overrides, tmp_path, fails):
    overrides = [o for o in overrides if not o.startswith('work_dir=')]
    err = fails(lambda: run.train(domino_seg.compose(overrides + ['resume=true'])))
    assert 'resume=true found no run with a checkpoint (iter_N.pth) under' in err
    assert str(tmp_path / 'work_dirs' / 'synthetic') in err


def test_clip_weights_missing_offline(overrides, fails):
    cfg = domino_seg.compose(overrides + ['domino=head', 'domain=zero_shot',
                                          'domain/clip=vit_b16_openai'])
    err = fails(lambda: run.train(cfg))
    assert "pretrained='openai'" in err and 'domain.clip.pretrained=' in err


def test_backbone_weights_missing_offline(overrides, tmp_path, fails):
    cfg_overrides = overrides + [f'model.pretrained={tmp_path}/mit_b0.pth']
    err = fails(lambda: run.train(domino_seg.compose(cfg_overrides)))
    assert f'{tmp_path}/mit_b0.pth' in err and 'model.pretrained' in err


@pytest.mark.slow
def test_disk_full_while_saving_keeps_the_previous_checkpoint(overrides, tmp_path, fails,
                                                              monkeypatch):
    from mmengine.fileio.backends import LocalBackend
    from mmengine.runner.checkpoint import _load_checkpoint

    from domino_seg.compat import trusted_checkpoint_loading
    put = LocalBackend.put

    def disk_full_at_iter_2(self, obj, filepath):
        if 'iter_2' in str(filepath):
            Path(filepath).write_bytes(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, 'No space left on device', str(filepath))
        put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', disk_full_at_iter_2)
    run_dir = tmp_path / 'run'
    cfg = domino_seg.compose(overrides + ['schedule.max_iters=2', 'schedule.val_interval=1',
                                          'data.eval_conditions=[cityscapes,fog]'])
    err = fails(lambda: run.train(cfg))
    assert f'could not write checkpoint {run_dir}/iter_2.pth: the disk is full' in err
    assert f'the last complete checkpoint is {run_dir}/iter_1.pth' in err
    saved = sorted(p.name for p in run_dir.iterdir() if p.suffix in ('.pth', '.tmp'))
    assert saved == ['iter_1.pth']  # no partial iter_2.pth, no temporary file left
    assert (run_dir / 'last_checkpoint').read_text() == str(run_dir / 'iter_1.pth')
    with trusted_checkpoint_loading():
        assert _load_checkpoint(str(run_dir / 'iter_1.pth'))['meta']['iter'] == 1


@pytest.mark.parametrize('overrides', [
    ['schedule.max_iters=abc'],                                   # a value of the wrong type
    ['schedule.max_iters=0'],                                     # out of range
    ['model=clip_vit_b16_upernet'],                               # weights not on this machine
])
def test_a_failed_start_leaves_no_run_folder(tmp_path, tool_fails, overrides):
    tool_fails('train.py', overrides + [f'paths.work_dirs={tmp_path / "runs"}'], tmp_path)
    assert not (tmp_path / 'runs').exists()
