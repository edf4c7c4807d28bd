"""DomainEmbedder in text mode: a batch's embeddings are a lookup in the fixed bank table,
without per-sample work, and the same values (and errors) as before."""
import pytest
import torch

from domino_seg.domain.data_preprocessor import DomainEmbeddingDataPreProcessor
from domino_seg.domain.embedder import DomainEmbedder
from domino_seg.errors import WeightsError

CPU = torch.device('cpu')
TEXT = dict(mode='text', arch='domino-tiny-clip', pretrained=None, seed=0)


@pytest.fixture
def embedder():
    return DomainEmbedder(TEXT)


def metas(*conditions):
    return [{'domain_condition': c, 'img_path': f'{i}.png'} for i, c in enumerate(conditions)]


def test_text_batch_is_the_bank_rows(embedder):
    generator = embedder.generator(CPU)
    got = embedder(metas('fog', 'clear', 'fog', 'night'), CPU)
    index = [generator.conditions.index(c) for c in ('fog', 'clear', 'fog', 'night')]
    assert got.dtype == torch.float32 and torch.equal(got, generator.condition_embeddings[index])


def test_text_mode_checks_the_fixed_bank_once(embedder, monkeypatch):
    embedder(metas('fog'), CPU)
    calls = []
    isfinite = torch.isfinite
    monkeypatch.setattr(torch, 'isfinite', lambda t: calls.append(t.shape) or isfinite(t))
    for _ in range(3):
        embedder(metas('fog', 'night', 'rain'), CPU)
    assert calls == []  # no per-sample (or per-batch) re-check of fixed vectors


def test_a_non_finite_bank_row_is_an_error_only_for_its_samples(embedder):
    generator = embedder.generator(CPU)
    generator.condition_embeddings[generator.conditions.index('snow')] = float('nan')
    assert embedder(metas('fog', 'night'), CPU).isfinite().all()
    with pytest.raises(WeightsError, match=r'the domain embedding of 1\.png holds NaN/inf'):
        embedder(metas('fog', 'snow'), CPU)


def test_preprocessor_gives_each_sample_its_row_without_copies():
    from mmseg.structures import SegDataSample
    pre = DomainEmbeddingDataPreProcessor(embedder=dict(generator=TEXT), size=(8, 8))
    samples = []
    for meta in metas('fog', 'night'):
        sample = SegDataSample()
        sample.set_metainfo(meta)
        samples.append(sample)
    data = pre(dict(inputs=[torch.zeros(3, 8, 8)] * 2, data_samples=samples), training=True)
    out = [s.metainfo['domain_embedding'] for s in data['data_samples']]
    generator = pre.embedder.generator(CPU)
    for e, c in zip(out, ('fog', 'night')):
        assert torch.equal(e, generator.condition_embeddings[generator.conditions.index(c)])
    assert out[0].untyped_storage().data_ptr() == out[1].untyped_storage().data_ptr()
    assert all('domain_condition' not in s for s in data['data_samples'])
