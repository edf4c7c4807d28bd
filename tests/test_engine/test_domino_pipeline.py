"""Domino through the composed configs: identity at init, embeddings from the data pipeline,
the cache keeping CLIP out of training steps."""
import pytest
import torch
from mmengine.registry import DATASETS

import domino_seg
from domino_seg.domain.transforms import DomainEmbedding


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


def test_pipeline_puts_embeddings_in_metainfo_and_cache_skips_clip(tiny_overrides, tmp_path):
    cfg = composed(tiny_overrides, 'domino=head', 'domain=zero_shot',
                   f'domain.cache_dir={tmp_path / "cache"}')
    mm = domino_seg.to_mmengine(cfg)
    dataset = DATASETS.build(mm.train_dataloader.dataset)  # one source: Cityscapes train
    transform = next(t for t in dataset.datasets[0].pipeline.transforms
                     if isinstance(t, DomainEmbedding))

    first = [dataset[i] for i in range(len(dataset))]
    assert transform.misses == len(dataset) and transform.hits == 0
    embedding = first[0]['data_samples'].metainfo['domain_embedding']
    assert embedding.shape == (64,) and embedding.dtype == torch.float32

    calls = []
    transform.generator.encoder.model.encode_image = lambda *a, **k: calls.append(1)  # must not run
    second = [dataset[i] for i in range(len(dataset))]
    assert calls == [] and transform.hits == len(dataset)
    for a, b in zip(first, second):
        assert torch.equal(a['data_samples'].metainfo['domain_embedding'],
                           b['data_samples'].metainfo['domain_embedding'])


def test_text_mode_embeds_the_condition_label(tiny_overrides):
    cfg = composed(tiny_overrides, 'domino=head', 'domain=text')
    mm = domino_seg.to_mmengine(cfg)
    eval_sets = mm.test_dataloader.dataset.datasets
    clear = DATASETS.build(eval_sets[0])[0]['data_samples']
    fog = DATASETS.build(eval_sets[1])[0]['data_samples']
    assert clear.metainfo['condition'] == 'cityscapes' and fog.metainfo['condition'] == 'fog'
    assert not torch.allclose(clear.metainfo['domain_embedding'],
                              fog.metainfo['domain_embedding'])
