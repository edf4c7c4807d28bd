"""model.pretrained: random state dicts saved in each library's layout load back through the
real config path; interpolation, key report and every failure are explicit."""
import logging

import open_clip
import pytest
import timm
import torch
from mmengine.logging import MMLogger
from mmseg.registry import MODELS
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

import domino_seg
from domino_seg.errors import CheckpointError, ConfigError, WeightsError

TINY_VISION = {'width': 32, 'layers': 4, 'head_width': 16}
TINY_CLIP = {'vision_cfg': TINY_VISION, 'text_cfg': {'width': 32, 'heads': 2, 'layers': 1},
             'embed_dim': 16}
DINO_KWARGS = dict(embed_dim=32, depth=4, num_heads=2)


def build(model, tiny_model, *overrides):
    """The segmentor of model config ``model`` made tiny, built and initialised as the Runner
    does (``model.pretrained`` is loaded by ``init_weights``)."""
    cfg = domino_seg.compose([f'model={model}'] + tiny_model[model] + list(overrides))
    segmentor = MODELS.build(domino_seg.to_mmengine(cfg).model)
    segmentor.init_weights()
    return segmentor


@pytest.fixture
def log():
    """The messages mmengine's current logger prints, as one string."""
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lambda: '\n'.join(records)
    logger.removeHandler(handler)


def clip_state_dict(image_size=(128, 256), **vision):
    """A random whole open_clip CLIP (text tower included), as in open_clip's files."""
    cfg = dict(TINY_CLIP, vision_cfg=dict(TINY_VISION, image_size=list(image_size), **vision))
    return open_clip.create_model('ViT-B-16', pretrained=None, **cfg).state_dict()


def assert_loaded(module, state_dict, prefix=''):
    own = module.state_dict()
    for key, value in state_dict.items():
        torch.testing.assert_close(own[prefix + key], value, rtol=0, atol=0, msg=key)


def test_clip_vit_checkpoint_round_trips(tiny_model, tmp_path, log):
    state_dict = clip_state_dict()  # built for the default crop: 128x256 -> 8x16 tokens
    path = tmp_path / 'clip.pth'
    torch.save(state_dict, path)
    backbone = build('clip_vit_b16_upernet', tiny_model, f'model.pretrained={path}').backbone
    visual = {k: v for k, v in state_dict.items() if k.startswith('visual.') and
              not k.startswith(('visual.ln_post', 'visual.proj'))}
    assert_loaded(backbone, visual)
    assert set(backbone.state_dict()) == set(visual)
    log = log()
    assert f'loaded {len(visual)} tensors from {path}' in log
    assert 'ignored' in log and 'text tower' in log and 'visual.ln_post' in log


def test_clip_positional_embedding_is_resampled(tiny_model, tmp_path, log):
    state_dict = clip_state_dict(image_size=(224, 224))  # 14x14 tokens, like CLIP's files
    path = tmp_path / 'clip.pth'
    torch.save(state_dict, path)
    backbone = build('clip_vit_b16_upernet', tiny_model, f'model.pretrained={path}').backbone
    expected = resample_abs_pos_embed(state_dict['visual.positional_embedding'][None], (8, 16),
                                      num_prefix_tokens=1)[0]
    assert backbone.visual.positional_embedding.shape == (1 + 8 * 16, 32)
    torch.testing.assert_close(backbone.visual.positional_embedding.data, expected)
    assert_loaded(backbone.visual.transformer, {
        k[len('visual.transformer.'):]: v for k, v in state_dict.items()
        if k.startswith('visual.transformer.')})
    assert 'resampled visual.positional_embedding from a 14x14 grid to 8x16' in log()


def test_clip_visual_tower_safetensors_round_trips(tiny_model, tmp_path):
    visual = {k[len('visual.'):]: v for k, v in clip_state_dict().items()
              if k.startswith('visual.')}
    path = tmp_path / 'visual.safetensors'
    save_file({k: v.contiguous() for k, v in visual.items()}, str(path))
    backbone = build('clip_vit_b16_upernet', tiny_model, f'model.pretrained={path}').backbone
    assert_loaded(backbone.visual.transformer, {
        k[len('transformer.'):]: v for k, v in visual.items() if k.startswith('transformer.')})
    torch.testing.assert_close(backbone.visual.conv1.weight.data, visual['conv1.weight'])


def test_clip_resnet_checkpoint_round_trips(tiny_model, tmp_path):
    cfg = dict(TINY_CLIP, vision_cfg={'width': 8, 'layers': [1, 1, 1, 1]})
    state_dict = open_clip.create_model('RN50', pretrained=None, **cfg).state_dict()
    torch.save(state_dict, tmp_path / 'rn.pth')
    backbone = build('clip_rn50_deeplabv3plus', tiny_model,
                     f'model.pretrained={tmp_path / "rn.pth"}').backbone
    visual = {k: v for k, v in state_dict.items() if k.startswith('visual.') and
              'attnpool' not in k}
    assert_loaded(backbone, visual)
    assert set(backbone.state_dict()) == set(visual)


@pytest.mark.parametrize('layout', ['timm', 'facebookresearch'])
def test_dinov2_checkpoint_round_trips(layout, tiny_model, tmp_path, log):
    # the default crop 128x256 -> 9x18 tokens of 14 px
    vit = timm.create_model('vit_small_patch14_dinov2', img_size=(126, 252), num_classes=0,
                            **DINO_KWARGS)
    state_dict = vit.state_dict()
    if layout == 'facebookresearch':  # dinov2's own files also hold the masking token
        state_dict = dict(state_dict, mask_token=torch.zeros(1, 32))
    torch.save(state_dict, tmp_path / 'dino.pth')
    segmentor = build('dinov2_vits14_upernet', tiny_model,
                      f'model.pretrained={tmp_path / "dino.pth"}')
    expected = {k: v for k, v in vit.state_dict().items() if not k.startswith('head')}
    assert_loaded(segmentor.backbone, expected, prefix='vit.')
    assert set(segmentor.backbone.state_dict()) == {'vit.' + k for k in expected}
    log = log()
    assert ("converted facebookresearch/dinov2's layout" in log) == (layout != 'timm')


def test_dinov2_positional_embedding_is_resampled(tiny_model, tmp_path, log):
    vit = timm.create_model('vit_small_patch14_dinov2', img_size=518, num_classes=0,
                            **DINO_KWARGS)  # 37x37 tokens, as the released weights
    torch.save(vit.state_dict(), tmp_path / 'dino.pth')
    backbone = build('dinov2_vits14_upernet', tiny_model,
                     f'model.pretrained={tmp_path / "dino.pth"}').backbone
    expected = resample_abs_pos_embed(vit.pos_embed.data, (9, 18), (37, 37), num_prefix_tokens=1)
    torch.testing.assert_close(backbone.vit.pos_embed.data, expected)
    assert 'resampled pos_embed from 1370 to 163 tokens (9x18)' in log()


def test_mmseg_resnet_checkpoint_round_trips(tiny_model, tmp_path):
    source = MODELS.build(dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                               dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1)))
    torch.nn.init.normal_(source.stem[0].weight)
    torch.save(dict(state_dict=source.state_dict()), tmp_path / 'r18.pth')
    backbone = build('resnet50_deeplabv3plus', tiny_model,
                     f'model.pretrained={tmp_path / "r18.pth"}').backbone
    assert_loaded(backbone, source.state_dict())


def test_domino_model_loads_plain_backbone_weights(tiny_model, tmp_path):
    torch.save(clip_state_dict(), tmp_path / 'clip.pth')
    segmentor = build('clip_vit_b16_upernet', tiny_model, 'domino=backbone', 'domain=text',
                      f'model.pretrained={tmp_path / "clip.pth"}')
    ln = segmentor.backbone.visual.transformer.resblocks[0].ln_1
    torch.testing.assert_close(ln.wrapped.weight.data,
                               torch.load(tmp_path / 'clip.pth')[
                                   'visual.transformer.resblocks.0.ln_1.weight'])


def test_missing_and_unexpected_keys_are_reported(tiny_model, tmp_path, log):
    state_dict = clip_state_dict()
    del state_dict['visual.transformer.resblocks.0.ln_1.weight']
    state_dict['visual.extra'] = torch.zeros(1)
    torch.save(state_dict, tmp_path / 'clip.pth')
    build('clip_vit_b16_upernet', tiny_model, f'model.pretrained={tmp_path / "clip.pth"}')
    log = log()
    assert ('1 keys missing in the file (left at their initialisation): '
            'visual.transformer.resblocks.0.ln_1.weight') in log
    assert '1 keys in the file but not in the model (ignored): visual.extra' in log


def test_shape_mismatch_names_the_tensor(tiny_model, tmp_path):
    torch.save(clip_state_dict(width=48), tmp_path / 'wide.pth')
    with pytest.raises(WeightsError, match='(?s)do not fit.*size mismatch for visual.conv1'):
        build('clip_vit_b16_upernet', tiny_model, f'model.pretrained={tmp_path / "wide.pth"}')


def test_unrelated_or_unsafe_files_are_refused(tiny_model, tmp_path):
    torch.save({'fc.weight': torch.zeros(2)}, tmp_path / 'other.pth')
    with pytest.raises(WeightsError, match='none of the 1 tensors'):
        build('dinov2_vits14_upernet', tiny_model, f'model.pretrained={tmp_path / "other.pth"}')
    torch.save({'state_dict': {}, 'hook': ConfigError}, tmp_path / 'pickle.pth')
    with pytest.raises(CheckpointError, match=r'holds pickled objects that domino-seg does not '
                       r'unpickle \(domino_seg.errors.ConfigError\): loading them could run code'):
        build('dinov2_vits14_upernet', tiny_model, f'model.pretrained={tmp_path / "pickle.pth"}')
    with pytest.raises(WeightsError, match='is not a file'):
        build('dinov2_vits14_upernet', tiny_model, f'model.pretrained={tmp_path / "none.pth"}')


@pytest.mark.parametrize('model,pretrained,message', [
    ('clip_vit_b16_upernet', 'openai', "pretrained='openai' are not in the local Hugging Face"),
    ('clip_rn50_deeplabv3plus', 'openai', "arch='RN50' pretrained='openai'"),
    ('dinov2_vits14_upernet', 'vit_small_patch14_dinov2.lvd142m',
     "timm weights 'vit_small_patch14_dinov2.lvd142m' are not in the local Hugging Face"),
    ('resnet50_deeplabv3plus', 'open-mmlab://resnet50_v1c',
     'Download https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth'),
])
def test_uncached_library_weights_fail_fast_with_instructions(model, pretrained, message,
                                                              monkeypatch, tmp_path, no_network):
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))  # an empty cache
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    cfg = domino_seg.compose([f'model={model}', f'model.pretrained={pretrained}'])
    with pytest.raises(WeightsError) as err:
        domino_seg.to_mmengine(cfg)
    assert message in str(err.value)
    assert 'never downloads' in str(err.value) and 'model.pretrained=' in str(err.value)
    assert 'language meaning' not in str(err.value)  # that is what domain.clip=null means


def test_weights_must_match_the_architecture(tiny_model):
    with pytest.raises(ConfigError, match='QuickGELU.*arch=ViT-B-16-quickgelu'):
        domino_seg.to_mmengine(domino_seg.compose([
            'model=clip_vit_b16_upernet', 'model.segmentor.backbone.arch=ViT-B-16']))
    with pytest.raises(WeightsError, match='weights of vit_base_patch14_dinov2'):
        domino_seg.to_mmengine(domino_seg.compose([
            'model=dinov2_vits14_upernet', 'model.pretrained=vit_base_patch14_dinov2.lvd142m']))


def test_test_runs_do_not_need_backbone_weights():
    """tools/test.py loads a checkpoint over the whole model: the pretrained tag is not read."""
    cfg = domino_seg.compose(['model=clip_vit_b16_upernet', 'checkpoint=x.pth'],
                             config_name='test')
    assert 'init_cfg' not in domino_seg.to_mmengine(cfg).model.backbone
