"""Tiny configurations of each backbone family (random init), for fast CPU tests."""
import pytest

TINY_TEXT = {'width': 32, 'heads': 2, 'layers': 1}
TINY_BACKBONES = {
    'clip_vit': dict(type='OpenCLIPVisionTransformer', arch='ViT-B-16', img_size=(64, 128),
                     out_indices=(1, 3),
                     model_cfg={'vision_cfg': {'width': 32, 'layers': 4, 'head_width': 16},
                                'text_cfg': TINY_TEXT, 'embed_dim': 16}),
    'clip_rn': dict(type='OpenCLIPResNet', arch='RN50',
                    model_cfg={'vision_cfg': {'width': 8, 'layers': [1, 1, 1, 1]},
                               'text_cfg': TINY_TEXT, 'embed_dim': 16}),
    'dinov2': dict(type='DINOv2VisionTransformer', model_name='vit_small_patch14_dinov2',
                   img_size=(64, 128), out_indices=(1, 3),
                   model_kwargs={'embed_dim': 32, 'depth': 4, 'num_heads': 2}),
}


@pytest.fixture
def tiny_backbones():
    return TINY_BACKBONES
