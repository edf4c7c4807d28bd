"""DomainPromptGenerator on the tiny random CLIP: every mode against a by-hand recomputation,
checkpoint loading through open_clip's real path, and the fast offline failures."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')


import huggingface_hub  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from domino_seg.domain.clip_generator import DomainPromptGenerator  # noqa: E402
from domino_seg.domain.prompts import load_prompt_bank  # noqa: E402

BANK = load_prompt_bank()


def build(mode, **kwargs):
    return DomainPromptGenerator(mode=mode, prompt_bank=BANK, **kwargs)


@pytest.fixture(scope='module')
def generators():
    return {mode: build(mode) for mode in ('text', 'zero_shot', 'image')}


@pytest.fixture(scope='module')
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48 + 16 * i, 96, 3), dtype=np.uint8) for i in range(3)]


def features_by_hand(generator, images_bgr):
    rgb = [Image.fromarray(np.ascontiguousarray(image[..., ::-1])) for image in images_bgr]
    batch = torch.stack([generator.encoder.preprocess(image) for image in rgb])
    with torch.no_grad():
        return F.normalize(generator.encoder.model.encode_image(batch), dim=-1)


def test_text_is_normalised_mean_of_prompt_embeddings(generators):
    generator = generators['text']
    assert generator.embed_dim == 64 and generator.conditions == BANK.conditions
    with torch.no_grad():
        tokens = generator.encoder.tokenizer(list(BANK.prompts['fog']))
        prompts = F.normalize(generator.encoder.model.encode_text(tokens), dim=-1)
    expected = F.normalize(prompts.mean(0), dim=0)
    embeddings = generator.embed_conditions(['fog', 'clear', 'fog'])
    assert embeddings.shape == (3, 64) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings[0], expected)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_image_mode_is_normalised_image_features(generators, images):
    generator = generators['image']
    embeddings = generator.embed_images(images)
    assert embeddings.shape == (3, 64) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings, features_by_hand(generator, images))
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))


def test_channel_order_is_explicit(generators, images):
    generator = generators['image']
    rgb = [np.ascontiguousarray(image[..., ::-1]) for image in images]
    torch.testing.assert_close(generator.embed_images(rgb, channel_order='rgb'),
                               generator.embed_images(images))
    assert not torch.allclose(generator.embed_images(rgb), generator.embed_images(images))
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        generator.embed_images([images[0].astype(np.float32)])


def test_zero_shot_is_softmax_weighted_mix(generators, images):
    generator = generators['zero_shot']
    table = generators['text'].embed_conditions(BANK.conditions)  # same seed -> same weights
    probabilities = torch.softmax(features_by_hand(generator, images) @ table.T / 0.01, dim=-1)
    torch.testing.assert_close(generator.embed_images(images), probabilities @ table)
    torch.testing.assert_close(generator.condition_probabilities(generator.image_features(images)),
                               probabilities)
    assert (generator.embed_images(images).norm(dim=1) <= 1 + 1e-5).all()


def test_zero_shot_small_temperature_approaches_argmax_condition(generators, images):
    sharp = build('zero_shot', temperature=1e-5)
    winners = sharp.condition_probabilities(sharp.image_features(images)).argmax(dim=1)
    expected = sharp.condition_embeddings[winners]
    torch.testing.assert_close(sharp.embed_images(images), expected, atol=1e-4, rtol=0)


def test_random_weights_are_reproducible_and_leave_global_rng_alone(generators):
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    again = build('text')
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(again.condition_embeddings, generators['text'].condition_embeddings)
    assert not again.has_language_meaning
    assert again.identity == {'arch': 'domino-tiny-clip', 'model_cfg': {},
                              'weights': 'random:seed=0'}
    other_seed = build('text', seed=1)
    assert not torch.allclose(other_seed.condition_embeddings, again.condition_embeddings)


def test_model_cfg_is_deep_merged():
    generator = build('text', model_cfg={'vision_cfg': {'layers': 1}})
    assert len(generator.encoder.model.visual.transformer.resblocks) == 1
    assert generator.encoder.model.visual.transformer.width == 64
    assert generator.identity['model_cfg'] == {'vision_cfg': {'layers': 1}}


def test_errors_for_labels_modes_and_temperature(generators, images):
    with pytest.raises(KeyError, match=r"\['hail'\].*'clear', 'fog'"):
        generators['text'].embed_conditions(['hail'])
    with pytest.raises(ValueError, match='use embed_conditions'):
        generators['text'].embed_images(images)
    for mode in ('clip', 'none'):  # the baseline (domain=none) builds no generator
        with pytest.raises(ValueError, match='unknown domain embedding mode'):
            build(mode)
    with pytest.raises(ValueError, match='temperature'):
        build('zero_shot', temperature=0)


@pytest.mark.parametrize('suffix', ['.pt', '.safetensors'])
def test_local_checkpoint_loads_through_open_clip(generators, tmp_path, suffix):
    source = generators['image'].encoder.model
    path = tmp_path / f'tiny{suffix}'
    if suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    loaded = build('image', pretrained=str(path), seed=123)  # seed 123 alone: other weights
    loaded_state = loaded.encoder.model.state_dict()
    assert loaded_state.keys() == source.state_dict().keys()
    for name, expected in source.state_dict().items():
        assert torch.equal(expected, loaded_state[name]), name
    assert loaded.has_language_meaning
    assert loaded.identity['weights'].startswith('sha256:')


def test_pickled_objects_in_checkpoints_are_refused(generators, tmp_path):
    path = tmp_path / 'evil.pt'
    state_dict = generators['image'].encoder.model.state_dict()
    torch.save({'state_dict': state_dict, 'extra': Image.new('RGB', (1, 1))}, path)
    with pytest.raises(Exception, match='Weights only load failed|weights_only'):
        build('image', pretrained=str(path))


def test_cached_tag_loads_from_hf_cache_with_tag_preprocessing(generators, tmp_path, monkeypatch):
    """A tag resolves to the file in the local HF cache, offline, with the tag's settings."""
    import open_clip
    from safetensors.torch import save_file

    snapshot = tmp_path / 'models--fake--tiny' / 'snapshots' / 'abc123'
    snapshot.mkdir(parents=True)
    (tmp_path / 'models--fake--tiny' / 'refs').mkdir()
    (tmp_path / 'models--fake--tiny' / 'refs' / 'main').write_text('abc123')
    save_file(generators['image'].encoder.model.state_dict(),
              str(snapshot / 'open_clip_model.safetensors'))
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path))
    tag_cfg = {'hf_hub': 'fake/tiny/', 'mean': (0.5, 0.5, 0.5), 'std': (0.5, 0.5, 0.5),
               'resize_mode': 'squash', 'quick_gelu': True}
    monkeypatch.setattr(open_clip, 'get_pretrained_cfg',
                        lambda arch, tag: tag_cfg if tag == 'fake-tag' else {})
    loaded = build('image', pretrained='fake-tag', seed=123)
    assert loaded.identity['weights'] == 'tag:fake-tag' and loaded.has_language_meaning
    assert torch.equal(loaded.encoder.model.logit_scale,
                       generators['image'].encoder.model.logit_scale)
    preprocess_cfg = open_clip.get_model_preprocess_cfg(loaded.encoder.model)
    assert preprocess_cfg['resize_mode'] == 'squash'
    assert tuple(preprocess_cfg['mean']) == (0.5, 0.5, 0.5)
    # the data workers' CLIP input (derived without the model) is open_clip's own
    from domino_seg.domain.clip_generator import clip_preprocess, clip_preprocess_cfg
    worker_cfg = clip_preprocess_cfg('domino-tiny-clip', 'fake-tag')
    assert worker_cfg == loaded.encoder.preprocess_cfg and worker_cfg['resize_mode'] == 'squash'
    _, _, open_clip_preprocess = open_clip.create_model_and_transforms(
        'domino-tiny-clip', image_mean=tag_cfg['mean'], image_std=tag_cfg['std'],
        image_resize_mode='squash')
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 130, 3), np.uint8))
    assert torch.equal(clip_preprocess(worker_cfg)(picture), open_clip_preprocess(picture))
    gelu = loaded.encoder.model.visual.transformer.resblocks[0].mlp.gelu
    assert type(gelu).__name__ == 'QuickGELU'


def test_uncached_tag_fails_fast_with_instructions(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        DomainPromptGenerator(arch='ViT-B-16', pretrained='openai', mode='zero_shot')
    message = str(error.value)
    for hint in ("pretrained='openai'", "open_clip.create_model('ViT-B-16', pretrained='openai')",
                 'domain.clip.pretrained=/path/to/open_clip_model.safetensors',
                 'arch=ViT-B-16-quickgelu', 'domain.clip.pretrained=null'):
        assert hint in message


def test_missing_local_file_and_unknown_tag(tmp_path):
    missing = tmp_path / 'weights' / 'open_clip_model.safetensors'
    with pytest.raises(FileNotFoundError, match=f'not found: {missing}'):
        build('image', pretrained=str(missing))
    with pytest.raises(ValueError, match="neither an open_clip tag of arch 'domino-tiny-clip'"):
        build('image', pretrained='laion2b_s34b_b88k')
