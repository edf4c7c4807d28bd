"""bench/gpu_check.py runs end to end on CPU (--dry-run), so it is known to work before a GPU
is lent; the numbers of a dry run mean nothing, their presence and consistency do."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench_script(name):
    """The module of ``bench/<name>.py``, to run its main in the test's process (a process of
    its own costs seconds of imports); the scripts' additions to sys.path are undone."""
    path = sys.path[:]
    sys.path.insert(0, str(ROOT / 'bench'))
    try:
        return __import__(name)
    finally:
        sys.path[:] = path


@pytest.mark.slow
def test_gpu_check_dry_run_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / 'check.json'
    bench_script('gpu_check').main(['--dry-run', '--out', str(out)])
    report = json.loads(out.read_text())
    assert report['dry_run'] is True
    for model in ('clip_vit_b16_upernet', 'dinov2_vitb14_upernet'):
        train = report[model]['train']
        assert set(train['step_ms']) == {'none/fp32', 'none/bf16', 'full/fp32', 'full/bf16'}
        assert all(math.isfinite(v) and v > 0 for v in train['step_ms'].values())
        steps = train['step_ms']
        assert train['domino_over_baseline']['fp32'] == pytest.approx(
            steps['full/fp32'] / steps['none/fp32'])
        assert train['bf16_speedup']['domino'] == pytest.approx(
            steps['full/fp32'] / steps['full/bf16'])
        assert report[model]['inference']['whole_ms'] > 0
        assert report[model]['inference']['slide_ms'] > 0
    assert set(report['modulation']) == {'float32 contiguous', 'float32 channels_last',
                                         'bfloat16 contiguous', 'bfloat16 channels_last',
                                         'batch_norm float32 contiguous',
                                         'batch_norm float32 channels_last'}
    assert all(check['ok'] for check in report['modulation'].values())
    assert report['clip']['images_per_s'] > 0 and report['clip']['images'] == 4
    training = report['training']
    assert training['ok'] and training['last_loss'] < training['first_loss']
    assert training['iterations'] == 6
    stdout = capsys.readouterr().out
    assert json.loads(stdout[stdout.index('{'):]) == report


def test_gpu_check_without_a_gpu_says_how_to_run_it():
    result = subprocess.run([sys.executable, 'bench/gpu_check.py'], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={'CUDA_VISIBLE_DEVICES': '', 'PATH': '/usr/bin:/bin',
                                 'HOME': str(Path.home())})
    assert result.returncode != 0
    assert 'no GPU here: run on a GPU, or with --dry-run' in result.stderr


def test_embed_throughput_runs_both_sides_on_the_same_images(capsys):
    """bench/embed_throughput.py on a tiny CLIP: both sides embed every image (the script
    checks it) and the speedup is their ratio."""
    report = bench_script('embed_throughput').main([
        '--images', '4', '--height', '32', '--width', '64', '--batch-size', '2',
        '--workers', '1', '--arch', 'domino-tiny-clip'])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report
    before, after = report['before'], report['after']
    assert (before['batch_size'], after['batch_size'], after['workers']) == (1, 2, 1)
    assert report['speedup'] == pytest.approx(after['images_per_s'] / before['images_per_s'])


def test_weather_relation_weights_recover_a_known_mixture():
    """The composition weights are least squares over the parts' shifts: a shift built as
    0.3 a + 0.6 b gives back (0.3, 0.6), and the correlation compares the two spaces."""
    relation = bench_script('weather_relation')
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=10), rng.normal(size=10)
    assert relation.weights(0.3 * a + 0.6 * b, [a, b]) == pytest.approx([0.3, 0.6])
    shifts = {name: rng.normal(size=10) for name in relation.PRESETS}
    result = relation.relation(shifts, shifts)   # the same shifts in both spaces
    assert result['pearson'] == pytest.approx(1.0)
    assert all(row['max_gap'] == 0 for row in result['compositions'])
    assert result['within_0_2'] == result['compositions_total'] == len(relation.PARTS) + 1


@pytest.mark.slow
def test_weather_relation_prints_its_tables_and_json(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['weather_relation.py', '--scenes', '2', '--size', '64',
                                      '128'])
    bench_script('weather_relation').main()
    stdout = capsys.readouterr().out
    report = json.loads(stdout.strip().splitlines()[-1])
    assert {row['condition'] for row in report['compositions']} >= {'foggy_night', 'rainy_dusk'}
    assert len(report['pairs']) == 10 and 'Pearson' in stdout


@pytest.mark.slow
def test_framework_overhead_quick_reports_every_side(capsys):
    """bench/framework_overhead.py --quick trains all four sides and prints one JSON line
    with their ratios, timings, start-up and memory (values not asserted: noisy). Its main
    runs here: each side has its own process anyway."""
    report = bench_script('framework_overhead').main(['--quick'])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report
    for key in ('iter_ratio', 'head_ratio', 'full_ratio'):
        assert math.isfinite(report[key]) and report[key] > 0
    for key in ('iter_ms', 'data_ms', 'startup_s', 'peak_rss_mb'):
        assert set(report[key]) == {'none', 'head', 'full', 'stock'}
        assert all(v > 0 for v in report[key].values())
    assert set(report['data_ratio']) == {'none', 'head', 'full'}


@pytest.mark.slow
def test_domino_overhead_times_both_embedding_modes_in_one_run():
    """bench/domino_overhead.py builds its SegFormer-B0-sized model whatever the default model
    group is, and times baseline, Domino with each sample's embedding (image modes, warm
    cache) and Domino in text mode (labels looked up in the bank) side by side."""
    sys.path.insert(0, str(ROOT / 'bench'))
    try:
        import domino_overhead as bench
    finally:
        sys.path.remove(str(ROOT / 'bench'))
    report = bench.main(['--steps', '1', '--warmup', '0', '--height', '32', '--width', '64',
                         '--threads', '1', '--skip-cache',
                         '--override', 'domain.clip.arch=domino-tiny-clip'])
    for key in ('train_ratio', 'text_train_ratio', 'infer_ratio'):
        assert math.isfinite(report[key]) and report[key] > 0
    assert set(report['train_ms']) == {'baseline', 'domino', 'text'}
    assert set(report['passed']) == {'train_ratio', 'text_train_ratio', 'infer_ratio',
                                     'params_added_pct'}
    assert report['cache_speedup'] is None  # --skip-cache


def test_domino_layer_times_the_three_sides_of_each_shape(capsys):
    """bench/domino_layer.py times BatchNorm2d, Domino as one function and Domino in two steps
    on every map it is given, in both layouts, and prints one JSON line with their ratios."""
    report = bench_script('domino_layer').main(
        ['--steps', '2', '--warmup', '1', '--threads', '1', '--shape', '2x8x4x6:channels_last',
         '--shape', '3x4x5x5'])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report
    assert set(report['shapes']) == {'2x8x4x6:channels_last', '3x4x5x5:contiguous'}
    for result in report['shapes'].values():
        assert set(result['ms']) == {'batch_norm', 'domino', 'two_steps'}
        assert result['grad_fn'] == dict(batch_norm='NativeBatchNormBackward0',
                                         domino='ModulatedBatchNormBackward',
                                         two_steps='PerSampleAffineBackward')
        assert result['ratio']['batch_norm'] == 1
        for name, value in result['ratio'].items():
            assert value == pytest.approx(result['ms'][name] / result['ms']['batch_norm'])


@pytest.mark.parametrize('shape', ['2x3', '2x0x4x4', '2x8x4x4:nhwc'])
def test_domino_layer_refuses_a_malformed_shape(shape, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_script('domino_layer').main(['--shape', shape])
    assert exit_info.value.code == 2
    assert 'give NxCxHxW[:layout]' in capsys.readouterr().err
