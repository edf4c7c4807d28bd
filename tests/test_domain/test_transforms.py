"""Domain embeddings as training computes them: the DomainEmbeddingInputs step in mmseg
pipelines and data-loader workers (which never build an encoder), the DomainEmbedder and data
preprocessor in the main process, and the precompute pass; the same embeddings as the
generator's own, per image."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pickle  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmseg.registry import MODELS, TRANSFORMS  # noqa: E402

from domino_seg.domain import clip_generator, precompute_embeddings  # noqa: E402
from domino_seg.domain.clip_generator import DomainPromptGenerator  # noqa: E402
from domino_seg.domain.embedder import DomainEmbedder, inputs_transform_cfg  # noqa: E402
from domino_seg.domain.transforms import INPUT_KEYS  # noqa: E402

CPU = torch.device('cpu')


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (64, 128, 3), dtype=np.uint8)


def inputs(mode):
    return TRANSFORMS.build(inputs_transform_cfg(dict(mode=mode, arch=clip_generator.TINY_CLIP,
                                                      pretrained=None)))


@pytest.mark.parametrize('mode', ['zero_shot', 'image'])
def test_image_modes_equal_the_generators_own_embedding(tmp_path, mode, embed_image):
    """CLIP's input prepared in a worker + CLIP in the main process = the generator embedding
    the decoded image in one call (what the pipeline transform computed before the move)."""
    embedder = DomainEmbedder(dict(mode=mode), cache_dir=str(tmp_path))
    img = image(0)
    embedding = embed_image(embedder, img)
    assert embedding.shape == (64,) and embedding.dtype == torch.float32
    torch.testing.assert_close(embedding, DomainPromptGenerator(mode=mode).embed_images([img])[0],
                               rtol=1e-5, atol=1e-6)
    embed_image(embedder, img.copy())
    assert (embedder.misses, embedder.hits) == (1, 1)


def test_inputs_step_prepares_pixels_and_key_only():
    prepared = inputs('zero_shot')({'img': image(0)})
    pixels = prepared['domain_clip_pixels']
    assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32
    assert len(prepared['domain_cache_key']) == 32 and 'domain_embedding' not in prepared


def test_text_mode_uses_condition_and_aliases():
    embedder = DomainEmbedder(dict(mode='text'))
    table = DomainPromptGenerator(mode='text')
    step = inputs('text')
    for condition, bank_condition in [('cityscapes', 'clear'), ('fog', 'fog'), ('night', 'night')]:
        prepared = step({'img': image(0), 'condition': condition})
        assert prepared['domain_condition'] == bank_condition
        torch.testing.assert_close(embedder([prepared], CPU)[0],
                                   table.embed_conditions([bank_condition])[0])
    prepared = step({'img': image(0), 'condition': 'cityscapes', 'prompt_condition': 'night'})
    assert prepared['domain_condition'] == 'night'  # an evaluation set's prompt
    with pytest.raises(KeyError, match=r"\['sandstorm'\].*'clear', 'fog', 'night', 'rain', 'snow'"):
        embedder([step({'img': image(0), 'condition': 'sandstorm'})], CPU)
    with pytest.raises(KeyError, match=r"needs results\['condition'\].*x.png"):
        step({'img': image(0), 'img_path': 'x.png'})


def test_none_mode_is_refused():
    """The baseline (domain=none) has neither step nor embedder."""
    with pytest.raises(ValueError, match="unknown domain embedding mode 'none'"):
        TRANSFORMS.build(dict(type='DomainEmbeddingInputs', mode='none'))
    with pytest.raises(ValueError, match="unknown domain embedding mode 'none'"):
        DomainEmbedder(dict(mode='none'))


def test_a_sample_without_inputs_is_a_clear_error():
    with pytest.raises(KeyError, match=r"samples \[1\] \(\['b.png'\]\).*DomainEmbeddingInputs"):
        DomainEmbedder(dict(mode='text'))([{'domain_condition': 'fog'}, {'img_path': 'b.png'}],
                                          CPU)


def pipeline_sample(tmp_path, mode):
    path = tmp_path / 'img.png'
    cv2.imwrite(str(path), image(0))
    pipeline = Compose([TRANSFORMS.build(cfg) for cfg in [
        dict(type='LoadImageFromFile'),
        inputs_transform_cfg(dict(mode=mode, arch=clip_generator.TINY_CLIP, pretrained=None)),
        dict(type='Resize', scale=(32, 16)),
        dict(type='PackSegInputs',
             meta_keys=('img_path', 'img_shape', 'condition', *INPUT_KEYS)),
    ]])
    return path, pipeline({'img_path': str(path), 'condition': 'cityscapes', 'seg_fields': []})


def test_data_preprocessor_embeds_the_batch_where_the_model_runs(tmp_path):
    """The data preprocessor sets each sample's embedding from the pipeline's inputs (which it
    drops); CLIP is no module of the model (not in its state dict or parameters); the features
    are float32 under a bf16 autocast too."""
    path, packed = pipeline_sample(tmp_path, 'image')
    preprocessor = MODELS.build(dict(type='DomainEmbeddingDataPreProcessor',
                                     embedder=dict(generator=dict(mode='image'), cache_dir=None),
                                     mean=[0, 0, 0], std=[1, 1, 1], size=(16, 32)))
    expected = DomainPromptGenerator(mode='image').embed_images([cv2.imread(str(path))])[0]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sample = preprocessor(pseudo_collate([packed]), training=True)['data_samples'][0]
    torch.testing.assert_close(sample.metainfo['domain_embedding'], expected,
                               rtol=1e-5, atol=1e-6)
    assert sample.metainfo['domain_embedding'].dtype == torch.float32
    assert not set(INPUT_KEYS) & set(sample.metainfo_keys())
    assert sample.metainfo['img_shape'] == (16, 32)
    assert list(preprocessor.state_dict()) == [] and list(preprocessor.parameters()) == []
    # a sample that brings its own embedding keeps it (domino_seg.Segmenter's)
    given = torch.randn(64)
    _, packed = pipeline_sample(tmp_path, 'image')
    packed['data_samples'].set_metainfo({'domain_embedding': given})
    out = preprocessor(pseudo_collate([packed]))['data_samples'][0]
    assert torch.equal(out.metainfo['domain_embedding'], given)


def test_workers_only_prepare_and_never_build_an_encoder(tmp_path, monkeypatch):
    """Through DataLoader workers (forked: the patch below holds in them), the inputs step
    runs while building any CLIP would fail; the main process embeds the batches after."""
    embedder = DomainEmbedder(dict(mode='zero_shot'), cache_dir=str(tmp_path))
    step = inputs('zero_shot')
    assert len(pickle.dumps(step)) < 10_000 and len(pickle.dumps(embedder)) < 10_000
    images = [image(seed) for seed in range(4)]
    built = clip_generator.OpenClipEncoder.__init__

    def refuse(*args, **kwargs):
        raise AssertionError('an encoder was built in a data-loader worker')
    monkeypatch.setattr(clip_generator.OpenClipEncoder, '__init__', refuse)
    loader = torch.utils.data.DataLoader(
        images, batch_size=2, num_workers=2, multiprocessing_context='fork',
        collate_fn=lambda batch: [step({'img': img}) for img in batch])
    batches = list(loader)
    monkeypatch.setattr(clip_generator.OpenClipEncoder, '__init__', built)
    got = torch.cat([embedder(batch, CPU) for batch in batches])
    torch.testing.assert_close(got, DomainPromptGenerator().embed_images(images),
                               rtol=1e-5, atol=1e-6)
    assert (embedder.misses, embedder.hits) == (4, 0)


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
    embedder_cfg = dict(generator=dict(mode='zero_shot'), cache_dir=str(tmp_path / 'cache'))
    first = precompute_embeddings(datasets, embedder_cfg, progress=False)
    assert (first['computed'], first['hits'], first['has_language_meaning']) == (5, 0, False)
    assert [split['samples'] for split in first['datasets']] == [3, 2]
    second = precompute_embeddings(datasets, {**embedder_cfg, 'generator': dict(mode='image')},
                                   progress=False)
    assert (second['computed'], second['hits']) == (0, 5)
    assert second['datasets'][1]['dataset'].endswith('val/img)')


@pytest.mark.parametrize('batch_size, num_workers', [(1, 0), (2, 2)])
def test_batched_precompute_equals_the_training_embeddings(tmp_path, batch_size, num_workers,
                                                           embed_image):
    """Features embedded in batches by DataLoader workers + CLIP in this process are those
    training computes, per image, to float tolerance; training then only reads the cache."""
    from mmcv.transforms import LoadImageFromFile
    from mmseg.registry import DATASETS
    dataset = make_dataset(tmp_path / 'data', 3)
    embedder_cfg = dict(generator=dict(mode='zero_shot'), cache_dir=str(tmp_path / 'cache'))
    stats = precompute_embeddings([dataset], embedder_cfg, progress=False,
                                  batch_size=batch_size, num_workers=num_workers)
    assert (stats['computed'], stats['hits'], stats['device']) == (3, 0, 'cpu')
    assert stats['images_per_s'] > 0
    cached = DomainEmbedder(**embedder_cfg)
    fresh = DomainEmbedder(**{**embedder_cfg, 'cache_dir': None})
    for sample in DATASETS.build({**dataset, 'pipeline': [LoadImageFromFile()]}):
        a = embed_image(cached, sample['img'])
        b = embed_image(fresh, sample['img'])
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
