"""DomainEmbedding in mmseg pipelines, in dataloader workers, and the precompute pass."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pickle  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402

from domino_seg.domain import precompute_embeddings  # noqa: E402
from domino_seg.domain.clip_generator import DomainPromptGenerator  # noqa: E402
from mmseg.registry import TRANSFORMS  # noqa: E402


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (64, 128, 3), dtype=np.uint8)


def build(mode, cache_dir=None, **kwargs):
    return TRANSFORMS.build(dict(type='DomainEmbedding', generator=dict(mode=mode),
                                 cache_dir=cache_dir, **kwargs))


def test_zero_shot_embedding_of_a_results_dict(tmp_path):
    transform = build('zero_shot', cache_dir=str(tmp_path))
    img = image(0)
    results = transform({'img': img, 'img_path': 'x.png', 'condition': 'fog'})
    embedding = results['domain_embedding']
    assert embedding.shape == (64,) and embedding.dtype == torch.float32
    torch.testing.assert_close(embedding, DomainPromptGenerator().embed_images([img])[0])
    transform({'img': img.copy(), 'img_path': 'y.png'})
    assert (transform.misses, transform.hits) == (1, 1)


def test_text_mode_uses_condition_and_aliases():
    transform = build('text')
    table = DomainPromptGenerator(mode='text')
    for condition, bank_condition in [('cityscapes', 'clear'), ('fog', 'fog'), ('night', 'night')]:
        embedding = transform({'img': image(0), 'condition': condition})['domain_embedding']
        torch.testing.assert_close(embedding, table.embed_conditions([bank_condition])[0])
    with pytest.raises(KeyError, match=r"\['sandstorm'\].*'clear', 'fog', 'night', 'rain', 'snow'"):
        transform({'img': image(0), 'condition': 'sandstorm'})
    with pytest.raises(KeyError, match=r"needs results\['condition'\].*x.png"):
        transform({'img': image(0), 'img_path': 'x.png'})


def test_none_mode_is_refused():
    """The baseline (domain=none) has no DomainEmbedding transform in its pipeline."""
    with pytest.raises(ValueError, match="unknown domain embedding mode 'none'"):
        build('none')


def test_pipeline_carries_embedding_into_metainfo(tmp_path):
    path = tmp_path / 'img.png'
    cv2.imwrite(str(path), image(0))
    pipeline = Compose([TRANSFORMS.build(cfg) for cfg in [
        dict(type='LoadImageFromFile'),
        dict(type='DomainEmbedding', generator=dict(mode='image'),
             cache_dir=str(tmp_path / 'cache')),
        dict(type='Resize', scale=(32, 16)),
        dict(type='PackSegInputs',
             meta_keys=('img_path', 'img_shape', 'condition', 'domain_embedding')),
    ]])
    packed = pipeline({'img_path': str(path), 'condition': 'cityscapes', 'seg_fields': []})
    metainfo = packed['data_samples'].metainfo
    assert metainfo['condition'] == 'cityscapes' and metainfo['img_shape'] == (16, 32)
    expected = DomainPromptGenerator(mode='image').embed_images([cv2.imread(str(path))])[0]
    torch.testing.assert_close(metainfo['domain_embedding'], expected)


def test_pickling_drops_the_model_and_workers_rebuild(tmp_path):
    transform = build('zero_shot', cache_dir=str(tmp_path))
    images = [image(seed) for seed in range(3)]
    expected = [transform({'img': img})['domain_embedding'] for img in images]
    clone = pickle.loads(pickle.dumps(transform))
    assert clone._generator is None and len(pickle.dumps(transform)) < 10_000

    loader = torch.utils.data.DataLoader(
        images, batch_size=None, num_workers=1, multiprocessing_context='fork',
        collate_fn=lambda img: transform({'img': img})['domain_embedding'])
    for got, want in zip(loader, expected):
        torch.testing.assert_close(got, want)


def make_dataset(root, count, first_seed=0):
    (root / 'img').mkdir(parents=True)
    (root / 'ann').mkdir()
    for index in range(count):
        cv2.imwrite(str(root / 'img' / f'{index}.png'), image(first_seed + index))
        cv2.imwrite(str(root / 'ann' / f'{index}.png'), np.zeros((64, 128), np.uint8))
    return dict(type='BaseSegDataset', data_root=str(root), img_suffix='.png',
                data_prefix=dict(img_path='img', seg_map_path='ann'),
                metainfo=dict(classes=('a', 'b')))


def test_precompute_fills_the_cache_then_hits(tmp_path):
    datasets = [make_dataset(tmp_path / 'train', 3),
                make_dataset(tmp_path / 'val', 2, first_seed=3)]
    transform_cfg = dict(generator=dict(mode='zero_shot'), cache_dir=str(tmp_path / 'cache'))
    first = precompute_embeddings(datasets, transform_cfg, progress=False)
    assert (first['computed'], first['hits'], first['has_language_meaning']) == (5, 0, False)
    assert [split['samples'] for split in first['datasets']] == [3, 2]
    second = precompute_embeddings(datasets, {**transform_cfg, 'generator': dict(mode='image')},
                                   progress=False)
    assert (second['computed'], second['hits']) == (0, 5)
    assert second['datasets'][1]['dataset'].endswith('val/img)')


@pytest.mark.parametrize('batch_size, num_workers', [(1, 0), (2, 2)])
def test_batched_precompute_equals_the_training_transform(tmp_path, batch_size, num_workers):
    """Features embedded in batches by DataLoader workers + CLIP in this process are the
    transform's own, per image, to float tolerance; training then only reads the cache."""
    import numpy as np
    from mmcv.transforms import LoadImageFromFile
    from mmseg.registry import DATASETS, TRANSFORMS
    dataset = make_dataset(tmp_path / 'data', 3)
    transform_cfg = dict(generator=dict(mode='zero_shot'), cache_dir=str(tmp_path / 'cache'))
    stats = precompute_embeddings([dataset], transform_cfg, progress=False,
                                  batch_size=batch_size, num_workers=num_workers)
    assert (stats['computed'], stats['hits'], stats['device']) == (3, 0, 'cpu')
    assert stats['images_per_s'] > 0
    cached = TRANSFORMS.build({'type': 'DomainEmbedding', **transform_cfg})
    fresh = TRANSFORMS.build({'type': 'DomainEmbedding', **transform_cfg, 'cache_dir': None})
    for sample in DATASETS.build({**dataset, 'pipeline': [LoadImageFromFile()]}):
        a = cached(dict(sample))['domain_embedding']
        b = fresh(dict(sample))['domain_embedding']
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert (cached.hits, cached.misses) == (3, 0)


def test_each_split_and_condition_is_named():
    from domino_seg.domain.precompute import describe_dataset
    names = [describe_dataset(dict(type='ACDCDataset', data_root='data/acdc', condition=c,
                                   split='val')) for c in ('fog', 'night')]
    assert names == ['ACDCDataset fog val (data/acdc)', 'ACDCDataset night val (data/acdc)']


def test_precompute_skips_modes_without_images(tmp_path):
    stats = precompute_embeddings([make_dataset(tmp_path, 1)], dict(generator=dict(mode='text')),
                                  progress=False)
    assert (stats['mode'], stats['computed'], stats['datasets']) == ('text', 0, [])
    with pytest.raises(ValueError, match='cache_dir'):
        precompute_embeddings([], dict(generator=dict(mode='image')), progress=False)
