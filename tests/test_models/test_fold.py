"""fold_domino: for one fixed embedding, a plain EncoderDecoder computing what the Domino model
computes (BN, GN, LN; eval and training mode; norms with and without affine parameters)."""
import pytest
import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import domino_seg
from domino_seg.models import (
    DomainAwareEncoderDecoder,
    DominoNorm,
    convert_to_domino,
    domain_embedding_context,
)
from domino_seg.models.fold import fold_domino, has_domino

H, W = 64, 96
GN_HEAD = ['model.segmentor.decode_head.norm_cfg.type=GN',
           '+model.segmentor.decode_head.norm_cfg.num_groups=4']
NO_DROPOUT = ['model.segmentor.decode_head.dropout_ratio=0',
              'model.segmentor.auxiliary_head.dropout_ratio=0']


def build(name, tiny_model, *extra, domino='full'):
    domain = 'none' if domino == 'none' else 'text'
    cfg = domino_seg.compose([f'model={name}', f'domino={domino}', f'domain={domain}',
                              *tiny_model[name], *extra])
    return domino_seg.build_segmentor(cfg)


def randomize_domino(model, std=0.5):
    """Non-identity Domino layers: random last layers (and domain encoder)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, DominoNorm):
                for param in module.mlp.parameters():
                    param.normal_(std=std)
        for param in getattr(model, 'domain_encoder', nn.Sequential()).parameters():
            param.normal_(std=std)
    return model


def samples(embedding, n, labels=False):
    out = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(
            img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W), padding_size=[0, 0, 0, 0],
            domain_embedding=embedding.numpy()))
        if labels:
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, H, W)))
        out.append(sample)
    return out


def logits(model, images, embedding):
    with torch.no_grad():
        return torch.stack([s.seg_logits.data
                            for s in model.predict(images, samples(embedding, len(images)))])


def embedding_of(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return nn.functional.normalize(torch.randn(model.domain_embed_dim, generator=generator),
                                   dim=0)


@pytest.mark.parametrize('name, extra, norms', [
    ('segformer_mit_tiny', [], {'LayerNorm', 'BatchNorm2d'}),       # MiT LN + head BN
    ('segformer_mit_tiny', GN_HEAD, {'LayerNorm', 'GroupNorm'}),  # a GN head
    ('resnet50_deeplabv3plus', [], {'BatchNorm2d'}),                # ResNet + ASPP BN
    ('dinov2_vits14_upernet', [], {'LayerNorm', 'BatchNorm2d'}),    # ViT LN + UPer BN
    ('clip_vit_b16_upernet', [], {'LayerNorm', 'BatchNorm2d'}),
])
def test_folded_model_computes_the_domino_model(name, extra, norms, tiny_model,
                                                pretrained_norms):
    torch.manual_seed(0)
    model = randomize_domino(pretrained_norms(build(name, tiny_model, *extra))).eval()
    assert {type(m.wrapped).__name__ for m in model.modules() if isinstance(m, DominoNorm)} \
        == norms
    embedding, other = embedding_of(model, 0), embedding_of(model, 1)
    images = torch.rand(2, 3, H, W) * 255
    expected = logits(model, images, embedding)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    plain = fold_domino(model, embedding)
    torch.testing.assert_close(logits(plain, images, embedding), expected, rtol=1e-5, atol=1e-5)
    # the embedding matters (the check is not the identity's), and the fold is for this one
    assert (logits(model, images, other) - expected).abs().max() > 1e-2
    # the plain model: no Domino left, an EncoderDecoder; the Domino model left as it was
    assert type(plain) is EncoderDecoder and not hasattr(plain, 'domain_encoder')
    assert not has_domino(plain) and not any(k.startswith('domain_encoder.') or '.wrapped.' in k
                                             for k in plain.state_dict())
    assert isinstance(model, DomainAwareEncoderDecoder) and has_domino(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # its state dict is the one of the model built from the same config with domino=none
    baseline = build(name, tiny_model, *extra, domino='none').eval()
    assert type(baseline) is EncoderDecoder
    assert list(plain.state_dict()) == list(baseline.state_dict())
    baseline.load_state_dict(plain.state_dict(), strict=True)
    torch.testing.assert_close(logits(baseline, images, embedding), expected, rtol=1e-5,
                               atol=1e-5)


def test_folded_model_in_training_mode(tiny_model, pretrained_norms):
    """BN on batch statistics (and the loss): the fold never touches the statistics."""
    torch.manual_seed(0)
    model = randomize_domino(pretrained_norms(
        build('resnet50_deeplabv3plus', tiny_model, *NO_DROPOUT))).train()
    embedding = embedding_of(model)
    plain = fold_domino(model, embedding).train()
    images = torch.rand(2, 3, H, W) * 255
    batch = samples(embedding, 2, labels=True)
    torch.testing.assert_close(plain(images, batch, mode='tensor'),
                               model(images, batch, mode='tensor'), rtol=1e-5, atol=1e-5)
    for key, value in model.loss(images, batch).items():
        torch.testing.assert_close(plain.loss(images, batch)[key], value, rtol=1e-5, atol=1e-5)


class Norms(nn.Module):
    """Every kind of norm the fold handles, some without affine parameters."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.bn = nn.BatchNorm2d(8, affine=False)
        self.bn_affine = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(2, 8, affine=False)
        self.ln = nn.LayerNorm(8, elementwise_affine=False)
        self.ln_no_bias = nn.LayerNorm(8, bias=False)

    def forward(self, x):
        x = self.gn(self.bn_affine(self.bn(self.conv(x))))
        return self.ln_no_bias(self.ln(x.permute(0, 2, 3, 1)))


@pytest.mark.parametrize('train', [False, True])
def test_norms_without_affine_parameters_get_them(train, pretrained_norms):
    torch.manual_seed(0)
    net = Norms()
    with torch.no_grad():
        for bn in (net.bn, net.bn_affine):
            bn.running_mean.normal_(std=0.3)
            bn.running_var.uniform_(0.5, 2)
        net.bn_affine.weight.uniform_(0.5, 1.5)
        net.bn_affine.bias.normal_()
        net.ln_no_bias.weight.uniform_(0.5, 1.5)
    assert convert_to_domino(net, embed_dim=6) == 5  # each layer owns its whole MLP
    randomize_domino(net)
    net.train(train)
    embedding = torch.randn(6)
    x = torch.randn(2, 3, 5, 7)
    with torch.no_grad(), domain_embedding_context(embedding[None].expand(2, -1)):
        expected = net(x)
    plain = fold_domino(net, embedding).train(train)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), expected, rtol=1e-5, atol=1e-5)
    assert type(plain) is Norms and not has_domino(plain)
    for name in ('bn', 'bn_affine', 'gn', 'ln', 'ln_no_bias'):
        norm = getattr(plain, name)
        assert isinstance(norm.weight, nn.Parameter) and isinstance(norm.bias, nn.Parameter)
        assert getattr(norm, 'affine', getattr(norm, 'elementwise_affine', None)) is True
    assert plain.bn.running_mean.shape == (8, )  # statistics kept


def test_models_without_domino_are_copied_as_they_are():
    plain_cfg = dict(
        type='EncoderDecoder',
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=4, num_stages=2,
                      strides=(1, 2), dilations=(1, 1), out_indices=(0, 1)),
        decode_head=dict(type='FCNHead', in_channels=8, in_index=1, channels=4, num_convs=1,
                         num_classes=3))
    model = MODELS.build(plain_cfg)  # (domino=none builds mmseg's EncoderDecoder)
    plain = fold_domino(model, None)
    assert type(plain) is EncoderDecoder and plain is not model
    assert plain.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in plain.state_dict().items())


def test_fold_errors(tiny_model):
    model = build('segformer_mit_tiny', tiny_model)
    with pytest.raises(ValueError, match='needs the domain embedding'):
        fold_domino(model, None)
    dim = model.domain_embed_dim
    with pytest.raises(ValueError, match=rf'shape \({dim},\).*got \({dim + 1},\)'):
        fold_domino(model, torch.randn(dim + 1))
    with pytest.raises(ValueError, match='NaN'):
        fold_domino(model, torch.full((dim, ), float('nan')))
    # (1, D) and numpy work as (D,)
    embedding = torch.randn(dim)
    a, b = fold_domino(model, embedding[None]), fold_domino(model, embedding.numpy())
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
