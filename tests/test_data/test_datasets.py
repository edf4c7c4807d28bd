"""Cityscapes and ACDC dataset classes on a tiny benchmark written in the real layouts."""
import shutil

import numpy as np
import pytest
from PIL import Image

from domino_seg.data.acdc import ACDCDataset
from domino_seg.data.cityscapes import DominoCityscapesDataset
from domino_seg.data.transforms import CheckSegLabels
from domino_seg.errors import ConfigError, DataError

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='CheckSegLabels')]


def test_cityscapes_reads_the_layout_and_tags_condition(tiny_benchmark):
    ds = DominoCityscapesDataset(data_root=str(tiny_benchmark / 'cityscapes'), split='train',
                                 pipeline=PIPELINE)
    assert len(ds) == 4
    info = ds.get_data_info(0)
    assert info['condition'] == 'cityscapes'
    assert info['img_path'].endswith('_leftImg8bit.png')
    assert info['seg_map_path'].endswith('_gtFine_labelTrainIds.png')
    assert info['rel_path'].count('/') == 1  # <city>/<name>
    sample = ds[0]
    assert sample['gt_seg_map'].shape == sample['img'].shape[:2] == (64, 128)
    assert ds.metainfo['classes'][0] == 'road' and len(ds.metainfo['classes']) == 19


@pytest.mark.parametrize('condition,expected', [('fog', {'fog'}), ('all', {'fog', 'night',
                                                                           'rain', 'snow'}),
                                                (['night', 'snow'], {'night', 'snow'})])
def test_acdc_selects_conditions(tiny_benchmark, condition, expected):
    ds = ACDCDataset(data_root=str(tiny_benchmark / 'acdc'), condition=condition, split='val',
                     pipeline=PIPELINE)
    conditions = [ds.get_data_info(i)['condition'] for i in range(len(ds))]
    assert set(conditions) == expected
    assert len(ds) == 2 * len(expected)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert f'/rgb_anon/{info["condition"]}/val/' in info['img_path']
        assert f'/gt/{info["condition"]}/val/' in info['seg_map_path']


def test_unknown_acdc_condition_lists_valid_ones(tiny_benchmark):
    with pytest.raises(ConfigError, match='fog, night, rain, snow'):
        ACDCDataset(data_root=str(tiny_benchmark / 'acdc'), condition='haze', pipeline=[])


def test_missing_root_names_layout_site_and_key(tmp_path):
    with pytest.raises(DataError) as err:
        DominoCityscapesDataset(data_root=str(tmp_path / 'nope'), split='val', pipeline=[])
    message = str(err.value)
    assert 'does not exist' in message
    assert 'leftImg8bit/val/<seq>/<name>_leftImg8bit.png' in message
    assert 'cityscapes-dataset.com' in message and 'paths.cityscapes' in message


def test_empty_acdc_split_is_reported(tiny_benchmark, tmp_path):
    root = tmp_path / 'acdc'
    shutil.copytree(tiny_benchmark / 'acdc', root)
    for f in (root / 'rgb_anon' / 'night' / 'val').rglob('*.png'):
        f.unlink()
    with pytest.raises(DataError, match=r'(?s)ACDC night val split is empty.*paths\.acdc'):
        ACDCDataset(data_root=str(root), condition='night', split='val', pipeline=[])


def test_split_without_labels_reads_images_only(unlabelled_test_split):
    root = unlabelled_test_split
    cs = DominoCityscapesDataset(data_root=str(root / 'cityscapes'), split='test', labels=False,
                                 pipeline=[dict(type='LoadImageFromFile')])
    acdc = ACDCDataset(data_root=str(root / 'acdc'), condition='all', split='test',
                       labels=False, pipeline=[dict(type='LoadImageFromFile')])
    assert len(cs) == 2 and len(acdc) == 8
    for ds in (cs, acdc):
        assert all('seg_map_path' not in ds.get_data_info(i) for i in range(len(ds)))
        assert ds[0]['img'].shape == (64, 128, 3)
    with pytest.raises(DataError, match=r"(?s)ACDC fog test split is missing: no folder "
                                        r"'[^']*/gt/fog/test'.*paths\.acdc"):
        ACDCDataset(data_root=str(root / 'acdc'), condition='fog', split='test', pipeline=[])


def test_split_without_images_names_the_image_layout_only(tmp_path):
    (tmp_path / 'acdc' / 'rgb_anon').mkdir(parents=True)
    with pytest.raises(DataError) as err:
        ACDCDataset(data_root=str(tmp_path / 'acdc'), condition='snow', split='test',
                    labels=False, pipeline=[])
    message = str(err.value)
    assert "ACDC snow test split is missing: no folder '" in message
    assert 'rgb_anon/snow/test/<seq>/<name>_rgb_anon.png' in message
    assert '/gt/' not in message and 'paths.acdc' in message


def test_out_of_range_label_ids_name_the_file():
    label = np.zeros((2, 3), np.uint8)
    label[0, 0] = 33  # a Cityscapes labelId, not a trainId
    results = dict(gt_seg_map=label, seg_map_path='x_gtFine_labelTrainIds.png',
                   ori_shape=(2, 3), img=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataError, match=r'x_gtFine_labelTrainIds\.png holds ids \[33\]'):
        CheckSegLabels()(results)
    label[0, 0] = 255  # ignore is fine
    assert CheckSegLabels()(results) is results


def test_label_image_size_mismatch_is_reported():
    results = dict(gt_seg_map=np.zeros((4, 4), np.uint8), seg_map_path='l.png',
                   img_path='i.png', ori_shape=(4, 6), img=np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(DataError, match='l.png is 4x4 but its image i.png is 6x4'):
        CheckSegLabels()(results)


def test_label_files_hold_train_ids(tiny_benchmark):
    for path in (tiny_benchmark / 'acdc' / 'gt').rglob('*_gt_labelTrainIds.png'):
        ids = np.unique(np.array(Image.open(path)))
        assert set(ids.tolist()) <= set(range(19)) | {255}
