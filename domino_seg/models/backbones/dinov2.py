"""DINOv2 ViTs from timm as mmseg backbones."""
from __future__ import annotations

import re
from typing import Optional, Sequence

import timm
from mmseg.registry import MODELS
from timm.models.vision_transformer import checkpoint_filter_fn
from torch import Tensor

from domino_seg.errors import ConfigError, WeightsError
from domino_seg.weights import cached_hub_file, resolve_file_or_url

from ..pretrained import StateDict, log_remap
from .base import (
    PretrainedBackbone,
    check_out_indices,
    checkpoint_blocks,
    patch_grid,
    resize_to_patch_grid,
)


@MODELS.register_module()
class DINOv2VisionTransformer(PretrainedBackbone):
    """A DINOv2 ViT (timm ``model_name``) giving the patch-token maps of blocks
    ``out_indices``, each after the final LayerNorm (as DINOv2's own dense evaluations).

    Inputs of any size: an image is resized to the nearest multiple of the patch size (14) and
    timm resamples the positional embedding to its token grid (``dynamic_img_size``).
    Outputs have stride 14; a neck such as mmseg's ``Feature2Pyramid`` makes the pyramid.

    Args:
        model_name: timm architecture, e.g. ``vit_small_patch14_dinov2`` (S/14),
            ``vit_base_patch14_dinov2``, ``vit_large_patch14_dinov2``.
        img_size: (h, w) the positional embedding is built (and pretrained ones resampled) for,
            normally the training crop.
        out_indices: blocks whose outputs are returned; blocks after the last are removed.
        drop_path_rate: stochastic depth of the blocks.
        model_kwargs: more timm ``create_model`` arguments (e.g. ``embed_dim``, ``depth``).
        with_cp: gradient checkpointing of the blocks (less memory, slower).
    """

    def __init__(self, model_name: str = 'vit_small_patch14_dinov2',
                 img_size: Sequence[int] = (518, 518),
                 out_indices: Sequence[int] = (2, 5, 8, 11), drop_path_rate: float = 0.0,
                 model_kwargs: Optional[dict] = None, with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not timm.is_model(model_name):
            raise ConfigError(f'model.segmentor.backbone.model_name={model_name!r} is not a timm '
                              "model; see timm.list_models('*dinov2*').")
        kwargs = dict(model_kwargs or {})
        patch = kwargs.get('patch_size', 14)
        grid = patch_grid(img_size, (patch, patch))
        self.vit = timm.create_model(
            model_name, pretrained=False, num_classes=0, dynamic_img_size=True,
            img_size=tuple(g * patch for g in grid), drop_path_rate=drop_path_rate, **kwargs)
        self.out_indices = check_out_indices(out_indices, len(self.vit.blocks),
                                             f'timm {model_name}')
        self.vit.prune_intermediate_layers(list(self.out_indices), prune_head=True)
        if with_cp:
            checkpoint_blocks(self.vit.blocks)
        self.num_layers = len(self.vit.blocks)

    @classmethod
    def resolve_weights(cls, pretrained: str, backbone: dict) -> str:
        """A timm weights name (``vit_small_patch14_dinov2.lvd142m``) in the local Hugging Face
        cache, or a file (timm's or facebookresearch/dinov2's layout)."""
        name = backbone.get('model_name', 'vit_small_patch14_dinov2')
        arch = pretrained.split('.')[0]
        if not timm.is_model(arch) or timm.models.get_pretrained_cfg(pretrained) is None:
            return resolve_file_or_url(pretrained)
        if arch != name:
            raise WeightsError(f'model.pretrained={pretrained!r} are weights of {arch}, but '
                               f'model.segmentor.backbone.model_name={name!r}.')
        hub_id = timm.models.get_pretrained_cfg(pretrained).hf_hub_id
        return cached_hub_file(hub_id, ('model.safetensors', 'pytorch_model.bin'),
                               f'timm weights {pretrained!r}',
                               f"import timm; timm.create_model('{pretrained}', pretrained=True)")

    def forward(self, x: Tensor) -> tuple:
        x = resize_to_patch_grid(x, self.vit.patch_embed.patch_size)
        return tuple(self.vit.forward_intermediates(
            x, indices=list(self.out_indices), norm=True, intermediates_only=True))

    def convert_weights(self, state_dict: StateDict) -> StateDict:
        """timm or facebookresearch/dinov2 checkpoints (or this module's own) -> ``vit.*``,
        through timm's own converter, which also resamples the positional embedding."""
        name = type(self).__name__
        if all(key.startswith('vit.') for key in state_dict):
            state_dict = {key[len('vit.'):]: value for key, value in state_dict.items()}
        if 'mask_token' in state_dict:
            log_remap(name, "converted facebookresearch/dinov2's layout to timm's")
        old = state_dict.get('pos_embed')
        state_dict = checkpoint_filter_fn(state_dict, self.vit)
        new = state_dict.get('pos_embed')
        if old is not None and new is not None and old.shape != new.shape:
            log_remap(name, f'resampled pos_embed from {old.shape[1]} to {new.shape[1]} tokens '
                      f'({self.vit.patch_embed.grid_size[0]}x{self.vit.patch_embed.grid_size[1]})')
        unused = [key for key in state_dict if self._unused(key)]
        if unused:
            log_remap(name, f'ignored {len(unused)} tensors dense features do not use '
                      f'(classifier head, blocks after the last output), e.g. {unused[:3]}')
        return {'vit.' + key: value for key, value in state_dict.items() if key not in unused}

    def _unused(self, key: str) -> bool:
        block = re.match(r'blocks\.(\d+)\.', key)
        return key.startswith(('head.', 'fc_norm.')) or (
            block is not None and int(block.group(1)) >= self.num_layers)

    def layer_id(self, name: str) -> int:
        match = re.match(r'vit\.blocks\.(\d+)\.', name)
        if match:
            return int(match.group(1)) + 1
        embeddings = ('vit.cls_token', 'vit.reg_token', 'vit.pos_embed', 'vit.patch_embed')
        return 0 if name.startswith(embeddings) else self.num_layers
