"""Corruption conditions: deterministic per image, stronger with severity, a condition of
their own in the evaluation, and clear errors for unknown names or severities."""
import numpy as np
import pytest

from domino_seg import build_dataset, compose
from domino_seg.data.corruptions import CORRUPTIONS, ImageCorruption, corruption_conditions
from domino_seg.errors import ConfigError


def _image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)


def _corrupt(name, severity, path='a/b.png', seed=0, image=None):
    image = _image() if image is None else image
    out = ImageCorruption(name, severity, seed)(dict(img=image.copy(), img_path=path,
                                                    rel_path=path))
    return out['img'], out['condition']


@pytest.mark.parametrize('name', CORRUPTIONS)
def test_every_corruption_runs_on_this_stack_and_repeats_exactly(name):
    first, condition = _corrupt(name, 2)
    again, _ = _corrupt(name, 2)
    assert condition == f'{name}@2'
    assert first.shape == _image().shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize('name', ['gaussian_noise', 'fog', 'snow', 'contrast', 'motion_blur'])
def test_severity_increases_the_pixel_change(name):
    change = [np.abs(_corrupt(name, s)[0].astype(int) - _image()).mean() for s in (1, 3, 5)]
    assert change[0] < change[1] < change[2], change


def test_the_draws_depend_on_the_image_path_and_seed_not_on_global_state():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = _corrupt('gaussian_noise', 3, 'x.png')[0]
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # restored
    np.random.seed(7)
    np.testing.assert_array_equal(a, _corrupt('gaussian_noise', 3, 'x.png')[0])
    assert not np.array_equal(a, _corrupt('gaussian_noise', 3, 'y.png')[0])
    assert not np.array_equal(a, _corrupt('gaussian_noise', 3, 'x.png', seed=1)[0])


@pytest.mark.parametrize('names, severities, message', [
    (['fogg'], [3], r"data.eval_corruptions: unknown \['fogg'\]; choose from gaussian_noise"),
    (['fog'], [6], r'data.corruption_severities=\[6\]: give severities in 1..5'),
    (['fog'], [], r'data.corruption_severities=\[\]'),
])
def test_bad_corruptions_are_config_errors(names, severities, message):
    with pytest.raises(ConfigError, match=message):
        corruption_conditions(names, severities)


def test_corruption_conditions_are_evaluated_as_conditions(tiny_overrides, tiny_benchmark):
    cfg = compose(tiny_overrides + ['data.eval_conditions=[cityscapes]',
                                    'data.eval_corruptions=[fog,contrast]',
                                    'data.corruption_severities=[1,5]'])
    dataset = build_dataset(cfg, 'test')
    conditions = [dataset[i]['data_samples'].condition for i in range(len(dataset))]
    assert conditions == ['cityscapes'] * 2 + [c for c in ('fog@1', 'fog@5', 'contrast@1',
                                                         'contrast@5') for _ in range(2)]
    clean = dataset[0]['inputs']
    corrupted = dataset[2 * 2]['inputs']  # fog@5 of the first image
    assert clean.shape == corrupted.shape and not bool((clean == corrupted).all())
    assert dataset[2]['data_samples'].img_path == dataset[0]['data_samples'].img_path


def test_without_pkg_resources_a_stand_in_finds_the_packaged_files(tmp_path):
    """Recent setuptools has no pkg_resources; frost reads its package's images through it."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['pkg_resources'] = None\n"
            "from domino_seg.compat import import_imagecorruptions\n"
            "import numpy as np\n"
            "out = import_imagecorruptions().corrupt(np.zeros((64, 64, 3), np.uint8), 1, 'frost')\n"
            "assert type(sys.modules['pkg_resources']).__name__ == 'module'\n"
            "print(out.shape, int(out.max()) > 0)\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '(64, 64, 3) True'


@pytest.mark.slow
def test_a_run_reports_corruption_conditions_in_metrics_json(tiny_overrides, tmp_path):
    import json

    from domino_seg.apis import run
    cfg = compose(tiny_overrides + ['schedule.max_iters=1', 'schedule.val_interval=1',
                                    'data.eval_conditions=[cityscapes]',
                                    'data.eval_corruptions=[brightness]',
                                    'data.corruption_severities=[2]',
                                    f'work_dir={tmp_path / "run"}'])
    run.train(cfg)
    report = json.loads((tmp_path / 'run' / 'metrics.json').read_text())
    assert list(report['conditions']) == ['cityscapes', 'brightness@2']
    assert report['conditions']['brightness@2']['num_images'] == 2
    assert report['mean_unseen_mIoU'] == report['conditions']['brightness@2']['mIoU']
