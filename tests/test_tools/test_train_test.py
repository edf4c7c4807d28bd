"""CPU smoke run of the real tools: train -> test -> saved predictions scored independently."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def run_tool(tool, overrides, cwd, timeout=600):
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, str(ROOT / 'tools' / tool), *overrides], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def printed_json(stdout):
    return json.JSONDecoder().raw_decode(stdout[stdout.index('{\n  "mode"'):])[0]


def only_dir(pattern_root):
    dirs = [p for p in pattern_root.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def score(pred_root, label_root, num_classes=19):
    """mIoU from saved trainId PNGs (``<stem>_labelTrainIds.png``, beside ACDC's
    ``<stem>_gt_labelTrainIds.png`` or Cityscapes' ``<stem>_gtFine_labelTrainIds.png``),
    independent of domino-seg's metric code."""
    conf = np.zeros((num_classes, num_classes), np.int64)
    preds = sorted(pred_root.rglob('*.png'))
    assert preds and all(p.name.endswith('_labelTrainIds.png') for p in preds), preds
    for pred_path in preds:
        rel = pred_path.relative_to(pred_root)
        label_path = label_root / rel.parent / rel.name.replace('_labelTrainIds',
                                                                 '_gt_labelTrainIds')
        if not label_path.exists():
            label_path = label_root / rel.parent / rel.name.replace('_labelTrainIds',
                                                                     '_gtFine_labelTrainIds')
        pred, label = np.array(Image.open(pred_path)), np.array(Image.open(label_path))
        keep = label != 255
        conf += np.bincount(label[keep].astype(np.int64) * num_classes + pred[keep],
                            minlength=num_classes ** 2).reshape(num_classes, num_classes)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    return np.mean(inter[union > 0] / union[union > 0]) * 100


def assert_mmengine_config_rebuilds_the_run(work_dir):
    """``mmengine_config.py`` (the only config file mmengine-side) reloads with mmengine's
    Config.fromfile and rebuilds a model the run's checkpoint fits and the run's datasets."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DATASETS
    from mmseg.registry import MODELS
    assert sorted(p.name for p in work_dir.glob('*.py')) == ['mmengine_config.py']
    cfg = Config.fromfile(str(work_dir / 'mmengine_config.py'))
    model = MODELS.build(cfg.model)
    weights = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                         weights_only=False)['state_dict']
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in weights.items()}
    assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 4  # the tiny train split
    assert len(DATASETS.build(cfg.val_dataloader.dataset)) == 10  # 2 per condition


@pytest.mark.slow
def test_train_then_test_reproduces_metrics_and_predictions(
        trained_run, tiny_overrides, tiny_benchmark, tmp_path, tool_main):
    work_dir, output = trained_run()
    trained = json.loads((work_dir / 'metrics.json').read_text())
    assert list(trained['conditions']) == ['cityscapes', 'fog', 'night', 'rain', 'snow']
    assert all(row['num_images'] == 2 for row in trained['conditions'].values())
    assert (work_dir / 'config.yaml').exists() and (work_dir / 'iter_2.pth').exists()
    assert 'mean (unseen)' in output
    # the per-class table of 5 conditions, wrapped to fit a terminal
    assert max(len(line) for line in output.splitlines() if line.startswith('|')) <= 100
    assert trained['checkpoint'] == str(work_dir / 'iter_2.pth')
    import torch
    weights = torch.load(work_dir / 'iter_2.pth', map_location='cpu', weights_only=False)
    assert trained['model']['params'] == sum(v.numel() for k, v in weights['state_dict'].items()
                                             if 'running_' not in k and 'num_batches' not in k)
    assert trained['inference']['images'] == 10 and trained['inference']['device'] == 'cpu'
    assert trained['inference']['ms_per_image'] > 0
    assert_mmengine_config_rebuilds_the_run(work_dir)

    test = tool_main('test.py', tiny_overrides + [f'checkpoint={work_dir / "iter_2.pth"}',
                                                  'save_predictions=true',
                                                  'schedule.test_batch_size=1'], tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    test_dir = only_dir(tmp_path / 'work_dirs' / 'test' / 'synthetic')
    assert 'Loads checkpoint by' not in test.stdout + test.stderr  # mmengine's, file only
    assert 'Loads checkpoint by local backend' in next(test_dir.glob('*/*.log')).read_text()
    tested = json.loads((test_dir / 'metrics.json').read_text())
    assert (test_dir / 'mmengine_config.py').is_file()
    for condition, row in trained['conditions'].items():
        assert tested['conditions'][condition]['mIoU'] == pytest.approx(row['mIoU'], abs=1e-9)
        assert tested['conditions'][condition]['aAcc'] == pytest.approx(row['aAcc'], abs=1e-9)
    assert tested['mean_unseen_mIoU'] == pytest.approx(trained['mean_unseen_mIoU'], abs=1e-9)

    predictions = test_dir / 'predictions'
    assert f'predictions: {predictions} (10 *_labelTrainIds.png)' in test.stdout
    assert score(predictions / 'cityscapes', tiny_benchmark / 'cityscapes' / 'gtFine' / 'val') \
        == pytest.approx(tested['conditions']['cityscapes']['mIoU'], abs=1e-4)
    for condition in ('fog', 'night', 'rain', 'snow'):
        labels = tiny_benchmark / 'acdc' / 'gt' / condition / 'val'
        assert score(predictions / condition, labels) == pytest.approx(
            tested['conditions'][condition]['mIoU'], abs=1e-4)


def test_missing_data_root_fails_clearly(tmp_path, tool_main):
    result = tool_main('train.py', ['+exp=acdc_fog', f'paths.cityscapes={tmp_path / "none"}',
                                    f'paths.work_dirs={tmp_path / "wd"}'], tmp_path)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert 'Cityscapes root' in result.stderr and 'paths.cityscapes' in result.stderr
    assert 'cityscapes-dataset.com' in result.stderr


# the shared trained_run of a Domino model (test.py and infer.py read it)
TEXT_FOG = ('domino=head', 'domain=text', 'data.train_weather=[fog]', 'domain.cache_dir=null')


def assert_domain_without_language_meaning(metrics, output, mode):
    assert metrics['domain']['mode'] == mode
    assert metrics['domain']['has_language_meaning'] is False  # tiny CLIP, random weights
    assert 'no language meaning' in output


@pytest.mark.slow
def test_domino_text_training_runs(trained_run):
    run, output = trained_run(*TEXT_FOG)
    metrics = json.loads((run / 'metrics.json').read_text())
    assert_domain_without_language_meaning(metrics, output, 'text')


@pytest.mark.slow
def test_acdc_experiment_on_a_generated_layout(tiny_overrides, tiny_benchmark, tmp_path, tool_main):
    """+exp=acdc_fog on the real Cityscapes/ACDC layouts, with Domino and domain=zero_shot."""
    overrides = [o for o in tiny_overrides if not o.startswith(('paths.synthetic', 'data.gen'))]
    result = tool_main('train.py', overrides + [
        '+exp=acdc_fog', f'paths.cityscapes={tiny_benchmark / "cityscapes"}',
        f'paths.acdc={tiny_benchmark / "acdc"}', 'domino=head', 'domain=zero_shot',
        f'domain.cache_dir={tmp_path / "cache"}'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((only_dir(tmp_path / 'work_dirs' / 'acdc_fog') /
                          'metrics.json').read_text())
    assert list(metrics['conditions']) == ['cityscapes', 'fog']
    assert metrics['mean_unseen_mIoU'] == metrics['conditions']['fog']['mIoU']
    assert_domain_without_language_meaning(metrics, result.stdout + result.stderr, 'zero_shot')


@pytest.mark.slow
def test_embed_domains_fills_the_cache(tiny_overrides, tmp_path, tool_main):
    cache = tmp_path / 'cache'
    overrides = tiny_overrides + ['domain=zero_shot', f'domain.cache_dir={cache}']
    first = tool_main('embed_domains.py', overrides, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    stats = printed_json(first.stdout)
    images = 4 + 2 * 5  # train + val of five conditions
    assert stats['computed'] == images and stats['hits'] == 0
    assert len(list(cache.rglob('*.npy'))) == images
    again = tool_main('embed_domains.py', overrides, tmp_path)
    stats = printed_json(again.stdout)
    assert stats['computed'] == 0 and stats['hits'] == images


def test_missing_clip_weights_fail_with_instructions(tiny_overrides, tmp_path, tool_main):
    result = tool_main('train.py', tiny_overrides + ['domino=head', 'domain=zero_shot',
                                                     'domain/clip=vit_b16_openai'], tmp_path)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert "pretrained='openai'" in result.stderr and 'domain.clip.pretrained=' in result.stderr


def test_cfg_mmengine_prints_the_runtime_config_and_runs_nothing(tiny_overrides, tmp_path,
                                                                 tool_main):
    from mmengine.config import Config
    result = tool_main('train.py', tiny_overrides + ['domino=head', 'domain=text', '--cfg',
                                                     'mmengine'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (tmp_path / 'printed.py').write_text(result.stdout)
    cfg = Config.fromfile(str(tmp_path / 'printed.py'))
    assert cfg.model.type == 'DomainAwareEncoderDecoder'
    assert cfg.train_cfg.max_iters == 2 and cfg.val_evaluator[0].type == 'ConditionIoUMetric'
    assert not (tmp_path / 'work_dirs').exists()  # nothing ran, nothing was written
