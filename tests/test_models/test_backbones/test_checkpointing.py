"""Activation checkpointing of the ViT blocks (with_cp) with Domino layers inside them: the
recomputed blocks see the same domain embeddings, so the gradients equal those without."""
import copy

import pytest
import torch
from mmseg.registry import MODELS

from domino_seg.models import DominoNorm, convert_to_domino, domain_embedding_context


def _domino_backbone(cfg, with_cp):
    torch.manual_seed(0)
    backbone = MODELS.build(dict(cfg, with_cp=with_cp))
    backbone.init_weights()
    convert_to_domino(backbone, embed_dim=8)
    torch.manual_seed(1)
    with torch.no_grad():  # a trained modulation (zero at init would hide a wrong embedding)
        for module in backbone.modules():
            if isinstance(module, DominoNorm):
                for p in module.mlp.parameters():
                    p.normal_(std=0.3)
    return backbone.train()


def _gradients(backbone, images, embeddings):
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1))
             for m in backbone.modules() if isinstance(m, DominoNorm)]
    with domain_embedding_context(embeddings):
        outputs = backbone(images)
    sum((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum()
        for out in outputs).backward()  # (after the context: as mmengine's optimizer step)
    for hook in hooks:
        hook.remove()
    return {n: p.grad for n, p in backbone.named_parameters() if p.grad is not None}, len(calls)


@pytest.mark.parametrize('family', ['clip_vit', 'dinov2'])
def test_checkpointed_blocks_give_the_same_gradients_with_domino_inside(family,
                                                                      tiny_backbones):
    images, embeddings = torch.randn(2, 3, 64, 128), torch.randn(2, 8)
    plain, plain_calls = _gradients(_domino_backbone(tiny_backbones[family], False), images,
                                    embeddings)
    checkpointed, cp_calls = _gradients(_domino_backbone(tiny_backbones[family], True), images,
                                        embeddings)
    assert cp_calls > plain_calls  # the blocks' Domino layers really ran again in backward
    assert plain.keys() == checkpointed.keys() and any('.mlp.' in n for n in plain)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_checkpointed_backbones_keep_their_keys_and_copy(tiny_backbones):
    plain = MODELS.build(dict(tiny_backbones['dinov2'], with_cp=False))
    checkpointed = MODELS.build(dict(tiny_backbones['dinov2'], with_cp=True))
    assert plain.state_dict().keys() == checkpointed.state_dict().keys()
    clone = copy.deepcopy(checkpointed).eval()
    images = torch.randn(1, 3, 64, 128)
    clone.load_state_dict(plain.state_dict())
    with torch.no_grad():  # eval: no checkpointing, the plain forward
        for a, b in zip(clone(images), plain.eval()(images)):
            torch.testing.assert_close(a, b)
