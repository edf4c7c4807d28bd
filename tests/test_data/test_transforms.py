"""Training-time weather augmentation in the data pipeline."""
import cv2
import numpy as np
import pytest

import domino_seg
from domino_seg.data.cityscapes import DominoCityscapesDataset
from domino_seg.data.synthetic import read_cityscapes_depth
from domino_seg.data.transforms import SyntheticWeather, ground_plane_depth
from domino_seg.errors import ConfigError


def test_ground_plane_depth_grows_toward_the_horizon():
    depth = ground_plane_depth(40, 8)
    column = depth[:, 3]
    below = column[int(0.45 * 40) + 1:]
    assert np.all(np.diff(below) < 0)  # nearer rows (further down) are closer
    assert column[0] == column.max()


def test_weather_relabels_condition_and_uses_disparity(tiny_benchmark):
    ds = DominoCityscapesDataset(
        data_root=str(tiny_benchmark / 'cityscapes'), split='train',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='SyntheticWeather', conditions=['fog'], prob=1.0)])
    info = ds.get_data_info(0)
    assert info['disparity_path'].endswith('_disparity.png')
    np.random.seed(0)
    sample = ds[0]
    assert sample['condition'] == 'fog'
    original = cv2.imread(info['img_path'])
    assert sample['img'].shape == original.shape and sample['img'].dtype == np.uint8
    # fog (from the disparity's depth) washes far pixels out far more than near ones
    depth = read_cityscapes_depth(info['disparity_path'])
    change = np.abs(sample['img'].astype(float) - original).mean(-1)
    far, near = depth > np.percentile(depth, 80), depth < np.percentile(depth, 20)
    assert sample['img'][far].std() < original[far].std()
    assert change[far].mean() > change[near].mean()


def test_weather_probability_zero_keeps_the_sample():
    results = dict(img=np.zeros((4, 4, 3), np.uint8), condition='cityscapes')
    assert SyntheticWeather(['night'], prob=0.0)(dict(results))['condition'] == 'cityscapes'


def test_weather_augmentation_renders_any_preset_of_the_benchmark():
    results = dict(img=np.full((32, 64, 3), 128, np.uint8), condition='cityscapes')
    np.random.seed(0)
    assert SyntheticWeather(['foggy_dusk'], prob=1.0)(results)['condition'] == 'foggy_dusk'
    assert not np.array_equal(results['img'], np.full((32, 64, 3), 128, np.uint8))


def test_unknown_weather_is_a_config_error():
    with pytest.raises(ConfigError, match='fog, night, rain, snow'):
        SyntheticWeather(['hail'])


def test_train_weather_augments_and_counts_as_seen():
    cfg = domino_seg.compose(['data.train_weather=[fog,night]', 'domain=text',
                              'domino=head'])
    mm = domino_seg.to_mmengine(cfg)
    types = [t['type'] for t in mm.train_dataloader.dataset.datasets[0].pipeline]
    assert types.index('SyntheticWeather') < types.index('DomainEmbeddingInputs') < \
        types.index('RandomResize')
    assert mm.val_evaluator[0].seen_conditions == ['cityscapes', 'fog', 'night']
