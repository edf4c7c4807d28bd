"""finetune=full|frozen|norm_only|llrd: which parameters train, with which learning rate."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

import domino_seg
from domino_seg.errors import ConfigError
from domino_seg.models.domino_norm import NORM_TYPES, DominoNorm


def segmentor_and_optimizer(model, tiny_model, *overrides):
    cfg = domino_seg.compose([f'model={model}'] + tiny_model[model] + list(overrides))
    segmentor = domino_seg.build_segmentor(cfg)
    optim_wrapper = build_optim_wrapper(segmentor, domino_seg.to_mmengine(cfg).optim_wrapper)
    return segmentor, optim_wrapper.optimizer


def optimized(optimizer):
    """id(param) -> its param group, for every parameter the optimizer updates."""
    return {id(p): group for group in optimizer.param_groups for p in group['params']}


def norm_params(module):
    return {id(p) for m in module.modules() if isinstance(m, NORM_TYPES) for p in m.parameters()}


def test_full_fine_tuning_trains_everything(tiny_model):
    segmentor, optimizer = segmentor_and_optimizer('clip_vit_b16_upernet', tiny_model)
    assert set(optimized(optimizer)) == {id(p) for p in segmentor.parameters()}
    groups = optimized(optimizer)
    # the model's paramwise_cfg still applies: no decay on norms, biases, embeddings
    assert groups[id(segmentor.backbone.visual.ln_pre.weight)]['weight_decay'] == 0
    assert groups[id(segmentor.backbone.visual.positional_embedding)]['weight_decay'] == 0
    assert groups[id(segmentor.backbone.visual.conv1.weight)]['weight_decay'] == 0.01
    assert all(group['lr'] == 6e-5 for group in optimizer.param_groups)


@pytest.mark.parametrize('model', ['clip_rn50_deeplabv3plus', 'dinov2_vits14_upernet'])
def test_frozen_backbone_is_out_of_the_optimizer_and_in_eval_mode(model, tiny_model):
    segmentor, optimizer = segmentor_and_optimizer(model, tiny_model, 'finetune=frozen')
    backbone = {id(p) for p in segmentor.backbone.parameters()}
    rest = {id(p) for p in segmentor.parameters()} - backbone
    assert set(optimized(optimizer)) == rest and rest
    assert not any(p.requires_grad for p in segmentor.backbone.parameters())
    stats = {k: v.clone() for k, v in segmentor.backbone.state_dict().items()}
    segmentor.train()
    logits = segmentor(torch.randn(2, 3, 64, 128), mode='tensor')
    assert not segmentor.backbone.training  # BN statistics, dropout, drop-path stay put
    assert all(torch.equal(v, stats[k]) for k, v in segmentor.backbone.state_dict().items())
    logits.sum().backward()
    assert all(p.grad is None for p in segmentor.backbone.parameters())
    assert segmentor.decode_head.conv_seg.weight.grad is not None


def test_norm_only_trains_backbone_norms_and_domino_layers(tiny_model):
    segmentor, optimizer = segmentor_and_optimizer(
        'clip_rn50_deeplabv3plus', tiny_model, 'finetune=norm_only', 'domino=backbone',
        'domain=text')
    backbone = segmentor.backbone
    domino = {id(p) for m in backbone.modules() if isinstance(m, DominoNorm)
              for p in m.mlp.parameters()}
    trained_in_backbone = set(optimized(optimizer)) & {id(p) for p in backbone.parameters()}
    assert trained_in_backbone == norm_params(backbone) | domino
    assert len(norm_params(backbone)) == 2 * 19 and domino  # weight + bias of 19 BNs
    heads = {id(p) for p in segmentor.decode_head.parameters()}
    assert heads <= set(optimized(optimizer))


@pytest.mark.parametrize('model', ['clip_vit_b16_upernet', 'dinov2_vits14_upernet'])
def test_layer_wise_lr_decay_follows_depth(model, tiny_model):
    segmentor, optimizer = segmentor_and_optimizer(model, tiny_model, 'finetune=llrd',
                                                   'domino=full', 'domain=text')
    groups = optimized(optimizer)
    backbone = segmentor.backbone
    assert backbone.num_layers == 4  # tiny: 4 blocks, decay 0.9 -> 0.9^(5 - layer)
    domino = {id(p) for m in backbone.modules() if isinstance(m, DominoNorm)
              for p in m.mlp.parameters()}
    for name, param in backbone.named_parameters():
        if id(param) in domino:
            continue  # checked below
        expected = 6e-5 * 0.9 ** (5 - backbone.layer_id(name))
        assert groups[id(param)]['lr'] == pytest.approx(expected), name
    patch = backbone.visual.conv1 if model.startswith('clip') else backbone.vit.patch_embed.proj
    assert groups[id(patch.weight)]['lr'] == pytest.approx(6e-5 * 0.9 ** 5)
    # new layers keep the full learning rate: heads, neck, Domino MLPs in the backbone
    new = [*map(id, segmentor.decode_head.parameters()), *map(id, segmentor.neck.parameters()),
           *domino]
    assert domino and all(groups[p]['lr'] == pytest.approx(6e-5) for p in new)
    # decay on top of paramwise_cfg: norms keep weight_decay 0
    norm = next(m for m in backbone.modules() if isinstance(m, DominoNorm)).wrapped
    assert groups[id(norm.weight)]['weight_decay'] == 0


def test_llrd_needs_a_backbone_with_layer_ids(tiny_model):
    with pytest.raises(ConfigError, match='layer_decay_rate.*ResNetV1c'):
        segmentor_and_optimizer('resnet50_deeplabv3plus', tiny_model, 'finetune=llrd')


def test_default_model_optimizer_is_unchanged(tiny_model):
    """finetune=full adds nothing to the default model: one group per parameter, as mmengine's
    default constructor makes them (same order, lr and decay)."""
    from mmengine.optim import DefaultOptimWrapperConstructor
    segmentor, optimizer = segmentor_and_optimizer('segformer_mit_tiny', tiny_model)
    cfg = domino_seg.to_mmengine(domino_seg.compose(['model=segformer_mit_tiny'])).optim_wrapper
    reference = DefaultOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=cfg.optimizer), cfg.paramwise_cfg)(segmentor)
    ours = [(g['lr'], g['weight_decay'], [id(p) for p in g['params']])
            for g in optimizer.param_groups]
    assert ours == [(g['lr'], g['weight_decay'], [id(p) for p in g['params']])
                    for g in reference.optimizer.param_groups]


def test_unknown_train_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="finetune.train_backbone='some'"):
        domino_seg.to_mmengine(domino_seg.compose(['finetune.train_backbone=some']))
