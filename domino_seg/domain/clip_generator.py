"""Domain prompt generator: turns an image or a condition label into a domain embedding.

Domino's normalisation layers predict their scale/shift from this embedding, made by a text
encoder backend (``TEXT_ENCODERS``): open_clip (text and image towers, here) or a Hugging Face
sentence encoder (text only, see ``text_encoder``), or one-hot condition codes without any
text (``onehot``); each says its width and whether it carries language meaning. Modes:

* ``text``: a condition label -> mean of its normalised prompt embeddings (renormalised);
* ``zero_shot``: image -> softmax(cos(image, conditions) / temperature) -> probability-weighted
  mix of the condition embeddings (a convex combination, so not unit-norm in general);
* ``image``: the normalised CLIP image embedding itself;
* ``onehot``: a condition label -> its one-hot code (:mod:`domino_seg.domain.onehot`), the
  language-free control of ``text``.

The baseline (``domain=none``) builds no generator: no DomainEmbedder is configured.

Weights are never downloaded here: an open_clip tag must already be in the local Hugging Face
cache (:func:`domino_seg.weights.resolve_open_clip`), otherwise construction fails at once with
instructions. Building always runs under a fixed seed in a forked RNG,
so random weights (``pretrained=None``) are identical in every process (the
precompute tool, training, inference) and the caller's RNG stream is untouched.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from domino_seg.errors import ConfigError, WeightsError
from domino_seg.registry import TEXT_ENCODERS, registered
from domino_seg.weights import resolve_open_clip

from .onehot import OneHotCodes
from .prompts import PromptBank, load_prompt_bank
from .text_encoder import TextEncoderBackend

MODES = ('text', 'zero_shot', 'image', 'onehot')
IMAGE_MODES = ('zero_shot', 'image')
# the modes that embed a sample's condition label
LABEL_MODES = ('text', 'onehot')
DEFAULT_MODE = 'zero_shot'
TINY_CLIP = 'domino-tiny-clip'

# |norm - 1| beyond which a vector is no normalised embedding (float32 rounding is ~1e-7, a
# float16 copy's ~1e-4): a cache entry or an embedding file further off is another quantity
UNIT_NORM_TOLERANCE = 1e-3

# Makes `domino-tiny-clip` (and any JSON config dropped next to it) an open_clip model name.
open_clip.add_model_config(Path(__file__).with_name('model_configs'))


@TEXT_ENCODERS.register_module('open_clip')
class OpenClipEncoder(TextEncoderBackend):
    """An open_clip model (text and image towers), built once under a fixed seed; the CLIP of
    ``domain.clip`` (its option has no keys of its own).

    Args: as the CLIP arguments of DomainPromptGenerator.
    """

    image_tower = True

    @classmethod
    def generator_kwargs(cls, domain: DictConfig) -> dict:
        clip = OmegaConf.to_container(domain.clip, resolve=True)
        return dict(arch=clip['arch'], pretrained=clip['pretrained'],
                    model_cfg=clip['model_cfg'], seed=clip['seed'])

    @classmethod
    def configured_dim(cls, domain: DictConfig) -> int:
        clip = domain.clip
        overrides = OmegaConf.to_container(clip.model_cfg, resolve=True) if clip.model_cfg \
            else {}
        if 'embed_dim' in overrides:
            return int(overrides['embed_dim'])
        model_cfg = open_clip.get_model_config(clip.arch)
        if model_cfg is None:
            raise ConfigError(f'domain.clip.arch={clip.arch!r} is not an open_clip model; '
                              'choose one of open_clip.list_models(), e.g. ViT-B-16.')
        return int(model_cfg['embed_dim'])

    @classmethod
    def check_weights(cls, domain: DictConfig) -> None:
        """Also warns when the weights are random."""
        try:
            resolve_open_clip(domain.clip.arch, domain.clip.pretrained)
        except (FileNotFoundError, ValueError) as err:
            raise WeightsError(str(err)) from None
        if domain.clip.pretrained is None:
            print_log(f'domain.clip.pretrained is null: CLIP {domain.clip.arch!r} has random '
                      'weights, so the domain embeddings carry no language meaning (recorded '
                      'in metrics.json).', logger='current', level=30)

    @classmethod
    def describe(cls, domain: DictConfig) -> dict:
        clip = domain.clip
        weights = clip.pretrained if clip.pretrained is not None else f'random:seed={clip.seed}'
        return dict(encoder=f'open_clip:{clip.arch}', weights=weights,
                    has_language_meaning=clip.pretrained is not None)

    def __init__(self, arch: str, pretrained: Optional[str], model_cfg: Optional[dict],
                 device: torch.device, seed: int):
        checkpoint, tag_cfg = resolve_open_clip(arch, pretrained)
        config = _model_config(arch, model_cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = open_clip.create_model(
                arch, pretrained=checkpoint, device=device,
                force_quick_gelu=tag_cfg.get('quick_gelu', False),
                force_preprocess_cfg={key: tag_cfg[key] for key in PREPROCESS_TAG_KEYS
                                      if tag_cfg.get(key) is not None},
                **{key: config[key] for key in (model_cfg or {})})
        self.preprocess_cfg = clip_preprocess_cfg(arch, pretrained, model_cfg)
        built = _plain(open_clip.get_model_preprocess_cfg(self.model))
        if built != self.preprocess_cfg:  # the data workers preprocess by clip_preprocess_cfg
            raise RuntimeError(f'open_clip preprocesses {arch!r} images with {built}, not the '
                               f'{self.preprocess_cfg} domino-seg derived from its config')
        self.preprocess = clip_preprocess(self.preprocess_cfg)
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
        return self.encode_pixels(torch.stack([self.preprocess(image) for image in images]))

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed images (N, 3, H, W) -> normalised CLIP image embeddings, float32 CPU
        Tensor[N, D]; in float32 under a training step's autocast too, so cached features
        never depend on the run's precision."""
        device = torch.device(self.device)
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            features = self.model.encode_image(pixels.to(device, torch.float32), normalize=True)
        return features.float().cpu()


class DomainPromptGenerator:
    """Builds the encoder once and embeds images or condition labels for one ``mode``.

    The encoder is open_clip's (text and image towers) or, with ``text_encoder``, a Hugging
    Face sentence-embedding model (text only, so mode ``text`` only; no CLIP is built). Mode
    ``onehot`` builds none: its embeddings are the :class:`OneHotCodes` of the bank's
    conditions given ``seen``.

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
        text_encoder: the kwargs of a text encoder backend (``TEXT_ENCODERS``) to embed the
            prompts with instead of CLIP, ``type`` its name (default ``hf``, e.g.
            ``{'folder': ...}``); the CLIP arguments are then unused.
        seen: mode ``onehot``: the conditions of the bank training saw (the others get their
            mean code).
    """

    def __init__(self, arch: str = TINY_CLIP, pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None, mode: str = DEFAULT_MODE,
                 temperature: float = 0.01,
                 prompt_bank: Union[PromptBank, str, Path, None] = None,
                 device: Union[str, torch.device] = 'cpu', seed: int = 0,
                 text_encoder: Optional[dict] = None, seen: Optional[Sequence[str]] = None):
        if mode not in MODES:
            raise ValueError(f'unknown domain embedding mode {mode!r}; choose one of {MODES}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if text_encoder is not None:
            text_encoder = {'type': 'hf', **text_encoder}
            backend = TEXT_ENCODERS.get(text_encoder['type'])
            if backend is None:
                raise ValueError(f'text_encoder: no backend {text_encoder["type"]!r}; '
                                 f'registered: {", ".join(registered(TEXT_ENCODERS))}')
            if mode in IMAGE_MODES and not backend.image_tower:
                raise ValueError(f'mode {mode!r} needs an image tower, which the text encoder '
                                 f'{text_encoder} does not have; use mode text')
        self.mode = mode
        self.temperature = float(temperature)
        if not isinstance(prompt_bank, PromptBank):
            prompt_bank = load_prompt_bank(prompt_bank)
        self.bank = prompt_bank
        if mode == 'onehot':
            self.encoder = OneHotCodes(self.bank.conditions, seen or ())
            self.condition_embeddings = self.encoder.codes
        else:
            if text_encoder is None:
                self.encoder = OpenClipEncoder(arch, pretrained, model_cfg,
                                               torch.device(device), seed)
            else:
                self.encoder = backend(**{k: v for k, v in text_encoder.items() if k != 'type'})
            self.condition_embeddings = self._embed_bank()
        self.has_language_meaning = self.encoder.has_language_meaning

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def identity(self) -> dict:
        """What the CLIP image features depend on (the embedding cache's key)."""
        return self.encoder.identity

    @property
    def conditions(self) -> list[str]:
        return self.bank.conditions

    def embed_conditions(self, labels: Sequence[str]) -> torch.Tensor:
        """Condition labels -> their text embeddings, Tensor[N, D] (any mode)."""
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
        return self.embed_from_features(self.image_features(images, channel_order))

    def image_features(self, images: Sequence[np.ndarray],
                       channel_order: str = 'bgr') -> torch.Tensor:
        """Normalised CLIP image embeddings, Tensor[N, D]: the per-image quantity worth caching,
        since the ``image``/``zero_shot`` outputs follow from it without another CLIP pass."""
        if self.mode not in IMAGE_MODES:
            raise ValueError(f"mode {self.mode!r} does not embed images; use embed_conditions")
        return self.encoder.encode_images([to_pil(image, channel_order) for image in images])

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """:meth:`image_features` of images :func:`clip_preprocess` prepared (in data-loader
        workers), Tensor[N, D]."""
        if self.mode not in IMAGE_MODES:
            raise ValueError(f"mode {self.mode!r} does not embed images; use embed_conditions")
        return self.encoder.encode_pixels(pixels)

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

    def embed_descriptions(self, descriptions: Sequence[str]) -> torch.Tensor:
        """Free descriptions (``'in a dax'``) -> Tensor[N, D], each embedded as a bank
        condition with that one description is: put into every template of the bank (used
        verbatim when it has none), the normalised mean of the prompts' embeddings."""
        templates = self.bank.templates or ('{}',)
        return self._embed_prompts([[template.replace('{}', description)
                                     for template in templates]
                                    for description in descriptions])

    def _embed_bank(self) -> torch.Tensor:
        """Every condition's prompts -> Tensor[C, D] (:meth:`_embed_prompts`)."""
        return self._embed_prompts(list(self.bank.prompts.values()))

    def _embed_prompts(self, prompt_lists: Sequence[Sequence[str]]) -> torch.Tensor:
        """Lists of prompts, encoded in one batch -> Tensor[N, D] of normalised means."""
        features = self.encoder.encode_text([prompt for prompts in prompt_lists
                                             for prompt in prompts])
        means = [chunk.mean(0) for chunk in features.split([len(p) for p in prompt_lists])]
        return F.normalize(torch.stack(means), dim=-1)


# what an open_clip pretrained tag may say about its image preprocessing
PREPROCESS_TAG_KEYS = ('mean', 'std', 'interpolation', 'resize_mode')


def _model_config(arch: str, model_cfg: Optional[dict]) -> dict:
    """The arch's open_clip config with ``model_cfg`` deep-merged (nested dicts key by key)."""
    merged = ConfigDict(open_clip.get_model_config(arch) or {})
    merged.merge(model_cfg or {})
    return merged.to_dict()


def clip_preprocess_cfg(arch: str, pretrained: Optional[str],
                        model_cfg: Optional[dict] = None) -> dict:
    """open_clip's image preprocessing for this CLIP (size, mean, std, interpolation, resize
    mode), known without building the model: data-loader workers prepare CLIP's input by it
    while CLIP itself runs in the main process. OpenClipEncoder checks it against open_clip's."""
    from open_clip.transform import PreprocessCfg
    _, tag_cfg = resolve_open_clip(arch, pretrained)
    size = _model_config(arch, model_cfg)['vision_cfg']['image_size']
    cfg = dict(vars(PreprocessCfg()), size=size,
               **{key: tag_cfg[key] for key in PREPROCESS_TAG_KEYS if tag_cfg.get(key)})
    return _plain(cfg)


def clip_preprocess(cfg: dict):
    """The torchvision transform (PIL RGB image -> float Tensor[3, H, W]) of a
    :func:`clip_preprocess_cfg`."""
    from open_clip.transform import PreprocessCfg, image_transform_v2
    return image_transform_v2(PreprocessCfg(**cfg), is_train=False)


def _plain(cfg: dict) -> dict:
    """A preprocess cfg as plain JSON values (lists, a [h, w] size) so two compare equal and it
    reads well in a saved config."""
    size = cfg['size']
    size = list(size) if isinstance(size, (list, tuple)) else [size, size]
    return {key: (list(value) if isinstance(value, tuple) else value)
            for key, value in dict(cfg, size=size).items()}


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def to_pil(image: np.ndarray, channel_order: str) -> Image.Image:
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 image, got shape {image.shape} {image.dtype}')
    rgb = image[..., ::-1] if channel_order == 'bgr' else image
    return Image.fromarray(np.ascontiguousarray(rgb))
