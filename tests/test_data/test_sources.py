"""Training sources: Cityscapes, ACDC train splits and generated images merged into one
training set in which every sample carries its source's condition."""
import shutil
from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import ConcatDataset

import domino_seg
from domino_seg.data.samplers import SourceWeightedSampler
from domino_seg.data.synthetic import generated_folder, write_benchmark
from domino_seg.data.transforms import SyntheticWeather
from domino_seg.errors import ConfigError, DataError

GEN = dict(num_train=4, num_val=2, height=64, width=128, seed=0)


@pytest.fixture(scope='module')
def bench_with_generated(tmp_path_factory):
    """A tiny benchmark with ACDC train splits and a generated (ALDM-layout) night set."""
    root = tmp_path_factory.mktemp('sources') / 'bench'
    write_benchmark(root, progress=False, generated=('night',), **GEN)
    return root


def sources(root, *extra):
    return [f'paths.synthetic={root}', 'data.generate=null',
            'data.num_workers=0', 'data.img_scale=[128,64]', 'data.crop_size=[64,128]',
            'data.train_sources=[{kind:cityscapes,root:' + f'{root}/cityscapes' + '},'
            '{kind:acdc,root:' + f'{root}/acdc' + ',condition:fog},'
            '{kind:generated,root:' + f'{generated_folder(root, "night")}' +
            ',condition:night}]', *extra]


def test_three_sources_merge_with_their_conditions_and_counts(bench_with_generated,
                                                              embed_samples):
    cfg = domino_seg.compose(sources(bench_with_generated, 'domino=head', 'domain=text'))
    dataset = domino_seg.build_dataset(cfg)
    conditions = [dataset.get_data_info(i)['condition'] for i in range(len(dataset))]
    assert Counter(conditions) == {'cityscapes': 4, 'fog': 4, 'night': 4}
    # each sample's text embedding is its own condition's
    samples = [dataset[i] for i in (0, 4, 8)]
    embeddings = {sample['data_samples'].metainfo['condition']: embedding
                  for sample, embedding in zip(samples, embed_samples(cfg, samples))}
    assert set(embeddings) == {'cityscapes', 'fog', 'night'}
    assert not torch.allclose(embeddings['fog'], embeddings['night'])
    mm = domino_seg.to_mmengine(cfg)
    assert mm.val_evaluator[0].seen_conditions == ['cityscapes', 'fog', 'night']


def test_generated_images_take_the_cityscapes_label_of_their_stem(bench_with_generated):
    cfg = domino_seg.compose(sources(bench_with_generated))
    dataset = domino_seg.build_dataset(cfg).datasets[2]
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        stem = info['img_path'].rsplit('/', 1)[1][:-len('.png')]
        city = stem.split('_')[0]
        assert info['seg_map_path'] == str(bench_with_generated / 'cityscapes/gtFine/train' /
                                           city / f'{stem}_gtFine_labelTrainIds.png')
        assert info['condition'] == 'night'


def test_generated_layout_variants_and_a_resized_image(bench_with_generated, tmp_path):
    """Images nested in <city>/ with the _leftImg8bit suffix, one at half the label's size:
    its label is resized with nearest neighbour (ids stay ids)."""
    source = generated_folder(bench_with_generated, 'night')
    folder = tmp_path / 'gen_fog'
    for image in sorted(source.glob('*.png')):
        city = image.name.split('_')[0]
        target = folder / city / image.name.replace('.png', '_leftImg8bit.png')
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, target)
    small = sorted(folder.rglob('*.png'))[0]
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(small)), (64, 32)))
    cfg = domino_seg.compose([f'paths.synthetic={bench_with_generated}', 'data.generate=null',
                              'data.num_workers=0', 'data.img_scale=[128,64]',
                              'data.crop_size=[32,64]', 'data.ratio_range=[1.0,1.0]',
                              'data.train_sources=[{kind:generated,root:' + f'{folder}' +
                              ',condition:fog}]'])
    dataset = domino_seg.build_dataset(cfg).datasets[0]
    assert len(dataset) == 4
    index = [dataset.get_data_info(i)['img_path'] for i in range(4)].index(str(small))
    label_path = dataset.get_data_info(index)['seg_map_path']
    full = cv2.imread(label_path, cv2.IMREAD_UNCHANGED)
    # the pipeline up to the label check: load, match the label to the image, check
    results = dict(dataset.get_data_info(index))
    for step in dataset.pipeline.transforms[:4]:
        results = step(results)
    assert type(dataset.pipeline.transforms[2]).__name__ == 'MatchLabelToImage'
    assert results['gt_seg_map'].shape == (32, 64)
    expected = cv2.resize(full, (64, 32), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(results['gt_seg_map'], expected)
    assert set(np.unique(results['gt_seg_map'])) <= set(np.unique(full))


def test_weights_set_the_probability_of_each_source():
    datasets = [list(range(10)), list(range(30)), list(range(60))]

    class Sized(ConcatDataset):  # a ConcatDataset of plain lists, for the sampler
        def __init__(self):
            self.datasets = datasets
            self.cumulative_sizes = list(np.cumsum([len(d) for d in datasets]))

        def __len__(self):
            return 100

    sampler = SourceWeightedSampler(Sized(), weights=[0.5, 0.25, 0.25], seed=0)
    draws = torch.tensor([i for _, i in zip(range(20000), sampler)])
    share = [((draws >= lo) & (draws < hi)).float().mean().item()
             for lo, hi in ((0, 10), (10, 40), (40, 100))]
    assert share == pytest.approx([0.5, 0.25, 0.25], abs=0.015)
    # the same seed draws the same sequence (resume replays it)
    again = SourceWeightedSampler(Sized(), weights=[0.5, 0.25, 0.25], seed=0)
    assert [i for _, i in zip(range(50), again)] == draws[:50].tolist()
    # without weights: InfiniteSampler's shuffle, i.e. in proportion to size
    plain = SourceWeightedSampler(Sized(), weights=None, seed=0)
    first = [i for _, i in zip(range(100), plain)]
    assert sorted(first) == list(range(100))


def test_weights_reach_the_sampler_normalised(bench_with_generated):
    cfg = domino_seg.compose(sources(bench_with_generated))
    assert domino_seg.to_mmengine(cfg).train_dataloader.sampler.weights is None
    weighted = [o.replace('condition:fog}', 'condition:fog,weight:2}')
                .replace('cityscapes}', 'cityscapes,weight:1}')
                .replace('condition:night}', 'condition:night,weight:1}')
                for o in sources(bench_with_generated)]
    cfg = domino_seg.compose(weighted)
    assert domino_seg.to_mmengine(cfg).train_dataloader.sampler.weights == [0.25, 0.5, 0.25]


@pytest.mark.parametrize('sources_value,message', [
    ('[{kind:kitti,root:x}]', 'with a kind, one of cityscapes, acdc, generated'),
    ('[{kind:acdc,root:x}]', r'data.train_sources\[0\].condition=None'),
    ('[{kind:acdc,root:x,condition:hail}]', 'one of fog, night, rain, snow'),
    ('[{kind:cityscapes,root:x,colour:red}]', r"unknown key\(s\) \['colour'\]"),
    ('[{kind:cityscapes}]', r'data.train_sources\[0\].root is not set'),
    ('[{kind:cityscapes,root:x,weight:1},{kind:acdc,root:y,condition:fog}]',
     'give every source a weight, or none'),
    ('[{kind:cityscapes,root:x,weight:-1}]', 'a weight is a number > 0'),
    ('[]', 'non-empty list of sources'),
])
def test_malformed_sources_are_config_errors(sources_value, message):
    cfg = domino_seg.compose([f'data.train_sources={sources_value}'])
    with pytest.raises(ConfigError, match=message):
        domino_seg.to_mmengine(cfg)


def test_generated_folder_errors_name_the_file(bench_with_generated, tmp_path):
    from domino_seg.data.generated import scan_generated
    labels = bench_with_generated / 'cityscapes'
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(DataError, match=f'{empty}.* holds no image'):
        scan_generated(str(empty), str(labels), 'train')
    with pytest.raises(DataError, match='does not exist'):
        scan_generated(str(tmp_path / 'missing'), str(labels), 'train')
    odd = tmp_path / 'odd'
    odd.mkdir()
    cv2.imwrite(str(odd / 'sample_1.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r'sample_1.png is not named by a Cityscapes stem.*'
                                        r'<city>_<seq>_<frame>.png'):
        scan_generated(str(odd), str(labels), 'train')
    unpaired = tmp_path / 'unpaired'
    unpaired.mkdir()
    cv2.imwrite(str(unpaired / 'aachen_000000_000019.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r'aachen_000000_000019.png has no Cityscapes label: '
                                        r'.*gtFine/train/aachen/aachen_000000_000019_gtFine_'
                                        r'labelTrainIds.png does not exist'):
        scan_generated(str(unpaired), str(labels), 'train')


def test_missing_source_is_found_before_training(bench_with_generated, tmp_path):
    from domino_seg.data.builder import check_data
    cfg = domino_seg.compose([f'paths.synthetic={bench_with_generated}', 'data.generate=null',
                              'data.train_sources=[{kind:acdc,root:' +
                              f'{bench_with_generated}/acdc' + ',condition:fog,split:extra}]'])
    with pytest.raises(DataError, match='ACDC fog extra split is missing'):
        check_data(cfg.data)


def test_generated_set_renders_the_clear_training_scenes(bench_with_generated):
    """Same layout as the Cityscapes train sample (the label fits), another appearance."""
    from domino_seg.data.synthetic import cityscapes_stem
    city, stem = cityscapes_stem('train', 1)
    generated = cv2.imread(str(generated_folder(bench_with_generated, 'night') / f'{stem}.png'))
    clear = cv2.imread(str(bench_with_generated / 'cityscapes/leftImg8bit/train' / city /
                           f'{stem}_leftImg8bit.png'))
    assert generated.shape == clear.shape
    assert generated.mean() < clear.mean() - 20  # night is darker


def test_weather_augmentation_leaves_other_sources_alone():
    weather = SyntheticWeather(['snow'], prob=1.0)
    image = np.full((16, 32, 3), 120, np.uint8)
    fog = dict(img=image.copy(), condition='fog', gt_seg_map=np.zeros((16, 32), np.uint8))
    assert weather(fog)['condition'] == 'fog'
    np.testing.assert_array_equal(fog['img'], image)
    clear = dict(img=image.copy(), condition='cityscapes',
                 gt_seg_map=np.zeros((16, 32), np.uint8))
    assert weather(clear)['condition'] == 'snow'


@pytest.mark.parametrize('held_out', ['fog', 'night', 'rain', 'snow'])
@pytest.mark.parametrize('protocol', ['synthetic_loo', 'acdc_loo'])
def test_leave_one_out_presets_hold_out_one_condition(protocol, held_out):
    cfg = domino_seg.compose([f'+exp={protocol}_{held_out}'])
    trained = {s.get('condition', 'cityscapes') for s in cfg.data.train_sources}
    assert trained == {'cityscapes', 'fog', 'night', 'rain', 'snow'} - {held_out}
    assert list(cfg.data.eval_conditions) == ['cityscapes', 'fog', 'night', 'rain', 'snow']
    mm = domino_seg.to_mmengine(cfg)
    unseen = set(mm.val_evaluator[0].conditions) - set(mm.val_evaluator[0].seen_conditions)
    assert unseen == {held_out}


def test_paper_presets_differ_only_in_domino():
    base = ['model.pretrained=null']
    finetune = domino_seg.compose(['+exp=finetune_acdc', *base])
    domino = domino_seg.compose(['+exp=domino_acdc', *base])
    assert finetune.domino.scope == 'none' and domino.domino.scope == 'head'
    assert domino.domain.mode == 'text' and domino.domain.clip.arch == 'ViT-B-16'
    assert finetune.data == domino.data and finetune.model == domino.model
    assert finetune.schedule == domino.schedule
    kinds = [(s.kind, s.get('condition')) for s in domino.data.train_sources]
    assert kinds == [('cityscapes', None), ('generated', 'night'), ('generated', 'snow'),
                     ('generated', 'fog'), ('generated', 'rain')]


@pytest.fixture
def generated_copy(bench_with_generated, tmp_path):
    """A private copy of the generated night folder to break, and its labels root."""
    folder = tmp_path / 'gen'
    shutil.copytree(generated_folder(bench_with_generated, 'night'), folder)
    return folder, str(bench_with_generated / 'cityscapes')


def test_a_valid_generated_folder_scans_as_before(generated_copy):
    from domino_seg.data.generated import scan_generated
    folder, labels = generated_copy
    pairs = scan_generated(str(folder), labels, 'train')
    assert [image for image, _ in pairs] == sorted(str(p) for p in folder.glob('*.png'))


def _duplicate(folder):
    first = sorted(folder.glob('*.png'))[0]
    city = first.name.split('_')[0]
    (folder / city).mkdir()
    twin = folder / city / first.name.replace('.png', '_leftImg8bit.png')
    shutil.copy(first, twin)
    return first, f'generated images {twin} and {first} are both named {first.stem}, so both ' \
        'take its label and the image would be trained on twice as often: keep one'


def _other_aspect(folder):
    image = sorted(folder.glob('*.png'))[1]
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    return image, f'generated image {image} is 64x64 but its label '


def _not_an_image(folder):
    image = sorted(folder.glob('*.png'))[2]
    image.write_bytes(b'an html error page saved under an image name')
    return image, f'generated image file {image} cannot be read (cannot identify image file'


def _empty_file(folder):
    image = sorted(folder.glob('*.png'))[2]
    image.write_bytes(b'')
    return image, f'generated image file {image} cannot be read ('


def _grey(folder):
    image = sorted(folder.glob('*.png'))[3]
    cv2.imwrite(str(image), np.zeros((64, 128), np.uint8))  # a label map named by the stem
    return image, f'generated image {image} is a L image (PIL mode), not a colour image'


@pytest.mark.parametrize('damage', [_duplicate, _other_aspect, _not_an_image, _empty_file,
                                    _grey])
def test_generated_images_are_checked_before_use(generated_copy, damage, fails):
    """Each is one paragraph naming the file (exit 2), not a doubled sample, a label map
    stretched onto an image it was not made from, or a traceback in a data-loader worker."""
    from domino_seg.data.generated import scan_generated
    folder, labels = generated_copy
    _, message = damage(folder)
    assert message in fails(lambda: scan_generated(str(folder), labels, 'train'))


def test_a_label_that_is_not_an_image_is_named(generated_copy, tmp_path):
    from domino_seg.data.generated import scan_generated
    folder, labels = generated_copy
    image = sorted(folder.glob('*.png'))[0]
    stem = image.stem
    city = stem.split('_')[0]
    fake = tmp_path / 'labels'
    shutil.copytree(labels, fake)
    label = fake / 'gtFine/train' / city / f'{stem}_gtFine_labelTrainIds.png'
    label.write_bytes(b'\x89PNG truncated')
    with pytest.raises(DataError, match=f'label file {label} cannot be read'):
        scan_generated(str(folder), str(fake), 'train')
    cv2.imwrite(str(label), np.zeros((64, 128, 3), np.uint8))  # a colour rendering
    with pytest.raises(DataError, match=f'label file {label} is a colour image'):
        scan_generated(str(folder), str(fake), 'train')
