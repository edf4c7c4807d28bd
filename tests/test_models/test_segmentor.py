"""DomainAwareEncoderDecoder: identity at init, training signal, per-sample conditioning."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import domino_seg.compat  # noqa: F401  (conftest imported it before mmseg)
from domino_seg.engine.runner import check_fits, keys_may_miss
from domino_seg.errors import CheckpointError
from domino_seg.models import DomainAwareEncoderDecoder, DominoNorm

EMBED_DIM = 16
SIZE = 32
BN = dict(type='BN', requires_grad=True)
HEAD_COMMON = dict(channels=8, num_classes=3, norm_cfg=BN, dropout_ratio=0.0, align_corners=False)
MODELS_CFG = {
    'segformer': dict(
        backbone=dict(type='MixVisionTransformer', embed_dims=4, num_layers=[1, 1],
                      num_heads=[1, 2], num_stages=2, sr_ratios=[2, 1], patch_sizes=[7, 3],
                      strides=[4, 2], out_indices=(0, 1)),
        decode_head=dict(type='SegformerHead', in_channels=[4, 8], in_index=[0, 1],
                         **HEAD_COMMON)),
    'uper': dict(
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=4, num_stages=2,
                      strides=(1, 2), dilations=(1, 1), out_indices=(0, 1), norm_cfg=BN),
        decode_head=dict(type='UPerHead', in_channels=[4, 8], in_index=[0, 1], pool_scales=(1, 2),
                         **HEAD_COMMON),
        auxiliary_head=dict(type='FCNHead', in_channels=4, in_index=0, num_convs=1,
                            **HEAD_COMMON)),
}


def build(scope, arch='segformer', mode='whole'):
    """A Domino model of ``scope``; ``'none'``: the baseline, mmseg's plain EncoderDecoder."""
    test_cfg = dict(mode='slide', crop_size=(16, 16), stride=(12, 12)) if mode == 'slide' else \
        dict(mode='whole')
    domino = {} if scope == 'none' else dict(
        type='DomainAwareEncoderDecoder',
        domino=dict(scope=scope, embed_dim=EMBED_DIM, mlp=dict(hidden=4)))
    model = MODELS.build(dict(dict(type='EncoderDecoder'), **MODELS_CFG[arch],
                              test_cfg=ConfigDict(test_cfg), **domino))
    model.init_weights()
    return model


def samples(embeddings):
    """Data samples as the pipeline packs them; embeddings arrive as numpy arrays."""
    out = []
    for embedding in embeddings:
        sample = SegDataSample(metainfo=dict(
            img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
            padding_size=[0, 0, 0, 0], domain_embedding=embedding.numpy()))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, SIZE, SIZE)))
        out.append(sample)
    return out


def logits(model, images, embeddings):
    with torch.no_grad():
        return torch.stack([s.seg_logits.data for s in model.predict(images, samples(embeddings))])


def randomize_domino(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, DominoNorm):
                for p in m.mlp.parameters():
                    p.normal_(std=0.5)


@pytest.mark.parametrize('arch, scope', [('segformer', 'head'), ('segformer', 'full'),
                                         ('uper', 'head'), ('uper', 'full')])
def test_identity_with_baseline_weights(arch, scope):
    """After init_weights (MiT's re-initialises every Linear) the model is the baseline."""
    torch.manual_seed(0)
    baseline = build('none', arch)
    domino = build(scope, arch)
    domino.load_state_dict(baseline.state_dict(), strict=False)
    assert any(isinstance(m, DominoNorm) for m in domino.modules())
    images = torch.randn(2, 3, SIZE, SIZE)
    embeddings = torch.randn(2, EMBED_DIM)
    baseline.eval(), domino.eval()
    torch.testing.assert_close(logits(domino, images, embeddings),
                               logits(baseline, images, embeddings), rtol=0, atol=1e-6)
    baseline.train(), domino.train()  # BN on batch statistics
    batch = samples(embeddings)
    for key, value in baseline.loss(images, batch).items():
        torch.testing.assert_close(domino.loss(images, batch)[key], value, rtol=0, atol=1e-6)


def test_training_step_makes_outputs_domain_dependent():
    torch.manual_seed(0)
    model = build('head').train()
    images = torch.randn(2, 3, SIZE, SIZE)
    embeddings = torch.randn(2, EMBED_DIM)
    loss = sum(model.loss(images, samples(embeddings)).values())
    loss.backward()
    domino_params = {name: p for name, p in model.named_parameters()
                     if '.mlp.' in name or name.startswith('domain_encoder.')}
    for name, param in domino_params.items():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        if '.mlp.' in name:  # the zero last layers; the encoder's grads are zero at step 0
            assert param.grad.abs().sum() > 0, name

    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    model.eval()
    image = images[:1].expand(2, -1, -1, -1)  # the same image under two domains
    out = logits(model, image, embeddings)
    assert (out[0] - out[1]).abs().max() > 1e-3 * out.abs().max()


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_mixed_domain_batch_equals_samples_one_by_one(mode):
    torch.manual_seed(0)
    model = build('full', mode=mode).eval()
    randomize_domino(model)
    images = torch.randn(3, 3, SIZE, SIZE)
    domains = torch.randn(2, EMBED_DIM)
    embeddings = domains[[0, 1, 0]]
    batched = logits(model, images, embeddings)
    for i in range(3):
        torch.testing.assert_close(batched[i:i + 1], logits(model, images[i:i + 1],
                                                            embeddings[i:i + 1]),
                                   rtol=1e-5, atol=1e-5)
    other_domain = logits(model, images[:1], domains[1:])
    assert not torch.allclose(other_domain, batched[:1], atol=1e-4)


def test_tensor_mode_uses_data_samples():
    torch.manual_seed(0)
    model = build('head').eval()
    randomize_domino(model)
    images, embeddings = torch.randn(2, 3, SIZE, SIZE), torch.randn(2, EMBED_DIM)
    with torch.no_grad():
        out = model(images, samples(embeddings), mode='tensor')
        swapped = model(images, samples(embeddings.flip(0)), mode='tensor')
    assert out.shape == (2, 3, SIZE // 4, SIZE // 4)
    assert not torch.allclose(out, swapped)


def test_missing_embedding_is_a_clear_error():
    model = build('head').eval()
    batch = samples(torch.randn(2, EMBED_DIM))
    del batch[1].domain_embedding
    images = torch.randn(2, 3, SIZE, SIZE)
    with pytest.raises(KeyError, match=r"domain_embedding.*\[1\].*DomainEmbeddingDataPreProcessor"):
        model.predict(images, batch)
    with pytest.raises(KeyError, match='domain_embedding'):
        model(images, None, mode='tensor')
    with pytest.raises(ValueError, match=r'shape \(16,\)'):
        model.predict(images, samples(torch.randn(2, EMBED_DIM + 1)))


def test_domain_encoder_is_shared_by_all_domino_layers():
    torch.manual_seed(0)
    baseline, model = build('none'), build('full')
    layers = [m for m in model.modules() if isinstance(m, DominoNorm)]
    assert [type(m) for m in model.domain_encoder] == [torch.nn.Linear, torch.nn.GELU]
    assert all(len(layer.mlp) == 1 and layer.mlp[0].in_features == 4 for layer in layers)
    added = sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in baseline.parameters())
    assert added == (EMBED_DIM + 1) * 4 + sum(4 * 2 * layer.num_channels for layer in layers)


def test_a_checkpoint_may_miss_only_the_layers_domino_adds():
    """What the runner's fit check allows to be missing when not resuming: the shared domain
    encoder and the Domino layers' MLPs, as the model declares them."""
    model = build('full')
    assert isinstance(model, DomainAwareEncoderDecoder)
    may_miss = model.checkpoint_keys_may_miss()
    assert may_miss == {key for key in model.state_dict()
                        if key.startswith('domain_encoder.') or '.mlp.' in key}
    assert any(key.startswith('domain_encoder.') for key in may_miss)
    without = {k: v for k, v in model.state_dict().items() if k not in may_miss}
    check_fits(model, without, 'x.pth', keys_may_miss(model))
    with pytest.raises(CheckpointError, match='model keys missing'):
        check_fits(model, without, 'x.pth')  # as when resuming
    assert keys_may_miss(build('none')) == set()  # a plain model declares nothing


def test_bad_domino_configs_are_refused():
    for bad, match in [(dict(scope='neck'), 'scope'), (dict(scope='none'), "EncoderDecoder"),
                       (dict(scop='head'), 'unknown domino keys')]:
        with pytest.raises(ValueError, match=match):
            MODELS.build(dict(type='DomainAwareEncoderDecoder', **MODELS_CFG['segformer'],
                              domino=bad))


@pytest.mark.parametrize('arch', ['segformer', 'uper'])
@pytest.mark.parametrize('scope', ['head', 'backbone', 'full'])
def test_paired_with_the_baseline_of_the_same_seed(arch, scope):
    """Built and initialised after one seed, a Domino model holds the baseline's values in
    every entry they share (MiT re-initialises every Linear it meets, ResNet zeroes its
    blocks' last norm) and leaves the global generator where the baseline does."""
    torch.manual_seed(3)
    baseline = build('none', arch)
    after_baseline = torch.get_rng_state()
    torch.manual_seed(3)
    domino = build(scope, arch)
    assert torch.equal(torch.get_rng_state(), after_baseline)
    own = domino.state_dict()
    shared = domino.checkpoint_state_dict(baseline.state_dict())  # as load_from renames it
    assert set(own) - set(shared) == keys_may_miss(domino)
    for key, value in shared.items():
        assert torch.equal(own[key], value), key


def test_domino_layers_come_from_a_generator_of_the_seed():
    """Domino's own weights are a function of the seed: seed k of a row repeats them."""
    def encoder_weight(seed):
        torch.manual_seed(seed)
        return build('full').domain_encoder[0].weight

    first = encoder_weight(3)
    assert torch.equal(encoder_weight(3), first)
    assert not torch.equal(encoder_weight(4), first)
