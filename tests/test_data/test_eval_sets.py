"""More evaluation sets (data.eval_sets): Dark Zurich, Foggy Cityscapes, BDD100K, Mapillary
Vistas and a user's condition folders, each written here as a tiny copy in its official folder
structure and read through the public API, one condition per set (per folder)."""
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.dataset import DefaultSampler
from PIL import Image

import domino_seg
from domino_seg.data.builder import evaluated_conditions, prompt_conditions
from domino_seg.data.label_maps import VISTAS_V12_CLASSES
from domino_seg.data.samplers import SubDatasetBatchSampler
from domino_seg.errors import ConfigError, DataError

H, W = 32, 64  # every image and label (Mapillary: some at another size)


def image(path: Path, value: int, size=(W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def label(path: Path, ids, size=(W, H), mode='L') -> None:
    """A label map whose columns cycle through ``ids`` (crafted pixels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.asarray(ids, np.uint8)
    array = np.broadcast_to(ids[np.arange(size[0]) % len(ids)], (size[1], size[0])).copy()
    picture = Image.fromarray(array, 'L')
    if mode == 'P':  # Vistas labels: 8-bit palette images of the class ids
        picture = picture.convert('P')
        picture.putpalette([c for i in range(256) for c in (i, 255 - i, i // 2)])
    picture.save(path)


def dark_zurich(root: Path) -> Path:
    """Dark_Zurich_val_anon: rgb_anon/val/night/GOPR0356/, gt/val/night/GOPR0356/ (with the
    labelIds, colour and invalid-mask files beside the trainIds) and the day references."""
    for i in (1, 2):
        name = f'GOPR0356_frame_00000{i}'
        image(root / 'rgb_anon/val/night/GOPR0356' / f'{name}_rgb_anon.png', 10 * i)
        gt = root / 'gt/val/night/GOPR0356'
        label(gt / f'{name}_gt_labelTrainIds.png', [i, 255])
        label(gt / f'{name}_gt_labelIds.png', [7, 26])
        label(gt / f'{name}_gt_invIds.png', [0])
        image(gt / f'{name}_gt_labelColor.png', 128)
        image(root / 'rgb_anon/val_ref/day/GOPR0356_ref' / f'{name}_ref_rgb_anon.png', 200)
    return root


def foggy_cityscapes(root: Path) -> Path:
    """leftImg8bit_foggy/val/<city>/ in three densities, labelled by gtFine/val/<city>/."""
    for i in (1, 2):
        stem = f'frankfurt_000000_00000{i}'
        for j, beta in enumerate(('0.005', '0.01', '0.02')):
            image(root / 'leftImg8bit_foggy/val/frankfurt' /
                  f'{stem}_leftImg8bit_foggy_beta_{beta}.png', 50 * j + i)
        label(root / 'gtFine/val/frankfurt' / f'{stem}_gtFine_labelTrainIds.png', [i + 2])
    return root


def bdd100k(root: Path) -> Path:
    """bdd100k/images/10k/val/*.jpg and bdd100k/labels/sem_seg/{masks,colormaps}/val/*.png."""
    for i, name in enumerate(('7d2f7975-e0c1c5a7', '7d4a9094-0455564b')):
        image(root / 'images/10k/val' / f'{name}.jpg', 30 * i)
        label(root / 'labels/sem_seg/masks/val' / f'{name}.png', [i + 10, 255])
        image(root / 'labels/sem_seg/colormaps/val' / f'{name}.png', 99)
    return root


VISTAS_IDS = {  # crafted pixels: Vistas v1.2 class -> the Cityscapes trainId expected
    'construction--flat--road': 0, 'marking--general': 0, 'object--manhole': 0,
    'construction--barrier--curb': 1, 'construction--flat--sidewalk': 1,
    'construction--structure--building': 2, 'object--support--utility-pole': 5,
    'object--traffic-sign--front': 7, 'human--rider--motorcyclist': 12,
    'object--vehicle--car': 13, 'object--vehicle--on-rails': 16, 'object--vehicle--bicycle': 18,
    # unmapped: ignore
    'construction--flat--bike-lane': 255, 'marking--crosswalk-zebra': 255, 'nature--snow': 255,
    'object--traffic-sign--back': 255, 'object--street-light': 255, 'void--unlabeled': 255,
}


def mapillary(root: Path, labels='labels') -> Path:
    """{training,validation}/images/*.jpg, {training,validation}/<labels>/*.png (palette)."""
    ids = [VISTAS_V12_CLASSES.index(name) for name in VISTAS_IDS]
    for name, size in (('a1', (W, H)), ('b2', (48, 40)), ('c3', (W, H))):
        image(root / 'validation/images' / f'{name}.jpg', 60, size)
        label(root / 'validation' / labels / f'{name}.png', ids, size, mode='P')
    return root


def folders(root: Path) -> Path:
    """<root>/<condition>/images/<...>.png|jpg, <root>/<condition>/labels/<same>.png."""
    image(root / 'dusk/images/a.png', 10)
    label(root / 'dusk/labels/a.png', [4])
    image(root / 'dusk/images/cam2/b.jpg', 20, (48, 40))  # another camera, another size
    label(root / 'dusk/labels/cam2/b.png', [5], (48, 40))
    image(root / 'heavy_rain/images/c.JPG', 30)
    label(root / 'heavy_rain/labels/c.png', [6])
    (root / 'notes.txt').write_text('not a condition')
    return root


def compose(tiny_overrides, sets: str, *extra):
    return domino_seg.compose(tiny_overrides + ['data.eval_conditions=[]',
                                                f'data.eval_sets={sets}', *extra])


def samples(dataset):
    return [dataset[i]['data_samples'] for i in range(len(dataset))]


def gt(sample) -> np.ndarray:
    return sample.gt_sem_seg.data.numpy()[0]


def test_dark_zurich_reads_the_night_val_split(tiny_overrides, tmp_path):
    root = dark_zurich(tmp_path / 'Dark_Zurich_val_anon')
    cfg = compose(tiny_overrides, '[{kind:dark_zurich}]', f'paths.dark_zurich={root}')
    dataset = domino_seg.build_dataset(cfg, 'test')
    assert evaluated_conditions(cfg.data) == ['dark_zurich']
    assert prompt_conditions(cfg.data) == ['night']
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [info['rel_path'] for info in infos] == [  # not the day references (val_ref)
        'GOPR0356/GOPR0356_frame_000001_rgb_anon.png',
        'GOPR0356/GOPR0356_frame_000002_rgb_anon.png']
    assert infos[0]['seg_map_path'] == str(
        root / 'gt/val/night/GOPR0356/GOPR0356_frame_000001_gt_labelTrainIds.png')
    assert {info['prompt_condition'] for info in infos} == {'night'}
    for i, sample in enumerate(samples(dataset), 1):
        assert sample.condition == 'dark_zurich'
        assert set(np.unique(gt(sample)).tolist()) == {i, 255}


@pytest.mark.parametrize('beta,name', [('0.01', 'foggy_cityscapes_0.01'),
                                       (None, 'foggy_cityscapes_0.02')])
def test_foggy_cityscapes_beta_selects_the_files_of_one_density(tiny_overrides, tmp_path,
                                                                beta, name):
    root = foggy_cityscapes(tmp_path / 'cityscapes')
    entry = '{kind:foggy_cityscapes' + (f',beta:{beta}' if beta else '') + '}'
    cfg = compose(tiny_overrides, f'[{entry}]', f'paths.foggy_cityscapes={root}')
    dataset = domino_seg.build_dataset(cfg, 'test')
    assert evaluated_conditions(cfg.data) == [name]
    chosen = beta or '0.02'
    for i, sample in enumerate(samples(dataset), 1):
        stem = f'frankfurt_000000_00000{i}'
        assert sample.img_path == str(root / 'leftImg8bit_foggy/val/frankfurt' /
                                      f'{stem}_leftImg8bit_foggy_beta_{chosen}.png')
        assert sample.seg_map_path == str(root / 'gtFine/val/frankfurt' /
                                          f'{stem}_gtFine_labelTrainIds.png')
        assert sample.condition == name
        assert np.unique(gt(sample)).tolist() == [i + 2]


def test_foggy_images_take_their_labels_from_labels_root(tiny_overrides, tmp_path):
    foggy = foggy_cityscapes(tmp_path / 'foggy')
    labels = tmp_path / 'cityscapes'
    (foggy / 'gtFine').rename(tmp_path / 'gtFine')
    labels.mkdir()
    (tmp_path / 'gtFine').rename(labels / 'gtFine')
    cfg = compose(tiny_overrides, '[{kind:foggy_cityscapes,root:' + f'{foggy},labels_root:'
                  f'{labels},beta:0.005,condition:fog_light}}]')
    dataset = domino_seg.build_dataset(cfg, 'test')
    assert evaluated_conditions(cfg.data) == ['fog_light']
    assert dataset.get_data_info(0)['seg_map_path'].startswith(str(labels / 'gtFine/val'))
    assert dataset.get_data_info(0)['img_path'].endswith('_leftImg8bit_foggy_beta_0.005.png')


def test_bdd100k_masks_are_trainids_already(tiny_overrides, tmp_path):
    root = bdd100k(tmp_path / 'bdd100k')
    cfg = compose(tiny_overrides, '[{kind:bdd100k}]', f'paths.bdd100k={root}')
    dataset = domino_seg.build_dataset(cfg, 'test')
    assert evaluated_conditions(cfg.data) == ['bdd100k']
    found = samples(dataset)
    assert [Path(s.img_path).name for s in found] == ['7d2f7975-e0c1c5a7.jpg',
                                                      '7d4a9094-0455564b.jpg']
    for i, sample in enumerate(found):
        assert sample.seg_map_path == str(root / 'labels/sem_seg/masks/val' /
                                          Path(sample.img_path).with_suffix('.png').name)
        assert set(np.unique(gt(sample)).tolist()) == {i + 10, 255}
        assert sample.condition == 'bdd100k'


@pytest.mark.parametrize('labels', ['labels', 'v1.2/labels'])  # v1.2 release / v2.0 release
def test_mapillary_ids_map_to_trainids_by_the_table(tiny_overrides, tmp_path, labels):
    root = mapillary(tmp_path / 'mapillary', labels)
    cfg = compose(tiny_overrides, '[{kind:mapillary,split:val}]', f'paths.mapillary={root}')
    dataset = domino_seg.build_dataset(cfg, 'test')
    expected = np.asarray(list(VISTAS_IDS.values()))
    for sample in samples(dataset):
        assert sample.condition == 'mapillary'
        assert sample.seg_map_path.startswith(str(root / 'validation' / labels))
        label_map = gt(sample)
        assert (label_map == expected[np.arange(label_map.shape[1]) % len(expected)]).all()
    # images of several sizes: evaluation batches never mix sizes
    sampler = SubDatasetBatchSampler(DefaultSampler(dataset, shuffle=False), batch_size=3)
    assert list(sampler) == [[0, 2], [1]] and len(sampler) == 2


def test_mapillary_v2_labels_are_refused_naming_the_file(tiny_overrides, tmp_path):
    root = mapillary(tmp_path / 'mapillary')
    label(root / 'validation/labels/a1.png', [13, 123], mode='P')  # a v2.0 id (124 classes)
    cfg = compose(tiny_overrides, '[{kind:mapillary}]', f'paths.mapillary={root}')
    dataset = domino_seg.build_dataset(cfg, 'test')
    with pytest.raises(DataError, match=r'a1.png holds ids \[123\], which are not Mapillary '
                                        r'Vistas v1.2 label ids 0..65'):
        dataset[0]


def test_condition_folders_are_one_condition_each(tiny_overrides, tmp_path):
    root = folders(tmp_path / 'field')
    cfg = compose(tiny_overrides, '[{kind:folders,root:' + f'{root}' + ',prompt:{dusk:night}}]')
    assert evaluated_conditions(cfg.data) == ['dusk', 'heavy_rain']
    assert prompt_conditions(cfg.data) == ['night', 'heavy_rain']
    dataset = domino_seg.build_dataset(cfg, 'test')
    assert [len(d) for d in dataset.datasets] == [2, 1]
    found = samples(dataset)
    assert [(s.condition, s.rel_path, np.unique(gt(s)).tolist()) for s in found] == [
        ('dusk', 'a.png', [4]), ('dusk', 'cam2/b.jpg', [5]), ('heavy_rain', 'c.JPG', [6])]
    assert found[1].seg_map_path == str(root / 'dusk/labels/cam2/b.png')
    mm = domino_seg.to_mmengine(cfg)
    assert mm.test_evaluator[0].conditions == ['dusk', 'heavy_rain']
    # a selection of the folders, next to the other conditions
    cfg = domino_seg.compose(tiny_overrides + [
        'data.eval_conditions=[cityscapes]', 'data.eval_corruptions=[]',
        'data.eval_sets=[{kind:folders,root:' + f'{root}' + ',conditions:[heavy_rain]}]'])
    assert evaluated_conditions(cfg.data) == ['cityscapes', 'heavy_rain']
    assert len(domino_seg.build_dataset(cfg, 'test')) == 2 + 1


def test_predict_only_needs_no_label_folder(tiny_overrides, tmp_path):
    root = folders(tmp_path / 'field')
    for labels in root.glob('*/labels'):
        for path in sorted(labels.rglob('*.png'), reverse=True):
            path.unlink()
    cfg = domino_seg.compose(tiny_overrides + [
        'checkpoint=x.pth', 'evaluate=false', 'data.eval_conditions=[]',
        'data.eval_sets=[{kind:folders,root:' + f'{root}' + '}]'], config_name='test')
    dataset = domino_seg.build_dataset(cfg, 'test')
    assert [dataset.get_data_info(i).get('seg_map_path') for i in range(3)] == [None] * 3
    assert dataset[2]['data_samples'].condition == 'heavy_rain'


def test_text_embeddings_follow_the_prompt_of_the_set(tiny_overrides, tiny_benchmark, tmp_path,
                                                      embed_samples):
    root = dark_zurich(tmp_path / 'dz')
    cfg = domino_seg.compose(tiny_overrides + [
        'domino=head', 'domain=text', 'data.eval_conditions=[night]',
        f'data.eval_sets=[{{kind:dark_zurich,root:{root}}}]'])
    dataset = domino_seg.build_dataset(cfg, 'test')
    night, dark_zurich_sample = dataset[0], dataset[2]
    assert (night['data_samples'].condition, dark_zurich_sample['data_samples'].condition) == \
        ('night', 'dark_zurich')
    embeddings = embed_samples(cfg, [night, dark_zurich_sample])
    assert np.allclose(embeddings[0], embeddings[1])


@pytest.mark.parametrize('kind,write,problem,expected', [
    ('dark_zurich', None, "Dark Zurich root '{root}' does not exist",
     ['{root}/rgb_anon/val/night/<seq>/<name>_rgb_anon.png',
      '{root}/gt/val/night/<seq>/<name>_gt_labelTrainIds.png', 'GCMA_UIoU',
      '`paths.dark_zurich=/path/to/dark_zurich`']),
    ('foggy_cityscapes', None, "Foggy Cityscapes root '{root}' does not exist",
     ['{root}/leftImg8bit_foggy/val/<city>/<name>_leftImg8bit_foggy_beta_0.02.png',
      '{root}/gtFine/val/<city>/<name>_gtFine_labelTrainIds.png',
      'leftImg8bit_trainvaltest_foggy.zip']),
    ('bdd100k', None, "BDD100K root '{root}' does not exist",
     ['{root}/images/10k/val/<name>.jpg', '{root}/labels/sem_seg/masks/val/<name>.png',
      'bdd100k_sem_seg_labels_trainval.zip']),
    ('mapillary', None, "Mapillary Vistas root '{root}' does not exist",
     ['{root}/validation/images/<name>.jpg', '{root}/validation/labels/<name>.png',
      'v1.2/labels']),
    # an empty folder
    ('dark_zurich', 'rgb_anon/val/night/GOPR0356 gt/val/night',
     "the Dark Zurich val split is empty: no *_rgb_anon.png under '{root}/rgb_anon/val/night'",
     ['{root}/rgb_anon/val/night/<seq>/<name>_rgb_anon.png']),
    ('bdd100k', 'images/10k/val', "the BDD100K val split is missing: no folder "
     "'{root}/labels/sem_seg/masks/val'", ['{root}/labels/sem_seg/masks/val/<name>.png']),
])
def test_missing_or_empty_sets_name_the_folder_and_layout(tiny_overrides, tmp_path, kind, write,
                                                          problem, expected, fails):
    from domino_seg.apis import run
    root = tmp_path / kind
    for folder in (write or '').split():
        (root / folder).mkdir(parents=True)
    cfg = compose(tiny_overrides, f'[{{kind:{kind}}}]', f'paths.{kind}={root}')
    err = fails(lambda: run.test(_checkpointed(cfg, tmp_path)))
    for text in [problem, *expected]:
        assert text.format(root=root) in err
    # building the dataset says the same
    with pytest.raises(DataError, match='Expected layout'):
        domino_seg.build_dataset(cfg, 'test')


def _checkpointed(cfg, tmp_path):
    """``cfg`` as tools/test.py gets it, with a (never read) checkpoint file."""
    from omegaconf import open_dict
    path = tmp_path / 'fake.pth'
    path.write_bytes(b'')
    with open_dict(cfg):
        cfg.task, cfg.checkpoint, cfg.evaluate = 'test', str(path), True
    return cfg


def test_an_image_without_label_names_the_file(tiny_overrides, tmp_path):
    root = bdd100k(tmp_path / 'bdd100k')
    (root / 'labels/sem_seg/masks/val/7d4a9094-0455564b.png').unlink()
    cfg = compose(tiny_overrides, '[{kind:bdd100k}]', f'paths.bdd100k={root}')
    with pytest.raises(DataError, match=r'1 of 2 images of the BDD100K val split have no label '
                                        r'file \*.png \(e.g. .*masks/val/7d4a9094-0455564b.png'):
        domino_seg.build_dataset(cfg, 'test')


def test_condition_folder_errors_name_the_folder(tiny_overrides, tmp_path):
    root = folders(tmp_path / 'field')
    sets = '[{kind:folders,root:' + f'{root}' + '}]'
    (root / 'heavy_rain/labels/c.png').unlink()
    with pytest.raises(DataError, match=r"1 of 1 images of the condition folder 'heavy_rain' "
                                        r'have no label file \*.png \(e.g. '
                                        r'.*heavy_rain/labels/c.png'):
        domino_seg.build_dataset(compose(tiny_overrides, sets), 'test')
    (root / 'empty/images').mkdir(parents=True)
    (root / 'empty/labels').mkdir()
    with pytest.raises(DataError) as err:
        domino_seg.build_dataset(compose(tiny_overrides, '[{kind:folders,root:' + f'{root}' +
                                         ',conditions:[empty]}]'), 'test')
    assert f"the condition folder 'empty' is empty: no *.png|.jpg|.jpeg under " \
           f"'{root}/empty/images'" in str(err.value)
    assert f'{root}/empty/labels/<...>/<name>.png' in str(err.value)
    with pytest.raises(DataError, match=f"the condition folders root '{tmp_path}/nowhere' does "
                                        'not exist'):
        evaluated_conditions(compose(tiny_overrides, '[{kind:folders,root:' +
                                     f'{tmp_path}/nowhere' + '}]').data)
    with pytest.raises(DataError, match=r"has no condition folder\(s\) \['fog'\]; its folders: "
                                        r"\['dusk', 'empty', 'heavy_rain'\]"):
        evaluated_conditions(compose(tiny_overrides, '[{kind:folders,root:' + f'{root}' +
                                     ',conditions:[fog]}]').data)


@pytest.mark.parametrize('sets,message', [
    ('[{kind:kitti}]', r'each evaluation set is a mapping with a kind, one of dark_zurich, '),
    ('[{kind:bdd100k,beta:0.02}]', r"\(bdd100k\) has unknown key\(s\) \['beta'\]"),
    ('[{kind:foggy_cityscapes,beta:0.03}]', r'fog densities 0.005, 0.01, 0.02'),
    ('[{kind:dark_zurich,split:train}]', r"split='train': dark_zurich has the splits val, test"),
    ('[{kind:folders}]', r'data.eval_sets\[0\].root is not set'),
    ('[{kind:bdd100k},{kind:bdd100k}]', r"data.eval_sets\[1\]: its condition 'bdd100k' is "
                                        r'already evaluated \(by data.eval_sets\[0\]\)'),
    ('[{kind:bdd100k,condition:fog}]', r"its condition 'fog' is already evaluated \(by "
                                       r'data.eval_conditions\)'),
    ('[{kind:bdd100k,condition:"a b"}]', r"condition='a b': a name of letters"),
])
def test_bad_entries_are_config_errors(tiny_overrides, sets, message):
    cfg = domino_seg.compose(tiny_overrides + [f'data.eval_sets={sets}'])
    with pytest.raises(ConfigError, match=message):
        evaluated_conditions(cfg.data)


def test_a_folder_named_like_an_acdc_condition_is_refused(tiny_overrides, tmp_path):
    root = tmp_path / 'field'
    image(root / 'fog/images/a.png', 10)
    label(root / 'fog/labels/a.png', [1])
    cfg = domino_seg.compose(tiny_overrides + ['data.eval_sets=[{kind:folders,root:' +
                                               f'{root}' + '}]'])
    with pytest.raises(ConfigError, match=r"its condition folder 'fog' is already evaluated "
                                          r'\(by data.eval_conditions\).*Rename the folder'):
        domino_seg.build_dataset(cfg, 'test')


@pytest.mark.slow
def test_a_checkpoint_is_evaluated_on_condition_folders(tiny_overrides, tmp_path):
    """Train one iteration, then tools/test.py's job on the condition folders: metrics.json
    has one column per folder, both unseen."""
    from domino_seg.apis import run
    root = folders(tmp_path / 'field')
    run.train(domino_seg.compose(tiny_overrides + [
        'schedule.max_iters=1', 'schedule.val_interval=1', 'data.eval_conditions=[cityscapes]',
        f'work_dir={tmp_path / "run"}']))
    cfg = domino_seg.compose(tiny_overrides + [
        f'checkpoint={tmp_path / "run" / "iter_1.pth"}', f'work_dir={tmp_path / "test"}',
        'data.eval_conditions=[cityscapes]', 'save_predictions=true',
        'data.eval_sets=[{kind:folders,root:' + f'{root}' + '}]'], config_name='test')
    run.test(cfg)
    report = json.loads((tmp_path / 'test' / 'metrics.json').read_text())
    assert list(report['conditions']) == ['cityscapes', 'dusk', 'heavy_rain']
    assert report['conditions']['dusk']['num_images'] == 2
    assert report['conditions']['heavy_rain']['num_images'] == 1
    unseen = [report['conditions'][c]['mIoU'] for c in ('dusk', 'heavy_rain')]
    assert report['mean_unseen_mIoU'] == pytest.approx(sum(unseen) / 2)
    assert (tmp_path / 'test/predictions/dusk/cam2/b_labelTrainIds.png').is_file()
