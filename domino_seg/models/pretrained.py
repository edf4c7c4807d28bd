"""Backbone weights: resolve ``model.pretrained`` to a local file, then load it safely.

Nothing is downloaded during a run: a library weight name (an open_clip tag, a timm hub name,
``open-mmlab://...``) must already be in its local cache (:mod:`domino_seg.weights` looks it
up), otherwise resolving fails at once with how to provide the file. Files are read with
``torch.load(weights_only=True)`` or as safetensors; each backbone remaps the file's keys to
its own and resamples positional embeddings, and the load reports what it skipped through
mmengine's logger. mmseg's own
backbones (MiT, ResNetV1c) load through mmengine's ``Pretrained`` init instead, which logs
missing and unexpected keys itself.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict

import torch
import torch.nn as nn
from mmengine.logging import print_log

from domino_seg.errors import WeightsError
from domino_seg.weights import HOW_TO_PROVIDE, resolve_file_or_url

from .domino_norm import domino_mlp_keys

StateDict = Dict[str, torch.Tensor]


def resolve_weights(pretrained: str, backbone: dict) -> str:
    """``model.pretrained`` -> a local weights file for the backbone config ``backbone``.

    Backbones of this package resolve their library's names (``resolve_weights``); any
    backbone accepts a local file or a URL (``open-mmlab://``, ``torchvision://``, ``http``)
    already in torch's hub cache, where mmengine would download it to.
    """
    from mmseg.registry import MODELS
    backbone_cls = MODELS.get(backbone['type'])
    if hasattr(backbone_cls, 'resolve_weights'):
        return backbone_cls.resolve_weights(pretrained, backbone)
    path = resolve_file_or_url(pretrained)
    if path.endswith('.safetensors'):
        raise WeightsError(
            f"model.pretrained={pretrained!r}: {backbone['type']} loads its weights through "
            "mmengine, which reads .pth files only. Convert the file: python -c \"import torch; "
            "from safetensors.torch import load_file; torch.save(load_file('IN.safetensors'), "
            "'OUT.pth')\"")
    return path


def read_state_dict(path: str) -> StateDict:
    """The tensors of a weights file, unwrapped from ``state_dict``/``model`` containers and a
    ``module.`` (DataParallel) prefix. Never unpickles arbitrary objects."""
    from mmengine.runner.checkpoint import CheckpointLoader
    from safetensors.torch import load_file
    if path.endswith('.safetensors'):
        try:
            checkpoint = load_file(path)
        except Exception as err:  # truncated, or not a safetensors file at all
            reason = str(err).strip().splitlines()[0] if str(err).strip() else ''
            raise WeightsError(
                f'cannot read backbone weights {path}: {type(err).__name__}: {reason}. Expected '
                'a .safetensors file (or a state dict saved with torch.save).') from None
    else:  # weights_only=True; compat's loader explains a file it cannot read
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise WeightsError(f'backbone weights {path} hold a {type(checkpoint).__name__}, not '
                           'a state dict.')
    state_dict = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def load_pretrained(module: nn.Module, path: str,
                    convert: Callable[[StateDict], StateDict]) -> None:
    """Load ``path`` into ``module``: ``convert`` maps the file's keys (and positional
    embedding sizes) to the module's; missing and unexpected keys are logged, a tensor of the
    wrong shape or a file that matches nothing is a WeightsError.

    Domino layers converted before loading are fine: their wrapped norms take the plain norm
    keys, and their new MLPs are not reported as missing.
    """
    name = type(module).__name__
    state_dict = convert(read_state_dict(path))
    try:
        missing, unexpected = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:
        raise WeightsError(f'backbone weights {path} do not fit {name}: {err}\nPick the '
                           'architecture the weights were trained with (model.segmentor.backbone) '
                           f'or other weights: {HOW_TO_PROVIDE}.') from None
    domino_mlps = domino_mlp_keys(module)
    missing = [key for key in missing if key not in domino_mlps]
    loaded = len(state_dict) - len(unexpected)
    if loaded == 0:
        raise WeightsError(f'none of the {len(state_dict)} tensors in {path} belong to {name} '
                           f'(e.g. {sorted(state_dict)[:3]}); are these weights for another '
                           f'model? {HOW_TO_PROVIDE}.')
    print_log(f'{name}: loaded {loaded} tensors from {path}', logger='current')
    for what, keys in (('missing in the file (left at their initialisation)', missing),
                       ('in the file but not in the model (ignored)', unexpected)):
        if keys:
            print_log(f'{name}: {len(keys)} keys {what}: {_abbreviate(keys)}',
                      logger='current', level=logging.WARNING)


def _abbreviate(keys: list, limit: int = 12) -> str:
    keys = sorted(keys)
    more = f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def log_remap(name: str, message: str) -> None:
    """One INFO line per key remapping a backbone applies to a weights file."""
    print_log(f'{name}: {message}', logger='current')
