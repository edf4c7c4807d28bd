"""Label files that mmseg would read wrongly or fail on deep inside training: 16-bit ids above
255, colour images, missing label files, all-ignore splits and symbolic link loops are found
up front (data check) or when the sample is loaded, as one DataError naming the file."""
import os
from pathlib import Path

import numpy as np
import pytest
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image

import domino_seg
from domino_seg.apis import run
from domino_seg.data.layouts import CITYSCAPES, check_label_file, check_split, scan
from domino_seg.errors import DataError


def labels(root, split='train'):
    return sorted((root / 'cityscapes' / 'gtFine' / split).rglob('*_labelTrainIds.png'))


def save_16bit(path, high=258):
    label = np.array(Image.open(path)).astype(np.uint16)
    label[0, 0] = high
    Image.fromarray(label).save(path)
    assert Image.open(path).mode == 'I;16'


def save_colour(path, mode='RGB'):
    Image.fromarray(np.array(Image.open(path))).convert(mode).save(path)


def test_16bit_ids_above_255_name_the_file_and_the_real_range(tmp_path):
    path = tmp_path / 'a_labelTrainIds.png'
    Image.fromarray(np.array([[0, 258], [255, 3]], np.uint16)).save(path)
    with pytest.raises(DataError) as err:
        check_label_file(str(path))
    assert f'label file {path} is a I;16 image with ids 0..258' in str(err.value)
    assert '258 -> 2' in str(err.value) and '8-bit grey PNGs (mode L)' in str(err.value)


def test_16bit_labels_within_8_bits_and_palette_labels_pass(tmp_path):
    Image.fromarray(np.array([[0, 18], [255, 3]], np.uint16)).save(tmp_path / 'a.png')
    Image.fromarray(np.array([[0, 18], [255, 3]], np.uint8)).convert('P').save(tmp_path / 'b.png')
    check_label_file(str(tmp_path / 'a.png'))
    check_label_file(str(tmp_path / 'b.png'))


@pytest.mark.parametrize('mode', ['RGB', 'RGBA'])
def test_colour_label_is_named(tmp_path, mode):
    path = tmp_path / 'a_labelTrainIds.png'
    Image.fromarray(np.zeros((4, 4, len(mode)), np.uint8), mode).save(path)
    with pytest.raises(DataError) as err:
        check_label_file(str(path))
    assert f'label file {path} is a colour image ({mode}, {len(mode)} channels)' in str(err.value)
    assert 'labels must be single-channel trainId maps (*_labelTrainIds.png' in str(err.value)


def load_annotations(path):
    """The training pipeline's label loading (LoadCheckedAnnotations + CheckSegLabels)."""
    results = dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[],
                   ori_shape=Image.open(path).size[::-1])
    for step in (dict(type='LoadCheckedAnnotations'), dict(type='CheckSegLabels')):
        results = TRANSFORMS.build(step)(results)
    return results


def test_loading_a_16bit_label_mid_training_fails_instead_of_wrapping(tiny_benchmark, tmp_path):
    path = tmp_path / 'x_gtFine_labelTrainIds.png'
    path.write_bytes(labels(tiny_benchmark)[0].read_bytes())
    assert load_annotations(path)['gt_seg_map'].dtype == np.uint8  # a good label loads
    save_16bit(path)  # mmseg alone: 258 -> 2, a valid class
    with pytest.raises(DataError, match=f'label file {path} is a I;16 image with ids 0..258'):
        load_annotations(path)


def test_one_colour_label_in_an_evaluated_split(bench):
    """The data check reads the first label; a later colour one fails when evaluation loads it
    (mmseg alone: an IndexError in the metric)."""
    root, overrides = bench
    bad = labels(root, 'val')[-1]
    save_colour(bad, 'RGBA')
    cfg = domino_seg.compose(overrides)
    check_split(CITYSCAPES, cfg.data.cityscapes_root, 'val')
    mm = domino_seg.to_mmengine(cfg)
    dataset = DATASETS.build(mm.val_dataloader.dataset.datasets[0])
    with pytest.raises(DataError, match=f'label file {bad} is a colour image'):
        [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize('kind', ['16bit', 'colour'])
def test_label_format_of_a_split_is_found_up_front(bench, fails, kind):
    root, overrides = bench
    for path in labels(root):
        save_16bit(path) if kind == '16bit' else save_colour(path)
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    expected = 'is a I;16 image with ids 0..258' if kind == '16bit' else 'is a colour image (RGB'
    assert f'label file {labels(root)[0]} {expected}' in err
    assert not (root.parent / 'run' / 'config.yaml').exists()  # before the runner was built


def test_missing_train_id_labels_say_how_to_make_them(bench, fails):
    root, overrides = bench
    for path in labels(root):
        path.unlink()  # createTrainIdLabelImgs.py not run: only *_gtFine_labelIds.png
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    ann = root / 'cityscapes' / 'gtFine' / 'train'
    assert ('4 of 4 images of the Cityscapes train split have no label file '
            f'*_gtFine_labelTrainIds.png (e.g. {ann}/pixelburg/pixelburg_000000_000019_gtFine_'
            'labelTrainIds.png, ') in err
    assert 'Only *_gtFine_labelIds.png files are there: those hold labelIds, not the trainIds' \
        in err
    assert 'cityscapesscripts/preparation/createTrainIdLabelImgs.py' in err
    assert 'truncated' not in err and 'Copy it again' not in err


def test_one_missing_label_file_is_named(bench, fails):
    root, overrides = bench
    gone = sorted((root / 'acdc' / 'gt' / 'snow' / 'val').rglob('*_labelTrainIds.png'))[-1]
    gone.unlink()
    Path(str(gone).replace('TrainIds', 'Ids')).unlink()  # a half-copied split
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    assert f'1 of 2 images of the ACDC snow val split have no label file ' \
           f'*_gt_labelTrainIds.png (e.g. {gone}). Get the label files from ' \
           'https://acdc.vision.ee.ethz.ch' in err


def test_a_split_whose_labels_are_all_ignore(bench, fails):
    root, overrides = bench
    for path in labels(root):
        Image.fromarray(np.full_like(np.array(Image.open(path)), 255)).save(path)
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    assert 'every label file read from the Cityscapes train split is all 255 (ignore): 4 of 4' \
        in err
    assert 'would learn nothing (loss 0)' in err and 'createTrainIdLabelImgs.py' in err


def test_one_label_with_a_class_is_enough(bench):
    root, _ = bench
    paths = labels(root)
    for path in paths[:-1]:
        Image.fromarray(np.full_like(np.array(Image.open(path)), 255)).save(path)
    check_split(CITYSCAPES, str(root / 'cityscapes'), 'train')


def test_symlink_loop_in_a_split_folder(bench, fails):
    """mmseg's scan of the image folder would fail with ELOOP (a traceback)."""
    root, overrides = bench
    city = root / 'cityscapes' / 'leftImg8bit' / 'train' / 'pixelburg'
    os.symlink('..', city / 'back')  # -> the split folder, which holds it
    err = fails(lambda: run.train(domino_seg.compose(overrides)))
    assert f'{city}/back is a symbolic link loop (it leads back to {city.parent}, which ' \
           'contains it)' in err
    assert f'Remove the link (rm {city}/back)' in err


def test_link_to_itself_and_links_outside_the_split(tmp_path):
    split = tmp_path / 'split'
    (split / 'city').mkdir(parents=True)
    (split / 'city' / 'a_leftImg8bit.png').write_bytes(b'')
    (tmp_path / 'elsewhere').mkdir()
    (tmp_path / 'elsewhere' / 'b_leftImg8bit.png').write_bytes(b'')
    os.symlink(tmp_path / 'elsewhere', split / 'linked')  # followed, as mmseg does
    assert sorted(scan(str(split), '_leftImg8bit.png')) == ['city/a_leftImg8bit.png',
                                                            'linked/b_leftImg8bit.png']
    os.symlink('self', split / 'city' / 'self')
    with pytest.raises(DataError, match=f'{split}/city/self is a symbolic link loop '
                                        r'\(Too many levels of symbolic links\)'):
        scan(str(split), '_leftImg8bit.png')
