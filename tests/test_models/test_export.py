"""ONNX export of folded models (onnxruntime vs PyTorch on CPU) and the export-only layers."""
import numpy as np
import pytest
import torch
import torch.nn as nn

import domino_seg
from domino_seg.domain.clip_generator import DomainPromptGenerator
from domino_seg.models.export import (
    ClipImageEmbedding,
    FixedAdaptiveAvgPool2d,
    SegmentorLogits,
    TraceableMultiheadAttention,
    export_clip_image_onnx,
    export_segmentor_onnx,
    max_onnx_difference,
    onnx_session,
)
from domino_seg.models.fold import fold_domino

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


def folded(name, tiny_model, pretrained_norms):
    cfg = domino_seg.compose([f'model={name}', 'domino=full', 'domain=text', *tiny_model[name]])
    model = pretrained_norms(domino_seg.build_segmentor(cfg)).eval()
    with torch.no_grad():
        for param in model.parameters():  # the Domino MLPs too (zero-initialised)
            if param.dim() == 2 and not param.abs().sum():
                param.normal_(std=0.5)
    embedding = torch.randn(model.domain_embed_dim)
    return model, embedding, fold_domino(model, embedding)


@pytest.mark.parametrize('name, fixed', [
    ('segformer_mit_tiny', None),       # MiT attention over a downsampled key grid
    ('resnet50_deeplabv3plus', None),
    ('clip_vit_b16_upernet', 'positional embedding'),
    ('dinov2_vits14_upernet', 'positional embedding'),
])
def test_onnx_equals_pytorch(name, fixed, tiny_model, pretrained_norms, tmp_path):
    model, embedding, plain = folded(name, tiny_model, pretrained_norms)
    path = str(tmp_path / 'model.onnx')
    why = export_segmentor_onnx(plain, path, (64, 128), metadata=dict(condition='fog'))
    assert (why is None) if fixed is None else (fixed in why and 'pools' in why)
    session = onnx_session(path)
    sizes = [(64, 128), (96, 64), (70, 90)] if fixed is None else [(64, 128)]
    for h, w in sizes:
        images = torch.rand(2, 3, h, w) * 255
        difference, scale = max_onnx_difference(session, SegmentorLogits(plain), images)
        assert difference < 1e-4 * max(1, scale), (h, w)
        # and the graph computes the Domino model for the embedding
        with torch.no_grad():
            domino = SegmentorLogits(model, embedding)(images).numpy()
        got = session.run(None, {'image': images.numpy()})[0]
        np.testing.assert_allclose(got, domino, rtol=1e-4, atol=1e-4)
    if fixed is not None:  # other sizes are refused, not silently wrong
        with pytest.raises(Exception, match='dimensions'):
            session.run(None, {'image': np.zeros((1, 3, 96, 64), np.float32)})
    import onnx
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props['condition'] == 'fog' and 'BGR' in props['input']
    assert props['input_size'] == ('dynamic' if fixed is None else
                                   '64x128 (height x width) only: ' + why)


@pytest.mark.parametrize('batch_first', [False, True])
def test_traceable_attention_equals_torch(batch_first):
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    traceable = TraceableMultiheadAttention(attention)
    q, k = torch.randn(2, 10, 16), torch.randn(2, 7, 16)
    if not batch_first:
        q, k = q.transpose(0, 1), k.transpose(0, 1)
    mask = torch.rand(10, 7) > 0.7
    mask[:, 0] = False
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, -2:] = True
    for kwargs in (dict(), dict(attn_mask=mask), dict(key_padding_mask=padding),
                   dict(attn_mask=mask.float() * -3, key_padding_mask=padding)):
        with torch.no_grad():
            torch.testing.assert_close(traceable(q, k, k, **kwargs)[0],
                                       attention(q, k, k, **kwargs)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('size, out', [((12, 18), 6), ((13, 7), (3, 2)), ((5, 9), (6, None))])
def test_fixed_adaptive_pooling_equals_torch(size, out):
    x = torch.randn(2, 3, *size)
    torch.testing.assert_close(FixedAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d(out))(x),
                               nn.AdaptiveAvgPool2d(out)(x))


@pytest.mark.parametrize('mode', ['zero_shot', 'image'])
def test_clip_image_tower_onnx(mode, tmp_path):
    generator = DomainPromptGenerator(mode=mode)
    path = str(tmp_path / 'clip.onnx')
    example = export_clip_image_onnx(generator, path)
    session = onnx_session(path)
    embedding, probabilities = session.run(None, {'image': example[:1].numpy()})
    # what the generator computes from the same (preprocessed) image
    with torch.no_grad():
        features = generator.encoder.model.encode_image(example[:1], normalize=True)
    np.testing.assert_allclose(embedding, generator.embed_from_features(features).numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probabilities,
                               generator.condition_probabilities(features).numpy(),
                               rtol=1e-4, atol=1e-5)
    difference, _ = max_onnx_difference(session, ClipImageEmbedding(generator), example)
    assert difference < 1e-5
