"""Prompt bank and embedding cache problems: a broken bank or an unusable cache dir fails
before the runner is built (one paragraph, exit 2); a corrupt cache entry is recomputed with a
warning naming its file; a non-finite computed embedding is an error, never cached."""
import errno
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

import domino_seg
from domino_seg.apis import run
from domino_seg.domain.cache import EmbeddingCache
from domino_seg.domain.clip_generator import DomainPromptGenerator
from domino_seg.domain.embedder import DomainEmbedder
from domino_seg.errors import WeightsError

DOMAIN = ['domino=head', 'domain=zero_shot']


def train_fails(fails, overrides):
    cfg = domino_seg.compose(overrides)
    err = fails(lambda: run.train(cfg))
    assert not (Path(cfg.work_dir) / 'config.yaml').exists()  # up front
    return err


@pytest.mark.parametrize('text,problem', [
    ('templates: [\n', 'while parsing'),
    ('', 'the file is empty'),
    ('conditions: {clear: on a sunny day, fog: in fog}\n', "condition 'clear' has no prompts"),
    ('templates: [1]\nconditions: {clear: sunny}\n', 'templates must be a non-empty string'),
    ('templates: ["a {}."]\nconditions:\n  clear: sunny\n  clear: bright\n',
     "duplicate key 'clear' (line 4)"),
])
def test_broken_prompt_bank_fails_up_front(overrides, tmp_path, fails, text, problem):
    bank = tmp_path / 'bank.yaml'
    bank.write_text(text)
    err = train_fails(fails, overrides + DOMAIN + [f'domain.prompt_bank={bank}'])
    assert f'error: domain.prompt_bank: {bank}: ' in err and problem in err
    assert 'domain.prompt_bank=null for the default weather bank' in err


def test_missing_prompt_bank_file(overrides, tmp_path, fails):
    err = train_fails(fails, overrides + DOMAIN + [f'domain.prompt_bank={tmp_path}/nope.yaml'])
    assert f'domain.prompt_bank: prompt bank file not found: {tmp_path}/nope.yaml' in err


def test_text_mode_needs_every_condition_it_embeds(overrides, tmp_path, fails):
    bank = tmp_path / 'bank.yaml'
    bank.write_text('templates: ["a photo {}."]\nconditions: {fog: in fog, night: at night}\n')
    err = train_fails(fails, overrides + ['domino=head', 'domain=text',
                                          'data.eval_conditions=[cityscapes,fog,snow]',
                                          f'domain.prompt_bank={bank}'])
    assert f"the bank {bank} has no condition(s) ['clear', 'snow'], which domain=text embeds" \
        in err
    assert "its conditions: ['fog', 'night']" in err and 'cityscapes samples use "clear"' in err


def test_cache_dir_under_a_file(overrides, tmp_path, fails):
    (tmp_path / 'a_file').write_text('')
    err = train_fails(fails, overrides + DOMAIN + [f'domain.cache_dir={tmp_path}/a_file/cache'])
    assert f"domain.cache_dir='{tmp_path}/a_file/cache' cannot hold the embedding cache (Not a " \
           'directory)' in err
    assert 'domain.cache_dir=/a/writable/folder, or domain.cache_dir=null' in err


def test_read_only_cache_dir(overrides, tmp_path, fails, monkeypatch):
    def read_only(*args, **kwargs):  # as on a read-only mount (root ignores chmod)
        raise OSError(errno.EROFS, 'Read-only file system')
    monkeypatch.setattr(tempfile, 'TemporaryFile', read_only)
    err = train_fails(fails, overrides + DOMAIN + [f'domain.cache_dir={tmp_path}/cache'])
    assert f"domain.cache_dir='{tmp_path}/cache' cannot hold the embedding cache (Read-only " \
           'file system)' in err


# --- corrupt entries and non-finite embeddings ----------------------------------------------

@pytest.fixture
def warnings_logged():
    """Messages of mmengine's current logger at WARNING and above."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (40, 80, 3), dtype=np.uint8)


@pytest.mark.parametrize('entry,problem', [
    (np.full(64, np.nan, np.float32), 'non-finite (NaN/inf) or non-float values'),
    (np.array([np.inf] * 64, np.float32), 'non-finite (NaN/inf) or non-float values'),
    (np.zeros(7, np.float32), 'shape (7,) instead of (64,)'),
    (np.zeros((2, 64), np.float32), 'shape (2, 64) instead of (64,)'),
    # finite and of the right shape, but not a normalised CLIP feature: mIoU would change
    (np.full(64, 1.0, np.float32), 'norm 8 instead of 1'),
    (np.full(64, 0.01, np.float32), 'norm 0.08 instead of 1'),
])
def test_corrupt_cache_entry_is_recomputed_with_a_warning(tmp_path, warnings_logged, entry,
                                                          problem, embed_image):
    embed = embed_image
    img = image()
    transform = DomainEmbedder(generator={'mode': 'zero_shot'}, cache_dir=str(tmp_path))
    expected = embed(transform, img)
    generator = transform.generator(torch.device('cpu'))
    assert generator.embed_dim == 64
    cache = EmbeddingCache(tmp_path, generator.identity)
    path = cache.dir / EmbeddingCache.key(img)[:2] / f'{EmbeddingCache.key(img)}.npy'
    np.save(path, entry)

    fresh = DomainEmbedder(generator={'mode': 'zero_shot'}, cache_dir=str(tmp_path))
    torch.testing.assert_close(embed(fresh, img), expected)
    assert (fresh.hits, fresh.misses) == (0, 1)
    assert f'embedding cache file {path} is corrupt ({problem}); recomputing it.' in \
        warnings_logged
    assert np.isfinite(np.load(path)).all() and np.load(path).shape == (64,)  # overwritten
    embed(fresh, img)
    assert (fresh.hits, fresh.misses) == (1, 1)


def test_non_finite_clip_output_is_an_error_and_not_cached(tmp_path, embed_image):
    embed = embed_image
    checkpoint = tmp_path / 'clip_nan.pt'
    weights = DomainPromptGenerator(mode='image').encoder.model.state_dict()
    torch.save({name: value * float('nan') if value.is_floating_point() else value
                for name, value in weights.items()}, checkpoint)
    transform = DomainEmbedder(generator={'mode': 'zero_shot', 'pretrained': str(checkpoint)},
                               cache_dir=str(tmp_path / 'cache'))
    with pytest.raises(WeightsError) as err:
        embed(transform, image())
    assert 'the domain embedding of a.png holds NaN/inf' in str(err.value)
    assert f'domain.clip.pretrained={str(checkpoint)!r}' in str(err.value)
    assert list((tmp_path / 'cache').rglob('*.npy')) == []


@pytest.mark.parametrize('overrides,message', [
    (['domain=text'], 'domain=text has no image embeddings to precompute; use domain=zero_shot'),
    (['domain=zero_shot', 'domain.cache_dir=null'], 'domain.cache_dir is null; set it to where'),
])
def test_precompute_needs_an_image_mode_and_a_cache(overrides, message):
    from domino_seg.domain import builder
    from domino_seg.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        builder.precompute_cfg(domino_seg.compose(overrides, 'embed_domains').domain)
