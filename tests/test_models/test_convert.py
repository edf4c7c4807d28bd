"""convert_to_domino on mmseg heads, backbones and segmentors: identity at init, scopes, loading."""
import copy

import pytest
import torch
import torch.nn as nn
from mmseg.registry import MODELS

import domino_seg.compat  # noqa: F401  (conftest imported it before mmseg)
from domino_seg.models import DominoNorm, convert_to_domino, domain_embedding_context

EMBED_DIM = 16
BN = dict(type='BN', requires_grad=True)
HEAD_COMMON = dict(channels=8, num_classes=3, norm_cfg=BN, dropout_ratio=0.0, align_corners=False)
HEADS = {
    'segformer': dict(type='SegformerHead', in_channels=[4, 8, 8, 8], in_index=[0, 1, 2, 3]),
    'uper': dict(type='UPerHead', in_channels=[4, 8, 8, 8], in_index=[0, 1, 2, 3],
                 pool_scales=(1, 2)),
    'fcn': dict(type='FCNHead', in_channels=8, in_index=3, num_convs=2, concat_input=True),
    'fcn_gn': dict(type='FCNHead', in_channels=8, in_index=3, norm_cfg=dict(type='GN',
                                                                            num_groups=2)),
    'aspp': dict(type='ASPPHead', in_channels=8, in_index=3, dilations=(1, 2)),
    'deeplabv3plus': dict(type='DepthwiseSeparableASPPHead', in_channels=8, in_index=3,
                          dilations=(1, 2), c1_in_channels=4, c1_channels=4),
}
BACKBONES = {
    'mit': dict(type='MixVisionTransformer', embed_dims=4, num_layers=[1, 1], num_heads=[1, 2],
                num_stages=2, sr_ratios=[2, 1], patch_sizes=[7, 3], strides=[4, 2],
                out_indices=(0, 1)),
    'resnet': dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=4, num_stages=2,
                   strides=(1, 2), dilations=(1, 1), out_indices=(0, 1), norm_cfg=BN),
}


def features(batch=2):
    return [torch.randn(batch, c, s, s) for c, s in [(4, 16), (8, 8), (8, 4), (8, 2)]]


def assert_same_outputs(out, expected):
    """Equal up to float32 rounding: eval-mode BN is folded into one scale and shift, and
    train-mode BN computed with the modulation (ModulatedBatchNorm), which reorders the
    arithmetic (relative error ~1e-7 on deep ResNet features of magnitude ~10; a few 1e-6 where
    the batch statistics of a 2x4x4 map normalise a nearly constant channel)."""
    for a, b in zip(out if isinstance(out, (list, tuple)) else [out],
                    expected if isinstance(expected, (list, tuple)) else [expected]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', HEADS)
def test_head_is_identity_at_init(name, pretrained_norms):
    torch.manual_seed(0)
    baseline = pretrained_norms(MODELS.build(dict(HEADS[name], **HEAD_COMMON)))
    domino = copy.deepcopy(baseline)
    assert convert_to_domino(domino, EMBED_DIM) > 0
    inputs = features()
    with domain_embedding_context(torch.randn(2, EMBED_DIM)):
        for train in (False, True):  # train: BN uses (and updates) batch statistics
            baseline.train(train), domino.train(train)
            assert_same_outputs(domino(inputs), baseline(inputs))


@pytest.mark.parametrize('name', BACKBONES)
def test_backbone_is_identity_at_init(name, pretrained_norms):
    torch.manual_seed(0)
    baseline = MODELS.build(BACKBONES[name])
    baseline.init_weights()
    pretrained_norms(baseline)
    domino = copy.deepcopy(baseline)
    assert convert_to_domino(domino, EMBED_DIM) > 0  # a bare backbone is converted whole
    image = torch.randn(2, 3, 32, 32)
    with domain_embedding_context(torch.randn(2, EMBED_DIM)):
        for train in (False, True):
            baseline.train(train), domino.train(train)
            assert_same_outputs(domino(image), baseline(image))


def test_scopes_of_a_segmentor():
    def build():
        return MODELS.build(
            dict(type='EncoderDecoder', backbone=BACKBONES['resnet'],
                 decode_head=dict(HEADS['fcn'], **dict(HEAD_COMMON, in_index=1)),
                 auxiliary_head=dict(HEADS['fcn'], **dict(HEAD_COMMON, in_index=0, in_channels=4))))

    def norms(module):
        return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())

    model = build()
    num_head, num_backbone = norms(model.decode_head) + norms(model.auxiliary_head), norms(
        model.backbone)
    assert convert_to_domino(model, EMBED_DIM, scope='head') == num_head
    assert not any(isinstance(m, DominoNorm) for m in model.backbone.modules())
    assert convert_to_domino(model, EMBED_DIM, scope='backbone') == num_backbone
    with pytest.raises(ValueError, match='no BatchNorm'):  # everything is converted already
        convert_to_domino(model, EMBED_DIM, scope='full')
    assert convert_to_domino(build(), EMBED_DIM, scope='full') == num_head + num_backbone
    with pytest.raises(ValueError, match='scope'):
        convert_to_domino(build(), EMBED_DIM, scope='neck')


def test_baseline_state_dict_loads_into_converted_model(pretrained_norms):
    torch.manual_seed(0)
    cfg = dict(HEADS['uper'], **HEAD_COMMON)
    baseline = pretrained_norms(MODELS.build(cfg)).eval()
    domino = MODELS.build(cfg).eval()  # other random weights, default norm stats
    convert_to_domino(domino, EMBED_DIM, mlp=dict(hidden=2))

    result = domino.load_state_dict(baseline.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all('.mlp.' in key for key in result.missing_keys)
    inputs = features()
    with domain_embedding_context(torch.randn(2, EMBED_DIM)):
        assert_same_outputs(domino(inputs), baseline(inputs))
    # A converted model's own checkpoint round-trips strictly.
    domino.load_state_dict(copy.deepcopy(domino).state_dict(), strict=True)


def test_module_without_norms_is_an_error():
    with pytest.raises(ValueError, match='no BatchNorm'):
        convert_to_domino(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()), EMBED_DIM)
