"""Domino through the composed configs: identity at init, embeddings computed by the model's
data preprocessor from what the data pipeline prepares, the cache keeping CLIP out of training
steps."""
import pytest
import torch
from mmengine.registry import DATASETS

import domino_seg


def composed(tiny_overrides, *extra):
    return domino_seg.compose([o for o in tiny_overrides if not o.startswith('schedule')] +
                              list(extra))


@pytest.mark.parametrize('scope', ['head', 'backbone', 'full'])
def test_domino_model_equals_the_baseline_at_init(tiny_overrides, scope):
    torch.manual_seed(0)
    baseline = domino_seg.build_segmentor(composed(tiny_overrides)).eval()
    domino = domino_seg.build_segmentor(
        composed(tiny_overrides, f'domino={scope}', 'domain=text')).eval()
    missing = domino.load_state_dict(baseline.state_dict(), strict=False).missing_keys
    assert missing and all('domain_encoder' in k or '.mlp.' in k for k in missing)
    images = torch.rand(3, 3, 64, 128)
    metas = [dict(img_shape=(64, 128), ori_shape=(64, 128), pad_shape=(64, 128),
                  domain_embedding=torch.randn(64)) for _ in range(3)]
    with torch.no_grad():
        expected = baseline.encode_decode(images, metas)
        actual = domino.encode_decode(images, metas)
    assert torch.allclose(actual, expected, atol=1e-6)


def test_preprocessor_embeds_the_pipelines_samples_and_cache_skips_clip(tiny_overrides,
                                                                        tmp_path, embed_samples):
    cfg = composed(tiny_overrides, 'domino=head', 'domain=zero_shot',
                   f'domain.cache_dir={tmp_path / "cache"}')
    mm = domino_seg.to_mmengine(cfg)
    dataset = DATASETS.build(mm.train_dataloader.dataset)  # one source: Cityscapes train
    model = domino_seg.build_segmentor(cfg)
    embedder = model.data_preprocessor.embedder

    first = embed_samples(model, [dataset[i] for i in range(len(dataset))])
    assert embedder.misses == len(dataset) and embedder.hits == 0
    assert first[0].shape == (64,) and first[0].dtype == torch.float32

    calls = []
    embedder.generator(torch.device('cpu')).encoder.model.encode_image = \
        lambda *a, **k: calls.append(1)  # must not run
    second = embed_samples(model, [dataset[i] for i in range(len(dataset))])
    assert calls == [] and embedder.hits == len(dataset)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_text_mode_embeds_the_condition_label(tiny_overrides, embed_samples):
    cfg = composed(tiny_overrides, 'domino=head', 'domain=text')
    mm = domino_seg.to_mmengine(cfg)
    eval_sets = mm.test_dataloader.dataset.datasets
    clear = DATASETS.build(eval_sets[0])[0]
    fog = DATASETS.build(eval_sets[1])[0]
    assert clear['data_samples'].metainfo['condition'] == 'cityscapes'
    assert fog['data_samples'].metainfo['condition'] == 'fog'
    assert clear['data_samples'].metainfo['domain_condition'] == 'clear'
    a, b = embed_samples(cfg, [clear, fog])
    assert not torch.allclose(a, b)
