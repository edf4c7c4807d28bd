"""Domain prompt generator: turns an image or a condition label into a domain embedding.

Domino's normalisation layers predict their scale/shift from this embedding, made by an encoder
backend: open_clip (text and image towers) or a Hugging Face sentence encoder (text only, see
``text_encoder``); each says its width and whether it carries language meaning. Modes:

* ``text``: a condition label -> mean of its normalised prompt embeddings (renormalised);
* ``zero_shot``: image -> softmax(cos(image, conditions) / temperature) -> probability-weighted
  mix of the condition embeddings (a convex combination, so not unit-norm in general);
* ``image``: the normalised CLIP image embedding itself;
* ``none``: no embedding (the baseline); no CLIP is built and no weights are needed.

Weights are never downloaded here: an open_clip tag must already be in the local Hugging Face
cache, otherwise construction fails at once with instructions (a plain open_clip call would sit
in network retries for ~46 s offline). Building always runs under a fixed seed in a forked RNG,
so random weights (``pretrained=None``) are identical in every process (dataloader workers, the
precompute tool, training) and the caller's RNG stream is untouched.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import try_to_load_from_cache
from mmengine.logging import print_log
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from PIL import Image

from .prompts import PromptBank, load_prompt_bank
from .text_encoder import HFTextEncoder

MODES = ('text', 'zero_shot', 'image', 'none')
IMAGE_MODES = ('zero_shot', 'image')
DEFAULT_MODE = 'zero_shot'
TINY_CLIP = 'domino-tiny-clip'
CHECKPOINT_SUFFIXES = ('.bin', '.pt', '.pth', '.safetensors')

# Makes `domino-tiny-clip` (and any JSON config dropped next to it) an open_clip model name.
open_clip.add_model_config(Path(__file__).with_name('model_configs'))


class OpenClipEncoder:
    """An open_clip model (text and image towers), built once under a fixed seed.

    Args: as the CLIP arguments of DomainPromptGenerator.
    """

    def __init__(self, arch: str, pretrained: Optional[str], model_cfg: Optional[dict],
                 device: torch.device, seed: int):
        checkpoint, tag_cfg = resolve_pretrained(arch, pretrained)
        config = deep_merge(open_clip.get_model_config(arch) or {}, model_cfg or {})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=checkpoint, device=device,
                force_quick_gelu=tag_cfg.get('quick_gelu', False),
                image_mean=tag_cfg.get('mean'), image_std=tag_cfg.get('std'),
                image_interpolation=tag_cfg.get('interpolation'),
                image_resize_mode=tag_cfg.get('resize_mode'),
                **{key: config[key] for key in (model_cfg or {})})
        self.model.eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(arch, context_length=self.model.context_length)
        self.device = device
        self.embed_dim = int(config['embed_dim'])
        self.has_language_meaning = pretrained is not None

        if tag_cfg:
            weights = f'tag:{pretrained}'
        elif checkpoint:
            weights = f'sha256:{_file_sha256(checkpoint)}'
        else:
            weights = f'random:seed={seed}'
        # everything the CLIP image features depend on; the embedding cache is keyed by it
        self.identity = {'arch': arch, 'model_cfg': model_cfg or {}, 'weights': weights}
        if not self.has_language_meaning:
            print_log(f'DomainPromptGenerator: arch {arch!r} has random weights (pretrained=None); '
                      'its domain embeddings carry no language meaning.',
                      logger='current', level=logging.WARNING)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> normalised CLIP text embeddings, float32 CPU Tensor[N, D], one batch."""
        with torch.no_grad():
            features = self.model.encode_text(self.tokenizer(list(prompts)).to(self.device),
                                              normalize=True)
        return features.float().cpu()

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images -> normalised CLIP image embeddings, float32 CPU Tensor[N, D]."""
        batch = torch.stack([self.preprocess(image) for image in images])
        with torch.no_grad():
            features = self.model.encode_image(batch.to(self.device), normalize=True)
        return features.float().cpu()


class DomainPromptGenerator:
    """Builds the encoder once and embeds images or condition labels for one ``mode``.

    The encoder is open_clip's (text and image towers) or, with ``text_encoder``, a Hugging
    Face sentence-embedding model (text only, so mode ``text`` only; no CLIP is built).

    Args:
        arch: open_clip model name ('ViT-B-16', TINY_CLIP, ...).
        pretrained: an open_clip tag ('openai') already in the local HF cache, a local checkpoint
            file (.safetensors / .bin / .pt, loaded with weights_only), or None for random weights.
        model_cfg: overrides deep-merged into the arch's open_clip config (e.g.
            ``{'vision_cfg': {'layers': 1}}``).
        mode: one of MODES.
        temperature: softmax temperature of ``zero_shot`` (CLIP's own logit scale is 1/0.01).
        prompt_bank: a PromptBank, a bank YAML path, or None for the default weather bank.
        device: where CLIP runs; outputs are always float32 CPU tensors.
        seed: seed for building the model (fixes random weights across processes).
        text_encoder: HFTextEncoder kwargs (``folder``) to embed the prompts with instead of
            CLIP; the CLIP arguments are then unused.
    """

    def __init__(self, arch: str = TINY_CLIP, pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None, mode: str = DEFAULT_MODE,
                 temperature: float = 0.01,
                 prompt_bank: Union[PromptBank, str, Path, None] = None,
                 device: Union[str, torch.device] = 'cpu', seed: int = 0,
                 text_encoder: Optional[dict] = None):
        if mode not in MODES:
            raise ValueError(f'unknown domain embedding mode {mode!r}; choose one of {MODES}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if text_encoder is not None and mode in IMAGE_MODES:
            raise ValueError(f'mode {mode!r} needs an image tower, which the text encoder '
                             f'{text_encoder} does not have; use mode text')
        self.mode = mode
        self.temperature = float(temperature)
        self.has_language_meaning = False
        if mode == 'none':
            return
        if not isinstance(prompt_bank, PromptBank):
            prompt_bank = load_prompt_bank(prompt_bank)
        self.bank = prompt_bank
        self.encoder = (HFTextEncoder(**text_encoder) if text_encoder is not None else
                        OpenClipEncoder(arch, pretrained, model_cfg, torch.device(device), seed))
        self.has_language_meaning = self.encoder.has_language_meaning
        self.condition_embeddings = self._embed_bank()

    @property
    def embed_dim(self) -> int:
        return 0 if self.mode == 'none' else self.encoder.embed_dim

    @property
    def identity(self) -> dict:
        """What the CLIP image features depend on (the embedding cache's key)."""
        return self.encoder.identity

    @property
    def conditions(self) -> list[str]:
        return self.bank.conditions

    def embed_conditions(self, labels: Sequence[str]) -> torch.Tensor:
        """Condition labels -> their text embeddings, Tensor[N, D] (any mode but none)."""
        if self.mode == 'none':
            return torch.zeros(len(labels), 0)
        unknown = [label for label in labels if label not in self.bank.prompts]
        if unknown:
            raise KeyError(f'unknown condition(s) {unknown}; the prompt bank {self.bank.source} '
                           f'has {self.conditions}')
        return self.condition_embeddings[[self.conditions.index(label) for label in labels]]

    def embed_images(self, images: Sequence[np.ndarray],
                     channel_order: str = 'bgr') -> torch.Tensor:
        """HxWx3 uint8 arrays -> domain embeddings, Tensor[N, D] (``image``/``zero_shot``).

        ``channel_order`` defaults to 'bgr' because mmcv's LoadImageFromFile loads BGR.
        """
        if self.mode == 'none':
            return torch.zeros(len(images), 0)
        return self.embed_from_features(self.image_features(images, channel_order))

    def image_features(self, images: Sequence[np.ndarray],
                       channel_order: str = 'bgr') -> torch.Tensor:
        """Normalised CLIP image embeddings, Tensor[N, D]: the per-image quantity worth caching,
        since the ``image``/``zero_shot`` outputs follow from it without another CLIP pass."""
        if self.mode not in IMAGE_MODES:
            raise ValueError(f"mode {self.mode!r} does not embed images; use embed_conditions")
        return self.encoder.encode_images([_to_pil(image, channel_order) for image in images])

    def embed_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (from ``image_features`` or the cache) -> this mode's embeddings."""
        if self.mode == 'image':
            return features
        if self.mode == 'zero_shot':
            return self.condition_probabilities(features) @ self.condition_embeddings
        raise ValueError(f"mode {self.mode!r} does not embed images; use embed_conditions")

    def condition_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """softmax(cos-sim / temperature) over the bank's conditions, Tensor[N, C] (for logging)."""
        return torch.softmax(features @ self.condition_embeddings.T / self.temperature, dim=-1)

    def _embed_bank(self) -> torch.Tensor:
        """Every condition's prompts, encoded in one batch -> Tensor[C, D] of normalised means."""
        prompt_lists = list(self.bank.prompts.values())
        features = self.encoder.encode_text([prompt for prompts in prompt_lists
                                             for prompt in prompts])
        means = [chunk.mean(0) for chunk in features.split([len(p) for p in prompt_lists])]
        return F.normalize(torch.stack(means), dim=-1)


def resolve_pretrained(arch: str, pretrained: Optional[str],
                       key: str = 'domain.clip.pretrained',
                       without: str = 'domain embeddings then carry no language meaning',
                       ) -> tuple[Optional[str], dict]:
    """``pretrained`` -> (local checkpoint file or None, the open_clip tag config or {}).

    Fails fast (never touches the network) when a tag is not cached or a file does not exist;
    the messages name the config ``key`` that set ``pretrained`` and say what running
    ``without`` weights means.
    """
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
    repo_id, filename = os.path.split(tag_cfg.get('hf_hub', ''))
    filename = filename or HF_WEIGHTS_NAME
    candidates = [filename]
    if filename == HF_WEIGHTS_NAME:
        candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith(('.bin', '.pth')):
        candidates.insert(0, filename[:-4] + '.safetensors')
    for candidate in candidates if repo_id else []:
        cached = try_to_load_from_cache(repo_id, candidate)
        if isinstance(cached, str):
            return cached
    needs_quick_gelu = tag_cfg.get('quick_gelu') and not arch.endswith('quickgelu')
    quick_gelu = f' with arch={arch}-quickgelu' if needs_quick_gelu else ''
    raise FileNotFoundError(
        f"CLIP weights for arch={arch!r} pretrained={tag!r} are not in the local Hugging Face "
        f"cache (looked for {candidates} of hf-hub repo {repo_id!r}); domino-seg never downloads "
        'weights during a run. Provide them in one of these ways:\n'
        f"  1. on a machine with internet run: python -c \"import open_clip; "
        f"open_clip.create_model('{arch}', pretrained='{tag}')\" and copy its Hugging Face cache "
        '(~/.cache/huggingface/hub, or $HF_HOME) to this machine;\n'
        '  2. download the checkpoint file and set '
        f'{key}=/path/to/open_clip_model.safetensors (or '
        f'open_clip_pytorch_model.bin){quick_gelu};\n'
        f'  3. set {key}=null to run with random weights ({without}).')


def deep_merge(base: dict, overrides: dict) -> dict:
    """``base`` updated by ``overrides``, nested dicts key by key (open_clip model configs)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = deep_merge(base[key], value)
        merged[key] = value
    return merged


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _to_pil(image: np.ndarray, channel_order: str) -> Image.Image:
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 image, got shape {image.shape} {image.dtype}')
    rgb = image[..., ::-1] if channel_order == 'bgr' else image
    return Image.fromarray(np.ascontiguousarray(rgb))
