"""CLIP image encoders from open_clip as mmseg backbones: ViTs and the modified ResNets.

The visual tower of ``open_clip.create_model(arch)`` is kept as ``self.visual``, so open_clip
and OpenAI checkpoints load with their own ``visual.*`` keys; the text tower and the pooling
head (attention pool, ``ln_post``, ``proj``) are dropped: dense features do not use them.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import open_clip
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS
from open_clip.modified_resnet import ModifiedResNet
from timm.layers import resample_abs_pos_embed
from torch import Tensor

from domino_seg.errors import ConfigError, WeightsError
from domino_seg.weights import resolve_open_clip

from ..pretrained import StateDict, log_remap
from .base import (
    PretrainedBackbone,
    check_out_indices,
    checkpoint_blocks,
    patch_grid,
    resize_to_patch_grid,
)


def model_config(arch: str, model_cfg: Optional[dict]) -> dict:
    """open_clip's config of ``arch`` with ``model_cfg`` deep-merged into it (e.g.
    ``{'vision_cfg': {'layers': 4}}``), a plain dict."""
    base = open_clip.get_model_config(arch)
    if base is None:
        raise ConfigError(f'model.segmentor.backbone.arch={arch!r} is not an open_clip model; '
                          'see open_clip.list_models(), e.g. ViT-B-16 or RN50.')
    config = ConfigDict(base)
    config.merge(model_cfg or {})
    return config.to_dict()


def build_visual(arch: str, model_cfg: Optional[dict]) -> torch.nn.Module:
    """The visual tower of open_clip's ``arch`` with random weights."""
    merged = model_config(arch, model_cfg)
    model = open_clip.create_model(arch, pretrained=None,
                                   **{key: merged[key] for key in model_cfg or {}})
    return model.visual


class OpenCLIPBackbone(PretrainedBackbone):
    """What both CLIP families share: ``model.pretrained`` may be an open_clip tag."""

    _arch: str
    #: OpenAI's ViTs use QuickGELU (the ResNets' visual towers use ReLU)
    checks_quick_gelu = False

    @classmethod
    def resolve_weights(cls, pretrained: str, backbone: dict) -> str:
        """An open_clip tag of the arch (from the local Hugging Face cache) or a file."""
        arch = backbone.get('arch', cls._arch)
        tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        if cls.checks_quick_gelu and tag_cfg.get('quick_gelu') and \
                'quickgelu' not in arch.lower():
            raise ConfigError(
                f'open_clip weights {arch!r} pretrained={pretrained!r} were trained with '
                f'QuickGELU: set model.segmentor.backbone.arch={arch}-quickgelu.')
        try:
            return resolve_open_clip(
                arch, pretrained, key='model.pretrained',
                without='the backbone then starts from random initialisation')[0]
        except (FileNotFoundError, ValueError) as err:
            raise WeightsError(str(err)) from None

    def convert_weights(self, state_dict: StateDict) -> StateDict:
        """open_clip / OpenAI CLIP checkpoints, whole or visual tower only -> ``visual.*``."""
        name = type(self).__name__
        if not any(key.startswith('visual.') for key in state_dict):
            state_dict = {'visual.' + key: value for key, value in state_dict.items()}
            log_remap(name, 'a visual-tower state dict: prefixed its keys with "visual."')
        kept = {key: value for key, value in state_dict.items() if key.startswith('visual.')}
        if len(kept) < len(state_dict):
            log_remap(name, f'ignored {len(state_dict) - len(kept)} tensors of the text tower')
        dropped = sorted(key for key in kept if self._unused(key))
        if dropped:
            log_remap(name, f'ignored {len(dropped)} tensors dense features do not use '
                      f'(pooling head, blocks after the last output), e.g. {dropped[:3]}')
        return {key: value for key, value in kept.items() if not self._unused(key)}

    def _unused(self, key: str) -> bool:
        return re.match(r'visual\.(attnpool|attn_pool|ln_post|proj$)', key) is not None


@MODELS.register_module()
class OpenCLIPVisionTransformer(OpenCLIPBackbone):
    """A CLIP ViT (open_clip ``arch``) giving the patch-token maps of blocks ``out_indices``.

    Inputs of any size: an image is resized to the nearest multiple of the patch size (see
    :func:`resize_to_patch_grid`) and the positional embedding, built for ``img_size``, is
    resampled to its token grid. Outputs have stride ``patch_size``; a neck such as mmseg's
    ``Feature2Pyramid`` makes the pyramid (strides 4, 8, 16, 32 for patch 16).

    Args:
        arch: open_clip model name; OpenAI weights need the ``-quickgelu`` variant.
        model_cfg: overrides deep-merged into the arch's open_clip config.
        img_size: (h, w) the positional embedding is built (and pretrained ones resampled) for,
            normally the training crop.
        out_indices: blocks whose outputs are returned; blocks after the last are removed.
        with_cp: gradient checkpointing of the blocks (less memory, slower).
    """
    _arch = 'ViT-B-16'
    checks_quick_gelu = True

    def __init__(self, arch: str = 'ViT-B-16', model_cfg: Optional[dict] = None,
                 img_size: Sequence[int] = (224, 224), out_indices: Sequence[int] = (3, 5, 7, 11),
                 with_cp: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        patch = model_config(arch, model_cfg)['vision_cfg'].get('patch_size')
        if not patch:
            raise ConfigError(f'model.segmentor.backbone.arch={arch!r} is not an open_clip ViT; '
                              'use OpenCLIPResNet for the RN models.')
        grid = patch_grid(img_size, (patch, patch))
        model_cfg = ConfigDict(model_cfg or {})
        model_cfg.merge({'vision_cfg': {'image_size': [g * patch for g in grid]}})
        visual = build_visual(arch, model_cfg.to_dict())
        self.out_indices = check_out_indices(out_indices, len(visual.transformer.resblocks),
                                             f'CLIP {arch}')
        visual.prune_intermediate_layers(list(self.out_indices), prune_norm=True)
        visual.attn_pool = visual.attn_pool_contrastive = None
        if with_cp:
            checkpoint_blocks(visual.transformer.resblocks)
        self.visual = visual
        self.num_layers = len(visual.transformer.resblocks)

    def forward(self, x: Tensor) -> tuple:
        visual = self.visual
        x = resize_to_patch_grid(x, visual.patch_size)
        tokens = visual.conv1(x)
        batch, _, height, width = tokens.shape
        tokens = tokens.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.view(1, 1, -1).expand(batch, -1, -1).to(tokens.dtype)
        pos = resample_abs_pos_embed(visual.positional_embedding.unsqueeze(0), (height, width),
                                     old_size=visual.grid_size, num_prefix_tokens=1)
        tokens = visual.ln_pre(torch.cat([cls, tokens], dim=1) + pos.to(tokens.dtype))
        _, outs = visual.transformer.forward_intermediates(tokens, indices=list(self.out_indices))
        return tuple(out[:, 1:].transpose(1, 2).reshape(batch, -1, height, width) for out in outs)

    def convert_weights(self, state_dict: StateDict) -> StateDict:
        state_dict = super().convert_weights(state_dict)
        key, own = 'visual.positional_embedding', self.visual.positional_embedding
        old = state_dict.get(key)
        side = int(round((old.shape[0] - 1) ** 0.5)) if old is not None else 0
        # a square grid of the same width (CLIP's files); anything else is reported on loading
        if old is not None and old.shape != own.shape and old.shape[1] == own.shape[1] and \
                side * side == old.shape[0] - 1:
            grid = self.visual.grid_size
            state_dict[key] = resample_abs_pos_embed(old.unsqueeze(0), grid,
                                                     num_prefix_tokens=1)[0]
            log_remap(type(self).__name__,
                      f'resampled {key} from a {side}x{side} grid to {grid[0]}x{grid[1]}')
        return state_dict

    def _unused(self, key: str) -> bool:
        block = re.match(r'visual\.transformer\.resblocks\.(\d+)\.', key)
        return super()._unused(key) or (block is not None and
                                         int(block.group(1)) >= self.num_layers)

    def layer_id(self, name: str) -> int:
        match = re.match(r'visual\.transformer\.resblocks\.(\d+)\.', name)
        if match:
            return int(match.group(1)) + 1
        embeddings = ('visual.conv1', 'visual.class_embedding', 'visual.positional_embedding',
                      'visual.ln_pre')
        return 0 if name.startswith(embeddings) else self.num_layers


@MODELS.register_module()
class OpenCLIPResNet(OpenCLIPBackbone):
    """CLIP's modified ResNet (open_clip ``RN50``, ``RN101``, ...): stages 1-4 at strides 4,
    8, 16 and 32 (3-conv stem, anti-aliased average-pool downsampling).

    Args:
        arch: open_clip model name.
        model_cfg: overrides deep-merged into the arch's open_clip config.
        out_indices: stages (0..3) whose outputs are returned.
        norm_eval: keep the BatchNorm layers in eval mode while training (their pretrained
            statistics stay fixed; their affine parameters still train), as mmseg's ResNet
            ``norm_eval``: right for small per-GPU batches.
    """
    _arch = 'RN50'

    def __init__(self, arch: str = 'RN50', model_cfg: Optional[dict] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3), norm_eval: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        visual = build_visual(arch, model_cfg)
        if not isinstance(visual, ModifiedResNet):
            raise ConfigError(f'model.segmentor.backbone.arch={arch!r} is not an open_clip '
                              'ResNet (RN50, RN101, ...); use OpenCLIPVisionTransformer.')
        self.out_indices = check_out_indices(out_indices, 4, f'CLIP {arch} stages')
        visual.attnpool = None
        self.visual = visual
        self.norm_eval = norm_eval
        self.num_layers = 4

    def forward(self, x: Tensor) -> tuple:
        out = self.visual.forward_intermediates(
            x, indices=[i + 1 for i in self.out_indices], intermediates_only=True)
        return tuple(out['image_intermediates'])

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.modules():
                # (torch's private base: the only class mmengine's _BatchNormXd, which
                # replaces SyncBN on CPU, shares with BatchNorm2d)
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def layer_id(self, name: str) -> int:
        match = re.match(r'visual\.layer(\d)\.', name)
        return int(match.group(1)) if match else 0
