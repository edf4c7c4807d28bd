"""The foundation-model backbones: feature strides at several input sizes, layer ids, Domino
conversion of their norms (identity at init)."""
import copy

import pytest
import torch
from mmseg.registry import MODELS

import domino_seg
from domino_seg.errors import ConfigError
from domino_seg.models import convert_to_domino, domain_embedding_context

# (input h, w) -> spatial size of each output. ViTs (blocks 1 and 3): the image is resized to
# the nearest multiple of the patch (16 / 14), so 50x70 -> 48x64 (3x4 tokens) for patch 16 and
# 56x70 (4x5) for patch 14. The CLIP ResNet: stages at strides 4, 8, 16, 32 (floor).
EXPECTED = {
    'clip_vit': {(64, 128): [(4, 8)] * 2, (50, 70): [(3, 4)] * 2},
    'dinov2': {(64, 128): [(5, 9)] * 2, (50, 70): [(4, 5)] * 2},
    'clip_rn': {(64, 128): [(16, 32), (8, 16), (4, 8), (2, 4)],
                (50, 70): [(12, 17), (6, 8), (3, 4), (1, 2)]},
}
CHANNELS = {'clip_vit': [32, 32], 'dinov2': [32, 32], 'clip_rn': [32, 64, 128, 256]}


@pytest.mark.parametrize('family', sorted(EXPECTED))
def test_output_sizes_at_two_input_sizes(family, tiny_backbones):
    backbone = MODELS.build(tiny_backbones[family])
    for size, expected in EXPECTED[family].items():
        outs = backbone(torch.randn(2, 3, *size))
        assert [tuple(o.shape[2:]) for o in outs] == expected
        assert [o.shape[1] for o in outs] == CHANNELS[family]
        assert all(o.shape[0] == 2 for o in outs)


@pytest.mark.parametrize('model,size,expected', [
    # ViT-B/16 tokens -> Feature2Pyramid: strides 4, 8, 16, 32
    ('clip_vit_b16_upernet', (64, 128), [(16, 32), (8, 16), (4, 8), (2, 4)]),
    ('clip_vit_b16_upernet', (96, 160), [(24, 40), (12, 20), (6, 10), (3, 5)]),
    # patch 14: strides 3.5, 7, 14, 28 on a 14-multiple input
    ('dinov2_vits14_upernet', (56, 112), [(16, 32), (8, 16), (4, 8), (2, 4)]),
    ('dinov2_vits14_upernet', (84, 140), [(24, 40), (12, 20), (6, 10), (3, 5)]),
    ('clip_rn50_deeplabv3plus', (96, 160), [(24, 40), (12, 20), (6, 10), (3, 5)]),
    # ResNetV1c dilated to output stride 8
    ('resnet50_deeplabv3plus', (96, 160), [(24, 40), (12, 20), (12, 20), (12, 20)]),
])
def test_segmentor_feature_strides(model, size, expected, tiny_model):
    segmentor = domino_seg.build_segmentor(domino_seg.compose([f'model={model}'] +
                                                              tiny_model[model])).eval()
    features = segmentor.extract_feat(torch.randn(1, 3, *size))
    assert [tuple(f.shape[2:]) for f in features] == expected
    logits = segmentor.encode_decode(torch.randn(1, 3, *size), [dict(img_shape=size)])
    assert logits.shape == (1, 19, *size)


def test_vit_layer_ids_number_blocks_from_the_embedding(tiny_backbones):
    vit = MODELS.build(tiny_backbones['clip_vit'])
    ids = {name: vit.layer_id(name) for name, _ in vit.named_parameters()}
    assert vit.num_layers == 4
    assert ids['visual.conv1.weight'] == ids['visual.positional_embedding'] == 0
    assert ids['visual.ln_pre.weight'] == 0
    assert ids['visual.transformer.resblocks.0.ln_1.weight'] == 1
    assert ids['visual.transformer.resblocks.3.mlp.c_proj.weight'] == 4
    dino = MODELS.build(tiny_backbones['dinov2'])
    ids = {name: dino.layer_id(name) for name, _ in dino.named_parameters()}
    assert ids['vit.cls_token'] == ids['vit.patch_embed.proj.weight'] == 0
    assert ids['vit.blocks.2.attn.qkv.weight'] == 3 and ids['vit.norm.weight'] == 4
    rn = MODELS.build(tiny_backbones['clip_rn'])
    ids = {name: rn.layer_id(name) for name, _ in rn.named_parameters()}
    assert ids['visual.conv1.weight'] == 0 and ids['visual.layer4.0.conv1.weight'] == 4


def test_blocks_after_the_last_output_and_the_pooling_head_are_removed(tiny_backbones):
    vit = MODELS.build(tiny_backbones['clip_vit'])  # out_indices (1, 3) of 4 blocks
    names = [name for name, _ in vit.named_parameters()]
    assert not any(n.startswith(('visual.ln_post', 'visual.proj')) for n in names)
    dino = MODELS.build(dict(tiny_backbones['dinov2'], out_indices=(0, 2)))
    assert len(dino.vit.blocks) == 3 and dino.num_layers == 3
    rn = MODELS.build(tiny_backbones['clip_rn'])
    assert rn.visual.attnpool is None


@pytest.mark.parametrize('out_indices', [(), (3, 1), (0, 4)])
def test_bad_out_indices_are_config_errors(out_indices, tiny_backbones):
    with pytest.raises(ConfigError, match='out_indices'):
        MODELS.build(dict(tiny_backbones['dinov2'], out_indices=out_indices))


def test_non_vit_arch_is_a_config_error(tiny_backbones):
    with pytest.raises(ConfigError, match='not an open_clip ViT'):
        MODELS.build(dict(tiny_backbones['clip_vit'], arch='RN50', model_cfg=None))
    with pytest.raises(ConfigError, match='not an open_clip model'):
        MODELS.build(dict(tiny_backbones['clip_vit'], arch='ViT-X-99'))


@pytest.mark.parametrize('family,num_norms', [
    ('clip_vit', 1 + 2 * 4),            # ln_pre + ln_1, ln_2 of 4 blocks
    ('dinov2', 2 * 4 + 1),              # norm1, norm2 of 4 blocks + the final norm
    ('clip_rn', 3 + 4 * (3 + 1)),       # stem BNs + per stage 3 BNs and the downsample BN
])
@pytest.mark.parametrize('train', [False, True])
def test_domino_in_backbone_norms_is_identity_at_init(family, num_norms, train, tiny_backbones,
                                                      pretrained_norms):
    torch.manual_seed(0)
    baseline = pretrained_norms(MODELS.build(tiny_backbones[family])).train(train)
    converted = copy.deepcopy(baseline)
    assert convert_to_domino(converted, embed_dim=8) == num_norms
    x = torch.randn(2, 3, 64, 128)
    expected = baseline(x)
    with domain_embedding_context(torch.randn(2, 8)):
        out = converted(x)
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
