"""Backbone weights: resolve ``model.pretrained`` to a local file, then load it safely.

Nothing is downloaded during a run: a library weight name (an open_clip tag, a timm hub name,
``open-mmlab://...``) must already be in its local cache, otherwise resolving fails at once
with how to provide the file. Files are read with ``torch.load(weights_only=True)`` or as
safetensors; each backbone remaps the file's keys to its own and resamples positional
embeddings, and the load reports what it skipped through mmengine's logger. mmseg's own
backbones (MiT, ResNetV1c) load through mmengine's ``Pretrained`` init instead, which logs
missing and unexpected keys itself.
"""
from __future__ import annotations

import logging
import os.path as osp
from typing import Callable, Dict, Iterable, Optional
from urllib.parse import urlparse

import torch
import torch.nn as nn
from huggingface_hub import try_to_load_from_cache
from mmengine.logging import print_log

from domino_seg.errors import WeightsError

from .domino_norm import DominoNorm

StateDict = Dict[str, torch.Tensor]
HOW_TO_PROVIDE = ('set model.pretrained=/path/to/weights (.pth / .safetensors), or '
                  'model.pretrained=null to train from random initialisation')


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


def resolve_file_or_url(pretrained: str) -> str:
    """A local file, or a URL mmengine downloads into torch's hub cache, as a cached file."""
    path = osp.expanduser(pretrained)
    if osp.isfile(path):
        return path
    url = _url_of(pretrained)
    if url is None:
        raise WeightsError(f'model.pretrained={pretrained!r} is not a file (nor a URL or a '
                           f'weights name this backbone knows): {HOW_TO_PROVIDE}.')
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))
    if osp.isfile(cached):
        return cached
    raise WeightsError(
        f'model.pretrained={pretrained!r} is not in the local cache ({cached}); domino-seg never '
        f'downloads weights during a run. Download {url} to that path (or anywhere and '
        f'{HOW_TO_PROVIDE}).')


def _url_of(name: str) -> Optional[str]:
    from mmengine.runner.checkpoint import get_external_models, get_torchvision_models
    if name.startswith(('http://', 'https://')):
        return name
    for prefix, urls in (('open-mmlab://', get_external_models),
                         ('torchvision://', get_torchvision_models)):
        if name.startswith(prefix):
            known = urls()
            key = name[len(prefix):]
            if key not in known:
                raise WeightsError(f'model.pretrained={name!r}: unknown name {key!r} (known: '
                                   f'{", ".join(sorted(known)[:20])}, ...).')
            return known[key]
    return None


def cached_hub_file(repo_id: str, filenames: Iterable[str], what: str, download_code: str) -> str:
    """The first of ``filenames`` of Hugging Face hub repo ``repo_id`` in the local cache;
    otherwise a WeightsError saying how to provide ``what``."""
    filenames = list(filenames)
    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename)
        if isinstance(cached, str):
            return cached
    raise WeightsError(
        f'{what} are not in the local Hugging Face cache (looked for {filenames} of hub repo '
        f'{repo_id!r}); domino-seg never downloads weights during a run. Provide them in one '
        f'of these ways:\n  1. on a machine with internet run: python -c "{download_code}" and '
        'copy its Hugging Face cache (~/.cache/huggingface/hub, or $HF_HOME) to this machine;\n'
        f'  2. download the weights file and {HOW_TO_PROVIDE}.')


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
    domino_mlps = tuple(f'{prefix}.mlp.' for prefix, child in module.named_modules()
                        if isinstance(child, DominoNorm))
    missing = [key for key in missing if not key.startswith(domino_mlps)]
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
