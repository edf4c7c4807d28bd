"""EmbeddingCache on its own, and through the DomainEmbedder: hits skip CLIP, and no change of
image, model, bank, mode or temperature can ever return a stale embedding."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import multiprocessing  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from domino_seg.domain.cache import EmbeddingCache  # noqa: E402
from domino_seg.domain.clip_generator import DomainPromptGenerator  # noqa: E402
from domino_seg.domain.embedder import DomainEmbedder  # noqa: E402

IDENTITY = {'arch': 'domino-tiny-clip', 'model_cfg': {}, 'weights': 'random:seed=0'}


def image(seed, shape=(40, 80, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def leftover_temp_files(root):
    return [path for path in root.rglob('*') if path.name.endswith('.tmp')]


def test_key_is_the_decoded_content():
    a = image(0)
    assert EmbeddingCache.key(a) == EmbeddingCache.key(a.copy())
    assert EmbeddingCache.key(a) != EmbeddingCache.key(image(1))
    changed = a.copy()
    changed[0, 0, 0] ^= 1
    assert EmbeddingCache.key(a) != EmbeddingCache.key(changed)
    assert EmbeddingCache.key(a) != EmbeddingCache.key(a.reshape(80, 40, 3))
    assert EmbeddingCache.key(a[:, ::2]) == EmbeddingCache.key(np.ascontiguousarray(a[:, ::2]))


def test_save_load_layout_and_atomicity(tmp_path):
    cache = EmbeddingCache(tmp_path, IDENTITY)
    key = EmbeddingCache.key(image(0))
    assert cache.load(key) is None
    cache.save(key, np.arange(4, dtype=np.float64))
    loaded = cache.load(key)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, np.arange(4))
    assert (cache.dir / key[:2] / f'{key}.npy').is_file()
    assert (cache.dir / 'identity.json').read_text().count('random:seed=0') == 1
    assert EmbeddingCache(tmp_path, {**IDENTITY, 'weights': 'tag:openai'}).dir != cache.dir
    assert leftover_temp_files(tmp_path) == []


def test_unreadable_entry_is_a_miss(tmp_path):
    cache = EmbeddingCache(tmp_path, IDENTITY)
    key = EmbeddingCache.key(image(0))
    cache.save(key, np.ones(4))
    (cache.dir / key[:2] / f'{key}.npy').write_bytes(b'garbage')
    assert cache.load(key) is None
    (cache.dir / key[:2] / f'{key}.npy').write_bytes(b'')  # numpy: EOFError
    assert cache.load(key) is None


def _hammer(root, seed):
    cache = EmbeddingCache(root, IDENTITY)
    key = EmbeddingCache.key(image(0))
    for _ in range(200):
        cache.save(key, np.full(64, seed, np.float32))
        loaded = cache.load(key)
        if loaded is None or loaded.shape != (64,) or len(set(loaded.tolist())) != 1:
            raise AssertionError(f'torn read: {loaded}')


def test_concurrent_writers_and_readers_never_see_partial_files(tmp_path):
    context = multiprocessing.get_context('fork')
    EmbeddingCache(tmp_path, IDENTITY).save(EmbeddingCache.key(image(0)), np.zeros(64))
    workers = [context.Process(target=_hammer, args=(tmp_path, seed)) for seed in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert leftover_temp_files(tmp_path) == []


# --- through the embedder --------------------------------------------------------------------

def make_transform(cache_dir, **generator):
    """A DomainEmbedder whose CLIP image forwards are counted."""
    embedder = DomainEmbedder(generator={'mode': 'zero_shot', **generator},
                              cache_dir=str(cache_dir))
    forwards = []
    model = embedder.generator(torch.device('cpu')).encoder.model
    encode_image = model.encode_image
    model.encode_image = lambda *args, **kwargs: forwards.append(1) or encode_image(*args, **kwargs)
    return embedder, forwards


@pytest.fixture
def embed(embed_image):
    return embed_image


def uncached(img, **generator):
    return DomainPromptGenerator(**{'mode': 'zero_shot', **generator}).embed_images([img])[0]


def test_hit_skips_clip_and_content_change_misses(tmp_path, embed):
    transform, forwards = make_transform(tmp_path)
    first = embed(transform, image(0))
    assert (transform.misses, transform.hits, len(forwards)) == (1, 0, 1)
    second = embed(transform, image(0))
    assert (transform.misses, transform.hits, len(forwards)) == (1, 1, 1)
    assert torch.equal(first, second)
    embed(transform, image(1))
    assert (transform.misses, transform.hits, len(forwards)) == (2, 1, 2)
    assert leftover_temp_files(tmp_path) == []


def write_bank(path, fog_description):
    path.write_text('templates: ["a street {}.", "a road {}."]\n'
                    f'conditions: {{clear: on a sunny day, fog: {fog_description}, '
                    'night: at night}\n')
    return str(path)


@pytest.mark.parametrize('change', [
    {'prompt_bank': 'edited'},
    {'temperature': 0.5},
    {'mode': 'image'},
])
def test_bank_temperature_and_mode_changes_reuse_features_but_never_stale_output(tmp_path, embed,
                                                                               change):
    """The cache holds features taken before bank/mode/temperature apply, so these changes hit
    (no CLIP image forward) and still give exactly the fresh result."""
    original = {'prompt_bank': write_bank(tmp_path / 'a.yaml', 'in fog')}
    changed = {**original, **change}
    if change.get('prompt_bank') == 'edited':
        changed['prompt_bank'] = write_bank(tmp_path / 'b.yaml', 'under heavy snowfall')
    img = image(0)
    before, _ = make_transform(tmp_path / 'cache', **original)
    old = embed(before, img)
    after, forwards = make_transform(tmp_path / 'cache', **changed)
    new = embed(after, img)
    assert (after.hits, after.misses, len(forwards)) == (1, 0, 0)
    torch.testing.assert_close(new, uncached(img, **changed))
    assert not torch.allclose(new, old)


@pytest.mark.parametrize('change', [{'seed': 1}, {'model_cfg': {'vision_cfg': {'layers': 1}}}])
def test_model_changes_miss(tmp_path, embed, change):
    img = image(0)
    embed(make_transform(tmp_path)[0], img)
    transform, forwards = make_transform(tmp_path, **change)
    torch.testing.assert_close(embed(transform, img), uncached(img, **change))
    assert (transform.hits, transform.misses, len(forwards)) == (0, 1, 1)


def test_weights_file_change_misses(tmp_path, embed):
    img = image(0)
    checkpoint = tmp_path / 'clip.pt'
    source = DomainPromptGenerator(mode='image', seed=5).encoder.model.state_dict()
    torch.save(source, checkpoint)
    embed(make_transform(tmp_path / 'cache', pretrained=str(checkpoint))[0], img)
    torch.save({name: value + 0.01 for name, value in source.items()}, checkpoint)
    transform, forwards = make_transform(tmp_path / 'cache', pretrained=str(checkpoint))
    embed(transform, img)
    assert (transform.hits, transform.misses, len(forwards)) == (0, 1, 1)


def test_each_cached_file_is_read_once_and_memory_is_bounded(tmp_path, embed, monkeypatch):
    """The embedder keeps recent features in memory in front of the files: a second pass over
    the same images reads no file and runs no CLIP, and the memory holds RECENT_FEATURES."""
    from domino_seg.domain import embedder as embedder_module
    monkeypatch.setattr(embedder_module, 'RECENT_FEATURES', 2)
    embed(make_transform(tmp_path)[0], image(0))  # a file on disk, from another process
    transform, forwards = make_transform(tmp_path)
    reads = []
    load = transform._cache.load
    transform._cache.load = lambda *args, **kwargs: reads.append(1) or load(*args, **kwargs)
    first = [embed(transform, image(seed)) for seed in (0, 1)]
    assert (len(reads), len(forwards), transform.hits, transform.misses) == (2, 1, 1, 1)
    second = [embed(transform, image(seed)) for seed in (0, 1)]
    assert (len(reads), len(forwards), transform.hits) == (2, 1, 3)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    embed(transform, image(2))  # a third image: the oldest leaves the memory
    assert list(transform._recent) == [EmbeddingCache.key(image(s)) for s in (1, 2)]
    embed(transform, image(0))
    assert len(reads) == 4 and len(forwards) == 2  # read again from its file, no CLIP
